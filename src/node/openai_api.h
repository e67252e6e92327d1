#pragma once
// The generation endpoints: OpenAI's /v1/chat/completions, /v1/completions
// and /v1/models, and the seed's /inference, all on one code path
// (generation.h): parse -> Generation (scheduler) -> JSON or server-sent events.

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> openai_routes(ModelHost& host);

}  // namespace tars::node
