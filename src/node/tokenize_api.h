#pragma once
// llama-server's POST /tokenize and POST /detokenize, for a chat model of
// this node (picked by "model" as the generation endpoints pick it): clients
// count a prompt's tokens, or read ids back as text, with the model's own
// tokenizer.

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> tokenize_routes(ModelHost& host);

}  // namespace tars::node
