#pragma once
// OpenAI's Responses API, for the clients built on it (the openai SDKs'
// client.responses, coding agents):
//   POST /v1/responses  a response: output items in and out (messages,
//                       function calls and their outputs, reasoning), whole
//                       or streamed as the Responses API's events
//                       (response.created, response.output_item.added,
//                       response.output_text.delta, ..., response.completed)
// Responses are not stored: previous_response_id and GET /v1/responses/{id}
// are not offered (the client sends the whole conversation as input). The
// request body's rules are responses_parse's (request_params.h).

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> responses_routes(ModelHost& host);

}  // namespace tars::node
