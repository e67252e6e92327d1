#pragma once
// The embedding endpoints: the seed's POST /embed and OpenAI's
// POST /v1/embeddings, on one code path.

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> embeddings_routes(ModelHost& host);

}  // namespace tars::node
