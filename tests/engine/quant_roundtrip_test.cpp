// quantize_row -> dequantize_row round trips stay within each type's error
// bound, derived from the format:
//
//   F16   |err| <= |x| * 2^-11 (normal range)    BF16  |err| <= |x| * 2^-8
//   Q8_0, Q8_1  |err| <= d/2, d = amax/127 (d rounded up to FP16)
//   Q8_K        |err| <= d/2, d = amax/127 (float)
//   Q4_0, Q5_0  levels -h..h-1 (h = 8, 16), the element of largest magnitude
//               mapped to -h: d = amax/h. |err| <= |d|/2 for elements inside
//               the grid; the far side of the grid stops one level short
//               (h-1), so there |err| <= |d|.
//   Q4_1, Q5_1  x ~ q*d + m, q in 0..n (n = 15, 31), m <= min rounded down to
//               FP16, d = (max - m)/n rounded up: |err| <= d/2.
//   Q4_K, Q5_K, Q6_K: the sub-block scales are searched for least squared
//               error and then quantized to 6 (8) bits, so no per-element
//               bound holds; instead, per super-block of 256,
//               RMS(err) <= R / (2n), R = max - min of the super-block,
//               n = 15, 31, 63: no worse than the *maximum* error of one plain
//               round-to-nearest grid of n steps across the whole super-block.
//
// Every block is checked against the stored scale (the `d` the dequantizer
// uses), plus a check that the stored scale is not larger than the formula
// says. The slack of 2^-20 * amax covers float rounding in x/d and q*d.
// Data: normal(0, s) for s = 0.01, 1, 100, blocks of zeros (must come back
// exactly zero), and normal data with one outlier of 40 s per block.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/half.h"
#include "engine/quant.h"
#include "engine/tensor_type.h"

namespace tars::engine {
namespace {

enum class Data { kNormal, kZeros, kOutlier };

// n values in blocks of `block`: normal(0, scale), zeros, or normal with one
// outlier of +-40 scale at a random position of every block.
std::vector<float> make_data(Data kind, float scale, int64_t n, int block, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n, 0.0f);
  if (kind == Data::kZeros) return x;
  for (auto& v : x) v = normal(rng);
  if (kind == Data::kOutlier) {
    for (int64_t b = 0; b < n; b += block) {
      x[b + rng() % block] = (rng() & 1 ? 40.0f : -40.0f) * scale;
    }
  }
  return x;
}

struct RoundTrip {
  std::vector<uint8_t> q;  // the quantized row
  std::vector<float> y;    // dequantized
};

RoundTrip round_trip(TensorType t, const std::vector<float>& x) {
  RoundTrip r;
  const int64_t n = static_cast<int64_t>(x.size());
  r.q.assign(quant_row_bytes(t, n), 0xcd);
  quantize_row(t, x.data(), r.q.data(), n);
  r.y.assign(n, NAN);
  dequantize_row(t, r.q.data(), r.y.data(), n);
  return r;
}

float fp16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return fp16_to_fp32(v);
}

// Checks one block of a legacy (32-element) type or Q8_K against its bound.
// `b` is the block's bytes; x and y the block's input and output.
void check_block_bound(TensorType t, const uint8_t* b, const float* x, const float* y, int n,
                       const std::string& where) {
  float amax = 0, lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; ++i) {
    amax = std::max(amax, std::fabs(x[i]));
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  const float slack = std::ldexp(amax, -20);
  const float up = 1.0f + 0x1p-10f;  // rounding a scale up to FP16
  switch (t) {
    case TensorType::kQ8_0:
    case TensorType::kQ8_1:
    case TensorType::kQ8_K: {
      float d;
      if (t == TensorType::kQ8_K) {
        std::memcpy(&d, b, 4);
      } else {
        d = fp16_at(b);
      }
      ASSERT_LE(d, amax / 127 * up + 0x1p-24f) << where << ": scale too large";
      for (int i = 0; i < n; ++i) {
        ASSERT_LE(std::fabs(y[i] - x[i]), d / 2 + slack) << where << " element " << i;
      }
      return;
    }
    case TensorType::kQ4_0:
    case TensorType::kQ5_0: {
      const int h = t == TensorType::kQ4_0 ? 8 : 16;
      const float d = fp16_at(b);
      ASSERT_LE(std::fabs(d), amax / h * up + 0x1p-24f) << where << ": scale too large";
      for (int i = 0; i < n; ++i) {
        const float v = d != 0 ? x[i] / d : 0;
        const bool inside = v >= -h - 0.5f && v <= h - 0.5f;
        const float bound = inside ? std::fabs(d) / 2 : std::fabs(d);
        ASSERT_LE(std::fabs(y[i] - x[i]), bound + slack)
            << where << " element " << i << (inside ? " (inside the grid)" : " (past the grid's end)");
      }
      return;
    }
    case TensorType::kQ4_1:
    case TensorType::kQ5_1: {
      const int levels = t == TensorType::kQ4_1 ? 15 : 31;
      const float d = fp16_at(b), m = fp16_at(b + 2);
      ASSERT_LE(m, lo) << where << ": min above the block's minimum";
      ASSERT_GE(m, lo - std::fabs(lo) * 0x1p-10f - 0x1p-24f) << where << ": min too low";
      ASSERT_LE(d, (hi - m) / levels * up + 0x1p-24f) << where << ": scale too large";
      for (int i = 0; i < n; ++i) {
        ASSERT_LE(std::fabs(y[i] - x[i]), d / 2 + slack) << where << " element " << i;
      }
      return;
    }
    default:
      FAIL() << "no per-element bound for " << tensor_type_name(t);
  }
}

// Levels - 1 of the k-quant weight types (n in the header comment).
int k_steps(TensorType t) {
  return t == TensorType::kQ4_K ? 15 : t == TensorType::kQ5_K ? 31 : 63;
}

const TensorType kAllTypes[] = {TensorType::kF32,  TensorType::kF16,  TensorType::kBF16,
                                TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0,
                                TensorType::kQ5_1, TensorType::kQ8_0, TensorType::kQ8_1,
                                TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K,
                                TensorType::kQ8_K};

bool is_k_weight(TensorType t) {
  return t == TensorType::kQ4_K || t == TensorType::kQ5_K || t == TensorType::kQ6_K;
}

TEST(QuantRoundTrip, EveryTypeStaysWithinItsBound) {
  const int64_t n = 256 * 64;  // 64 super-blocks, 512 legacy blocks
  for (TensorType t : kAllTypes) {
    const std::string tn(tensor_type_name(t));
    const QuantBlockInfo info = quant_block_info(t);
    const int block = info.block_elems == 1 ? 256 : static_cast<int>(info.block_elems);
    double rms_rel_normal = 0;  // RMS(err) / RMS(x) for normal(0, 1) data, for the log
    double worst_k_ratio = 0;   // max over super-blocks of RMS / (R / 2n)
    for (Data kind : {Data::kNormal, Data::kZeros, Data::kOutlier}) {
      for (float scale : {0.01f, 1.0f, 100.0f}) {
        const std::string where = tn + (kind == Data::kNormal   ? " normal"
                                        : kind == Data::kZeros ? " zeros"
                                                               : " outlier") +
                                  " scale " + std::to_string(scale);
        const auto x = make_data(kind, scale, n, block, 1000 + static_cast<uint32_t>(t));
        const RoundTrip r = round_trip(t, x);
        if (kind == Data::kZeros) {
          for (int64_t i = 0; i < n; ++i) ASSERT_EQ(r.y[i], 0.0f) << where << " element " << i;
          continue;
        }
        if (kind == Data::kNormal && scale == 1.0f) {
          double se = 0, sx = 0;
          for (int64_t i = 0; i < n; ++i) {
            se += (double(r.y[i]) - x[i]) * (double(r.y[i]) - x[i]);
            sx += double(x[i]) * x[i];
          }
          rms_rel_normal = std::sqrt(se / sx);
        }
        for (int64_t b = 0; b < n / block; ++b) {
          const float* xb = x.data() + b * block;
          const float* yb = r.y.data() + b * block;
          const std::string wb = where + " block " + std::to_string(b);
          if (t == TensorType::kF32) {
            for (int i = 0; i < block; ++i) ASSERT_EQ(yb[i], xb[i]) << wb;
          } else if (t == TensorType::kF16 || t == TensorType::kBF16) {
            const float rel = t == TensorType::kF16 ? 0x1p-11f : 0x1p-8f;
            for (int i = 0; i < block; ++i) {
              // Below FP16's normal range the step is absolute: 2^-24 / 2.
              const float bound = std::max(std::fabs(xb[i]) * rel, 0x1p-25f);
              ASSERT_LE(std::fabs(yb[i] - xb[i]), bound) << wb << " element " << i;
            }
          } else if (is_k_weight(t)) {
            const auto [lo, hi] = std::minmax_element(xb, xb + block);
            double se = 0;
            for (int i = 0; i < block; ++i) se += (double(yb[i]) - xb[i]) * (double(yb[i]) - xb[i]);
            const double rms = std::sqrt(se / block);
            const double bound = (double(*hi) - *lo) / (2.0 * k_steps(t));
            worst_k_ratio = std::max(worst_k_ratio, rms / bound);
            ASSERT_LE(rms, bound) << wb << ": RMS error above R/(2n)";
          } else {
            check_block_bound(t, r.q.data() + b * info.block_bytes, xb, yb, block, wb);
          }
        }
      }
    }
    std::printf("[ quant    ] %-5s RMS error / RMS(x), normal(0,1): %.5f", tn.c_str(),
                rms_rel_normal);
    if (is_k_weight(t)) std::printf("   worst super-block RMS / (R/2n): %.3f", worst_k_ratio);
    std::printf("\n");
  }
}

// The k-quant search must pay off: on the same data, Q4_K's error is below
// that of Q4_1, which spends more bits (5.0 vs 4.5 per weight) on plain
// min/max round-to-nearest; likewise Q5_K against Q5_1, and Q6_K's below
// Q5_K's.
TEST(QuantRoundTrip, KQuantSearchBeatsPlainRounding) {
  const int64_t n = 256 * 256;
  const auto x = make_data(Data::kNormal, 1.0f, n, 256, 77);
  auto rms = [&](TensorType t) {
    const RoundTrip r = round_trip(t, x);
    double se = 0;
    for (int64_t i = 0; i < n; ++i) se += (double(r.y[i]) - x[i]) * (double(r.y[i]) - x[i]);
    return std::sqrt(se / n);
  };
  const double q4_1 = rms(TensorType::kQ4_1), q4_k = rms(TensorType::kQ4_K);
  const double q5_1 = rms(TensorType::kQ5_1), q5_k = rms(TensorType::kQ5_K);
  const double q6_k = rms(TensorType::kQ6_K);
  std::printf("[ quant    ] RMS, normal(0,1): Q4_1 %.5f Q4_K %.5f Q5_1 %.5f Q5_K %.5f Q6_K %.5f\n",
              q4_1, q4_k, q5_1, q5_k, q6_k);
  EXPECT_LT(q4_k, q4_1);
  EXPECT_LT(q5_k, q5_1);
  EXPECT_LT(q6_k, q5_k);
}

// Side fields other code relies on: Q8_1's s = d * sum(q) and Q8_K's bsums.
TEST(QuantRoundTrip, ActivationBlocksCarryTheirSums) {
  const auto x = make_data(Data::kNormal, 3.0f, 512, 32, 5);
  std::vector<BlockQ8_1> a(512 / 32);
  quantize_row(TensorType::kQ8_1, x.data(), a.data(), 512);
  for (const auto& b : a) {
    int sum = 0;
    for (int8_t q : b.qs) sum += q;
    EXPECT_EQ(b.s, fp32_to_fp16(fp16_to_fp32(b.d) * static_cast<float>(sum)));
  }
  std::vector<BlockQ8_K> k(2);
  quantize_row(TensorType::kQ8_K, x.data(), k.data(), 512);
  for (const auto& b : k) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
      EXPECT_EQ(b.bsums[g], sum);
    }
  }
}

// Non-finite input must not crash (or trip UBSan); the output is unspecified.
TEST(QuantRoundTrip, NonFiniteInputDoesNotCrash) {
  std::vector<float> x = make_data(Data::kNormal, 1.0f, 512, 256, 3);
  x[3] = NAN;
  x[40] = INFINITY;
  x[300] = -INFINITY;
  x[301] = 1e30f;
  for (TensorType t : kAllTypes) {
    const RoundTrip r = round_trip(t, x);
    EXPECT_EQ(r.y.size(), x.size());
  }
}

}  // namespace
}  // namespace tars::engine
