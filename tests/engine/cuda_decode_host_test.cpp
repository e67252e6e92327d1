// The CUDA kernels' block decoders (src/engine/cuda/cuda_quant.cuh), compiled
// as host code: every quantized type decoded 32 elements at a time must give
// the CPU dequantizer's values bit for bit (dequant_group32, used by the
// batched products and get_rows), and the integer form of the 8-bit mat-vec
// (int_group32: w = a * q + b) the same values. This runs on every machine,
// so a layout slip in the GPU code shows here before any GPU time is spent.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "engine/cuda/cuda_quant.cuh"
#include "engine/quant.h"

namespace tars::engine::cuda {
namespace {

// A random row of `cols` values in `type`, and its CPU-dequantized values.
struct Row {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

Row random_row(TensorType type, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(cols);
  for (float& v : f) v = nd(rng);
  f[3] = 9.0f;  // an outlier: blocks with a wide range
  Row r;
  r.bytes.resize(quant_row_bytes(type, cols));
  r.values.resize(cols);
  quantize_row(type, f.data(), r.bytes.data(), cols);
  dequantize_row(type, r.bytes.data(), r.values.data(), cols);
  return r;
}

template <TensorType T>
void check_type() {
  const int64_t cols = 1024;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const Row r = random_row(T, cols, seed);
    for (int64_t g = 0; g < cols / 32; ++g) {
      float y[32];
      if constexpr (T == TensorType::kF32 || T == TensorType::kF16 || T == TensorType::kBF16) {
        for (int e = 0; e < 32; ++e) y[e] = plain_elem<T>(r.bytes.data(), g * 32 + e);
      } else {
        dequant_group32<T>(r.bytes.data(), g, y);
        IntGroup o;
        int_group32<T>(r.bytes.data(), g, o);
        for (int e = 0; e < 32; ++e) {
          const int8_t q = static_cast<int8_t>((static_cast<uint32_t>(o.q[e / 4]) >> (8 * (e % 4))) & 0xFF);
          const double w = static_cast<double>(e < 16 ? o.a_lo : o.a_hi) * q + o.b;
          const double want = r.values[g * 32 + e];
          ASSERT_NEAR(w, want, 1e-6 * (1.0 + std::abs(want)))
              << tensor_type_name(T) << " integer form, group " << g << " element " << e;
        }
      }
      for (int e = 0; e < 32; ++e) {
        ASSERT_EQ(std::memcmp(&y[e], &r.values[g * 32 + e], sizeof(float)), 0)
            << tensor_type_name(T) << " group " << g << " element " << e << ": " << y[e] << " vs "
            << r.values[g * 32 + e];
      }
    }
  }
}

TEST(CudaDecodeOnHost, EveryTypeMatchesTheCpuDequantizer) {
  check_type<TensorType::kF32>();
  check_type<TensorType::kF16>();
  check_type<TensorType::kBF16>();
  check_type<TensorType::kQ4_0>();
  check_type<TensorType::kQ4_1>();
  check_type<TensorType::kQ5_0>();
  check_type<TensorType::kQ5_1>();
  check_type<TensorType::kQ8_0>();
  check_type<TensorType::kQ4_K>();
  check_type<TensorType::kQ5_K>();
  check_type<TensorType::kQ6_K>();
}

TEST(CudaDecodeOnHost, ByteWiseSubtractionWraps) {
  EXPECT_EQ(vsub4(0x0F000801u, 0x08080808u), 0x07F800F9u);
  EXPECT_EQ(vsub4(0x3F201F00u, 0x20202020u), 0x1F00FFE0u);
}

}  // namespace
}  // namespace tars::engine::cuda
