// Kernel-level checks that only the emulator can make cheaply (host memory
// passed straight to the launchers of cuda_kernels.h): each kernel that
// writes a decode row's 8-bit form must write exactly the standalone
// quantizer's bytes for the same floats. Registered twice (emu. and
// emu-next.), so both the default kernels and TARS_CUDA_NEXT's are checked.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/cuda/cuda_kernels.h"

namespace tars::engine::cuda {
namespace {

struct Q8 {
  explicit Q8(size_t n, size_t skew = 0) : q(n + 16), d(n / 32), s(n / 32), skew(skew) {}
  Q8Row row() { return {q.data() + skew, d.data(), s.data()}; }
  std::vector<int8_t> bytes() const { return {q.begin() + skew, q.begin() + skew + 32 * d.size()}; }
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int> s;
  size_t skew;
};

std::vector<float> normal(std::mt19937_64& rng, size_t n, double sd) {
  std::normal_distribution<double> dist(0.0, sd);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(dist(rng));
  return v;
}

TEST(EmulatedKernels, OneRowNormWritesTheQuantizersBytes) {
  std::mt19937_64 rng(7);
  for (int d : {64, 2048, 4096, 5120, 16384}) {
    for (size_t skew : {size_t{0}, size_t{1}}) {  // a 4-byte aligned 8-bit row, and one that is not
      SCOPED_TRACE("d " + std::to_string(d) + " skew " + std::to_string(skew));
      std::vector<float> x = normal(rng, d, 1.0), a = normal(rng, d, 0.5), w = normal(rng, d, 1.0);
      for (int i = 0; i < d; i += 97) x[i] = 0.0f;  // some zeros, and one whole zero group below
      for (int i = 0; i < 32; ++i) x[32 + i] = a[32 + i] = 0.0f;
      std::vector<float> x0 = x, out(d, -1.0f);
      const float eps = 1e-5f;
      Q8 fused(d, skew);
      launch_rms_norm_to(x.data(), a.data(), out.data(), w.data(), 1, d, eps, fused.row(), nullptr);
      // The residual was added in place, and the output is the double-precision norm.
      double ss = 0;
      for (int i = 0; i < d; ++i) {
        ASSERT_EQ(x[i], x0[i] + a[i]) << i;
        ss += static_cast<double>(x[i]) * x[i];
      }
      const double scale = 1.0 / std::sqrt(ss / d + eps);
      for (int i = 0; i < d; ++i) ASSERT_NEAR(out[i], x[i] * scale * w[i], 1e-5 * (1.0 + std::fabs(x[i] * scale * w[i]))) << i;
      Q8 alone(d);
      launch_quantize_q8(out.data(), d, alone.row().qx, alone.row().dx, alone.row().sx, nullptr);
      EXPECT_EQ(fused.bytes(), alone.bytes());
      EXPECT_EQ(fused.d, alone.d);
      EXPECT_EQ(fused.s, alone.s);
      EXPECT_EQ(alone.d[1], 0.0f);  // the zero group
    }
  }
}

TEST(EmulatedKernels, SwigluWritesTheQuantizersBytes) {
  std::mt19937_64 rng(8);
  for (size_t n : {size_t{64}, size_t{11008}}) {
    std::vector<float> gate = normal(rng, n, 2.0), up = normal(rng, n, 1.0);
    Q8 fused(n);
    launch_swiglu_q8(gate.data(), up.data(), n, fused.row(), nullptr);
    Q8 alone(n);
    launch_quantize_q8(gate.data(), static_cast<int64_t>(n), alone.row().qx, alone.row().dx, alone.row().sx, nullptr);
    EXPECT_EQ(fused.bytes(), alone.bytes()) << n;
    EXPECT_EQ(fused.d, alone.d) << n;
    EXPECT_EQ(fused.s, alone.s) << n;
  }
}

}  // namespace
}  // namespace tars::engine::cuda
