// CUDA weight operations against the CPU backend and a double-precision
// reference: get_rows (bit-exact: the dequantizers' products are exact) and
// matmul for every weight type, at n = 1 (the block-reading mat-vec) and
// n > 1 (dequantize + cuBLAS SGEMM, and the fallback SGEMM kernel).
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "engine/half.h"
#include "engine/quant.h"
#include "gpu/gpu_support.h"

namespace tars::engine {
namespace {

using test::from_backend;
using test::to_backend;

const TensorType kTypes[] = {TensorType::kF32,  TensorType::kF16,  TensorType::kBF16, TensorType::kQ4_0,
                             TensorType::kQ4_1, TensorType::kQ5_0, TensorType::kQ5_1, TensorType::kQ8_0,
                             TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K};

// A random [rows x cols] matrix in `type` (host bytes) and its float values
// as the reference dequantizer decodes them.
struct HostMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

HostMatrix random_matrix(TensorType type, int64_t cols, int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<float> f = test::random_floats(rng, static_cast<size_t>(cols * rows), 0.5);
  HostMatrix m;
  const size_t rb = quant_row_bytes(type, cols);
  m.bytes.resize(rb * rows);
  m.values.resize(f.size());
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, f.data() + r * cols, m.bytes.data() + r * rb, cols);
    dequantize_row(type, m.bytes.data() + r * rb, m.values.data() + r * cols, cols);
  }
  return m;
}

class CudaWeightOps : public ::testing::TestWithParam<TensorType> {};

// y = W x (+ bias) for n tokens on `gpu` (W from m's bytes): what the tests
// below compare with their references.
std::vector<float> gpu_matmul(Backend& gpu, TensorType type, const HostMatrix& m, int64_t cols, int64_t rows,
                              const std::vector<float>& x, int n, const std::vector<float>* bias) {
  Weight wg = gpu.load_weight(type, cols, rows, m.bytes.data());
  Weight bg = bias ? gpu.load_weight(TensorType::kF32, rows, 1, bias->data()) : Weight{};
  float* yg = to_backend(gpu, {}, static_cast<size_t>(n) * rows);
  gpu.matmul(wg, to_backend(gpu, x), n, yg, bias ? &bg : nullptr);
  return from_backend(gpu, yg, static_cast<size_t>(n) * rows);
}

TEST_P(CudaWeightOps, GetRowsIsBitExact) {
  TARS_REQUIRE_CUDA();
  const TensorType type = GetParam();
  const int64_t cols = 512, rows = 40;
  HostMatrix m = random_matrix(type, cols, rows, 11);
  auto gpu = test::make_cuda();
  ASSERT_TRUE(gpu);
  Weight w = gpu->load_weight(type, cols, rows, m.bytes.data());
  const std::vector<int32_t> ids = {0, 39, 7, 7, 21};
  float* out = to_backend(*gpu, {}, ids.size() * cols);
  gpu->get_rows(w, ids.data(), static_cast<int>(ids.size()), out);
  std::vector<float> got = from_backend(*gpu, out, ids.size() * cols);
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int64_t i = 0; i < cols; ++i) {
      ASSERT_EQ(got[t * cols + i], m.values[ids[t] * cols + i]) << tensor_type_name(type) << " row " << ids[t] << " col " << i;
    }
  }
}

// y = W x (+ bias) for n tokens, against double sums over the dequantized
// weights. Tolerance: 2e-5 of sum |w_i x_i| per output (float accumulation
// of 512 terms errs by ~1e-7 of that; a wrong block decode errs by > 1e-2).
void check_matmul(TensorType type, int n, bool use_cublas, bool with_bias) {
  const int64_t cols = 512, rows = 67;
  HostMatrix m = random_matrix(type, cols, rows, 5 + n);
  std::mt19937_64 rng(99);
  const std::vector<float> x = test::random_floats(rng, static_cast<size_t>(n) * cols);
  const std::vector<float> bias = test::random_floats(rng, rows);
  auto gpu = test::make_cuda(use_cublas);
  ASSERT_TRUE(gpu);
  auto cpu = backend_cpu_create({.n_threads = 2, .exact_activations = true});
  Weight wc = cpu->load_weight(type, cols, rows, m.bytes.data());
  Weight bc = cpu->load_weight(TensorType::kF32, rows, 1, bias.data());
  const std::vector<float> got = gpu_matmul(*gpu, type, m, cols, rows, x, n, with_bias ? &bias : nullptr);
  std::vector<float> cpu_y(static_cast<size_t>(n) * rows);
  cpu->matmul(wc, x.data(), n, cpu_y.data(), with_bias ? &bc : nullptr);
  const std::string what = std::string(tensor_type_name(type)) + " n=" + std::to_string(n) +
                           (use_cublas ? " cublas" : " own-gemm") + (with_bias ? " bias" : "");
  for (int t = 0; t < n; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double ref = with_bias ? bias[r] : 0.0, mag = std::abs(ref);
      for (int64_t i = 0; i < cols; ++i) {
        const double p = static_cast<double>(m.values[r * cols + i]) * x[t * cols + i];
        ref += p;
        mag += std::abs(p);
      }
      const size_t o = static_cast<size_t>(t) * rows + r;
      ASSERT_NEAR(got[o], ref, 2e-5 * mag) << what << " token " << t << " row " << r;
      ASSERT_NEAR(got[o], cpu_y[o], 2e-5 * mag) << what << " (vs the CPU backend) token " << t << " row " << r;
    }
  }
}

TEST_P(CudaWeightOps, MatVecMatchesReference) {
  TARS_REQUIRE_CUDA();
  check_matmul(GetParam(), 1, true, false);
  check_matmul(GetParam(), 1, true, true);
}

TEST_P(CudaWeightOps, BatchedMatmulMatchesReference) {
  TARS_REQUIRE_CUDA();
  for (bool cublas : {true, false}) {
    check_matmul(GetParam(), 7, cublas, false);
    check_matmul(GetParam(), 33, cublas, true);
  }
}

// The FP16 GEMM path (CudaBackendOptions::exact_activations false, the
// default for batches): exactly "weights and activations rounded to half, products
// summed in float". The reference rounds the dequantized weights and x to
// half on the host and sums in double; the bound is the float path's 2e-5 of
// sum |w_i x_i|, so a wrong decode or layout fails while the half rounding
// itself is in the reference. The CPU's exact result differs by the
// rounding, about 1e-3 relative; checked loosely.
TEST_P(CudaWeightOps, Fp16GemmMatchesHalfRoundedReference) {
  TARS_REQUIRE_CUDA();
  const TensorType type = GetParam();
  for (int n : {2, 33}) {
    const int64_t cols = 512, rows = 67;
    HostMatrix m = random_matrix(type, cols, rows, 17 + n);
    std::mt19937_64 rng(7);
    const std::vector<float> x = test::random_floats(rng, static_cast<size_t>(n) * cols);
    const std::vector<float> bias = test::random_floats(rng, rows);
    auto gpu = test::make_cuda(true, false);
    ASSERT_TRUE(gpu);
    const std::vector<float> got = gpu_matmul(*gpu, type, m, cols, rows, x, n, &bias);
    auto half = [](float v) { return static_cast<double>(fp16_to_fp32(fp32_to_fp16(v))); };
    for (int t = 0; t < n; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double ref = bias[r], exact = bias[r], mag = std::abs(ref);
        for (int64_t i = 0; i < cols; ++i) {
          const float wv = m.values[r * cols + i], xv = x[t * cols + i];
          // F32 weights keep the FP32 path (no rounding of anything).
          const double p = type == TensorType::kF32 ? static_cast<double>(wv) * xv : half(wv) * half(xv);
          ref += p;
          exact += static_cast<double>(wv) * xv;
          mag += std::abs(p);
        }
        const size_t o = static_cast<size_t>(t) * rows + r;
        ASSERT_NEAR(got[o], ref, 2e-5 * mag) << tensor_type_name(type) << " n=" << n << " token " << t << " row " << r;
        ASSERT_NEAR(got[o], exact, 3e-3 * mag) << tensor_type_name(type) << " (vs exact) token " << t << " row " << r;
      }
    }
  }
}

// The decode mat-vec's fast path (exact_activations false): x quantized to
// 8 bits per 32 elements (d = amax / 127, q = round-half-even(x / d): the
// same IEEE float operations here as on the device, so the same quants), then
// integer dot products with the weights as stored. Reference: double sums of
// dequantized weights times d * q; bound 2e-5 of sum |w_i x_i| as for the
// float path. Float weights (F32/F16/BF16) keep the float mat-vec.
TEST_P(CudaWeightOps, Int8MatVecMatchesQuantizedReference) {
  TARS_REQUIRE_CUDA();
  const TensorType type = GetParam();
  const bool plain = type == TensorType::kF32 || type == TensorType::kF16 || type == TensorType::kBF16;
  // 1024 columns: one chunk of the kernel's row staging; 6400: a full chunk and
  // a partial one (and, for Q6_K, rows that are not 16-byte aligned).
  for (const int64_t cols : {int64_t{1024}, int64_t{6400}}) {
    const int64_t rows = 77;
    HostMatrix m = random_matrix(type, cols, rows, 23);
    std::mt19937_64 rng(5);
    std::vector<float> x = test::random_floats(rng, cols);
    for (int i = 64; i < 96; ++i) x[i] = 0.0f;  // an all-zero group: scale 0
    x[200] = 40.0f;                             // an outlier sets its group's scale
    std::vector<double> xq(cols);
    for (int64_t g = 0; g < cols / 32; ++g) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::abs(x[g * 32 + i]));
      const float d = amax / 127.0f;
      for (int i = 0; i < 32; ++i) {
        const float q = amax == 0.0f ? 0.0f : std::nearbyint(x[g * 32 + i] / d);
        xq[g * 32 + i] = plain ? x[g * 32 + i] : static_cast<double>(d) * q;
      }
    }
    const std::vector<float> bias = test::random_floats(rng, rows);
    auto gpu = test::make_cuda(true, false);
    ASSERT_TRUE(gpu);
    const std::vector<float> got = gpu_matmul(*gpu, type, m, cols, rows, x, 1, &bias);
    for (int64_t r = 0; r < rows; ++r) {
      double ref = bias[r], mag = std::abs(ref);
      for (int64_t i = 0; i < cols; ++i) {
        const double p = static_cast<double>(m.values[r * cols + i]) * xq[i];
        ref += p;
        mag += std::abs(p);
      }
      ASSERT_NEAR(got[r], ref, 2e-5 * mag) << tensor_type_name(type) << " cols " << cols << " row " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaWeightOps, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(tensor_type_name(info.param)); });

// 1-D F16/BF16 vectors become F32, as on the CPU.
TEST(CudaBackend, OneDimensionalWeightsBecomeF32) {
  TARS_REQUIRE_CUDA();
  auto gpu = test::make_cuda();
  ASSERT_TRUE(gpu);
  std::mt19937_64 rng(3);
  const std::vector<float> f = test::random_floats(rng, 96);
  for (TensorType type : {TensorType::kF16, TensorType::kBF16}) {
    std::vector<uint8_t> bytes(quant_row_bytes(type, 96));
    quantize_row(type, f.data(), bytes.data(), 96);
    std::vector<float> want(96);
    dequantize_row(type, bytes.data(), want.data(), 96);
    Weight w = gpu->load_weight(type, 96, 1, bytes.data());
    EXPECT_EQ(w.type, TensorType::kF32);
    EXPECT_EQ(from_backend(*gpu, w.data, 96), want) << tensor_type_name(type);
  }
}

TEST(CudaBackend, MemoryAccountingIsExact) {
  TARS_REQUIRE_CUDA();
  auto gpu = test::make_cuda();
  ASSERT_TRUE(gpu);
  const size_t kv0 = gpu->allocated(MemoryKind::kKvCache), w0 = gpu->allocated(MemoryKind::kWeights);
  void* p = gpu->alloc(3 << 20, MemoryKind::kKvCache);
  EXPECT_EQ(gpu->allocated(MemoryKind::kKvCache), kv0 + (3 << 20));
  std::vector<uint8_t> q(quant_row_bytes(TensorType::kQ4_0, 256) * 10);
  gpu->load_weight(TensorType::kQ4_0, 256, 10, q.data());
  EXPECT_EQ(gpu->allocated(MemoryKind::kWeights), w0 + q.size());
  gpu->free(p);
  EXPECT_EQ(gpu->allocated(MemoryKind::kKvCache), kv0);
}

TEST(CudaBackend, BadInputThrowsInsteadOfCrashing) {
  TARS_REQUIRE_CUDA();
  auto gpu = test::make_cuda();
  ASSERT_TRUE(gpu);
  std::vector<float> table(64 * 4, 1.0f);
  Weight w = gpu->load_weight(TensorType::kF32, 64, 4, table.data());
  float* out = to_backend(*gpu, {}, 64);
  const int32_t bad = 4;
  EXPECT_THROW(gpu->get_rows(w, &bad, 1, out), Error);
  std::vector<uint8_t> q8k(292);
  EXPECT_THROW(gpu->load_weight(TensorType::kQ8_K, 256, 1, q8k.data()), Error);
}

}  // namespace
}  // namespace tars::engine
