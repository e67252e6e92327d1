// FP16 / BF16 conversions (engine/half.h): exact values, round-to-nearest-
// even ties, subnormals, infinities and NaN, every FP16/BF16 value round
// tripped, and random floats checked against a nearest-value search in
// double precision (an independent statement of "round to nearest, ties to
// even").

#include "engine/half.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <vector>

namespace tars::engine {
namespace {

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

TEST(Half, Fp16ExactValuesBothWays) {
  struct Case {
    float f;
    uint16_t h;
  };
  const Case cases[] = {
      {1.0f, 0x3c00},          {-2.5f, 0xc100},          {65504.0f, 0x7bff},
      {-65504.0f, 0xfbff},     {0.5f, 0x3800},           {0.0f, 0x0000},
      {-0.0f, 0x8000},         {0x1p-14f, 0x0400},       // smallest normal
      {0x1p-24f, 0x0001},      // smallest subnormal
      {1023 * 0x1p-24f, 0x03ff},  // largest subnormal
      {-3 * 0x1p-24f, 0x8003}, {1.0f + 0x1p-10f, 0x3c01}, {INFINITY, 0x7c00},
      {-INFINITY, 0xfc00},     {0.333251953125f, 0x3555},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(fp32_to_fp16(c.f), c.h) << c.f;
    EXPECT_EQ(bits(fp16_to_fp32(c.h)), bits(c.f)) << std::hex << c.h;
  }
}

TEST(Half, Fp16RoundsToNearestTiesToEven) {
  // Normal range: the step above 1 is 2^-10.
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);            // tie -> even (down)
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);        // tie -> even (up)
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);  // above the tie
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f - 0x1p-20f), 0x3c00);  // below the tie
  EXPECT_EQ(fp32_to_fp16(-(1.0f + 3 * 0x1p-11f)), 0xbc02);
  // Top of the range: 65520 is the tie between 65504 and 65536 (= infinity).
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-65520.0f), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(3.4e38f), 0x7c00);
  // Subnormals: the unit is 2^-24.
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);                   // tie -> even 0
  EXPECT_EQ(fp32_to_fp16(0x1p-25f * 1.0001f), 0x0001);         // above the tie
  EXPECT_EQ(fp32_to_fp16(3 * 0x1p-25f), 0x0002);               // 1.5 units -> 2
  EXPECT_EQ(fp32_to_fp16(5 * 0x1p-25f), 0x0002);               // 2.5 units -> 2
  EXPECT_EQ(fp32_to_fp16(-5 * 0x1p-25f), 0x8002);
  EXPECT_EQ(fp32_to_fp16(0x1p-26f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0x1p-26f), 0x8000);                  // keeps the sign
  EXPECT_EQ(fp32_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(std::bit_cast<float>(1u)), 0x0000);   // float subnormal
  // Between the largest subnormal (1023 units) and 2^-14 (1024 units).
  EXPECT_EQ(fp32_to_fp16(1023.5f * 0x1p-24f), 0x0400);         // tie -> even
  EXPECT_EQ(fp32_to_fp16(1022.5f * 0x1p-24f), 0x03fe);         // tie -> even
}

TEST(Half, Fp16InfinityAndNaN) {
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7c00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7c01)));  // signalling payload
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0xfe00)));
  for (float nan : {std::nanf(""), -std::nanf(""), std::bit_cast<float>(0x7f800001u),
                    std::bit_cast<float>(0xff800001u)}) {
    const uint16_t h = fp32_to_fp16(nan);
    EXPECT_EQ(h & 0x7c00, 0x7c00) << std::hex << bits(nan);
    EXPECT_NE(h & 0x03ff, 0) << "NaN must not become infinity: " << std::hex << bits(nan);
    EXPECT_NE(h & 0x0200, 0) << "NaN must come out quiet";
    EXPECT_EQ(h >> 15, bits(nan) >> 31) << "sign kept";
  }
}

// Every FP16 value survives FP16 -> float -> FP16, and fp16_to_fp32 agrees
// with the format's formula computed in double.
TEST(Half, Fp16EveryValueRoundTripsAndMatchesFormula) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    const int sign = (h >> 15) ? -1 : 1;
    const int e = (h >> 10) & 31;
    const int m = h & 1023;
    if (e == 31) {
      EXPECT_TRUE(m ? std::isnan(f) : std::isinf(f)) << h;
      if (m) {
        EXPECT_EQ(fp32_to_fp16(f) & 0x7e00, 0x7e00) << h;
        continue;
      }
    } else {
      const double want = sign * (e ? std::ldexp(1.0 + m / 1024.0, e - 15) : std::ldexp(m, -24));
      EXPECT_EQ(static_cast<double>(f), want) << h;
      EXPECT_EQ(std::signbit(f), sign < 0) << h;
    }
    EXPECT_EQ(fp32_to_fp16(f), h) << h;
  }
}

// Random floats against an independent rounding: the nearest of all finite
// FP16 values, found by binary search in double, the even one on a tie, and
// infinity at or above 65520.
TEST(Half, Fp16MatchesNearestValueSearch) {
  std::vector<double> grid;  // value of h = 0x0000 .. 0x7bff, increasing
  for (uint32_t h = 0; h <= 0x7bff; ++h) grid.push_back(fp16_to_fp32(static_cast<uint16_t>(h)));
  ASSERT_TRUE(std::is_sorted(grid.begin(), grid.end()));
  auto reference = [&](float f) -> uint16_t {
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    const double a = std::fabs(static_cast<double>(f));
    if (a >= 65520.0) return sign | 0x7c00;
    const size_t hi = std::lower_bound(grid.begin(), grid.end(), a) - grid.begin();
    if (hi == 0) return sign;  // a == 0
    if (hi == grid.size()) return sign | 0x7bff;
    const double dlo = a - grid[hi - 1], dhi = grid[hi] - a;
    size_t pick = dlo < dhi ? hi - 1 : dhi < dlo ? hi : ((hi - 1) % 2 == 0 ? hi - 1 : hi);
    return static_cast<uint16_t>(sign | pick);
  };
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::uniform_real_distribution<float> mag(-30.0f, 17.0f);  // log2 of |f|
  for (int i = 0; i < 300000; ++i) {
    float f;
    if (i % 2 == 0) {
      f = std::ldexp(1.0f + (any_bits(rng) & 0xffff) / 65536.0f, static_cast<int>(mag(rng)));
      if (any_bits(rng) & 1) f = -f;
    } else {
      f = std::bit_cast<float>(any_bits(rng));
      if (!std::isfinite(f)) continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), reference(f)) << std::hexfloat << f;
  }
}

TEST(Half, Bf16ExactValuesBothWays) {
  struct Case {
    float f;
    uint16_t h;
  };
  const Case cases[] = {
      {1.0f, 0x3f80},      {-2.5f, 0xc020},  {0.0f, 0x0000},       {-0.0f, 0x8000},
      {INFINITY, 0x7f80},  {-INFINITY, 0xff80}, {0x1p-126f, 0x0080},  // smallest normal
      {0x1p-133f, 0x0001},  // smallest bf16 subnormal: kept, not flushed
      {3.3895314e38f, 0x7f7f},  // largest finite bf16
  };
  for (const Case& c : cases) {
    EXPECT_EQ(fp32_to_bf16(c.f), c.h) << c.f;
    EXPECT_EQ(bits(bf16_to_fp32(c.h)), bits(c.f)) << std::hex << c.h;
  }
}

TEST(Half, Bf16RoundsToNearestTiesToEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);              // tie -> even (down)
  EXPECT_EQ(fp32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);          // tie -> even (up)
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);   // above the tie
  EXPECT_EQ(fp32_to_bf16(-(1.0f + 3 * 0x1p-8f)), 0xbf82);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x00008000u)), 0x0000);  // subnormal tie
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x00018000u)), 0x0002);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7f7fffffu)), 0x7f80);  // FLT_MAX -> inf
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7f7f7fffu)), 0x7f7f);  // just below the tie
}

TEST(Half, Bf16NaNStaysNaN) {
  for (uint32_t b : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7f80ffffu, 0xff800001u}) {
    const uint16_t h = fp32_to_bf16(std::bit_cast<float>(b));
    EXPECT_TRUE(std::isnan(bf16_to_fp32(h))) << std::hex << b;
    EXPECT_NE(h & 0x0040, 0) << "quiet";
    EXPECT_EQ(h >> 15, b >> 31) << "sign kept";
  }
}

// Every BF16 value round trips; random floats round to the nearer of the two
// BF16 neighbours (compared in double), the even one on a tie.
TEST(Half, Bf16EveryValueRoundTripsAndRandomFloatsRoundToNearest) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(fp32_to_bf16(f), h) << h;
  }
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 300000; ++i) {
    const uint32_t b = any_bits(rng);
    const float f = std::bit_cast<float>(b);
    if (!std::isfinite(f)) continue;
    const uint16_t lo = static_cast<uint16_t>(b >> 16);  // truncation, toward zero
    const uint16_t up = static_cast<uint16_t>(lo + 1);   // next magnitude
    const double a = std::fabs(static_cast<double>(f));
    const double dlo = a - std::fabs(static_cast<double>(bf16_to_fp32(lo)));
    // Past the largest finite BF16 the next value is 2^128 (IEEE rounds as if
    // the exponent were unbounded, then overflows to infinity).
    const double up_value = (up & 0x7fff) == 0x7f80 ? std::ldexp(1.0, 128)
                                                    : std::fabs(static_cast<double>(bf16_to_fp32(up)));
    const double dup = up_value - a;
    const uint16_t want = dlo < dup ? lo : dup < dlo ? up : ((lo & 1) ? up : lo);
    ASSERT_EQ(fp32_to_bf16(f), want) << std::hex << b;
  }
}

}  // namespace
}  // namespace tars::engine
