#include "node/api.h"

#include "node/anthropic_api.h"
#include "node/embeddings_api.h"
#include "node/files_api.h"
#include "node/llama_api.h"
#include "node/model_host.h"
#include "node/node.h"
#include "node/ollama_api.h"
#include "node/openai_api.h"
#include "node/rerank_api.h"
#include "node/responses_api.h"
#include "node/tokenize_api.h"
#include "node/usage_log.h"

namespace tars::node {

std::vector<Route> api_routes(Node& node, const HttpServer& server) {
  auto get_json = [](auto fn) {
    return [fn](const httplib::Request&, httplib::Response& res) { reply_json(res, 200, fn()); };
  };
  std::vector<Route> routes = {
      // method  path          handler
      {"GET", "/health", get_json([&node] { return node.health(); })},
      {"GET", "/status", get_json([&node, &server] { return node.status(server.in_flight()); })},
      {"GET", "/models", get_json([&node] { return node.models(); })},
      {"GET", "/config", get_json([&node] { return node.config_json(); })},
      {"GET", "/usage",
       [&node](const httplib::Request& req, httplib::Response& res) {
         auto log = node.host().usage_log();
         if (!log) {
           throw HttpError(404, "no_usage_log",
                           "this node keeps no usage ledger: start it with --postgres (or [state] postgres)");
         }
         reply_json(res, 200,
                    log->summary(usage_query_parse(req.get_param_value("since"), req.get_param_value("until"),
                                                   req.get_param_value("group"))));
       }},
      {"GET", "/metrics",
       [&node, &server](const httplib::Request&, httplib::Response& res) {
         res.set_content(node.metrics_text(server.in_flight()), kMetricsContentType);
       }},
  };
  // /inference, /v1/chat/completions, /v1/completions, /v1/models
  for (auto& r : openai_routes(node.host())) routes.push_back(std::move(r));
  // /embed, /v1/embeddings
  for (auto& r : embeddings_routes(node.host())) routes.push_back(std::move(r));
  // /v1/messages, /v1/messages/count_tokens (Anthropic's)
  for (auto& r : anthropic_routes(node.host())) routes.push_back(std::move(r));
  // /v1/responses (OpenAI's Responses API)
  for (auto& r : responses_routes(node.host())) routes.push_back(std::move(r));
  // /v1/rerank, /rerank (llama-server's, Jina's, text-embeddings-inference's)
  for (auto& r : rerank_routes(node.host())) routes.push_back(std::move(r));
  // /api/chat, /api/generate, /api/embed, /api/tags, ... (Ollama's)
  for (auto& r : ollama_routes(node.host())) routes.push_back(std::move(r));
  // /tokenize, /detokenize (llama-server's)
  for (auto& r : tokenize_routes(node.host())) routes.push_back(std::move(r));
  for (auto& r : llama_routes(node.host())) routes.push_back(std::move(r));
  // /files/{id}, /files/{id}/info (model file transfer between nodes)
  for (auto& r : files_routes(node.host(), node.config())) routes.push_back(std::move(r));
  return routes;
}

}  // namespace tars::node
