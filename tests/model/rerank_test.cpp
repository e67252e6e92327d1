// Rerankers (cross-encoders): BERT with rank pooling, a classification head
// on the first token, and token types for the query / document pair.
// Random models against the double-precision reference (every head layout,
// F32 / F16 / Q8_0, one by one and batched), the pair framing and its
// longest-first truncation, token types that really reach the model, and
// files and requests that are refused.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "support/bert_builder.h"
#include "support/bert_reference.h"
#include "support/encoder_runner.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

using Runner = test::EncoderRunner;

std::string write_model(const test::TempDir& dir, const std::string& name, const test::RandomBertSpec& spec) {
  const std::string path = dir.file(name);
  test::write_random_bert(spec, path);
  return path;
}

std::vector<int32_t> pieces(const Encoder& e, const std::string& text) {
  return e.tokenizer().encode(text, /*add_special=*/false, /*parse_special=*/false);
}

const std::string kQuery = "what does the cluster place on the small card?";
const std::vector<std::string> kDocuments = {
    "The embedding model and the 3B models go to the GTX 1660 Super.",
    "",
    "Bananas are yellow.",
    "The planner reads each node's free VRAM and puts the 7B chat model on the RTX 3060, where it fits "
    "with room for its KV cache; the smaller card takes what is left, an embedding model and two small "
    "models quantized to eight bits, and the router sends each request to the node that holds its model.",
    "placement placement placement",
};

// Every document's score against the reference, with the pair's ids and types.
void expect_matches_reference(Runner& r, double tolerance, const std::string& what) {
  test::BertReference ref(*r.file);
  const std::vector<Embedding> got = rerank_texts(*r.encoder, kQuery, kDocuments);
  ASSERT_EQ(got.size(), kDocuments.size());
  const int n_out = r.encoder->hparams().n_cls_out;
  for (size_t i = 0; i < kDocuments.size(); ++i) {
    const RerankPair p = rerank_pair_tokens(*r.encoder, pieces(*r.encoder, kQuery),
                                            pieces(*r.encoder, kDocuments[i]), 128, true, i);
    const std::vector<double> want = ref.rank(std::vector<int>(p.ids.begin(), p.ids.end()),
                                              std::vector<int>(p.types.begin(), p.types.end()));
    ASSERT_EQ(got[i].values.size(), static_cast<size_t>(n_out)) << what;
    ASSERT_EQ(want.size(), static_cast<size_t>(n_out)) << what;
    EXPECT_EQ(got[i].n_tokens, static_cast<int>(p.ids.size()));
    for (int o = 0; o < n_out; ++o) {
      EXPECT_NEAR(got[i].values[o], want[o], tolerance * std::max(1.0, std::abs(want[o])))
          << what << ": document " << i << " output " << o;
    }
    // One by one: the same score as in the batch.
    const std::vector<Embedding> one = rerank_texts(*r.encoder, kQuery, {kDocuments[i]});
    for (int o = 0; o < n_out; ++o) {
      EXPECT_NEAR(one[0].values[o], got[i].values[o], 1e-4 * std::max(1.0f, std::abs(got[i].values[o])))
          << what << ": document " << i;
    }
  }
}

TEST(Rerank, ScoresMatchTheDoubleReferenceForEveryHeadLayout) {
  test::TempDir dir;
  struct Layout {
    bool dense, out;
    int n_out;
    const char* name;
  };
  for (const Layout& l : {Layout{true, true, 1, "pooler + classifier"}, Layout{false, true, 1, "classifier only"},
                          Layout{true, false, 1, "dense + tanh only"}, Layout{true, true, 3, "three labels"}}) {
    test::RandomBertSpec s = test::small_random_bert(4);
    s.cls_dense = l.dense;
    s.cls_out = l.out;
    s.n_cls_out = l.n_out;
    Runner r(write_model(dir, std::string(l.name) + ".gguf", s));
    EXPECT_EQ(r.encoder->hparams().pooling, PoolingType::kRank);
    EXPECT_EQ(r.encoder->hparams().n_cls_out, l.n_out);
    EXPECT_EQ(r.encoder->n_out(), l.n_out);
    expect_matches_reference(r, 1e-4, l.name);
  }
}

TEST(Rerank, QuantizedAndHalfWeightsMatchTheReference) {
  // The reference dequantizes the same weights, so only the engine's
  // arithmetic differs. Q8_0 products quantize the activations to 8 bits
  // as well, at every one of the 13 matrices a score passes through: 0.038
  // was the largest difference measured on this model (scores of about 1),
  // so the bound is twice that.
  test::TempDir dir;
  for (auto [type, tolerance] : {std::pair{TensorType::kF16, 1e-4}, std::pair{TensorType::kQ8_0, 8e-2}}) {
    test::RandomBertSpec s = test::small_random_bert(4);
    s.weight_type = type;
    Runner r(write_model(dir, std::string(tensor_type_name(type)) + ".gguf", s));
    expect_matches_reference(r, tolerance, std::string(tensor_type_name(type)));
  }
}

TEST(Rerank, ScoresSpreadAndOrderDocuments) {
  // A random head must still give distinct scores (a constant score would
  // pass a loose comparison and rank nothing).
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert(4)));
  const std::vector<Embedding> got = rerank_texts(*r.encoder, kQuery, kDocuments);
  float lo = got[0].values[0], hi = lo;
  for (const Embedding& e : got) {
    ASSERT_TRUE(std::isfinite(e.values[0]));
    lo = std::min(lo, e.values[0]);
    hi = std::max(hi, e.values[0]);
  }
  EXPECT_GT(hi - lo, 0.05f) << "scores from " << lo << " to " << hi;
}

TEST(Rerank, TokenTypesReachTheModel) {
  // The document half read as type 1 gives another score than the same ids
  // all of type 0, and each agrees with the reference given those types.
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert(4)));
  test::BertReference ref(*r.file);
  const RerankPair p = rerank_pair_tokens(*r.encoder, pieces(*r.encoder, "small card"),
                                          pieces(*r.encoder, "the embedding model"), 128, true, 0);
  const std::vector<int32_t> start = {0, static_cast<int32_t>(p.ids.size())};
  const std::vector<int32_t> zeros(p.ids.size(), 0);
  const float typed = r.encoder->forward(p.ids, start, p.types)[0];
  const float untyped = r.encoder->forward(p.ids, start)[0];
  const float explicit_zeros = r.encoder->forward(p.ids, start, zeros)[0];
  const std::vector<int> ids(p.ids.begin(), p.ids.end());
  EXPECT_NEAR(typed, ref.rank(ids, std::vector<int>(p.types.begin(), p.types.end()))[0], 1e-4);
  EXPECT_NEAR(untyped, ref.rank(ids, {})[0], 1e-4);
  EXPECT_EQ(untyped, explicit_zeros);
  EXPECT_GT(std::abs(typed - untyped), 1e-3) << typed << " vs " << untyped;

  // A type the model does not have is refused, as is a list of another length.
  std::vector<int32_t> bad = p.types;
  bad[1] = 2;
  EXPECT_THROW(r.encoder->forward(p.ids, start, bad), Error);
  EXPECT_THROW(r.encoder->forward(p.ids, start, std::vector<int32_t>(p.ids.size() - 1, 0)), Error);
}

TEST(RerankPairs, FramedAsClsQuerySepDocumentSep) {
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert(4)));
  const Vocab& v = r.encoder->tokenizer().vocab();
  const std::vector<int32_t> q = pieces(*r.encoder, "small card"), d = pieces(*r.encoder, "embedding model here");
  ASSERT_GE(q.size(), 2u);
  ASSERT_GE(d.size(), 3u);
  const RerankPair p = rerank_pair_tokens(*r.encoder, q, d, 128, true, 0);
  std::vector<int32_t> want = {v.cls};
  want.insert(want.end(), q.begin(), q.end());
  want.push_back(v.sep);
  want.insert(want.end(), d.begin(), d.end());
  want.push_back(v.sep);
  EXPECT_EQ(p.ids, want);
  std::vector<int32_t> types(q.size() + 2, 0);
  types.resize(want.size(), 1);
  EXPECT_EQ(p.types, types);
  EXPECT_EQ(p.n_tokens_input, static_cast<int>(want.size()));
}

TEST(RerankPairs, TruncationTakesFromTheLongerPartFirst) {
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert(4)));
  std::vector<int32_t> q(10), d(30);
  for (int i = 0; i < 10; ++i) q[i] = 2000 + i;
  for (int i = 0; i < 30; ++i) d[i] = 3000 + i;
  // 43 tokens into 20: 17 pieces. The document shrinks to the query's 10,
  // then they alternate, the document first on a tie: 9 and 8.
  const RerankPair p = rerank_pair_tokens(*r.encoder, q, d, 20, true, 0);
  ASSERT_EQ(p.ids.size(), 20u);
  EXPECT_EQ(p.n_tokens_input, 43);
  EXPECT_EQ(std::vector<int32_t>(p.ids.begin() + 1, p.ids.begin() + 10), std::vector<int32_t>(q.begin(), q.begin() + 9));
  EXPECT_EQ(p.ids[10], r.encoder->tokenizer().vocab().sep);
  EXPECT_EQ(std::vector<int32_t>(p.ids.begin() + 11, p.ids.begin() + 19), std::vector<int32_t>(d.begin(), d.begin() + 8));
  EXPECT_EQ(p.ids[19], r.encoder->tokenizer().vocab().sep);
  // A long query with a short document: the query gives way.
  const RerankPair p2 = rerank_pair_tokens(*r.encoder, d, q, 23, true, 0);
  EXPECT_EQ(p2.ids.size(), 23u);
  EXPECT_EQ(p2.ids[10], d[9]);  // the query cut to 10 pieces...
  EXPECT_EQ(p2.ids[11], r.encoder->tokenizer().vocab().sep);
  EXPECT_EQ(p2.ids[12], q[0]);  // ... the document's 10 kept whole
  EXPECT_EQ(p2.ids[21], q[9]);

  // Truncation off: an error naming the document and the counts.
  try {
    rerank_pair_tokens(*r.encoder, q, d, 20, false, 7);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string m = e.what();
    EXPECT_NE(m.find("document 7"), std::string::npos) << m;
    EXPECT_NE(m.find("43 tokens"), std::string::npos) << m;
    EXPECT_NE(m.find("limit of 20"), std::string::npos) << m;
  }
  // Through rerank_texts: max_tokens limits the pair, and the counts say so.
  EmbedOptions o;
  o.max_tokens = 12;
  const std::vector<Embedding> cut = rerank_texts(*r.encoder, kQuery, {kDocuments[3]}, o);
  EXPECT_EQ(cut[0].n_tokens, 12);
  EXPECT_TRUE(cut[0].truncated());
  o.truncate = false;
  EXPECT_THROW(rerank_texts(*r.encoder, kQuery, {kDocuments[3]}, o), Error);
}

TEST(RerankBadInput, NotARerankerAndEmptyLists) {
  test::TempDir dir;
  Runner mean(write_model(dir, "mean.gguf", test::small_random_bert(1)));
  try {
    rerank_texts(*mean.encoder, "q", {"d"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("not a reranker"), std::string::npos) << e.what();
  }
  Runner rank(write_model(dir, "rank.gguf", test::small_random_bert(4)));
  EXPECT_THROW(rerank_texts(*rank.encoder, "q", {}), Error);
  // Embedding through a reranker gives the head's raw scores, never normalised.
  const std::vector<Embedding> e = embed_texts(*rank.encoder, {"hello world"});
  ASSERT_EQ(e[0].values.size(), 1u);
  test::BertReference ref(*rank.file);
  const std::vector<int32_t> ids = embed_tokenize(*rank.encoder, "hello world");
  EXPECT_NEAR(e[0].values[0], ref.rank(std::vector<int>(ids.begin(), ids.end()), {})[0], 1e-4);
}

TEST(RerankBadFile, RankPoolingWithoutAHeadOrWithAMisshapenOne) {
  test::TempDir dir;
  auto load_error = [&](const test::RandomBertSpec& s, const std::string& name) -> std::string {
    try {
      Runner r(write_model(dir, name, s));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptData) << e.what();
      return e.what();
    }
    return "loaded";
  };
  test::RandomBertSpec none = test::small_random_bert(4);
  none.cls_dense = none.cls_out = false;
  const std::string m1 = load_error(none, "none.gguf");
  EXPECT_NE(m1.find("no classification head"), std::string::npos) << m1;

  // A head whose output layer reads 64 values after a dense layer of 64 is
  // fine; one written for another width is not. Rewrite cls.output.weight
  // with 32 columns.
  const std::string good = write_model(dir, "good.gguf", test::small_random_bert(4));
  auto f = GgufFile::open(good);
  GgufWriter w;
  for (const auto& [k, v] : f->metadata()) {
    if (k != "general.alignment") w.set_value(k, v);
  }
  std::vector<float> narrow(32, 0.5f);
  for (const GgufTensorInfo& t : f->tensors()) {
    if (t.name == "cls.output.weight") {
      w.add_tensor(t.name, TensorType::kF32, {32, 1}, {reinterpret_cast<const uint8_t*>(narrow.data()), 128});
    } else {
      w.add_tensor(t.name, t.type, t.shape, {t.data, t.n_bytes});
    }
  }
  const std::string bad = dir.file("narrow.gguf");
  w.write(bad);
  try {
    Runner r(bad);
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptData);
    EXPECT_NE(std::string(e.what()).find("cls.output.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tars::engine
