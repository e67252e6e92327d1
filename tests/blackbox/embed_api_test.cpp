// Black-box tests of the embedding endpoints on a running node (bert-tiny).
#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace tars::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class EmbedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    proc_ = std::make_unique<Process>(std::vector<std::string>{
        tars_binary(), "serve", "--port", std::to_string(port_), "--data-dir", data_.path(),
        "--embedding-model", fixture("reference/bert-tiny.gguf")});
    ASSERT_TRUE(wait_http_ready(port_, 30s)) << proc_->err();
  }
  std::pair<int, json> post(const std::string& path, const json& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body)};
  }
  TempDir data_;
  int port_ = 0;
  std::unique_ptr<Process> proc_;
};

TEST_F(EmbedTest, SeedEndpointShapesAndNormalisation) {
  auto [status, j] = post("/embed", {{"input", {"hello world", "a", "the quick brown fox"}}});
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["model"], "bert-tiny");
  EXPECT_EQ(j["dimension"], 64);
  ASSERT_EQ(j["data"].size(), 3u);
  for (const auto& d : j["data"]) {
    ASSERT_EQ(d["embedding"].size(), 64u);
    double n = 0;
    for (double x : d["embedding"]) n += x * x;
    EXPECT_NEAR(std::sqrt(n), 1.0, 1e-5);
    EXPECT_GE(d["tokens"].get<int>(), 3);  // [CLS] ... [SEP]
  }
  auto [s2, raw] = post("/embed", {{"input", "hello world"}, {"normalize", false}});
  ASSERT_EQ(s2, 200);
  double n = 0;
  for (double x : raw["data"][0]["embedding"]) n += x * x;
  EXPECT_GT(std::abs(std::sqrt(n) - 1.0), 1e-3);  // really not normalised
}

TEST_F(EmbedTest, BadInputGets400NamingTheInput) {
  struct Case {
    json body;
    std::string needle;
  };
  std::string long_text;
  for (int i = 0; i < 700; ++i) long_text += "word ";
  std::vector<Case> cases = {
      {{{"input", json::array()}}, "empty list"},
      {{{"input", {"ok", 3}}}, "'input'[1]"},
      {{{"input", {"ok", ""}}}, "'input'[1] is an empty string"},
      {{{"input", json::array({json::array()})}}, "'input'[0] is empty"},
      {{{"input", 5}}, "must be a string"},
      {{{"texts", json(std::vector<std::string>(2049, "a"))}}, "at most 2048"},
      {{{"input", {"fine", long_text}}, {"truncate", false}}, "input 1 has 702 tokens"},
      {{{"input", "x"}, {"colour", "red"}}, "'colour'"},
  };
  for (const auto& c : cases) {
    auto [status, j] = post("/embed", c.body);
    EXPECT_EQ(status, 400) << c.body.dump().substr(0, 200);
    std::string msg = j["error"]["message"];
    EXPECT_NE(msg.find(c.needle), std::string::npos) << msg;
  }
  // Long input with truncation (the default) works and says so.
  auto [status, j] = post("/embed", {{"input", long_text}});
  ASSERT_EQ(status, 200);
  EXPECT_TRUE(j["data"][0]["truncated"].get<bool>());
  // Still alive.
  EXPECT_EQ(post("/embed", {{"input", "a"}}).first, 200);
}

TEST_F(EmbedTest, OpenAiShapeWithTokenArraysAndBase64) {
  auto [s1, f] = post("/v1/embeddings", {{"input", {{101, 7592, 2088, 102}}}, {"model", "bert-tiny"}});
  ASSERT_EQ(s1, 200) << f.dump();
  EXPECT_EQ(f["object"], "list");
  EXPECT_EQ(f["data"][0]["object"], "embedding");
  EXPECT_EQ(f["usage"]["prompt_tokens"], 4);
  auto [s2, b] = post("/v1/embeddings", {{"input", {{101, 7592, 2088, 102}}}, {"encoding_format", "base64"}});
  ASSERT_EQ(s2, 200);
  std::string b64 = b["data"][0]["embedding"];
  EXPECT_EQ(b64.size(), (64 * 4 + 2) / 3 * 4);
  auto [s3, e] = post("/v1/embeddings", {{"input", "x"}, {"encoding_format", "hex"}});
  EXPECT_EQ(s3, 400);
}

TEST_F(EmbedTest, LlamaServerShapeAndItsNormalizations) {
  // The raw pooled vectors, as the seed endpoint gives them unnormalized.
  auto [s0, raw] = post("/embed", {{"input", {"hello world", "a"}}, {"normalize", false}});
  ASSERT_EQ(s0, 200) << raw.dump();
  auto vec = [](const json& j) { return j.get<std::vector<double>>(); };
  const std::vector<double> hello = vec(raw["data"][0]["embedding"]);
  for (const char* path : {"/embedding", "/embeddings"}) {
    // [{"index", "embedding": [[...]]}], Euclidean by default; content or input.
    auto [status, j] = post(path, {{"content", {"hello world", "a"}}});
    ASSERT_EQ(status, 200) << j.dump();
    ASSERT_TRUE(j.is_array());
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[1]["index"], 1);
    ASSERT_EQ(j[0]["embedding"].size(), 1u);  // the pooled vector, in a list of one
    const std::vector<double> l2 = vec(j[0]["embedding"][0]);
    ASSERT_EQ(l2.size(), hello.size());
    double n2 = 0;
    for (double x : hello) n2 += x * x;
    for (size_t i = 0; i < l2.size(); ++i) EXPECT_NEAR(l2[i], hello[i] / std::sqrt(n2), 1e-5) << i;
    auto [s1, same] = post(path, {{"input", "hello world"}});
    ASSERT_EQ(s1, 200);
    EXPECT_EQ(same[0]["embedding"][0], j[0]["embedding"][0]);
  }
  // embd_normalize: -1 none, 0 the largest magnitude to 32760, 1 taxicab, 3 the 3-norm.
  auto norm = [&](int p) {
    auto [status, j] = post("/embedding", {{"content", "hello world"}, {"embd_normalize", p}});
    EXPECT_EQ(status, 200) << j.dump();
    return vec(j[0]["embedding"][0]);
  };
  const std::vector<double> none = norm(-1), maxabs = norm(0), taxi = norm(1), p3 = norm(3);
  double largest = 0, sum_abs = 0, sum_cube = 0;
  for (double x : hello) {
    largest = std::max(largest, std::abs(x));
    sum_abs += std::abs(x);
    sum_cube += std::pow(std::abs(x), 3);
  }
  for (size_t i = 0; i < hello.size(); ++i) {
    EXPECT_NEAR(none[i], hello[i], 1e-6);
    EXPECT_NEAR(maxabs[i], hello[i] * 32760 / largest, 1e-2);
    EXPECT_NEAR(taxi[i], hello[i] / sum_abs, 1e-6);
    EXPECT_NEAR(p3[i], hello[i] / std::cbrt(sum_cube), 1e-5);
  }
  auto [bad, e] = post("/embedding", {{"content", "x"}, {"embd_normalize", "l2"}});
  EXPECT_EQ(bad, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("embd_normalize"), std::string::npos) << e.dump();
  auto [missing, m] = post("/embedding", json::object());
  EXPECT_EQ(missing, 400);
  EXPECT_NE(m["error"]["message"].get<std::string>().find("'content' is required"), std::string::npos) << m.dump();
}

TEST_F(EmbedTest, NoChatModelMeans503OnGeneration) {
  auto [status, j] = post("/v1/completions", {{"prompt", "hi"}});
  EXPECT_EQ(status, 503);
  EXPECT_EQ(j["error"]["code"], "no_model_loaded");
}

}  // namespace
}  // namespace tars::test
