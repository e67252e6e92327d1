#include "node/rerank_api.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "node/embeddings_api.h"
#include "node/model_host.h"
#include "node/request_params.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

// `tei`: the path is /rerank or /reranking, where a body with "texts" is
// text-embeddings-inference's request.
void rerank(ModelHost& host, const httplib::Request& req, httplib::Response& res, bool tei_path) {
  const nlohmann::ordered_json body = parse_json_object(req);
  const RerankApi api = tei_path && body.contains("texts") ? RerankApi::kTei : RerankApi::kJina;
  const RerankParams p = rerank_parse(body, api);
  std::shared_ptr<HostedModel> lease = host.get(p.model, "rerank");  // held for the request
  HostedModel& m = *lease;
  engine::EmbedOptions o;
  o.truncate = p.truncate;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<engine::Embedding> out = engine::rerank_texts(*m.encoder, p.query, p.documents, o);
  const uint64_t tokens = record_encoder_request(
      m, "rerank", out, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  std::vector<size_t> order(out.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return out[a].values[0] > out[b].values[0]; });
  if (p.top_n > 0 && static_cast<size_t>(p.top_n) < order.size()) order.resize(static_cast<size_t>(p.top_n));
  json results = json::array();
  for (size_t i : order) {
    const double score = out[i].values[0];
    if (api == RerankApi::kTei) {
      json r = {{"index", i}, {"score", p.raw_scores ? score : 1.0 / (1.0 + std::exp(-score))}};
      if (p.return_documents) r["text"] = p.documents[i];
      results.push_back(std::move(r));
    } else {
      json r = {{"index", i}, {"relevance_score", score}};
      if (p.return_documents) r["document"] = {{"text", p.documents[i]}};
      results.push_back(std::move(r));
    }
  }
  if (api == RerankApi::kTei) {
    reply_json(res, 200, results);
    return;
  }
  reply_json(res, 200, {{"model", m.id}, {"object", "list"}, {"results", std::move(results)},
                        {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

}  // namespace

std::vector<Route> rerank_routes(ModelHost& host) {
  std::vector<Route> routes;
  for (const char* path : {"/v1/rerank", "/v1/reranking", "/rerank", "/reranking"}) {
    const bool tei_path = path[1] != 'v';
    routes.push_back({"POST", path, [&host, tei_path](const httplib::Request& req, httplib::Response& res) {
                        rerank(host, req, res, tei_path);
                      }});
  }
  return routes;
}

}  // namespace tars::node
