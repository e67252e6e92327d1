// Black-box tests of `tars embed` on the bert-tiny reference model: JSON
// lines on stdout, agreement with the other engine's embeddings, the options,
// and clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

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

using namespace std::chrono_literals;
using json = nlohmann::json;

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> v;
  std::istringstream lines(out);
  std::string l;
  while (std::getline(lines, l)) v.push_back(json::parse(l));
  return v;
}

double dot(const json& a, const json& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i].get<double>() * b[i].get<double>();
  return s;
}

TEST(EmbedCommand, PrintsOneJsonLinePerInputMatchingTheReference) {
  const json ref = json::parse(read_file(fixture("reference/bert-tiny.embeddings.json")));
  TempDir dir;
  // Inputs 2 and 3 of the reference from a file (with a CRLF line end), after
  // inputs 0 and 1 on the command line.
  write_file(dir.file("in.txt"), ref["cases"][2]["input"].get<std::string>() + "\r\n" +
                                     ref["cases"][3]["input"].get<std::string>() + "\n");
  Process p({tars_binary(), "embed", fixture("reference/bert-tiny.gguf"),
             ref["cases"][0]["input"].get<std::string>(), ref["cases"][1]["input"].get<std::string>(),
             "--file", dir.file("in.txt"), "-t", "2"});
  ASSERT_EQ(p.wait(60s), 0) << p.err();
  const std::vector<json> lines = json_lines(p.out());
  ASSERT_EQ(lines.size(), 4u) << p.out();
  const int want_tokens[] = {4, 12, 10, 17};
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["index"], i);
    EXPECT_EQ(lines[i]["tokens"], want_tokens[i]);
    const json& e = lines[i]["embedding"];
    ASSERT_EQ(e.size(), 64u);
    EXPECT_NEAR(dot(e, e), 1.0, 1e-5);  // normalised (unit vectors: dot = cosine)
    EXPECT_GT(dot(e, ref["cases"][i]["embedding"]), 0.9999) << "input " << i;
  }
  EXPECT_NE(p.err().find("4 inputs"), std::string::npos) << p.err();  // summary on stderr
}

TEST(EmbedCommand, NoNormalizeAndTruncation) {
  Process raw({tars_binary(), "embed", fixture("reference/bert-tiny.gguf"), "hello world",
               "--no-normalize"});
  ASSERT_EQ(raw.wait(60s), 0) << raw.err();
  const json e = json_lines(raw.out()).at(0)["embedding"];
  EXPECT_GT(std::abs(dot(e, e) - 1.0), 0.01);

  const std::string long_text = "one two three four five six seven eight nine ten";
  Process cut({tars_binary(), "embed", fixture("reference/bert-tiny.gguf"), "hi", long_text,
               "--max-tokens", "8"});
  ASSERT_EQ(cut.wait(60s), 0) << cut.err();
  EXPECT_EQ(json_lines(cut.out()).at(1)["tokens"], 8);
  EXPECT_NE(cut.err().find("input 1 truncated from 12 to 8 tokens"), std::string::npos) << cut.err();

  Process refuse({tars_binary(), "embed", fixture("reference/bert-tiny.gguf"), "hi", long_text,
                  "--max-tokens", "8", "--no-truncate"});
  EXPECT_EQ(refuse.wait(60s), 1);
  EXPECT_EQ(refuse.out(), "");
  EXPECT_NE(refuse.err().find("input 1 has 12 tokens, more than the limit of 8"), std::string::npos)
      << refuse.err();
}

TEST(EmbedCommand, ErrorsAreClear) {
  Process none({tars_binary(), "embed", fixture("reference/bert-tiny.gguf")});
  EXPECT_EQ(none.wait(60s), 1);
  EXPECT_NE(none.err().find("no inputs"), std::string::npos) << none.err();

  Process llama({tars_binary(), "embed", fixture("stories260K/stories260K.gguf"), "hi"});
  EXPECT_EQ(llama.wait(60s), 1);
  EXPECT_NE(llama.err().find("not an embedding model"), std::string::npos) << llama.err();

  TempDir dir;
  Process missing({tars_binary(), "embed", fixture("reference/bert-tiny.gguf"), "--file",
                   dir.file("nope.txt")});
  EXPECT_EQ(missing.wait(60s), 1);
  EXPECT_NE(missing.err().find("nope.txt"), std::string::npos) << missing.err();
}

TEST(EmbedCommand, QueryScoresEachInputWithAReranker) {
  TempDir dir;
  const std::string model = dir.file("rerank.gguf");
  write_random_bert(small_random_bert(4), model);
  const std::string query = "which card holds the chat model?";
  const std::vector<std::string> docs = {"the RTX 3060 holds the 7B chat model", "bananas", ""};
  Process p({tars_binary(), "embed", model, "--query", query, docs[0], docs[1], docs[2], "-t", "2"});
  ASSERT_EQ(p.wait(60s), 0) << p.err();
  const std::vector<json> lines = json_lines(p.out());
  ASSERT_EQ(lines.size(), 3u) << p.out();
  // Each score against the double-precision reference on the same pair.
  auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(model));
  auto backend = engine::backend_cpu_create({1});
  auto encoder = engine::Encoder::load(file, *backend);
  BertReference ref(*file);
  const auto pieces = [&](const std::string& t) { return encoder->tokenizer().encode(t, false, false); };
  for (size_t i = 0; i < docs.size(); ++i) {
    const engine::RerankPair pair = engine::rerank_pair_tokens(*encoder, pieces(query), pieces(docs[i]), 128, true, i);
    const double want = ref.rank(std::vector<int>(pair.ids.begin(), pair.ids.end()),
                                 std::vector<int>(pair.types.begin(), pair.types.end()))[0];
    EXPECT_EQ(lines[i]["index"], i);
    EXPECT_EQ(lines[i]["tokens"], pair.ids.size());
    EXPECT_NEAR(lines[i]["score"].get<double>(), want, 1e-4) << "document " << i;
    EXPECT_FALSE(lines[i].contains("embedding"));
  }

  Process no_query({tars_binary(), "embed", model, "hi"});
  EXPECT_EQ(no_query.wait(60s), 1);
  EXPECT_NE(no_query.err().find("is a reranker"), std::string::npos) << no_query.err();
  Process not_reranker({tars_binary(), "embed", fixture("reference/bert-tiny.gguf"), "--query", "q", "hi"});
  EXPECT_EQ(not_reranker.wait(60s), 1);
  EXPECT_NE(not_reranker.err().find("not a reranker"), std::string::npos) << not_reranker.err();
}

}  // namespace
}  // namespace tars::test
