// CPU kernels (engine/kernels_cpu.h) at every instruction-set level this
// machine has (each forced through the level argument or isa_set_override,
// so the scalar and AVX2 versions are tested on an AVX-512 machine too):
//   - activation quantization: every level writes the scalar level's bits;
//   - quantized dot products: with unit scales every result is an integer
//     sum, which every level must reproduce exactly; with random scales
//     every level matches an independent double-precision evaluation of the
//     definition within float rounding;
//   - float dots, element-wise helpers and attention against double.
// Packed products and whole matrix products: kernels_matmul_test.cpp.
#include "engine/kernels_cpu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/half.h"
#include "engine/kernels_internal.h"
#include "engine/quant.h"
#include "kernels_test_util.h"

namespace tars::engine {
namespace {

using namespace test_kernels;
using cpu::Isa;

TEST(Kernels, DetectsALevelAndOverridesClamp) {
  const Isa best = cpu::isa_detected();
  std::printf("[ kernels ] detected level: %s\n", level_name(best).c_str());
  EXPECT_EQ(cpu::isa_active(), best);
  cpu::isa_set_override(Isa::kScalar);
  EXPECT_EQ(cpu::isa_active(), Isa::kScalar);
  cpu::isa_set_override(Isa::kAvx512);  // clamped to what the machine has
  EXPECT_EQ(cpu::isa_active(), best);
  cpu::isa_clear_override();
  EXPECT_EQ(cpu::isa_active(), best);
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    EXPECT_GE(static_cast<int>(best), static_cast<int>(Isa::kAvx2));
  }
#endif
}

TEST(Kernels, EveryLevelHasEveryKernel) {
  for (Isa isa : machine_levels()) {
    for (TensorType t : quant_weight_types()) {
      TensorType at;
      ASSERT_TRUE(cpu::vec_dot_act_type(t, &at));
      EXPECT_NE(cpu::vec_dot_fn(t, isa), nullptr) << type_name(t) << " " << level_name(isa);
      EXPECT_NE(cpu::quantize_act_fn(at, isa), nullptr) << type_name(at) << " " << level_name(isa);
    }
    for (TensorType t : {TensorType::kF32, TensorType::kF16, TensorType::kBF16}) {
      EXPECT_NE(cpu::vec_dot_fn(t, isa), nullptr) << type_name(t) << " " << level_name(isa);
    }
  }
  TensorType at;
  EXPECT_FALSE(cpu::vec_dot_act_type(TensorType::kQ8_K, &at));
  EXPECT_EQ(cpu::vec_dot_fn(TensorType::kQ8_K), nullptr);
}

// ---- activation quantization ------------------------------------------------------

std::vector<float> random_floats(int64_t n, float scale, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  return x;
}

TEST(Kernels, ActivationQuantizationIsIdenticalAtEveryLevel) {
  std::mt19937 rng(1);
  for (TensorType at : {TensorType::kQ8_0, TensorType::kQ8_1, TensorType::kQ8_K}) {
    for (int64_t n : {256, 512, 2048}) {
      for (float scale : {1e-3f, 1.0f, 300.0f}) {
        std::vector<float> x = random_floats(n, scale, rng);
        for (int i = 0; i < 32; ++i) x[i] = 0.0f;  // an all-zero block
        x[40] = 127.5f * scale;                     // an exact tie after scaling is likely nearby
        std::vector<uint8_t> ref(quant_row_bytes(at, n)), got(ref.size());
        cpu::quantize_act_fn(at, Isa::kScalar)(x.data(), ref.data(), n);
        for (Isa isa : machine_levels()) {
          std::fill(got.begin(), got.end(), 0xAB);
          cpu::quantize_act_fn(at, isa)(x.data(), got.data(), n);
          EXPECT_EQ(std::memcmp(ref.data(), got.data(), ref.size()), 0)
              << type_name(at) << " n=" << n << " scale=" << scale << " " << level_name(isa);
        }
      }
    }
  }
}

// The quantized activations reproduce x within half a step of their scale.
TEST(Kernels, ActivationQuantizationErrorIsHalfAStep) {
  std::mt19937 rng(2);
  const int64_t n = 1024;
  std::vector<float> x = random_floats(n, 2.0f, rng);
  for (TensorType at : {TensorType::kQ8_0, TensorType::kQ8_1, TensorType::kQ8_K}) {
    std::vector<uint8_t> q(quant_row_bytes(at, n));
    cpu::quantize_act_fn(at)(x.data(), q.data(), n);
    const DoubleAct a = act_double(at, q.data(), n);
    const int64_t be = block_elems(at);
    for (int64_t b = 0; b < n / be; ++b) {
      double amax = 0;
      for (int64_t i = 0; i < be; ++i) amax = std::max(amax, std::abs(static_cast<double>(x[b * be + i])));
      // Q8_0/Q8_1 round the scale amax/127 to FP16 (relative 2^-11).
      const double step = amax / 127 * (at == TensorType::kQ8_K ? 1.0 : 1.0 + std::ldexp(1.0, -10));
      for (int64_t i = 0; i < be; ++i) {
        EXPECT_LE(std::abs(a.a[b * be + i] - x[b * be + i]), step / 2 * 1.0001 + 1e-12)
            << type_name(at) << " element " << b * be + i;
      }
    }
  }
}

// ---- quantized dot products ------------------------------------------------------------

// Lengths in blocks of the weight type: one block up to many.
std::vector<int64_t> lengths(TensorType t) {
  if (block_elems(t) == 256) return {256, 512, 768, 1024};
  return {32, 64, 96, 224, 512, 2048};
}

TEST(Kernels, QuantDotIntegerPartsAreExactAtEveryLevel) {
  std::mt19937 rng(3);
  for (TensorType t : quant_weight_types()) {
    TensorType at;
    ASSERT_TRUE(cpu::vec_dot_act_type(t, &at));
    int checked = 0;
    for (int64_t n : lengths(t)) {
      for (int rep = 0; rep < 4; ++rep) {
        const std::vector<uint8_t> w = random_weight_row(t, n, /*unit_scales=*/true, rng);
        // Full-range activations, and small ones (|q| <= 15) so that the
        // k-quants' scaled sums also stay small enough for the check.
        const std::vector<uint8_t> a = random_act_row(at, n, /*unit_scales=*/true, rng, rep % 2 ? 15 : 127);
        double abs;
        const double ref = ref_dot(t, w.data(), a.data(), n, &abs);
        // Exact only while every partial sum is an integer below 2^24 (which
        // float holds exactly): rows with larger sums are left out here.
        if (abs >= 16777216.0) continue;
        ++checked;
        for (Isa isa : machine_levels()) {
          const float got = cpu::vec_dot_fn(t, isa)(w.data(), a.data(), n);
          EXPECT_EQ(static_cast<double>(got), ref) << type_name(t) << " n=" << n << " " << level_name(isa);
        }
      }
    }
    EXPECT_GE(checked, 8) << type_name(t) << ": too few rows small enough for an exact check";
  }
}

TEST(Kernels, QuantDotMatchesDoublePrecisionAtEveryLevel) {
  std::mt19937 rng(4);
  for (TensorType t : quant_weight_types()) {
    TensorType at;
    ASSERT_TRUE(cpu::vec_dot_act_type(t, &at));
    for (int64_t n : lengths(t)) {
      for (int rep = 0; rep < 4; ++rep) {
        const std::vector<uint8_t> w = random_weight_row(t, n, /*unit_scales=*/false, rng);
        const std::vector<uint8_t> a = random_act_row(at, n, /*unit_scales=*/false, rng);
        double abs;
        const double ref = ref_dot(t, w.data(), a.data(), n, &abs);
        for (Isa isa : machine_levels()) {
          const double got = cpu::vec_dot_fn(t, isa)(w.data(), a.data(), n);
          // Float sums of block results: a few roundings of the magnitudes.
          EXPECT_LE(std::abs(got - ref), 4e-6 * abs + 1e-30)
              << type_name(t) << " n=" << n << " " << level_name(isa) << " ref " << ref;
        }
      }
    }
  }
}

// Real blocks (the reference quantizer) against float activations quantized
// by the kernels: the end-to-end error stays within the bound that 8-bit
// activations allow: sum |w_i| * (half a step of x_i's block).
TEST(Kernels, QuantDotOfQuantizedActivationsIsWithinTheQuantizationBound) {
  std::mt19937 rng(5);
  const int64_t n = 2048;
  for (TensorType t : quant_weight_types()) {
    TensorType at;
    cpu::vec_dot_act_type(t, &at);
    const std::vector<float> wf = random_floats(n, 0.05f, rng);
    const std::vector<float> x = random_floats(n, 1.0f, rng);
    std::vector<uint8_t> w(quant_row_bytes(t, n)), a(quant_row_bytes(at, n));
    quantize_row(t, wf.data(), w.data(), n);
    cpu::quantize_act_fn(at)(x.data(), a.data(), n);
    const DoubleRow dw = weight_double(t, w.data(), n);
    const DoubleAct da = act_double(at, a.data(), n);
    std::vector<float> wdq(n);
    dequantize_row(t, w.data(), wdq.data(), n);
    double exact = 0, bound = 0;
    const int64_t be = block_elems(at);
    for (int64_t b = 0; b < n / be; ++b) {
      double amax = 0;
      for (int64_t i = 0; i < be; ++i) amax = std::max(amax, std::abs(static_cast<double>(x[b * be + i])));
      const double half_step = amax / 127 / 2 * (1 + std::ldexp(1.0, -10));
      for (int64_t i = 0; i < be; ++i) {
        exact += static_cast<double>(wdq[b * be + i]) * x[b * be + i];
        bound += std::abs(static_cast<double>(wdq[b * be + i])) * half_step;
      }
    }
    // Q4_1 / Q5_1: the stored block sum s is FP16 (relative 2^-11).
    for (size_t b = 0; b < dw.block_m.size(); ++b) bound += std::abs(dw.block_m[b] * da.block_s[b]) * std::ldexp(1.0, -11);
    const double got = cpu::vec_dot_fn(t)(w.data(), a.data(), n);
    EXPECT_LE(std::abs(got - exact), bound * 1.01 + 1e-4) << type_name(t) << ": bound " << bound;
    EXPECT_GT(bound, 0.0);
  }
}

// ---- float dots and helpers --------------------------------------------------------

TEST(Kernels, FloatDotsMatchDoubleAtEveryLevel) {
  std::mt19937 rng(6);
  for (int64_t n : {1, 7, 8, 31, 33, 64, 100, 1000}) {
    const std::vector<float> x = random_floats(n, 1.0f, rng);
    const std::vector<float> wf = random_floats(n, 1.0f, rng);
    std::vector<uint16_t> wh(n), wb(n);
    for (int64_t i = 0; i < n; ++i) {
      wh[i] = fp32_to_fp16(wf[i]);
      wb[i] = fp32_to_bf16(wf[i]);
    }
    struct Case {
      TensorType t;
      const void* w;
      std::vector<double> wd;
    };
    std::vector<Case> cases = {{TensorType::kF32, wf.data(), {}}, {TensorType::kF16, wh.data(), {}},
                               {TensorType::kBF16, wb.data(), {}}};
    for (int64_t i = 0; i < n; ++i) {
      cases[0].wd.push_back(wf[i]);
      cases[1].wd.push_back(fp16_to_fp32(wh[i]));
      cases[2].wd.push_back(bf16_to_fp32(wb[i]));
    }
    for (const Case& c : cases) {
      double ref = 0, abs = 0;
      for (int64_t i = 0; i < n; ++i) {
        ref += c.wd[i] * x[i];
        abs += std::abs(c.wd[i] * x[i]);
      }
      for (Isa isa : machine_levels()) {
        const double got = cpu::vec_dot_fn(c.t, isa)(c.w, x.data(), n);
        EXPECT_LE(std::abs(got - ref), 1e-6 * abs * std::sqrt(static_cast<double>(n)) + 1e-30)
            << type_name(c.t) << " n=" << n << " " << level_name(isa);
      }
    }
  }
}

// The element-wise helpers, at each level through the override.
class KernelLevels : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (GetParam() > static_cast<int>(cpu::isa_detected())) GTEST_SKIP() << "level not on this machine";
    cpu::isa_set_override(static_cast<Isa>(GetParam()));
  }
  void TearDown() override { cpu::isa_clear_override(); }
};

TEST_P(KernelLevels, ElementwiseHelpersMatchDouble) {
  std::mt19937 rng(7);
  for (int64_t n : {1, 5, 8, 37, 1000}) {
    std::vector<float> g = random_floats(n, 4.0f, rng), u = random_floats(n, 1.0f, rng);
    g[0] = -100.0f;  // exp underflow side
    std::vector<float> out = g;
    cpu::swiglu(out.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      // (exp saturates near 88: silu of a large negative gate is then about
      // 1e-38 instead of far less, an absolute difference nobody sees.)
      EXPECT_NEAR(out[i], ref, 4e-7 * std::abs(ref) + 1e-30) << "swiglu " << i;
    }
    std::vector<float> s = random_floats(n, 10.0f, rng);
    float mx = s[0];
    for (float v : s) mx = std::max(mx, v);
    std::vector<float> e = s;
    const double sum = cpu::softmax_exp(e.data(), n, mx);
    double ref_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float arg = s[i] - mx;  // the kernel's argument, rounded to float
      const double ref = std::exp(static_cast<double>(arg));
      ref_sum += ref;
      EXPECT_NEAR(e[i], ref, 3e-7 * ref + 1e-37) << "exp " << s[i] - mx;
    }
    EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum);
    std::vector<float> y = u, w = random_floats(n, 1.0f, rng);
    cpu::scale_mul(y.data(), 0.5f, w.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(y[i], u[i] * 0.5f * w[i]);
    std::vector<uint16_t> h(n);
    std::vector<float> back(n);
    cpu::f32_to_f16_row(u.data(), h.data(), n);
    cpu::f16_to_f32_row(h.data(), back.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(h[i], fp32_to_fp16(u[i]));
      EXPECT_EQ(back[i], fp16_to_fp32(h[i]));
    }
    std::vector<float> acc(n, 1.0f), acc16(n, 1.0f);
    cpu::axpy_f32(2.0f, u.data(), acc.data(), n);
    cpu::axpy_f16(2.0f, h.data(), acc16.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_FLOAT_EQ(acc[i], 1.0f + 2.0f * u[i]);
      EXPECT_FLOAT_EQ(acc16[i], 1.0f + 2.0f * fp16_to_fp32(h[i]));
    }
  }
}

// attn_group: softmax(q k^T * scale) v for a group of heads, F16 and F32 rows.
TEST_P(KernelLevels, AttentionGroupMatchesDouble) {
  std::mt19937 rng(8);
  const cpu::KernelTable& tab = *(GetParam() == 0   ? cpu::kernel_table_scalar()
                                  : GetParam() == 1 ? cpu::kernel_table_avx2()
                                                    : cpu::kernel_table_avx512());
  for (int hd : {64, 80, 128}) {
    for (int n_keys : {1, 3, 64, 65, 200}) {
      for (bool f16 : {false, true}) {
        const int group = 4, stride = hd * 3;  // rows of a wider cache (3 KV heads)
        std::vector<float> q = random_floats(group * hd, 1.0f, rng);
        std::vector<float> kf = random_floats(static_cast<int64_t>(n_keys) * stride, 1.0f, rng);
        std::vector<float> vf = random_floats(static_cast<int64_t>(n_keys) * stride, 1.0f, rng);
        std::vector<uint16_t> kh(kf.size()), vh(vf.size());
        for (size_t i = 0; i < kf.size(); ++i) {
          kh[i] = fp32_to_fp16(kf[i]);
          vh[i] = fp32_to_fp16(vf[i]);
          if (f16) {
            kf[i] = fp16_to_fp32(kh[i]);
            vf[i] = fp16_to_fp32(vh[i]);
          }
        }
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        std::vector<float> scores(group * n_keys), out(group * hd), tmp(cpu::kAttnKeyBlock * hd);
        tab.attn_group(q.data(), group, hd, f16 ? static_cast<const void*>(kh.data()) : kf.data(),
                       f16 ? static_cast<const void*>(vh.data()) : vf.data(), stride, f16, n_keys, scale,
                       scores.data(), out.data(), tmp.data());
        for (int h = 0; h < group; ++h) {
          std::vector<double> p(n_keys);
          double mx = -1e300, sum = 0;
          for (int j = 0; j < n_keys; ++j) {
            double s = 0;
            for (int i = 0; i < hd; ++i) s += static_cast<double>(q[h * hd + i]) * kf[j * stride + i];
            p[j] = s * scale;
            mx = std::max(mx, p[j]);
          }
          for (double& v : p) sum += (v = std::exp(v - mx));
          for (int i = 0; i < hd; ++i) {
            double ref = 0;
            for (int j = 0; j < n_keys; ++j) ref += p[j] / sum * vf[j * stride + i];
            EXPECT_NEAR(out[h * hd + i], ref, 2e-5) << "hd " << hd << " keys " << n_keys << " f16 " << f16;
          }
        }
      }
    }
  }
}

// attn_tile: a block of consecutive query tokens (from any start position)
// against the same double-precision attention, causal mask included.
TEST(Kernels, AttentionTileMatchesDouble) {
  if (cpu::isa_detected() != Isa::kAvx512) GTEST_SKIP() << "attn_tile is an AVX-512 kernel";
  const cpu::KernelTable& tab = *cpu::kernel_table_avx512();
  ASSERT_NE(tab.attn_tile, nullptr);
  std::mt19937 rng(9);
  for (int hd : {32, 64, 128}) {
    for (int group : {1, 4, 8}) {
      for (int start : {0, 5, 100}) {
        for (bool f16 : {false, true}) {
          const int nt = std::min(cpu::kAttnTileRows / group, 16 + start % 7);
          const int n_kv = 2, kv_stride = hd * n_kv, q_stride = hd * group * n_kv;
          const int n_keys = start + nt;
          std::vector<float> q = random_floats(static_cast<int64_t>(nt) * q_stride, 1.0f, rng);
          std::vector<float> kf = random_floats(static_cast<int64_t>(n_keys) * kv_stride, 1.0f, rng);
          std::vector<float> vf = random_floats(static_cast<int64_t>(n_keys) * kv_stride, 1.0f, rng);
          std::vector<uint16_t> kh(kf.size()), vh(vf.size());
          for (size_t i = 0; i < kf.size(); ++i) {
            kh[i] = fp32_to_fp16(kf[i]);
            vh[i] = fp32_to_fp16(vf[i]);
            if (f16) {
              kf[i] = fp16_to_fp32(kh[i]);
              vf[i] = fp16_to_fp32(vh[i]);
            }
          }
          std::vector<int32_t> pos(nt);
          for (int t = 0; t < nt; ++t) pos[t] = start + t;
          const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
          std::vector<float> out(q.size(), 777.0f), scratch(cpu::attn_tile_scratch(hd));
          const int g = 1;  // the second KV head: its query heads are g*group .. g*group+group-1
          tab.attn_tile(q.data() + g * group * hd, q_stride, nt, group, hd, pos.data(),
                        f16 ? static_cast<const void*>(kh.data() + g * hd) : kf.data() + g * hd,
                        f16 ? static_cast<const void*>(vh.data() + g * hd) : vf.data() + g * hd, kv_stride, f16,
                        scale, out.data() + g * group * hd, q_stride, scratch.data());
          for (int t = 0; t < nt; ++t) {
            for (int h = 0; h < group; ++h) {
              const float* qh = q.data() + t * q_stride + (g * group + h) * hd;
              const int keys = pos[t] + 1;
              std::vector<double> pr(keys);
              double mx = -1e300, sum = 0;
              for (int j = 0; j < keys; ++j) {
                double sc = 0;
                for (int i = 0; i < hd; ++i) sc += static_cast<double>(qh[i]) * kf[j * kv_stride + g * hd + i];
                pr[j] = sc * scale;
                mx = std::max(mx, pr[j]);
              }
              for (double& v : pr) sum += (v = std::exp(v - mx));
              for (int i = 0; i < hd; ++i) {
                double ref = 0;
                for (int j = 0; j < keys; ++j) ref += pr[j] / sum * vf[j * kv_stride + g * hd + i];
                ASSERT_NEAR(out[t * q_stride + (g * group + h) * hd + i], ref, 2e-5)
                    << "hd " << hd << " group " << group << " start " << start << " f16 " << f16 << " token " << t;
              }
            }
            // Other KV heads' outputs are untouched.
            EXPECT_EQ(out[t * q_stride], 777.0f);
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Level, KernelLevels, ::testing::Values(0, 1, 2),
                         [](const auto& info) { return level_name(static_cast<Isa>(info.param)); });

}  // namespace
}  // namespace tars::engine
