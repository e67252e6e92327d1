// The shared embedding cache on real nodes: two `tars serve` processes (the
// two PCs) with the same model file and one real Redis; what one node
// embedded, the other reads back, and the answers are the ones the engine
// gives without a cache.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "support/metrics_text.h"
#include "support/redis_server.h"
#include "support/test_support.h"

namespace tars::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct Node {
  TempDir data;
  int port = free_port();
  std::unique_ptr<Process> proc;

  explicit Node(const std::string& redis_url) {
    std::vector<std::string> argv = {tars_binary(), "serve", "--port", std::to_string(port), "--data-dir",
                                     data.path(), "--embedding-model", fixture("reference/bert-tiny.gguf"),
                                     "--threads", "1"};
    if (!redis_url.empty()) argv.insert(argv.end(), {"--redis", redis_url});
    proc = std::make_unique<Process>(argv);
  }
  json post(const json& body) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    auto r = c.Post("/v1/embeddings", body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  }
  MetricsText metrics() {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/metrics");
    EXPECT_TRUE(r);
    return parse_metrics_text(r ? r->body : "");
  }
  json status() {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/status");
    EXPECT_TRUE(r);
    return r ? json::parse(r->body) : json();
  }
};

std::vector<std::vector<float>> vectors(const json& answer) {
  std::vector<std::vector<float>> out;
  for (const auto& d : answer["data"]) out.push_back(d["embedding"].get<std::vector<float>>());
  return out;
}

TEST(EmbedCacheNodes, WhatOneNodeEmbeddedTheOtherReadsBackUnchanged) {
  RedisServer redis;
  Node pc1(redis.url()), pc2(redis.url()), plain("");
  for (Node* n : {&pc1, &pc2, &plain}) ASSERT_TRUE(wait_http_ready(n->port, 30s)) << n->proc->err();

  const json texts = {"the quick brown fox", "jumps over the lazy dog", "hello world"};
  const json reference = plain.post({{"input", texts}});
  const json first = pc1.post({{"input", texts}});
  const json second = pc2.post({{"input", texts}});
  EXPECT_EQ(vectors(first), vectors(reference));   // computed on pc1
  EXPECT_EQ(vectors(second), vectors(reference));  // read from the cache on pc2, bit for bit
  EXPECT_EQ(second["usage"], reference["usage"]);  // token counts kept with the vectors

  auto m1 = pc1.metrics(), m2 = pc2.metrics();
  EXPECT_EQ(m1.at("tars_embed_cache_misses_total"), 3);
  EXPECT_EQ(m1.at("tars_embed_cache_stores_total"), 3);
  EXPECT_EQ(m2.at("tars_embed_cache_hits_total"), 3);
  EXPECT_EQ(m2.at("tars_embed_cache_misses_total"), 0);
  EXPECT_EQ(m2.at("tars_embed_cache_connected"), 1);
  EXPECT_EQ(m2.at("tars_embed_cache_errors_total"), 0);
  // The cached request still counts as the model's: inputs and tokens.
  EXPECT_EQ(m2.at(R"(tars_model_embedded_inputs_total{model="bert-tiny"})"), 3);
  EXPECT_EQ(m2.at(R"(tars_model_prompt_tokens_total{model="bert-tiny"})"),
            reference["usage"]["prompt_tokens"].get<double>());
  EXPECT_FALSE(plain.metrics().has("tars_embed_cache_hits_total"));
  json cache = pc2.status()["model_host"]["embed_cache"];
  EXPECT_EQ(cache["hits"], 3);
  EXPECT_EQ(cache["url"], redis.url());

  // A mixed request: the cached input comes back, the new one is embedded
  // alone; both as the engine gives them in one batch without a cache.
  const json mixed = {"hello world", "a sentence no node has seen"};
  const json mixed_ref = plain.post({{"input", mixed}});
  const json mixed_got = pc2.post({{"input", mixed}});
  ASSERT_EQ(vectors(mixed_got).size(), 2u);
  EXPECT_EQ(vectors(mixed_got)[0], vectors(mixed_ref)[0]);
  const auto a = vectors(mixed_got)[1], b = vectors(mixed_ref)[1];
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << i;
  EXPECT_EQ(pc2.metrics().at("tars_embed_cache_hits_total"), 4);

  // Options that change the vector are separate entries: not normalized is
  // a miss, and its answer is the engine's.
  const json raw_ref = plain.post({{"input", "hello world"}, {"normalize", false}});
  const json raw_got = pc1.post({{"input", "hello world"}, {"normalize", false}});
  EXPECT_EQ(vectors(raw_got), vectors(raw_ref));
  EXPECT_NE(vectors(raw_got)[0], vectors(reference)[2]);
  EXPECT_EQ(pc1.metrics().at("tars_embed_cache_misses_total"), 4);
}

TEST(EmbedCacheNodes, RedisGoneMidwayRequestsStillAnswered) {
  auto redis = std::make_unique<RedisServer>();
  Node pc1(redis->url()), plain("");
  for (Node* n : {&pc1, &plain}) ASSERT_TRUE(wait_http_ready(n->port, 30s)) << n->proc->err();
  const json texts = {"one", "two"};
  const json reference = plain.post({{"input", texts}});
  EXPECT_EQ(vectors(pc1.post({{"input", texts}})), vectors(reference));
  redis->kill();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(vectors(pc1.post({{"input", texts}})), vectors(reference));
  auto m = pc1.metrics();
  EXPECT_EQ(m.at("tars_embed_cache_connected"), 0);
  EXPECT_GE(m.at("tars_embed_cache_errors_total"), 1);
  EXPECT_EQ(m.at("tars_embed_cache_hits_total"), 0);
}

TEST(EmbedCacheNodes, ABadRedisUrlStopsTheNodeWithTheReason) {
  TempDir data;
  Process p({tars_binary(), "serve", "--port", std::to_string(free_port()), "--data-dir", data.path(),
             "--embedding-model", fixture("reference/bert-tiny.gguf"), "--redis", "http://127.0.0.1:6379"});
  EXPECT_NE(p.wait(30s), 0);
  EXPECT_NE(p.err().find("redis://[:PASSWORD@]HOST"), std::string::npos) << p.err();
  EXPECT_NE(p.err().find("--redis"), std::string::npos) << p.err();
}

}  // namespace
}  // namespace tars::test
