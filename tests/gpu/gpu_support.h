#pragma once
// Shared helpers of the CPU-versus-CUDA tests: every test starts with
// TARS_REQUIRE_CUDA(), which skips it (with the reason) where no device is.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/backend_cuda.h"

#define TARS_REQUIRE_CUDA()                                                       \
  do {                                                                            \
    std::string tars_why_;                                                        \
    if (!::tars::engine::backend_cuda_available(&tars_why_))                      \
      GTEST_SKIP() << "no CUDA device: " << tars_why_;                            \
  } while (0)

namespace tars::test {

// A CUDA backend; fails the test (not skips) when a device exists but the
// backend cannot start. Exact (FP32) products unless exact is false (the
// production default's speed paths, checked by their own tests against
// references that round the same way).
inline std::unique_ptr<engine::Backend> make_cuda(bool use_cublas = true, bool exact = true) {
  std::string why;
  auto be = engine::backend_cuda_create(
      {.device = 0, .use_cublas = use_cublas, .require_cublas = use_cublas, .exact_activations = exact}, &why);
  EXPECT_TRUE(be) << why;
  return be;
}

inline std::vector<float> random_floats(std::mt19937_64& rng, size_t n, double sd = 1.0, double mean = 0.0) {
  std::normal_distribution<double> d(mean, sd);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(d(rng));
  return v;
}

// A buffer of `n` floats in `be`'s memory holding `h` (zeros when h is empty).
inline float* to_backend(engine::Backend& be, const std::vector<float>& h, size_t n = 0) {
  if (n == 0) n = h.size();
  float* p = static_cast<float*>(be.alloc(n * sizeof(float), engine::MemoryKind::kCompute));
  if (!h.empty()) be.upload(p, h.data(), h.size() * sizeof(float));
  return p;
}

inline std::vector<float> from_backend(engine::Backend& be, const void* p, size_t n) {
  std::vector<float> h(n);
  be.download(h.data(), p, n * sizeof(float));
  return h;
}

// max_i |a_i - b_i| / (abs_floor + |b_i|): 0 when equal.
inline double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b, double abs_floor = 1.0) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / (abs_floor + std::abs(static_cast<double>(b[i]))));
  }
  return worst;
}

}  // namespace tars::test
