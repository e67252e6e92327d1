// The backend's encoder operations against plain double-precision loops:
// packed bidirectional attention, erf GELU, per-sequence mean. (Fast; in the
// model test binary beside the BERT tests that use them.)
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/backend.h"
#include "engine/kernels_cpu.h"

namespace tars::engine {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float std = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, std);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Every ISA level the machine has: results must not depend on it.
std::vector<cpu::Isa> levels() {
  std::vector<cpu::Isa> out = {cpu::Isa::kScalar};
  if (cpu::isa_detected() >= cpu::Isa::kAvx2) out.push_back(cpu::Isa::kAvx2);
  if (cpu::isa_detected() >= cpu::Isa::kAvx512) out.push_back(cpu::Isa::kAvx512);
  return out;
}

void check_attention(int n_head, int n_head_kv, int head_dim, const std::vector<int32_t>& start) {
  auto be = backend_cpu_create({2});
  const int n = start.back(), qd = n_head * head_dim, kd = n_head_kv * head_dim;
  const std::vector<float> q = randn(static_cast<size_t>(n) * qd, 1, 1.5f);
  const std::vector<float> k = randn(static_cast<size_t>(n) * kd, 2, 1.5f);
  const std::vector<float> v = randn(static_cast<size_t>(n) * kd, 3);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const SeqLayout layout{static_cast<int>(start.size()) - 1, start.data()};
  const AttentionParams ap{n_head, n_head_kv, head_dim, scale};

  // Reference: each token against the keys of its own sequence only.
  std::vector<double> want(static_cast<size_t>(n) * qd);
  for (int s = 0; s + 1 < static_cast<int>(start.size()); ++s) {
    for (int t = start[s]; t < start[s + 1]; ++t) {
      for (int h = 0; h < n_head; ++h) {
        const int g = h / (n_head / n_head_kv);
        std::vector<double> p;
        double mx = -INFINITY, sum = 0;
        for (int j = start[s]; j < start[s + 1]; ++j) {
          double d = 0;
          for (int i = 0; i < head_dim; ++i) {
            d += static_cast<double>(q[(static_cast<size_t>(t) * n_head + h) * head_dim + i]) *
                 k[(static_cast<size_t>(j) * n_head_kv + g) * head_dim + i];
          }
          p.push_back(d * scale);
          mx = std::max(mx, p.back());
        }
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (int i = 0; i < head_dim; ++i) {
          double o = 0;
          for (int j = start[s]; j < start[s + 1]; ++j) {
            o += p[j - start[s]] / sum * v[(static_cast<size_t>(j) * n_head_kv + g) * head_dim + i];
          }
          want[(static_cast<size_t>(t) * n_head + h) * head_dim + i] = o;
        }
      }
    }
  }
  for (cpu::Isa isa : levels()) {
    cpu::isa_set_override(isa);
    std::vector<float> out(want.size(), NAN);
    be->attention_packed(q.data(), k.data(), v.data(), layout, ap, out.data());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(out[i], want[i], 2e-5) << "element " << i << " at " << cpu::isa_name(isa);
    }
  }
  cpu::isa_clear_override();
}

TEST(BertOps, PackedAttentionKeepsSequencesApart) {
  check_attention(4, 4, 32, {0, 1, 13, 14, 140, 150});  // lengths 1, 12, 1, 126, 10
  check_attention(12, 12, 32, {0, 7, 20});              // MiniLM heads
  check_attention(4, 2, 16, {0, 5, 9});                 // grouped-query heads
  check_attention(2, 2, 12, {0, 3, 30});                // head size not a multiple of 8: scalar
}

TEST(BertOps, GeluErfMatchesExactFormula) {
  auto be = backend_cpu_create({2});
  std::vector<float> x;
  for (int i = -200000; i <= 200000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);  // [-20, 20]
  for (float big : {-1e30f, -100.0f, -6.0f, 6.0f, 100.0f, 1e30f, 0.0f, -0.0f}) x.push_back(big);
  std::vector<float> y = x;
  be->gelu_erf(y.data(), y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double want = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    const double err = std::fabs(y[i] - want) / std::max(1.0, std::fabs(v));
    worst = std::max(worst, err);
    ASSERT_LT(err, 1e-6) << "gelu(" << x[i] << ") = " << y[i] << ", want " << want;
  }
  std::printf("gelu_erf: worst error %.3g (relative to max(1, |x|))\n", worst);
  // Far out it is exactly x or exactly 0, as the exact function rounds.
  float far[] = {-50.0f, 50.0f};
  be->gelu_erf(far, 2);
  EXPECT_EQ(far[0], 0.0f);
  EXPECT_EQ(far[1], 50.0f);
  float nan[] = {NAN};
  be->gelu_erf(nan, 1);
  EXPECT_TRUE(std::isnan(nan[0]));
}

TEST(BertOps, SeqMeanAveragesEachSequence) {
  auto be = backend_cpu_create({2});
  const std::vector<int32_t> start = {0, 1, 4, 404};
  const int d = 48;
  const std::vector<float> x = randn(static_cast<size_t>(start.back()) * d, 7);
  std::vector<float> out(3 * d);
  be->seq_mean(x.data(), SeqLayout{3, start.data()}, d, out.data());
  for (int s = 0; s < 3; ++s) {
    for (int j = 0; j < d; ++j) {
      double m = 0;
      for (int r = start[s]; r < start[s + 1]; ++r) m += x[static_cast<size_t>(r) * d + j];
      m /= start[s + 1] - start[s];
      ASSERT_NEAR(out[s * d + j], m, 1e-6) << s << "," << j;
    }
  }
}

}  // namespace
}  // namespace tars::engine
