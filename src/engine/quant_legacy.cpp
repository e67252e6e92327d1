// Legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//
// Dequantization (bit-exact with GGUF files written by other tools), d and m
// first converted from FP16 to float:
//   Q4_0 / Q5_0 / Q8_0 / Q8_1:  y = float(q - offset) * d   (exact)
//   Q4_1 / Q5_1:                y = float(q) * d + m        (product exact, one rounding)
//
// Quantization rounds each element to the nearest level of a scale chosen
// from the block's range. The scale (and min) are rounded to FP16 *before*
// the elements are quantized, and in the direction that keeps the block's
// range inside the grid, so the error of an element inside the grid is at
// most half a step of the stored scale.

#include <cstring>

#include "engine/quant_internal.h"

namespace tars::engine::quant_detail {

namespace {

constexpr uint16_t kFp16MaxBits = 0x7bff;  // 65504

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // GGUF is little-endian, as is every host tars targets
  return v;
}

void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// The element with the largest magnitude, with its sign (the first one on
// ties; 0 for an all-zero block). NaN never wins.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

void min_max(const float* x, int n, float* lo, float* hi) {
  float mn = INFINITY, mx = -INFINITY;
  for (int i = 0; i < n; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
  }
  if (mn > mx) mn = mx = 0.0f;  // all NaN
  *lo = mn;
  *hi = mx;
}

// Symmetric types with levels -half..half-1: the element of largest
// magnitude maps to -half (the level with no positive twin), so the scale
// carries the sign of that element. Writes q + half (0..2*half-1) to L.
float quantize_symmetric(const float* x, int n, int half, uint8_t* L) {
  const float max = signed_absmax(x, n);
  const uint16_t dh = fp16_round_away(max / static_cast<float>(-half));
  const float d = fp16_to_fp32(dh);
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(d != 0.0f ? quant_round_clamp(x[i] / d, -half, half - 1) + half
                                          : half);
  }
  return d;
}

// Types with a min: x ~ q * d + m, q in 0..nmax. Returns d and m (FP16
// values) and writes q to L.
void quantize_affine(const float* x, int n, int nmax, uint8_t* L, uint16_t* dh, uint16_t* mh) {
  float lo, hi;
  min_max(x, n, &lo, &hi);
  *mh = fp16_round_down(lo);
  const float m = fp16_to_fp32(*mh);
  *dh = fp16_round_away((hi - m) / static_cast<float>(nmax));
  const float d = fp16_to_fp32(*dh);
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(d != 0.0f ? quant_round_clamp((x[i] - m) / d, 0, nmax) : 0);
  }
}

// Packs 32 values of 0..15 (low 4 bits of L) as element j in the low nibble
// of qs[j] and element j+16 in the high nibble.
void pack_nibbles(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((L[j] & 0x0f) | ((L[j + 16] & 0x0f) << 4));
  }
}

// The 5th bit of each of 32 values: bit j of the result for element j.
uint32_t pack_high_bits(const uint8_t* L) {
  uint32_t qh = 0;
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((L[j] >> 4) & 1) << j;
  return qh;
}

}  // namespace

uint16_t fp16_round_away(float v) {
  if (std::isnan(v)) return 0;
  if (std::fabs(v) >= 65504.0f) return static_cast<uint16_t>((v < 0 ? 0x8000 : 0) | kFp16MaxBits);
  uint16_t h = fp32_to_fp16(v);
  if (std::fabs(fp16_to_fp32(h)) < std::fabs(v)) ++h;  // next magnitude, same sign
  return h;
}

uint16_t fp16_round_down(float v) {
  if (std::isnan(v)) return 0;
  if (v <= -65504.0f) return 0x8000 | kFp16MaxBits;
  if (v >= 65504.0f) return kFp16MaxBits;
  uint16_t h = fp32_to_fp16(v);
  if (fp16_to_fp32(h) > v) {
    if (h == 0x0000 || h == 0x8000) return 0x8001;  // -2^-24
    h = (h & 0x8000) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h - 1);
  }
  return h;
}

// ---- dequantize ----

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQuantBlock) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < 16; ++j) {
      const int x0 = (x[i].qs[j] & 0x0f) - 8;
      const int x1 = (x[i].qs[j] >> 4) - 8;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

void dequantize_q4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQuantBlock) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    for (int j = 0; j < 16; ++j) {
      const int x0 = x[i].qs[j] & 0x0f;
      const int x1 = x[i].qs[j] >> 4;
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

void dequantize_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQuantBlock) {
    const float d = fp16_to_fp32(x[i].d);
    const uint32_t qh = load_u32(x[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1) << 4;
      const int x0 = ((x[i].qs[j] & 0x0f) | h0) - 16;
      const int x1 = ((x[i].qs[j] >> 4) | h1) - 16;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

void dequantize_q5_1(const BlockQ5_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQuantBlock) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    const uint32_t qh = load_u32(x[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1) << 4;
      const int x0 = (x[i].qs[j] & 0x0f) | h0;
      const int x1 = (x[i].qs[j] >> 4) | h1;
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQuantBlock) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQuantBlock; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void dequantize_q8_1(const BlockQ8_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQuantBlock) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQuantBlock; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

// ---- quantize ----

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  uint8_t L[kQuantBlock];
  for (int64_t i = 0; i < nb; ++i, x += kQuantBlock) {
    const float d = quantize_symmetric(x, kQuantBlock, 8, L);
    y[i].d = fp32_to_fp16(d);  // exact: d is already an FP16 value
    pack_nibbles(L, y[i].qs);
  }
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  uint8_t L[kQuantBlock];
  for (int64_t i = 0; i < nb; ++i, x += kQuantBlock) {
    const float d = quantize_symmetric(x, kQuantBlock, 16, L);
    y[i].d = fp32_to_fp16(d);
    pack_nibbles(L, y[i].qs);
    store_u32(y[i].qh, pack_high_bits(L));
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  uint8_t L[kQuantBlock];
  for (int64_t i = 0; i < nb; ++i, x += kQuantBlock) {
    quantize_affine(x, kQuantBlock, 15, L, &y[i].d, &y[i].m);
    pack_nibbles(L, y[i].qs);
  }
}

void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
  uint8_t L[kQuantBlock];
  for (int64_t i = 0; i < nb; ++i, x += kQuantBlock) {
    quantize_affine(x, kQuantBlock, 31, L, &y[i].d, &y[i].m);
    pack_nibbles(L, y[i].qs);
    store_u32(y[i].qh, pack_high_bits(L));
  }
}

namespace {

// Q8_0 and Q8_1: levels -127..127, d = amax / 127 rounded up to FP16.
// Returns d and the sum of the quants.
float quantize_q8_block(const float* x, int8_t* qs, int* sum) {
  const float amax = std::fabs(signed_absmax(x, kQuantBlock));
  const float d = fp16_to_fp32(fp16_round_away(amax / 127.0f));
  int s = 0;
  for (int j = 0; j < kQuantBlock; ++j) {
    const int q = d != 0.0f ? quant_round_clamp(x[j] / d, -127, 127) : 0;
    qs[j] = static_cast<int8_t>(q);
    s += q;
  }
  *sum = s;
  return d;
}

}  // namespace

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQuantBlock) {
    int sum;
    y[i].d = fp32_to_fp16(quantize_q8_block(x, y[i].qs, &sum));
  }
}

void quantize_q8_1(const float* x, BlockQ8_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQuantBlock) {
    int sum;
    const float d = quantize_q8_block(x, y[i].qs, &sum);
    y[i].d = fp32_to_fp16(d);
    y[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

}  // namespace tars::engine::quant_detail
