#pragma once
// llama-server's utility endpoints, for a chat model of this node (picked by
// "model" as the generation endpoints pick it):
//   POST /tokenize, /detokenize  a prompt's tokens, or ids back as text, with
//                                the model's own tokenizer
//   POST /apply-template         {"prompt"}: the chat a chat-completion body
//                                would send, rendered by the model's template
//   GET  /props[?model=ID]       the model's settings as llama-server's web
//                                UI and tools read them: n_ctx, slots, default
//                                sampling, chat template, special tokens

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> tokenize_routes(ModelHost& host);

}  // namespace tars::node
