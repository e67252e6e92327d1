#pragma once
// Device-side decoding of the GGUF block formats (layouts in engine/quant.h).
// Every supported quantized type is decoded 32 elements at a time ("group"
// g = elements 32g .. 32g+31 of a row): a legacy block, a Q4_K/Q5_K
// sub-block, or two Q6_K scale groups. The formulas are those of the CPU
// dequantizers (quant_legacy.cpp, quant_k.cpp); every product is exact in
// float (quant_internal.h), so the results are the same bits.
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "engine/quant.h"
#include "engine/tensor_type.h"

namespace tars::engine::cuda {

__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits_to_f32(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }

// One element of a plain (F32 / F16 / BF16) row.
template <TensorType T>
__device__ __forceinline__ float plain_elem(const uint8_t* row, int64_t i) {
  if constexpr (T == TensorType::kF32) return reinterpret_cast<const float*>(row)[i];
  if constexpr (T == TensorType::kF16) return f16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
  if constexpr (T == TensorType::kBF16) return bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
  return 0.0f;
}

// Scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
__device__ __forceinline__ void k_scale_min(int j, const uint8_t* s, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Decodes group g (32 elements) of a quantized row into y[0..31].
template <TensorType T>
__device__ __forceinline__ void dequant_group32(const uint8_t* row, int64_t g, float* y) {
  if constexpr (T == TensorType::kQ4_0) {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(row) + g;
    const float d = f16_bits_to_f32(b->d);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b->qs[j] & 15) - 8) * d;
      y[j + 16] = static_cast<float>((b->qs[j] >> 4) - 8) * d;
    }
  } else if constexpr (T == TensorType::kQ4_1) {
    const BlockQ4_1* b = reinterpret_cast<const BlockQ4_1*>(row) + g;
    const float d = f16_bits_to_f32(b->d), m = f16_bits_to_f32(b->m);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b->qs[j] & 15) * d + m;
      y[j + 16] = static_cast<float>(b->qs[j] >> 4) * d + m;
    }
  } else if constexpr (T == TensorType::kQ5_0 || T == TensorType::kQ5_1) {
    // Q5_0 and Q5_1 share the quant layout; Q5_1 adds the min.
    using B = std::conditional_t<T == TensorType::kQ5_0, BlockQ5_0, BlockQ5_1>;
    const B* b = reinterpret_cast<const B*>(row) + g;
    const float d = f16_bits_to_f32(b->d);
    const uint32_t qh = static_cast<uint32_t>(b->qh[0]) | (static_cast<uint32_t>(b->qh[1]) << 8) |
                        (static_cast<uint32_t>(b->qh[2]) << 16) | (static_cast<uint32_t>(b->qh[3]) << 24);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q0 = (b->qs[j] & 15) | (static_cast<int>((qh >> j) & 1) << 4);
      const int q1 = (b->qs[j] >> 4) | (static_cast<int>((qh >> (j + 16)) & 1) << 4);
      if constexpr (T == TensorType::kQ5_0) {
        y[j] = static_cast<float>(q0 - 16) * d;
        y[j + 16] = static_cast<float>(q1 - 16) * d;
      } else {
        const float m = f16_bits_to_f32(b->m);
        y[j] = static_cast<float>(q0) * d + m;
        y[j + 16] = static_cast<float>(q1) * d + m;
      }
    }
  } else if constexpr (T == TensorType::kQ8_0) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + g;
    const float d = f16_bits_to_f32(b->d);
#pragma unroll
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b->qs[j]) * d;
  } else if constexpr (T == TensorType::kQ4_K || T == TensorType::kQ5_K) {
    // Sub-block j of super-block g / 8: chunk c = j / 2, low nibbles for
    // even j, high for odd; Q5_K's 5th bit is bit j of qh[l].
    using B = std::conditional_t<T == TensorType::kQ4_K, BlockQ4_K, BlockQ5_K>;
    const B* b = reinterpret_cast<const B*>(row) + g / 8;
    const int j = static_cast<int>(g % 8), c = j / 2, shift = (j & 1) * 4;
    int sc, mn;
    k_scale_min(j, b->scales, &sc, &mn);
    const float d1 = f16_bits_to_f32(b->d) * static_cast<float>(sc);
    const float m1 = f16_bits_to_f32(b->dmin) * static_cast<float>(mn);
    const uint8_t* qs = b->qs + 32 * c;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      int q = (qs[l] >> shift) & 15;
      if constexpr (T == TensorType::kQ5_K) q |= ((b->qh[l] >> j) & 1) << 4;
      y[l] = d1 * static_cast<float>(q) - m1;
    }
  } else if constexpr (T == TensorType::kQ6_K) {
    // Elements 128h + 32k + l (l < 32) of super-block g / 8: quarter k of
    // half h takes ql[l (+32 for odd k)] (low nibble for k < 2, high after)
    // and bits 2k..2k+1 of qh[l]; scale index 8h + 2k + l/16.
    const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(row) + g / 8;
    const int e0 = static_cast<int>(g % 8) * 32, h = e0 / 128, k = (e0 % 128) / 32;
    const uint8_t* ql = b->ql + 64 * h + (k & 1) * 32;
    const uint8_t* qh = b->qh + 32 * h;
    const int nshift = (k >> 1) * 4;
    const float d = f16_bits_to_f32(b->d);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int q = (((ql[l] >> nshift) & 15) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(b->scales[8 * h + 2 * k + l / 16]) * static_cast<float>(q);
    }
  }
}

}  // namespace tars::engine::cuda
