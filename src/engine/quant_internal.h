#pragma once
// Per-family block converters behind dequantize_row / quantize_row (quant.h).
// Each works on `nb` whole blocks; the dispatcher in quant.cpp has already
// checked the type and that the row is a whole number of blocks.
//
// Why the dequantizers are bit-exact whatever the compiler does: every
// product they form is exact in float. An FP16 scale has at most 11
// significant bits, a sub-block scale at most 7 (Q6_K's int8; 6 in Q4_K /
// Q5_K) and a quant at most 5 (|q - 32| <= 32 in Q6_K), so d * sc * q needs
// at most 23 of float's 24 bits, with no overflow or underflow possible. The
// only rounding is the final "- m" (Q4_1, Q5_1, Q4_K, Q5_K), so fusing it
// into an FMA, or reassociating the products, cannot change a bit. SIMD
// kernels get the same freedom. (Q8_K's scale is a float; its one product
// rounds once.) The tests check every type against a double-precision
// decoder, which is exact for the same reason.

#include <cmath>
#include <cstdint>

#include "engine/half.h"
#include "engine/quant.h"

namespace tars::engine::quant_detail {

// ---- legacy (quant_legacy.cpp) ----
void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb);
void dequantize_q4_1(const BlockQ4_1* x, float* y, int64_t nb);
void dequantize_q5_0(const BlockQ5_0* x, float* y, int64_t nb);
void dequantize_q5_1(const BlockQ5_1* x, float* y, int64_t nb);
void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb);
void dequantize_q8_1(const BlockQ8_1* x, float* y, int64_t nb);
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb);
void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t nb);
void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb);
void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t nb);
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb);
void quantize_q8_1(const float* x, BlockQ8_1* y, int64_t nb);

// ---- k-quants (quant_k.cpp) ----
void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb);
void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb);
void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb);
void dequantize_q8_k(const BlockQ8_K* x, float* y, int64_t nb);
void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb);
void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb);
void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb);
void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb);

// ---- helpers shared by the quantizers ----

// round(v) clamped to [lo, hi]; NaN gives hi (no undefined float->int cast).
inline int quant_round_clamp(float v, int lo, int hi) {
  v = std::fmax(static_cast<float>(lo), std::fmin(static_cast<float>(hi), v));
  return static_cast<int>(std::nearbyint(v));
}

// FP16 bits of the value nearest to v whose magnitude is >= |v|, capped at
// the largest finite FP16 (65504). A scale rounded this way keeps every
// element of the block inside the quantization grid.
uint16_t fp16_round_away(float v);
// FP16 bits of the largest value <= v, capped at -65504. Used for the Q4_1 /
// Q5_1 minimum so that no element lies below the grid.
uint16_t fp16_round_down(float v);

}  // namespace tars::engine::quant_detail
