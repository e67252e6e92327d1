#pragma once
// Anthropic's Messages API, for the clients that speak it (the official
// SDKs, and coding agents pointed at a local server):
//   POST /v1/messages               a chat: content blocks in and out
//                                   (text, tool_use, tool_result, thinking),
//                                   streamed as Anthropic's server-sent events
//                                   (message_start, content_block_start /
//                                   _delta / _stop, message_delta,
//                                   message_stop) with "stream": true
//   POST /v1/messages/count_tokens  {"input_tokens"}: the prompt the same
//                                   body would read, without running it
// Errors have Anthropic's shape (http_server.h). The request body's rules
// are anthropic_parse's (request_params.h).

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> anthropic_routes(ModelHost& host);

}  // namespace tars::node
