#include "node/embeddings_api.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "node/embed_cache.h"
#include "node/model_host.h"
#include "node/request_params.h"
#include "node/usage_log.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); }

std::string base64(const float* v, size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* b = reinterpret_cast<const unsigned char*>(v);
  size_t len = n * sizeof(float);
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  for (size_t i = 0; i < len; i += 3) {
    uint32_t x = b[i] << 16;
    if (i + 1 < len) x |= b[i + 1] << 8;
    if (i + 2 < len) x |= b[i + 2];
    out += tbl[(x >> 18) & 63];
    out += tbl[(x >> 12) & 63];
    out += i + 1 < len ? tbl[(x >> 6) & 63] : '=';
    out += i + 2 < len ? tbl[x & 63] : '=';
  }
  return out;
}

// POST /v1/embeddings (OpenAI).
void openai_embeddings(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const EmbeddingParams p = embedding_parse(parse_json_object(req), EmbeddingApi::kOpenAI);
  std::shared_ptr<HostedModel> lease = host.get(p.model, "embedding");  // held for the request
  HostedModel& m = *lease;
  auto out = embed_request(m, p);
  json data = json::array();
  int64_t tokens = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    json e = {{"object", "embedding"}, {"index", i}};
    if (p.base64) e["embedding"] = base64(out[i].values.data(), out[i].values.size());
    else e["embedding"] = out[i].values;
    data.push_back(std::move(e));
    tokens += out[i].n_tokens;
  }
  reply_json(res, 200, {{"object", "list"}, {"data", data}, {"model", m.id},
                        {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

// POST /embed (seed): {"input": ..., "model"?, "normalize"?, "truncate"?}
void seed_embed(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const EmbeddingParams p = embedding_parse(parse_json_object(req), EmbeddingApi::kSeed);
  std::shared_ptr<HostedModel> lease = host.get(p.model, "embedding");
  HostedModel& m = *lease;
  auto out = embed_request(m, p);
  json data = json::array();
  int64_t tokens = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    data.push_back({{"index", i}, {"embedding", out[i].values}, {"tokens", out[i].n_tokens},
                    {"truncated", out[i].truncated()}});
    tokens += out[i].n_tokens;
  }
  reply_json(res, 200, {{"model", m.id}, {"dimension", m.encoder->n_embd()},
                        {"normalized", p.normalize}, {"data", data},
                        {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

// llama-server's embd_normalize of one vector (request_params.h's p_norm).
void p_normalize(std::vector<float>& v, int p) {
  if (p < 0) return;
  double norm = 0;
  for (float x : v) {
    const double a = std::fabs(static_cast<double>(x));
    if (p == 0) norm = std::max(norm, a);
    else if (p == 1) norm += a;
    else if (p == 2) norm += a * a;
    else norm += std::pow(a, p);
  }
  if (p == 0) norm /= 32760.0;  // the largest magnitude becomes 32760, as an int16 holds it
  else if (p == 2) norm = std::sqrt(norm);
  else if (p > 2) norm = std::pow(norm, 1.0 / p);
  if (norm <= 0) return;  // all zero: left as it is
  for (float& x : v) x = static_cast<float>(x / norm);
}

// POST /embedding, /embeddings (llama-server's own): [{"index", "embedding":
// [[...]]}], the pooled vector in a list of one, normalized as
// embd_normalize says (Euclidean by default).
void llama_embedding(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const EmbeddingParams p = embedding_parse(parse_json_object(req), EmbeddingApi::kLlama);
  std::shared_ptr<HostedModel> lease = host.get(p.model, "embedding");
  std::vector<engine::Embedding> out = embed_request(*lease, p);
  json data = json::array();
  for (size_t i = 0; i < out.size(); ++i) {
    p_normalize(out[i].values, p.p_norm);
    data.push_back({{"index", i}, {"embedding", json::array({out[i].values})}});
  }
  reply_json(res, 200, data);
}

}  // namespace

std::vector<engine::Embedding> embed_request(HostedModel& m, const EmbeddingParams& p) {
  if (p.dimensions && *p.dimensions != m.encoder->n_embd()) {
    bad("'dimensions' cannot be chosen for model '" + m.id + "': it always returns " +
        std::to_string(m.encoder->n_embd()) + " dimensions");
  }
  engine::EmbedOptions o;
  o.truncate = p.truncate;
  o.normalize = p.normalize;
  auto start = std::chrono::steady_clock::now();
  const bool text = !p.texts.empty();
  const size_t n = p.size();
  std::vector<engine::Embedding> out(n);
  // With a cache: read every input's key at once, embed only the misses.
  std::vector<std::string> keys;
  std::vector<size_t> todo;
  if (m.embed_cache && n > 0) {
    keys.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      keys.push_back(text ? embed_cache_key(m.file_sha256, o, p.texts[i])
                          : embed_cache_key(m.file_sha256, o, p.tokens[i]));
    }
    auto cached = m.embed_cache->get(keys, m.encoder->n_embd());
    for (size_t i = 0; i < n; ++i) {
      if (cached[i]) out[i] = std::move(*cached[i]);
      else todo.push_back(i);
    }
  } else {
    for (size_t i = 0; i < n; ++i) todo.push_back(i);
  }
  if (!todo.empty()) {
    std::vector<engine::Embedding> fresh;
    if (text) {
      std::vector<std::string> inputs;
      for (size_t i : todo) inputs.push_back(p.texts[i]);
      fresh = engine::embed_texts(*m.encoder, inputs, o);
    } else {
      std::vector<std::vector<int32_t>> inputs;
      for (size_t i : todo) inputs.push_back(p.tokens[i]);
      fresh = engine::embed_token_inputs(*m.encoder, inputs, o);
    }
    std::vector<std::string> store_keys;
    std::vector<engine::Embedding> store;
    for (size_t k = 0; k < todo.size(); ++k) {
      // Only pooled vectors (one per input) are cached.
      if (m.embed_cache && fresh[k].values.size() == static_cast<size_t>(m.encoder->n_embd())) {
        store_keys.push_back(keys[todo[k]]);
        store.push_back(fresh[k]);
      }
      out[todo[k]] = std::move(fresh[k]);
    }
    if (m.embed_cache) m.embed_cache->put(store_keys, store);
  }
  record_encoder_request(m, "embedding", out,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return out;
}

uint64_t record_encoder_request(HostedModel& m, const char* kind, const std::vector<engine::Embedding>& out,
                                double seconds) {
  uint64_t tokens = 0, truncated = 0;
  for (const auto& e : out) {
    tokens += e.n_tokens;
    truncated += e.truncated() ? 1 : 0;
  }
  m.record_embedding(out.size(), tokens, truncated, seconds);
  if (m.usage_log) {
    UsageRecord u;
    u.model = m.id;
    u.kind = kind;
    u.prompt_tokens = static_cast<int64_t>(tokens);
    u.duration_ms = seconds * 1000;
    m.usage_log->record(std::move(u));
  }
  return tokens;
}

std::vector<Route> embeddings_routes(ModelHost& host) {
  return {
      {"POST", "/v1/embeddings",
       [&host](const httplib::Request& req, httplib::Response& res) { openai_embeddings(host, req, res); }},
      {"POST", "/embed",
       [&host](const httplib::Request& req, httplib::Response& res) { seed_embed(host, req, res); }},
      {"POST", "/embedding",
       [&host](const httplib::Request& req, httplib::Response& res) { llama_embedding(host, req, res); }},
      {"POST", "/embeddings",
       [&host](const httplib::Request& req, httplib::Response& res) { llama_embedding(host, req, res); }},
  };
}

}  // namespace tars::node
