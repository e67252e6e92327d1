#pragma once
// The embedding endpoints: the seed's POST /embed, OpenAI's
// POST /v1/embeddings and llama-server's own POST /embedding (and
// /embeddings), on one code path.

#include <vector>

#include "engine/embed.h"
#include "node/http_server.h"
#include "node/request_params.h"

namespace tars::node {

class ModelHost;
struct HostedModel;

// The embeddings of a parsed request on an embedding model (texts or token
// ids; none for no input), shared with Ollama's endpoints. A `dimensions`
// other than the model's own is tars::Error(kInvalidArgument).
std::vector<engine::Embedding> embed_request(HostedModel& m, const EmbeddingParams& p);

// Records an encoder request that took `seconds`: the model's counters
// (/status, /metrics) and, with a usage ledger, a record of `kind`
// ("embedding", "rerank") with the tokens read. Returns those tokens.
uint64_t record_encoder_request(HostedModel& m, const char* kind, const std::vector<engine::Embedding>& out,
                                double seconds);

std::vector<Route> embeddings_routes(ModelHost& host);

}  // namespace tars::node
