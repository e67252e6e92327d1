#pragma once
// Ollama's native API, for the clients that speak it (the `ollama` npm and
// Python packages, and the applications built on them):
//   POST /api/chat, /api/generate   generation, streamed as JSON lines by default
//   POST /api/embed, /api/embeddings
//   GET  /api/tags, /api/ps, /api/version; POST /api/show
// On the same engine and scheduler as the OpenAI endpoints (generation.h);
// request bodies are parsed by request_params.h's ollama_* functions. Errors
// on /api/ paths are Ollama's {"error": "..."} (http_server.h).
// Model management (/api/pull, /api/create, /api/delete, /api/copy,
// /api/push) is not offered: models are declared in the node's
// configuration and placed by the cluster.

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class ModelHost;

std::vector<Route> ollama_routes(ModelHost& host);

// RFC 3339 UTC time with nanoseconds ("2026-11-27T15:04:05.123456789Z"),
// as Ollama writes created_at / modified_at.
std::string ollama_time(int64_t unix_ns);

// Ollama's parameter_size: "260K", "1.1B", "6.7B" (one decimal from M up).
std::string ollama_parameter_size(uint64_t params);

}  // namespace tars::node
