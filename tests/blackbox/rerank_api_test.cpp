// Black-box tests of reranking on a running node: a random cross-encoder
// (small BERT with rank pooling) served with --rerank-model beside bert-tiny
// as the embedding model. The llama-server / Jina shape (/v1/rerank and its
// aliases) and text-embeddings-inference's (/rerank with "texts"), scores
// against the double-precision reference, ordering, top_n, returned texts,
// truncation, and the errors: wrong roles, bad bodies, misdeclared files.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "support/bert_builder.h"
#include "support/bert_reference.h"
#include "support/test_support.h"

namespace tars::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kQuery = "which card holds the chat model?";
const std::vector<std::string> kDocs = {"bananas are yellow", "the RTX 3060 holds the 7B chat model", "",
                                        "the small card holds the embedding model", "chat chat chat"};

class RerankTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = data_.file("cross-encoder.gguf");
    write_random_bert(small_random_bert(4), model_);
    port_ = free_port();
    proc_ = std::make_unique<Process>(std::vector<std::string>{
        tars_binary(), "serve", "--port", std::to_string(port_), "--data-dir", data_.path(), "--embedding-model",
        fixture("reference/bert-tiny.gguf"), "--rerank-model", model_});
    ASSERT_TRUE(wait_http_ready(port_, 30s)) << proc_->err();
  }
  std::pair<int, json> post(const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    auto r = c.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r);
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body)};
  }
  std::pair<int, json> post(const std::string& path, const json& body) { return post(path, body.dump()); }

  // Each document's raw score by the double-precision reference.
  std::vector<double> reference_scores(const std::vector<std::string>& docs) {
    auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(model_));
    auto backend = engine::backend_cpu_create({1});
    auto encoder = engine::Encoder::load(file, *backend);
    BertReference ref(*file);
    auto pieces = [&](const std::string& t) { return encoder->tokenizer().encode(t, false, false); };
    std::vector<double> out;
    for (size_t i = 0; i < docs.size(); ++i) {
      const auto p = engine::rerank_pair_tokens(*encoder, pieces(kQuery), pieces(docs[i]), 128, true, i);
      out.push_back(ref.rank(std::vector<int>(p.ids.begin(), p.ids.end()), std::vector<int>(p.types.begin(), p.types.end()))[0]);
    }
    return out;
  }

  TempDir data_;
  std::string model_;
  int port_ = 0;
  std::unique_ptr<Process> proc_;
};

TEST_F(RerankTest, LlamaServerShapeSortedBestFirstWithReferenceScores) {
  const std::vector<double> want = reference_scores(kDocs);
  auto [status, j] = post("/v1/rerank", {{"query", kQuery}, {"documents", kDocs}});
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["model"], "cross-encoder");  // the reranker, with no model named
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["results"].size(), kDocs.size());
  std::vector<bool> seen(kDocs.size(), false);
  double last = INFINITY;
  for (const json& r : j["results"]) {
    const size_t i = r["index"].get<size_t>();
    ASSERT_LT(i, kDocs.size());
    EXPECT_FALSE(seen[i]);
    seen[i] = true;
    const double s = r["relevance_score"].get<double>();
    EXPECT_NEAR(s, want[i], 1e-4) << "document " << i;
    EXPECT_LE(s, last) << "not sorted best first";
    last = s;
    EXPECT_FALSE(r.contains("document"));
  }
  EXPECT_GT(j["results"].front()["relevance_score"].get<double>() - last, 0.01);  // scores that rank
  // Usage: every pair's tokens, [CLS] and both [SEP] included.
  const int total = j["usage"]["total_tokens"].get<int>();
  EXPECT_EQ(j["usage"]["prompt_tokens"], total);
  EXPECT_GT(total, static_cast<int>(3 * kDocs.size()));
}

TEST_F(RerankTest, TopNDocumentObjectsAndAliases) {
  const std::vector<double> want = reference_scores(kDocs);
  size_t best = 0;
  for (size_t i = 1; i < want.size(); ++i) {
    if (want[i] > want[best]) best = i;
  }
  json docs = json::array();
  for (size_t i = 0; i < kDocs.size(); ++i) {
    if (i % 2) docs.push_back({{"text", kDocs[i]}});  // Cohere's and Jina's objects, mixed with strings
    else docs.push_back(kDocs[i]);
  }
  for (const char* path : {"/v1/rerank", "/v1/reranking", "/rerank", "/reranking"}) {
    auto [status, j] = post(path, {{"model", "cross-encoder"}, {"query", kQuery}, {"documents", docs},
                                   {"top_n", 2}, {"return_documents", true}});
    ASSERT_EQ(status, 200) << path << ": " << j.dump();
    ASSERT_EQ(j["results"].size(), 2u) << path;
    EXPECT_EQ(j["results"][0]["index"], best) << path;
    EXPECT_EQ(j["results"][0]["document"]["text"], kDocs[best]) << path;
  }
}

TEST_F(RerankTest, TextEmbeddingsInferenceShape) {
  const std::vector<double> want = reference_scores(kDocs);
  auto [status, j] = post("/rerank", {{"query", kQuery}, {"texts", kDocs}, {"return_text", true}});
  ASSERT_EQ(status, 200) << j.dump();
  ASSERT_TRUE(j.is_array()) << j.dump();
  ASSERT_EQ(j.size(), kDocs.size());
  for (const json& r : j) {
    const size_t i = r["index"].get<size_t>();
    EXPECT_NEAR(r["score"].get<double>(), 1.0 / (1.0 + std::exp(-want[i])), 1e-5) << "document " << i;
    EXPECT_EQ(r["text"], kDocs[i]);
  }
  auto [s2, raw] = post("/rerank", {{"query", kQuery}, {"texts", kDocs}, {"raw_scores", true}});
  ASSERT_EQ(s2, 200) << raw.dump();
  for (const json& r : raw) {
    EXPECT_NEAR(r["score"].get<double>(), want[r["index"].get<size_t>()], 1e-4);
    EXPECT_FALSE(r.contains("text"));
  }
  // TEI refuses over-long pairs unless asked to truncate; the model has 128 positions.
  std::string long_doc;
  for (int i = 0; i < 200; ++i) long_doc += "word ";
  auto [s3, refused] = post("/rerank", {{"query", kQuery}, {"texts", {"short", long_doc}}});
  EXPECT_EQ(s3, 400) << refused.dump();
  EXPECT_NE(refused["error"]["message"].get<std::string>().find("document 1"), std::string::npos) << refused.dump();
  auto [s4, cut] = post("/rerank", {{"query", kQuery}, {"texts", {"short", long_doc}}, {"truncate", true}});
  EXPECT_EQ(s4, 200) << cut.dump();
  // llama-server's shape truncates by default.
  auto [s5, dflt] = post("/v1/rerank", {{"query", kQuery}, {"documents", {"short", long_doc}}});
  EXPECT_EQ(s5, 200) << dflt.dump();
}

TEST_F(RerankTest, BadRequestsGet4xxNamingTheProblem) {
  struct Case {
    std::string path;
    std::string body;
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"/v1/rerank", R"({"documents": ["a"]})", 400, "'query' is required"},
      {"/v1/rerank", R"({"query": "q"})", 400, "'documents' is required"},
      {"/v1/rerank", R"({"query": "q", "documents": []})", 400, "empty list"},
      {"/v1/rerank", R"({"query": "q", "documents": ["a", 3]})", 400, "documents[1]"},
      {"/v1/rerank", R"({"query": "q", "documents": [{"txt": "a"}]})", 400, "documents[0]"},
      {"/v1/rerank", R"({"query": 5, "documents": ["a"]})", 400, "'query' must be a string"},
      {"/v1/rerank", R"({"query": "q", "documents": ["a"], "top_n": -1})", 400, "top_n"},
      {"/v1/rerank", R"({"query": "q", "documents": ["a"], "colour": 1})", 400, "'colour'"},
      {"/v1/rerank", R"({"query": "q", "documents": ["a"], "model": "bert-tiny"})", 400, "needs a rerank model"},
      {"/v1/rerank", R"({"query": "q", "documents": ["a"], "model": "nope"})", 404, "nope"},
      {"/v1/rerank", R"({"query": "q", "documents": ["a"])", 400, "JSON"},
      {"/rerank", R"({"query": "q", "texts": ["a"], "truncation_direction": "Left"})", 400, "truncation_direction"},
      {"/rerank", R"({"query": "q", "texts": [{"text": "a"}]})", 400, "texts[0]"},
      {"/v1/embeddings", R"({"input": "a", "model": "cross-encoder"})", 400, "needs a embedding model"},
  };
  for (const Case& c : cases) {
    auto [status, j] = post(c.path, c.body);
    EXPECT_EQ(status, c.status) << c.path << " " << c.body << ": " << j.dump();
    const std::string msg = j["error"]["message"].get<std::string>();
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.body << ": " << msg;
  }
  // The node still serves after all that.
  auto [status, j] = post("/v1/rerank", {{"query", "q"}, {"documents", {"a"}}});
  EXPECT_EQ(status, 200) << j.dump();
  auto [s2, e] = post("/v1/embeddings", {{"input", "a"}});  // the default embedding model, not the reranker
  EXPECT_EQ(s2, 200) << e.dump();
  EXPECT_EQ(e["model"], "bert-tiny");
}

TEST(RerankDeclaration, ARoleThatDisagreesWithTheFileStopsTheNode) {
  TempDir dir;
  const std::string reranker = dir.file("cross.gguf");
  write_random_bert(small_random_bert(4), reranker);
  Process as_embedding({tars_binary(), "serve", "--port", std::to_string(free_port()), "--data-dir", dir.path(),
                        "--embedding-model", reranker});
  EXPECT_NE(as_embedding.wait(30s), 0);
  EXPECT_NE(as_embedding.err().find("is a reranker"), std::string::npos) << as_embedding.err();
  EXPECT_NE(as_embedding.err().find("--rerank-model"), std::string::npos) << as_embedding.err();
  Process as_rerank({tars_binary(), "serve", "--port", std::to_string(free_port()), "--data-dir", dir.path(),
                     "--rerank-model", fixture("reference/bert-tiny.gguf")});
  EXPECT_NE(as_rerank.wait(30s), 0);
  EXPECT_NE(as_rerank.err().find("is not a reranker"), std::string::npos) << as_rerank.err();
  // An encoder as a chat model (--model, role "chat" by default): the role it needs.
  Process embedder_as_chat({tars_binary(), "serve", "--port", std::to_string(free_port()), "--data-dir", dir.path(),
                            "--model", fixture("reference/bert-tiny.gguf")});
  EXPECT_NE(embedder_as_chat.wait(30s), 0);
  EXPECT_NE(embedder_as_chat.err().find("is an embedding model (a BERT-style encoder), which cannot chat"),
            std::string::npos)
      << embedder_as_chat.err();
  EXPECT_NE(embedder_as_chat.err().find("--embedding-model"), std::string::npos) << embedder_as_chat.err();
  Process reranker_as_chat({tars_binary(), "serve", "--port", std::to_string(free_port()), "--data-dir", dir.path(),
                            "--model", reranker});
  EXPECT_NE(reranker_as_chat.wait(30s), 0);
  EXPECT_NE(reranker_as_chat.err().find("is a reranker (a BERT-style encoder)"), std::string::npos)
      << reranker_as_chat.err();
  EXPECT_NE(reranker_as_chat.err().find("--rerank-model"), std::string::npos) << reranker_as_chat.err();
}

}  // namespace
}  // namespace tars::test
