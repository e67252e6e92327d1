// BERT embedding models: the outside truth (bert-tiny, embeddings of another
// engine), MiniLM-shaped random models against the double-precision
// reference (F32 and F16, single inputs and mixed-length batches), pooling
// kinds, truncation, bad input and bad files, the vocab.txt conversion, and
// concurrent callers.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/vocab_convert.h"
#include "support/bert_builder.h"
#include "support/bert_reference.h"
#include "support/encoder_runner.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

using json = nlohmann::json;
using test::fixture;

double cosine(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    ab += a[i] * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  return cosine(a, std::vector<double>(b.begin(), b.end()));
}

double norm(const std::vector<float>& a) {
  double s = 0;
  for (float v : a) s += static_cast<double>(v) * v;
  return std::sqrt(s);
}

using Runner = test::EncoderRunner;

// Texts of mixed lengths: short, a ~13-token sentence, accents, CJK,
// punctuation, an empty string ([CLS] [SEP] only), a ~125-token passage.
std::vector<std::string> mixed_texts() {
  std::string passage;
  const char* words[] = {"the", "cluster", "places", "each", "model", "on", "a", "device",
                         "where", "it", "fits", "with", "memory", "to", "spare,", "and"};
  for (int i = 0; i < 118; ++i) passage += std::string(words[(i * 7) % 16]) + " ";
  return {"hello world",
          "The quick brown fox jumps over the lazy dog near the river bank.",
          "Élève naïve café, Ångström.",
          "東京タワーは高い。 中文字符测试",
          "",
          "Don't stop-believing!!! (really?) #hashtags 3.14159",
          passage};
}

std::string write_model(const test::TempDir& dir, const std::string& name, test::RandomBertSpec spec) {
  const std::string path = dir.file(name);
  test::write_random_bert(spec, path);
  return path;
}

test::RandomBertSpec minilm_spec(TensorType type) {
  test::RandomBertSpec s = test::bert_spec_from_hf_config(fixture("minilm/config.json"),
                                                          fixture("minilm/vocab.txt"));
  s.weight_type = type;
  return s;
}

// ---- outside truth: bert-tiny -------------------------------------------

TEST(BertTiny, MatchesOtherEngineOneByOneAndAsOneBatch) {
  const json ref = json::parse(test::read_file(fixture("reference/bert-tiny.embeddings.json")));
  ASSERT_EQ(ref["cases"].size(), 8u);
  Runner r(fixture("reference/bert-tiny.gguf"));
  EXPECT_EQ(r.encoder->hparams().pooling, PoolingType::kMean);
  EXPECT_EQ(r.encoder->n_embd(), 64);
  std::vector<std::string> texts;
  for (const json& c : ref["cases"]) texts.push_back(c["input"].get<std::string>());

  const std::vector<Embedding> batch = embed_texts(*r.encoder, texts);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<double> want = ref["cases"][i]["embedding"].get<std::vector<double>>();
    const std::vector<Embedding> one = embed_texts(*r.encoder, {texts[i]});
    ASSERT_EQ(one.size(), 1u);
    const double c1 = cosine(one[0].values, want), cb = cosine(batch[i].values, want);
    EXPECT_GT(c1, 0.9999) << "input " << i << " one by one";
    EXPECT_GT(cb, 0.9999) << "input " << i << " in the batch";
    EXPECT_NEAR(norm(batch[i].values), 1.0, 1e-5);
    EXPECT_FALSE(batch[i].truncated());
    std::printf("bert-tiny input %zu (%d tokens): cosine %.8f single, %.8f batched\n", i,
                batch[i].n_tokens, c1, cb);
  }
}

TEST(BertTiny, MatchesDoubleReference) {
  // The same file through the plain double-precision reference: a tighter
  // bound than the other engine's (F16 weights are exact in both).
  Runner r(fixture("reference/bert-tiny.gguf"));
  test::BertReference ref(*r.file);
  const std::vector<std::string> texts = mixed_texts();
  const std::vector<Embedding> got = embed_texts(*r.encoder, texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> ids = embed_tokenize(*r.encoder, texts[i]);
    const std::vector<double> want = ref.embed(std::vector<int>(ids.begin(), ids.end()));
    EXPECT_GT(cosine(got[i].values, want), 0.99999) << "input " << i;
  }
}

// ---- MiniLM shape vs the double reference -----------------------------------

void check_minilm(TensorType type) {
  test::TempDir dir;
  const std::string path = write_model(dir, "minilm.gguf", minilm_spec(type));
  // A small token budget so the batch really is split over several passes.
  Runner r(path, /*max_batch_tokens=*/160);
  ASSERT_EQ(r.encoder->max_batch_tokens(), 512);  // raised to the context
  Runner packed(path, /*max_batch_tokens=*/1024);
  test::BertReference ref(*r.file);
  const std::vector<std::string> texts = mixed_texts();
  const std::vector<Embedding> batch = embed_texts(*packed.encoder, texts);
  const std::vector<Embedding> batch_small = embed_texts(*r.encoder, texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> ids = embed_tokenize(*r.encoder, texts[i]);
    EXPECT_EQ(batch[i].n_tokens, static_cast<int>(ids.size()));
    const std::vector<double> want = ref.embed(std::vector<int>(ids.begin(), ids.end()));
    const std::vector<Embedding> one = embed_texts(*r.encoder, {texts[i]});
    const double c1 = cosine(one[0].values, want), cb = cosine(batch[i].values, want);
    EXPECT_GT(c1, 0.99999) << "input " << i << " one by one";
    EXPECT_GT(cb, 0.99999) << "input " << i << " in the batch";
    EXPECT_GT(cosine(batch_small[i].values, want), 0.99999) << "input " << i;
    EXPECT_GT(cosine(batch[i].values, one[0].values), 0.99999) << "input " << i;
    std::printf("%s input %zu (%d tokens): 1 - cosine %.2e single, %.2e batched\n",
                std::string(tensor_type_name(type)).c_str(), i, batch[i].n_tokens, 1 - c1, 1 - cb);
  }
}

TEST(BertMiniLM, F32MatchesDoubleReference) { check_minilm(TensorType::kF32); }
TEST(BertMiniLM, F16MatchesDoubleReference) { check_minilm(TensorType::kF16); }

TEST(BertMiniLM, HyperParametersFromTheConfig) {
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", minilm_spec(TensorType::kF16)));
  const EncoderHParams& hp = r.encoder->hparams();
  EXPECT_EQ(hp.n_embd, 384);
  EXPECT_EQ(hp.n_layer, 6);
  EXPECT_EQ(hp.n_head, 12);
  EXPECT_EQ(hp.head_dim, 32);
  EXPECT_EQ(hp.n_ff, 1536);
  EXPECT_EQ(hp.n_ctx_train, 512);
  EXPECT_EQ(hp.n_vocab, 30522);
  EXPECT_EQ(hp.n_token_types, 2);
  EXPECT_FLOAT_EQ(hp.norm_eps, 1e-12f);
}

// ---- pooling kinds and options ---------------------------------------------------

TEST(BertPooling, ClsAndNoneMatchReference) {
  test::TempDir dir;
  for (int pooling : {0, 2}) {
    const std::string path = write_model(dir, "p" + std::to_string(pooling) + ".gguf", test::small_random_bert(pooling));
    Runner r(path);
    EXPECT_EQ(static_cast<int>(r.encoder->hparams().pooling), pooling);
    test::BertReference ref(*r.file);
    const std::vector<std::string> texts = mixed_texts();
    const std::vector<Embedding> got = embed_texts(*r.encoder, texts);
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::vector<int32_t> ids = embed_tokenize(*r.encoder, texts[i]);
      const size_t rows = pooling == 0 ? ids.size() : 1;
      ASSERT_EQ(got[i].values.size(), rows * 64) << "pooling " << pooling << " input " << i;
      const std::vector<double> want = ref.embed(std::vector<int>(ids.begin(), ids.end()));
      for (size_t row = 0; row < rows; ++row) {  // each token's vector on its own
        std::vector<float> g(got[i].values.begin() + row * 64, got[i].values.begin() + (row + 1) * 64);
        std::vector<double> w(want.begin() + row * 64, want.begin() + (row + 1) * 64);
        EXPECT_GT(cosine(g, w), 0.99999) << "pooling " << pooling << " input " << i << " row " << row;
        EXPECT_NEAR(norm(g), 1.0, 1e-5);
      }
    }
  }
}

TEST(BertOptions, NoNormalizeGivesTheRawMean) {
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert()));
  test::BertReference ref(*r.file);
  EmbedOptions o;
  o.normalize = false;
  const std::vector<Embedding> raw = embed_texts(*r.encoder, {"hello world", "a b c"}, o);
  const std::vector<Embedding> unit = embed_texts(*r.encoder, {"hello world", "a b c"});
  for (size_t i = 0; i < raw.size(); ++i) {
    const std::vector<int32_t> ids = embed_tokenize(*r.encoder, i ? "a b c" : "hello world");
    const std::vector<double> want = ref.embed(std::vector<int>(ids.begin(), ids.end()), false);
    double want_norm = 0;
    for (double v : want) want_norm += v * v;
    want_norm = std::sqrt(want_norm);
    EXPECT_GT(want_norm, 1.5);  // a mean of LayerNorm outputs: clearly not unit length
    EXPECT_NEAR(norm(raw[i].values), want_norm, 1e-4 * want_norm);
    EXPECT_GT(cosine(raw[i].values, want), 0.99999);
    EXPECT_GT(cosine(unit[i].values, raw[i].values), 0.9999999);
  }
}

// ---- truncation and bad input --------------------------------------------------

TEST(BertTruncation, CutsToClsFirstPiecesSepOrErrs) {
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert()));
  test::BertReference ref(*r.file);
  const std::string long_text = "one two three four five six seven eight nine ten eleven twelve thirteen "
                                "fourteen fifteen sixteen seventeen eighteen nineteen twenty";
  const std::vector<int32_t> full = embed_tokenize(*r.encoder, long_text);
  ASSERT_GT(full.size(), 16u);
  EmbedOptions o;
  o.max_tokens = 16;
  const std::vector<Embedding> got = embed_texts(*r.encoder, {"short one", long_text}, o);
  EXPECT_FALSE(got[0].truncated());
  EXPECT_TRUE(got[1].truncated());
  EXPECT_EQ(got[1].n_tokens, 16);
  EXPECT_EQ(got[1].n_tokens_input, static_cast<int>(full.size()));
  // [CLS] + the first 14 pieces + [SEP], as Hugging Face truncates.
  std::vector<int> cut(full.begin(), full.begin() + 15);
  cut.push_back(full.back());
  EXPECT_EQ(full.back(), r.encoder->tokenizer().vocab().sep);
  EXPECT_GT(cosine(got[1].values, ref.embed(cut)), 0.99999);

  // The model's own limit (128 here) applies with max_tokens = 0.
  std::string very_long;
  for (int i = 0; i < 200; ++i) very_long += "word ";
  const std::vector<Embedding> at_ctx = embed_texts(*r.encoder, {very_long});
  EXPECT_EQ(at_ctx[0].n_tokens, 128);
  EXPECT_EQ(at_ctx[0].n_tokens_input, 202);

  o.truncate = false;
  try {
    embed_texts(*r.encoder, {"short one", long_text}, o);
    FAIL() << "an over-long input must be an error with truncation off";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("input 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(full.size()) + " tokens"), std::string::npos) << msg;
    EXPECT_NE(msg.find("limit of 16"), std::string::npos) << msg;
  }
}

TEST(BertBadInput, EmptyListBadOptionsAndTokenIds) {
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert()));
  auto code_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;  // nothing thrown
  };
  EXPECT_EQ(code_of([&] { embed_texts(*r.encoder, {}); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { embed_token_inputs(*r.encoder, {}); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { embed_token_inputs(*r.encoder, {{101, 102}, {}}); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { embed_token_inputs(*r.encoder, {{101, 40000, 102}}); }),
            ErrorCode::kInvalidArgument);
  EmbedOptions o;
  o.max_tokens = 1;
  EXPECT_EQ(code_of([&] { embed_texts(*r.encoder, {"x"}, o); }), ErrorCode::kInvalidArgument);
  o.max_tokens = 129;  // over the model's context
  EXPECT_EQ(code_of([&] { embed_texts(*r.encoder, {"x"}, o); }), ErrorCode::kInvalidArgument);
  // The encoder itself refuses what embed.cpp would never send.
  const std::vector<int32_t> toks = {101, 102}, bad_start = {0, 3};
  EXPECT_EQ(code_of([&] { r.encoder->forward(toks, bad_start); }), ErrorCode::kInvalidArgument);
  const std::vector<int32_t> one = {0};
  EXPECT_EQ(code_of([&] { r.encoder->forward(toks, one); }), ErrorCode::kInvalidArgument);
  // Token inputs run as given and agree with the same ids from text.
  const std::vector<int32_t> ids = embed_tokenize(*r.encoder, "hello world");
  const auto from_ids = embed_token_inputs(*r.encoder, {ids});
  const auto from_text = embed_texts(*r.encoder, {"hello world"});
  EXPECT_EQ(from_ids[0].values, from_text[0].values);
}

// ---- bad files -------------------------------------------------------------------

// Copies `src` with one metadata key replaced (or a tensor left out).
std::string rewrite(const test::TempDir& dir, const std::string& src, const std::string& key,
                    const GgufValue* value, const std::string& drop_tensor = "") {
  auto f = GgufFile::open(src);
  GgufWriter w;
  for (const auto& [k, v] : f->metadata()) {
    if (k == "general.alignment") continue;
    w.set_value(k, k == key && value ? *value : v);
  }
  if (value && !f->has(key)) w.set_value(key, *value);
  for (const GgufTensorInfo& t : f->tensors()) {
    if (t.name == drop_tensor) continue;
    w.add_tensor(t.name, t.type, t.shape, {t.data, t.n_bytes});
  }
  const std::string out = dir.file("rewritten-" + key + drop_tensor + ".gguf");
  w.write(out);
  return out;
}

TEST(BertBadFile, RefusedWithAMessageNamingTheProblem) {
  test::TempDir dir;
  const std::string good = write_model(dir, "m.gguf", test::small_random_bert());
  auto load_error = [&](const std::string& path) -> std::pair<ErrorCode, std::string> {
    try {
      Runner r(path);
    } catch (const Error& e) {
      return {e.code(), e.what()};
    }
    return {ErrorCode::kInternal, "loaded"};
  };
  GgufValue causal{GgufValueType::kBool, GgufValueType::kU8, true};
  auto [c1, m1] = load_error(rewrite(dir, good, "bert.attention.causal", &causal));
  EXPECT_EQ(c1, ErrorCode::kUnsupported);
  EXPECT_NE(m1.find("causal"), std::string::npos) << m1;

  GgufValue pooling{GgufValueType::kU32, GgufValueType::kU8, uint64_t{3}};  // last: not for BERT
  auto [c2, m2] = load_error(rewrite(dir, good, "bert.pooling_type", &pooling));
  EXPECT_EQ(c2, ErrorCode::kUnsupported);
  EXPECT_NE(m2.find("pooling_type = 3"), std::string::npos) << m2;

  auto [c3, m3] = load_error(rewrite(dir, good, "", nullptr, "blk.1.ffn_up.bias"));
  EXPECT_EQ(c3, ErrorCode::kCorruptData);
  EXPECT_NE(m3.find("blk.1.ffn_up.bias"), std::string::npos) << m3;

  GgufValue arch{GgufValueType::kString, GgufValueType::kU8, std::string("llama")};
  auto [c4, m4] = load_error(rewrite(dir, good, "general.architecture", &arch));
  EXPECT_EQ(c4, ErrorCode::kUnsupported);

  GgufValue heads{GgufValueType::kU32, GgufValueType::kU8, uint64_t{5}};  // 64 % 5 != 0
  auto [c5, m5] = load_error(rewrite(dir, good, "bert.attention.head_count", &heads));
  EXPECT_EQ(c5, ErrorCode::kCorruptData);
  EXPECT_NE(m5.find("head_count"), std::string::npos) << m5;

  EXPECT_TRUE(encoder_is_encoder_file(*GgufFile::open(good)));
  EXPECT_FALSE(encoder_is_encoder_file(*GgufFile::open(fixture("stories260K/stories260K.gguf"))));
}

// ---- threads --------------------------------------------------------------------

TEST(BertThreads, ConcurrentCallersGetTheSerialResults) {
  test::TempDir dir;
  Runner r(write_model(dir, "m.gguf", test::small_random_bert()));
  const std::vector<std::string> texts = mixed_texts();
  std::vector<std::vector<Embedding>> serial;
  for (size_t i = 0; i < texts.size(); ++i) {
    serial.push_back(embed_texts(*r.encoder, {texts[i], texts[(i + 1) % texts.size()]}));
  }
  std::vector<std::vector<Embedding>> parallel(texts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < texts.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 5; ++rep) {
        parallel[i] = embed_texts(*r.encoder, {texts[i], texts[(i + 1) % texts.size()]});
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < texts.size(); ++i) {
    for (size_t j = 0; j < 2; ++j) EXPECT_EQ(parallel[i][j].values, serial[i][j].values) << i;
  }
}

// ---- vocab.txt -> GGUF -------------------------------------------------------------

TEST(BertVocab, ConvertedVocabTxtEqualsTheBgeGguf) {
  // ggml-vocab-bert-bge.gguf is bert-base-uncased's vocab.txt (the one MiniLM
  // ships) converted by another tool: our conversion must give the same file.
  const Vocab mine = vocab_from_wordpiece_file(fixture("minilm/vocab.txt"));
  const Vocab theirs = vocab_load(*GgufFile::open(fixture("vocab/ggml-vocab-bert-bge.gguf")));
  ASSERT_EQ(mine.tokens.size(), theirs.tokens.size());
  for (size_t i = 0; i < mine.tokens.size(); ++i) {
    ASSERT_EQ(mine.tokens[i], theirs.tokens[i]) << "token " << i;
    ASSERT_EQ(mine.types[i], theirs.types[i]) << "token type " << i;
  }
  EXPECT_EQ(mine.unk, theirs.unk);
  EXPECT_EQ(mine.cls, theirs.cls);
  EXPECT_EQ(mine.sep, theirs.sep);
  EXPECT_EQ(mine.pad, theirs.pad);
  EXPECT_EQ(mine.mask, theirs.mask);

  // Through GGUF and back: the tokenizer gives the bge file's ids.
  GgufWriter w;
  w.set_string("general.architecture", "bert");
  vocab_write_gguf(w, mine);
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size(), "converted");
  auto ours = Tokenizer::from_gguf(*f);
  auto bge = Tokenizer::from_gguf(*GgufFile::open(fixture("vocab/ggml-vocab-bert-bge.gguf")));
  for (const std::string& text : mixed_texts()) {
    EXPECT_EQ(ours->encode(text, true, false), bge->encode(text, true, false)) << text;
  }
}

TEST(BertVocab, BadVocabTxtNamesTheProblem) {
  try {
    vocab_from_wordpiece_text("[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n", "v.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptData);
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
  try {
    vocab_from_wordpiece_text("[PAD]\n[UNK]\n[SEP]\nthe\n", "v.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[CLS]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(vocab_from_wordpiece_text("", "v.txt"), Error);
  EXPECT_THROW(vocab_from_wordpiece_file("/nonexistent/vocab.txt"), Error);
  // CRLF line ends and a missing final newline are fine; pieces convert.
  const Vocab v = vocab_from_wordpiece_text("[UNK]\r\n[CLS]\r\n[SEP]\r\nthe\r\n##ing\r\n[unused0]", "v.txt");
  ASSERT_EQ(v.tokens.size(), 6u);
  EXPECT_EQ(v.tokens[3], "\xE2\x96\x81the");
  EXPECT_EQ(v.tokens[4], "ing");
  EXPECT_EQ(v.tokens[5], "[unused0]");
  EXPECT_EQ(v.types[1], TokenType::kControl);
  EXPECT_EQ(v.types[5], TokenType::kNormal);
  EXPECT_EQ(v.pad, kTokenNone);
}

}  // namespace
}  // namespace tars::engine
