#pragma once
// IEEE 754 half precision (FP16, binary16) and bfloat16 (BF16) <-> float.
//
// These are the scalar reference conversions: every F16/BF16 tensor and every
// quantized block scale (stored as FP16) goes through them. SIMD kernels may
// use F16C / AVX-512 BF16 instructions later; they must agree bit for bit with
// these, which the tests pin down.
//
//   FP16: 1 sign | 5 exponent (bias 15) | 10 mantissa. Max finite 65504,
//         smallest normal 2^-14, smallest subnormal 2^-24.
//   BF16: 1 sign | 8 exponent (bias 127) | 7 mantissa: the top 16 bits of a
//         float, so BF16 -> float is exact and cheap.
//
// float -> FP16/BF16 rounds to nearest, ties to even (the IEEE default), keeps
// subnormals (no flush to zero), turns overflow into +-infinity and keeps NaN
// a (quiet) NaN with its sign.

#include <bit>
#include <cstdint>

namespace tars::engine {

// Exact: every FP16 value is a float.
inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) {  // infinity (mant == 0) or NaN (payload kept)
    return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  }
  if (exp != 0) {  // normal: rebias the exponent from 15 to 127
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
  }
  // Zero or subnormal: mant * 2^-24, exact in float (mant < 2^10).
  const float mag = static_cast<float>(mant) * 0x1p-24f;
  return sign ? -mag : mag;
}

inline uint16_t fp32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) {  // NaN: keep the top payload bits, force quiet
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  }
  // 65520 (0x477ff000) is halfway between 65504 and 2^16; ties-to-even goes
  // up, so it and everything above becomes infinity.
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (ax >= 0x38800000u) {  // normal in FP16 (>= 2^-14)
    // Rebias 127 -> 15 and drop 13 mantissa bits, rounding to nearest even.
    // A carry out of the mantissa correctly bumps the exponent.
    const uint32_t r = ax - (112u << 23);
    return static_cast<uint16_t>(sign | ((r + 0x0fffu + ((r >> 13) & 1u)) >> 13));
  }
  // FP16 subnormal or zero. 2^-25 (0x33000000) is halfway between 0 and the
  // smallest subnormal 2^-24, so it and everything below rounds to zero.
  if (ax <= 0x33000000u) return sign;
  // value = m * 2^(e-150) = (m >> shift) units of 2^-24, shift = 126 - e,
  // between 14 and 24 here.
  const uint32_t e = ax >> 23;
  const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (h & 1u))) ++h;  // may reach 0x400: smallest normal, correct
  return static_cast<uint16_t>(sign | h);
}

// Exact.
inline float bf16_to_fp32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

inline uint16_t fp32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // NaN: truncate, force quiet
    return static_cast<uint16_t>((x >> 16) | 0x0040u);
  }
  // Round to nearest even on the low 16 bits; overflow of the largest finite
  // values carries into the exponent and gives infinity, as it should.
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace tars::engine
