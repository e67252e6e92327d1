// Model-level quantization (engine/quantize.h): the type rules, the output
// file (types, metadata, bytes), fallbacks, re-quantization and errors.
//
// The models are random llama models written by the project's GGUF writer
// (dim 256, 2 layers, 8 heads, 4 KV heads, FFN 512: every row a multiple of
// 256, so the k-quants apply), with the stories260K vocabulary so they load.
// The expected type of each tensor is restated here as a table, not computed
// with the code under test; the expected bytes come from quantize_row on the
// source rows, which quant_test.cpp checks against the block formats.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/quantize.h"
#include "support/model_builder.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using T = TensorType;

QuantizeOptions options_for(const std::string& name, int threads = 2) {
  QuantizeOptions o;
  auto t = quantize_target_from_name(name);
  EXPECT_TRUE(t.has_value()) << name;
  if (t) o.target = *t;
  o.n_threads = threads;
  return o;
}

// The test model: llama, 256 wide, 2 layers, 8 heads / 4 KV heads, FFN 512.
std::string write_test_model(const TempDir& dir, T weight_type, const std::string& name) {
  test::RandomModelSpec s;
  s.arch = "llama";
  s.n_embd = 256;
  s.n_layer = 2;
  s.n_head = 8;
  s.n_head_kv = 4;
  s.n_ff = 512;
  s.n_ctx = 128;
  s.weight_type = weight_type;
  s.seed = 7;
  s.vocab_from = test::fixture("stories260K/stories260K.gguf");
  const std::string path = dir.file(name);
  test::write_random_model(s, path);
  return path;
}

bool values_equal(const GgufValue& a, const GgufValue& b);

template <class V>
bool arrays_equal(const V& a, const V& b) {
  return a == b;
}
template <>
bool arrays_equal(const GgufArray& a, const GgufArray& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!values_equal(a[i], b[i])) return false;
  }
  return true;
}

bool values_equal(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (a.type == GgufValueType::kArray && a.elem_type != b.elem_type) return false;
  return std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        return arrays_equal<X>(x, std::get<X>(b.value));
      },
      a.value);
}

// The type each tensor of the test model must get, per target: the rules of
// quantize.h written out for this model (2 layers, untied output).
T expected_type(const std::string& target, const std::string& tensor, bool vector) {
  if (vector) return T::kF32;
  static const std::map<std::string, T> kBase = {
      {"F32", T::kF32},   {"F16", T::kF16},   {"BF16", T::kBF16},   {"Q8_0", T::kQ8_0},
      {"Q4_0", T::kQ4_0}, {"Q4_1", T::kQ4_1}, {"Q5_0", T::kQ5_0},   {"Q5_1", T::kQ5_1},
      {"Q4_K", T::kQ4_K}, {"Q5_K", T::kQ5_K}, {"Q6_K", T::kQ6_K},   {"Q4_K_S", T::kQ4_K},
      {"Q4_K_M", T::kQ4_K}, {"Q5_K_S", T::kQ5_K}, {"Q5_K_M", T::kQ5_K},
  };
  const T base = kBase.at(target);
  static const std::set<std::string> kOutputRaised = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K",
                                                       "Q5_K", "Q4_K_S", "Q4_K_M", "Q5_K_S",
                                                       "Q5_K_M"};
  if (tensor == "output.weight" && kOutputRaised.count(target)) return T::kQ6_K;
  // use_more_bits(i, 2) holds for layer 1 only (1 >= 7*2/8).
  if ((target == "Q4_K_M" || target == "Q5_K_M") &&
      (tensor == "blk.1.attn_v.weight" || tensor == "blk.1.ffn_down.weight")) {
    return T::kQ6_K;
  }
  // Q4_K_S: attn_v of layers 0..3 (ffn_down: layers below 2/8 = 0, none).
  if (target == "Q4_K_S" && (tensor == "blk.0.attn_v.weight" || tensor == "blk.1.attn_v.weight")) {
    return T::kQ5_K;
  }
  return base;
}

// The bytes `dst` must hold: each source row through quantize_row.
std::vector<uint8_t> expected_bytes(const GgufTensorInfo& src, T dst) {
  const auto row = static_cast<int64_t>(src.shape[0]);
  const int64_t n_rows = static_cast<int64_t>(src.n_elems) / row;
  const size_t in_rb = quant_row_bytes(src.type, row), out_rb = quant_row_bytes(dst, row);
  std::vector<uint8_t> out(out_rb * n_rows);
  std::vector<float> f(row);
  for (int64_t r = 0; r < n_rows; ++r) {
    dequantize_row(src.type, src.data + r * in_rb, f.data(), row);
    quantize_row(dst, f.data(), out.data() + r * out_rb, row);
  }
  return out;
}

std::vector<float> dequantize_all(T type, const uint8_t* data, const std::vector<uint64_t>& shape,
                                  uint64_t n_elems) {
  const auto row = static_cast<int64_t>(shape[0]);
  const int64_t n_rows = static_cast<int64_t>(n_elems) / row;
  const size_t rb = quant_row_bytes(type, row);
  std::vector<float> out(n_elems);
  for (int64_t r = 0; r < n_rows; ++r) {
    dequantize_row(type, data + r * rb, out.data() + r * row, row);
  }
  return out;
}

// Checks one quantized file against its source, as the brief of
// `tars quantize` asks: it opens, each tensor has the type the rules say,
// the metadata is kept, the data is quantize_row of the source exactly, and
// it loads and runs as a model.
void check_output(const GgufFile& in, const std::string& out_path, const std::string& target) {
  SCOPED_TRACE("target " + target);
  std::shared_ptr<GgufFile> out;
  ASSERT_NO_THROW(out = GgufFile::open(out_path));
  EXPECT_FALSE(fs::exists(out_path + ".tmp"));

  // Metadata: every key of the input, same value, same order; file type and
  // quantization version set.
  std::vector<std::string> in_keys, out_keys;
  for (const auto& [k, v] : in.metadata()) {
    if (k == "general.file_type" || k == "general.quantization_version") continue;
    in_keys.push_back(k);
    const GgufValue* o = out->find(k);
    ASSERT_NE(o, nullptr) << k;
    EXPECT_TRUE(values_equal(v, *o)) << k;
  }
  for (const auto& [k, v] : out->metadata()) {
    if (k != "general.file_type" && k != "general.quantization_version") out_keys.push_back(k);
  }
  EXPECT_EQ(in_keys, out_keys);
  EXPECT_EQ(out->get_u64("general.file_type"),
            static_cast<uint64_t>(quantize_target_from_name(target)->file_type));
  EXPECT_EQ(out->get_u64("general.quantization_version"), 2u);

  ASSERT_EQ(out->tensors().size(), in.tensors().size());
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const GgufTensorInfo& s = in.tensors()[i];
    const GgufTensorInfo& d = out->tensors()[i];
    SCOPED_TRACE(s.name);
    EXPECT_EQ(d.name, s.name);
    EXPECT_EQ(d.shape, s.shape);
    const T want = expected_type(target, s.name, s.shape.size() == 1);
    EXPECT_EQ(tensor_type_name(d.type), tensor_type_name(want));
    if (d.type != want) continue;
    const std::vector<uint8_t> bytes = expected_bytes(s, want);
    ASSERT_EQ(d.n_bytes, bytes.size());
    EXPECT_EQ(std::memcmp(d.data, bytes.data(), bytes.size()), 0) << "bytes differ";
    const auto got = dequantize_all(d.type, d.data, d.shape, d.n_elems);
    const auto ref = dequantize_all(want, bytes.data(), s.shape, s.n_elems);
    EXPECT_EQ(std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)), 0);
  }

  // It is still a model: loads, and a few tokens give finite logits.
  auto backend = backend_cpu_create({.n_threads = 2, .exact_activations = true});
  ModelOptions mo;
  mo.kv_type = T::kF32;
  std::unique_ptr<Model> model;
  ASSERT_NO_THROW(model = Model::load(out, *backend, mo));
  Batch b;
  for (int i = 0; i < 4; ++i) b.add(1 + 37 * i, i, 0, true);
  std::vector<float> logits;
  model->forward(b, logits);
  ASSERT_EQ(logits.size(), 4u * model->hparams().n_vocab);
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
}

// ---- targets and rules -----------------------------------------------------------

TEST(Quantize, TargetNamesAndFileTypes) {
  // The conventional general.file_type numbers (llama_ftype).
  const std::map<std::string, uint32_t> kFileType = {
      {"F32", 0},     {"F16", 1},     {"BF16", 32},   {"Q8_0", 7},    {"Q4_0", 2},
      {"Q4_1", 3},    {"Q5_0", 8},    {"Q5_1", 9},    {"Q4_K", 14},   {"Q5_K", 16},
      {"Q6_K", 18},   {"Q4_K_S", 14}, {"Q4_K_M", 15}, {"Q5_K_S", 16}, {"Q5_K_M", 17},
  };
  EXPECT_EQ(quantize_targets().size(), kFileType.size());
  for (const auto& [name, ft] : kFileType) {
    auto t = quantize_target_from_name(name);
    ASSERT_TRUE(t) << name;
    EXPECT_EQ(t->name, name);
    EXPECT_EQ(static_cast<uint32_t>(t->file_type), ft) << name;
    EXPECT_NE(quantize_target_list().find(name), std::string::npos) << name;
  }
  auto lower = quantize_target_from_name("q4_k_m");
  ASSERT_TRUE(lower);
  EXPECT_EQ(lower->name, "Q4_K_M");
  EXPECT_EQ(lower->base, T::kQ4_K);
  EXPECT_FALSE(quantize_target_from_name("Q3_K_M"));
  EXPECT_FALSE(quantize_target_from_name(""));
  EXPECT_FALSE(quantize_target_from_name("Q4_K_MX"));
}

TEST(Quantize, UseMoreBitsRule) {
  // first n/8, last n/8, and every third between: written out by hand.
  auto layers = [](int n) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i) {
      if (quantize_use_more_bits(i, n)) v.push_back(i);
    }
    return v;
  };
  EXPECT_EQ(layers(1), (std::vector<int>{0}));
  EXPECT_EQ(layers(2), (std::vector<int>{1}));
  EXPECT_EQ(layers(22), (std::vector<int>{0, 1, 4, 7, 10, 13, 16, 19, 20, 21}));  // TinyLlama
  EXPECT_EQ(layers(32), (std::vector<int>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30,
                                          31}));  // LLaMA-7B
}

// ---- whole models ------------------------------------------------------------------

class QuantizeModel : public ::testing::TestWithParam<T> {};

TEST_P(QuantizeModel, EveryTargetGivesTheRuleTypesAndExactBytes) {
  TempDir dir;
  const std::string in_path = write_test_model(dir, GetParam(), "in.gguf");
  auto in = GgufFile::open(in_path);
  for (const auto& target : quantize_targets()) {
    // Every target from F32; from F16 / BF16 (which only change how rows are
    // read) a few, to keep the test fast.
    if (GetParam() != T::kF32 && target.name != "F32" && target.name != "F16" &&
        target.name != "Q8_0" && target.name != "Q4_K_M") {
      continue;
    }
    const std::string out_path = dir.file(target.name + ".gguf");
    int calls = 0;
    QuantizeSummary s = quantize_model(in_path, out_path, options_for(target.name),
                                       [&](const QuantizeProgress& p) {
                                         ++calls;
                                         EXPECT_EQ(p.index, calls);
                                         EXPECT_EQ(p.count, static_cast<int>(in->tensors().size()));
                                         ASSERT_NE(p.plan, nullptr);
                                       });
    EXPECT_EQ(calls, static_cast<int>(in->tensors().size()));
    EXPECT_EQ(s.n_tensors, calls);
    EXPECT_EQ(s.out_file_bytes, fs::file_size(out_path));
    EXPECT_GT(s.bits_per_weight, 4.0) << target.name;
    EXPECT_LE(s.bits_per_weight, 32.0) << target.name;
    check_output(*in, out_path, target.name);
    fs::remove(out_path);
  }
}

INSTANTIATE_TEST_SUITE_P(Source, QuantizeModel,
                         ::testing::Values(T::kF32, T::kF16, T::kBF16),
                         [](const auto& info) { return std::string(tensor_type_name(info.param)); });

TEST(Quantize, ThreadCountDoesNotChangeTheBytes) {
  TempDir dir;
  const std::string in_path = write_test_model(dir, T::kF16, "in.gguf");
  quantize_model(in_path, dir.file("t1.gguf"), options_for("Q4_K_M", 1));
  quantize_model(in_path, dir.file("t3.gguf"), options_for("Q4_K_M", 3));
  EXPECT_EQ(test::read_file(dir.file("t1.gguf")), test::read_file(dir.file("t3.gguf")));
}

TEST(Quantize, PureKeepsEveryMatrixInTheTargetType) {
  TempDir dir;
  const std::string in_path = write_test_model(dir, T::kF32, "in.gguf");
  auto in = GgufFile::open(in_path);
  QuantizeOptions o = options_for("Q4_K_M");
  o.pure = true;
  for (const auto& p : quantize_plan(*in, o)) {
    EXPECT_EQ(tensor_type_name(p.dst_type),
              tensor_type_name(p.shape.size() == 1 ? T::kF32 : T::kQ4_K))
        << p.name;
  }
}

// ---- hand-made files: fallbacks, odd tensors, tied output --------------------------

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.37f * static_cast<float>(i) + 0.1f);
  return v;
}

std::span<const uint8_t> as_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

TEST(Quantize, RowsThatDoNotFitTheBlockFallBack) {
  TempDir dir;
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_u32("general.file_type", 0);  // replaced, not duplicated
  const auto a = ramp(96 * 4, 0.5f), b = ramp(80 * 2, 0.5f), c = ramp(64 * 3, 0.5f);
  const auto n = ramp(80, 1.0f);
  std::vector<uint16_t> n16(n.size());
  for (size_t i = 0; i < n.size(); ++i) quantize_row(T::kF16, &n[i], &n16[i], 1);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5};
  w.add_tensor("blk.0.attn_q.weight", T::kF32, {96, 4}, as_bytes(a));   // 96: not 256, is 32k
  w.add_tensor("blk.0.ffn_up.weight", T::kF32, {80, 2}, as_bytes(b));   // 80: not even 32k
  w.add_tensor("output.weight", T::kF32, {64, 3}, as_bytes(c));         // Q6_K -> Q8_0
  w.add_tensor("blk.0.attn_norm.weight", T::kF16, {80},
               {reinterpret_cast<const uint8_t*>(n16.data()), n16.size() * 2});  // 1-D -> F32
  w.add_tensor("ids", T::kI32, {5},
               {reinterpret_cast<const uint8_t*>(ids.data()), ids.size() * 4});  // copied
  const std::string in_path = dir.file("odd.gguf");
  w.write(in_path);
  auto in = GgufFile::open(in_path);

  struct Want {
    T type;
    bool noted;
  };
  const std::map<std::string, std::map<std::string, Want>> kWant = {
      {"Q4_K_M",
       {{"blk.0.attn_q.weight", {T::kQ5_0, true}},
        {"blk.0.ffn_up.weight", {T::kF16, true}},
        {"output.weight", {T::kQ8_0, true}},
        {"blk.0.attn_norm.weight", {T::kF32, false}},
        {"ids", {T::kI32, false}}}},
      {"Q5_K",
       {{"blk.0.attn_q.weight", {T::kQ5_1, true}},
        {"blk.0.ffn_up.weight", {T::kF16, true}},
        {"output.weight", {T::kQ8_0, true}},
        {"blk.0.attn_norm.weight", {T::kF32, false}},
        {"ids", {T::kI32, false}}}},
      {"Q4_0",
       {{"blk.0.attn_q.weight", {T::kQ4_0, false}},
        {"blk.0.ffn_up.weight", {T::kF16, true}},
        {"output.weight", {T::kQ8_0, true}},
        {"blk.0.attn_norm.weight", {T::kF32, false}},
        {"ids", {T::kI32, false}}}},
  };
  for (const auto& [target, want] : kWant) {
    SCOPED_TRACE(target);
    const auto plan = quantize_plan(*in, options_for(target));
    ASSERT_EQ(plan.size(), want.size());
    for (const auto& p : plan) {
      EXPECT_EQ(tensor_type_name(p.dst_type), tensor_type_name(want.at(p.name).type)) << p.name;
      EXPECT_EQ(!p.note.empty(), want.at(p.name).noted) << p.name << ": " << p.note;
    }
    const std::string out_path = dir.file(target + ".gguf");
    quantize_model(in_path, out_path, options_for(target));
    auto out = GgufFile::open(out_path);
    int file_type_keys = 0;
    for (const auto& [k, v] : out->metadata()) file_type_keys += k == "general.file_type";
    EXPECT_EQ(file_type_keys, 1);
    for (size_t i = 0; i < plan.size(); ++i) {
      const GgufTensorInfo& s = in->tensors()[i];
      const GgufTensorInfo& d = out->tensors()[i];
      ASSERT_EQ(d.type, plan[i].dst_type) << s.name;
      if (s.type == T::kI32) {
        ASSERT_EQ(d.n_bytes, s.n_bytes);
        EXPECT_EQ(std::memcmp(d.data, s.data, s.n_bytes), 0);
        continue;
      }
      const auto bytes = expected_bytes(s, d.type);
      ASSERT_EQ(d.n_bytes, bytes.size()) << s.name;
      EXPECT_EQ(std::memcmp(d.data, bytes.data(), bytes.size()), 0) << s.name;
    }
  }
}

TEST(Quantize, TiedEmbeddingsTreatTokenEmbdAsTheOutput) {
  TempDir dir;
  GgufWriter w;
  w.set_string("general.architecture", "qwen2");
  w.set_u32("qwen2.block_count", 1);
  const auto e = ramp(256 * 8, 0.3f);
  w.add_tensor("token_embd.weight", T::kF32, {256, 8}, as_bytes(e));
  w.add_tensor("blk.0.attn_v.weight", T::kF32, {256, 8}, as_bytes(e));
  const std::string path = dir.file("tied.gguf");
  w.write(path);
  auto in = GgufFile::open(path);
  const auto plan = quantize_plan(*in, options_for("Q4_K_M"));
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].dst_type, T::kQ6_K);  // no output.weight: the embedding makes the logits
  EXPECT_EQ(plan[1].dst_type, T::kQ6_K);  // use_more_bits(0, 1)
  const auto q8 = quantize_plan(*in, options_for("Q8_0"));
  EXPECT_EQ(q8[0].dst_type, T::kQ8_0);
}

TEST(Quantize, FusedQkvGoesOneStepUpInTheMMixes) {
  TempDir dir;
  GgufWriter w;
  w.set_string("general.architecture", "phi2");
  w.set_u32("phi2.block_count", 8);
  const auto e = ramp(256 * 4, 0.3f);
  w.add_tensor("blk.2.attn_qkv.weight", T::kF32, {256, 4}, as_bytes(e));
  const std::string path = dir.file("phi.gguf");
  w.write(path);
  auto in = GgufFile::open(path);
  EXPECT_EQ(quantize_plan(*in, options_for("Q4_K_M"))[0].dst_type, T::kQ5_K);
  EXPECT_EQ(quantize_plan(*in, options_for("Q5_K_M"))[0].dst_type, T::kQ6_K);
  EXPECT_EQ(quantize_plan(*in, options_for("Q4_K_S"))[0].dst_type, T::kQ4_K);
}

// ---- already-quantized input ------------------------------------------------------

TEST(Quantize, QuantizedInputIsRefusedUnlessAllowed) {
  TempDir dir;
  const std::string src = write_test_model(dir, T::kF32, "f32.gguf");
  const std::string q8 = dir.file("q8.gguf");
  quantize_model(src, q8, options_for("Q8_0"));

  try {
    quantize_model(q8, dir.file("again.gguf"), options_for("Q4_K_M"));
    FAIL() << "a Q8_0 model was quantized again without --allow-requantize";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("token_embd.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--allow-requantize"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("again.gguf")));
  EXPECT_FALSE(fs::exists(dir.file("again.gguf.tmp")));

  QuantizeOptions o = options_for("Q4_K_M");
  o.allow_requantize = true;
  quantize_model(q8, dir.file("again.gguf"), o);
  auto in = GgufFile::open(q8);
  auto out = GgufFile::open(dir.file("again.gguf"));
  for (size_t i = 0; i < in->tensors().size(); ++i) {
    const GgufTensorInfo& s = in->tensors()[i];
    const GgufTensorInfo& d = out->tensors()[i];
    SCOPED_TRACE(s.name);
    EXPECT_EQ(d.type, expected_type("Q4_K_M", s.name, s.shape.size() == 1));
    // Dequantized Q8_0 -> quantize_row: the same path as from float.
    const auto bytes = expected_bytes(s, d.type);
    ASSERT_EQ(d.n_bytes, bytes.size());
    EXPECT_EQ(std::memcmp(d.data, bytes.data(), bytes.size()), 0);
  }

  // A tensor already in the chosen type is copied, not quantized twice.
  o = options_for("Q8_0");
  o.allow_requantize = true;
  quantize_model(q8, dir.file("same.gguf"), o);
  EXPECT_EQ(test::read_file(q8), test::read_file(dir.file("same.gguf")));
}

// ---- errors -------------------------------------------------------------------------

TEST(Quantize, ErrorsNameTheProblem) {
  TempDir dir;
  const QuantizeOptions o = options_for("Q4_0");
  try {
    quantize_model(dir.file("missing.gguf"), dir.file("out.gguf"), o);
    FAIL() << "missing input accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("missing.gguf"), std::string::npos) << e.what();
  }
  test::write_file(dir.file("junk.gguf"), "GGUF this is not a model file at all");
  try {
    quantize_model(dir.file("junk.gguf"), dir.file("out.gguf"), o);
    FAIL() << "corrupt input accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptData);
    EXPECT_NE(std::string(e.what()).find("junk.gguf"), std::string::npos) << e.what();
  }
  const std::string in_path = write_test_model(dir, T::kF32, "in.gguf");
  const std::string bad_out = dir.file("no/such/dir/out.gguf");
  try {
    quantize_model(in_path, bad_out, o);
    FAIL() << "unwritable output accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("no/such/dir/out.gguf"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("out.gguf")));
}

// ---- the streaming writer tars quantize relies on -----------------------------------

TEST(Quantize, StreamedTensorsWriteTheSameBytesAsCopiedOnes) {
  const auto a = ramp(64 * 3, 1.0f), b = ramp(33, 2.0f);
  GgufWriter copied, streamed;
  for (GgufWriter* w : {&copied, &streamed}) w->set_string("general.name", "s");
  copied.add_tensor("a", T::kF32, {64, 3}, as_bytes(a));
  copied.add_tensor("b", T::kF32, {33}, as_bytes(b));
  int produced = 0;
  streamed.add_tensor_stream("a", T::kF32, {64, 3}, [&](std::span<uint8_t> out) {
    ++produced;
    ASSERT_EQ(out.size(), a.size() * 4);
    std::memcpy(out.data(), a.data(), out.size());
  });
  streamed.add_tensor_view("b", T::kF32, {33}, as_bytes(b));
  EXPECT_EQ(copied.to_bytes(), streamed.to_bytes());
  EXPECT_EQ(produced, 1);  // sizing the buffer does not produce the tensor

  // Bad shapes are refused up front, like add_tensor.
  EXPECT_THROW(streamed.add_tensor_stream("c", T::kQ4_0, {48, 2}, [](std::span<uint8_t>) {}),
               Error);
  EXPECT_THROW(streamed.add_tensor_stream("a", T::kF32, {4}, [](std::span<uint8_t>) {}), Error);
  EXPECT_THROW(streamed.add_tensor_stream("d", T::kF32, {4}, nullptr), Error);

  // A producer that throws leaves no file behind.
  TempDir dir;
  GgufWriter failing;
  failing.add_tensor_stream("x", T::kF32, {8}, [](std::span<uint8_t>) {
    throw Error(ErrorCode::kIo, "disk on fire");
  });
  EXPECT_THROW(failing.write(dir.file("f.gguf")), Error);
  EXPECT_FALSE(fs::exists(dir.file("f.gguf")));
  EXPECT_FALSE(fs::exists(dir.file("f.gguf.tmp")));
}

}  // namespace
}  // namespace tars::engine
