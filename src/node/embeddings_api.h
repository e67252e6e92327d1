#pragma once
// The embedding endpoints: the seed's POST /embed and OpenAI's
// POST /v1/embeddings, on one code path.

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

// Most inputs in one request (OpenAI's limit is 2048 too).
inline constexpr size_t kMaxEmbeddingInputs = 2048;

std::vector<Route> embeddings_routes(ModelHost& host);

}  // namespace tars::node
