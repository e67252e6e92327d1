#pragma once
// llama-server's own completion API, for the tools written against it
// (editors' code completion, scripts, front ends):
//   POST /completion, /completions  {prompt, n_predict, ...}: the answer as
//                                   {content, tokens, stop_type, timings, ...},
//                                   or a stream of {content, tokens, stop}
//                                   events ending in the whole answer's fields
//   POST /infill                    {input_prefix, input_suffix, input_extra,
//                                   prompt, ...}: the same, filling in the
//                                   middle on a code model
//   GET  /slots[?model=ID]          what each slot of the model does, and
//                                   how many tokens its cache holds
// The bodies are request_params.h's LlamaCompletionParams.

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> llama_routes(ModelHost& host);

}  // namespace tars::node
