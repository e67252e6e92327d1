// The memory estimator from headers alone (sparse files of real shapes),
// against hand computations in double precision from the shapes. The
// comparison with the engine's own accounting on real models is in
// tests/model/estimate_model_test.cpp.
#include "cluster/estimate.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/gguf.h"
#include "support/sparse_model.h"
#include "support/test_support.h"

namespace tars::cluster {
namespace {

using engine::TensorType;

test::SparseModelSpec mistral() {
  test::SparseModelSpec s;
  s.n_embd = 4096;
  s.n_layer = 32;
  s.n_head = 32;
  s.n_head_kv = 8;
  s.n_ff = 14336;
  s.n_vocab = 32000;
  s.n_ctx = 32768;
  s.quant = "Q4_K_M";
  return s;
}

// Bytes of n weights at bits per weight.
double at(double n, double bits) { return n * bits / 8; }

TEST(Estimate, MistralQ4KMFromTheHeader) {
  test::TempDir dir;
  const std::string path = dir.file("mistral.gguf");
  test::write_sparse_model(mistral(), path);
  auto f = engine::GgufFile::open(path);
  EstimateOptions o;
  o.n_ctx = 4096;
  o.n_slots = 1;
  const MemoryEstimate e = estimate_model(*f, o);
  EXPECT_EQ(e.quant, "Q4_K_M");
  EXPECT_FALSE(e.encoder);

  // Q4_K_M by hand: Q4_K is 4.5 bits per weight, Q6_K 6.5625. output.weight
  // is Q6_K; attn_v and ffn_down are Q6_K in 16 of the 32 layers (the first
  // and last 4, and every third between: 6, 9, ..., 27), Q4_K elsewhere.
  const double E = 4096, K = 1024, F = 14336, V = 32000, L = 32;
  int more = 0;
  for (int i = 0; i < 32; ++i) more += (i < 4 || i >= 28 || (i - 4) % 3 == 2) ? 1 : 0;
  ASSERT_EQ(more, 16);
  const double q4 = E * V + L * (E * E + E * K + E * E + 2 * E * F) + (L - more) * (E * K + F * E);
  const double q6 = E * V + more * (E * K + F * E);
  const double f32 = E + L * 2 * E;
  EXPECT_EQ(e.weights_bytes, static_cast<uint64_t>(at(q4, 4.5) + at(q6, 6.5625) + at(f32, 32)));
  EXPECT_EQ(e.weights_by_type.at(TensorType::kQ6_K), static_cast<uint64_t>(at(q6, 6.5625)));
  EXPECT_EQ(e.n_params, static_cast<uint64_t>(q4 + q6 + f32));

  // KV: 2 x 32 layers x 4096 ctx x 1024 (8 heads of 128) x 2 bytes = 512 MiB.
  EXPECT_EQ(e.kv_bytes, uint64_t{512} << 20);
  EXPECT_EQ(e.kv_bytes_per_slot, e.kv_bytes);
  // Compute: 512 tokens x (4 E + 3 Q + 4 KV + 2 F + V) floats.
  EXPECT_EQ(e.compute_bytes, static_cast<uint64_t>(512 * (4 * E + 3 * E + 4 * K + 2 * F + V) * 4));
  EXPECT_EQ(e.overhead_bytes, kGpuRuntimeOverheadBytes);
  EXPECT_EQ(e.total_bytes(), e.weights_bytes + e.kv_bytes + e.compute_bytes + kGpuRuntimeOverheadBytes);

  // More slots, F32 cache, trained context.
  o.n_slots = 3;
  o.kv_type = TensorType::kF32;
  EXPECT_EQ(estimate_model(*f, o).kv_bytes, uint64_t{3} * 1024 << 20);
  // No context asked for: the trained one (32768), at most 4096, as Model::load
  // resolves it; one asked for is taken as it is.
  o.n_ctx = 0;
  o.n_slots = 1;
  EXPECT_EQ(estimate_model(*f, o).n_ctx, 4096);
  o.n_ctx = 32768;
  EXPECT_EQ(estimate_model(*f, o).n_ctx, 32768);
  o.n_ctx = 0;
  o.device = DeviceKind::kCpu;
  EXPECT_EQ(estimate_model(*f, o).overhead_bytes, 0u);
}

TEST(Estimate, RequantizedSizesWithoutQuantizing) {
  test::TempDir dir;
  test::SparseModelSpec s = mistral();
  s.quant = "F16";
  test::write_sparse_model(s, dir.file("f16.gguf"));
  s.quant = "Q4_K_M";
  test::write_sparse_model(s, dir.file("q4km.gguf"));
  auto f16 = engine::GgufFile::open(dir.file("f16.gguf"));
  auto q4 = engine::GgufFile::open(dir.file("q4km.gguf"));
  EstimateOptions o;
  o.n_ctx = 512;
  const MemoryEstimate as_file = estimate_model(*f16, o);
  EXPECT_EQ(as_file.quant, "F16");
  // F16 -> Q4_K_M: the same weights as the Q4_K_M file's own tensor table.
  o.quant = "q4_k_m";
  const MemoryEstimate target = estimate_model(*f16, o);
  EXPECT_EQ(target.quant, "Q4_K_M");
  o.quant = "";
  EXPECT_EQ(target.weights_bytes, estimate_model(*q4, o).weights_bytes);
  EXPECT_EQ(target.kv_bytes, as_file.kv_bytes);
  // F16 -> Q8_0: 8.5 bits per weight for every matrix (rows are multiples of 32).
  o.quant = "Q8_0";
  const MemoryEstimate q8 = estimate_model(*f16, o);
  const double matrices = static_cast<double>(as_file.weights_by_type.at(TensorType::kF16)) / 2;
  EXPECT_EQ(q8.weights_by_type.at(TensorType::kQ8_0), static_cast<uint64_t>(at(matrices, 8.5)));
  EXPECT_EQ(q8.weights_by_type.at(TensorType::kF32), as_file.weights_by_type.at(TensorType::kF32));
  // A quantized file is not requantized.
  o.quant = "Q8_0";
  EXPECT_THROW(estimate_model(*q4, o), Error);
  o.quant = "Q9_9";
  EXPECT_THROW(estimate_model(*f16, o), Error);
}

TEST(Estimate, EncoderHasNoKvCache) {
  test::TempDir dir;
  test::SparseModelSpec s;
  s.arch = "bert";
  s.n_embd = 384;
  s.n_layer = 6;
  s.n_head = 12;
  s.n_ff = 1536;
  s.n_vocab = 30522;
  s.n_ctx = 512;
  s.quant = "F32";
  test::write_sparse_model(s, dir.file("minilm.gguf"));
  auto f = engine::GgufFile::open(dir.file("minilm.gguf"));
  const MemoryEstimate e = estimate_model(*f, EstimateOptions{});
  EXPECT_TRUE(e.encoder);
  EXPECT_EQ(e.quant, "F32");
  EXPECT_EQ(e.kv_bytes, 0u);
  // MiniLM: 22.7M parameters, all F32.
  const double E = 384, F = 1536;
  const double params = 30522 * E + 2 * E + 512 * E + 2 * E + 6 * (4 * (E * E + E) + 2 * E + E * F + F + F * E + E + 2 * E);
  EXPECT_EQ(e.n_params, static_cast<uint64_t>(params));
  EXPECT_EQ(e.weights_bytes, static_cast<uint64_t>(params * 4));
  // Compute: 2048 tokens x (7 E + F) floats + the position table (512 x E)
  // + the token types' table (2 x E).
  EXPECT_EQ(e.compute_bytes, static_cast<uint64_t>((2048 * (7 * E + F) + 512 * E + 2 * E) * 4));
  const std::string text = estimate_to_string(e);
  EXPECT_NE(text.find("weights "), std::string::npos) << text;
  EXPECT_EQ(text.find("KV"), std::string::npos) << text;
}

TEST(Estimate, FileQuantLabel) {
  test::TempDir dir;
  test::SparseModelSpec s = mistral();
  s.n_layer = 2;
  for (const char* q : {"F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"}) {
    s.quant = q;
    test::write_sparse_model(s, dir.file("m.gguf"));
    EXPECT_EQ(estimate_file_quant(*engine::GgufFile::open(dir.file("m.gguf"))), q);
  }
}

TEST(Estimate, UnknownArchitectureIsRefusedByName) {
  test::TempDir dir;
  test::SparseModelSpec s = mistral();
  s.n_layer = 1;
  s.arch = "mamba";
  test::write_sparse_model(s, dir.file("m.gguf"));
  auto f = engine::GgufFile::open(dir.file("m.gguf"));
  try {
    estimate_model(*f, EstimateOptions{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mamba"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tars::cluster
