#pragma once
// Decoding of the GGUF block formats (layouts in engine/quant.h) for the
// CUDA kernels. Host code can compile it too (TARS_HD is plain inline
// without nvcc), so tests/engine checks these decoders against the CPU's
// dequantizers on every machine, GPU or not.
// Every supported quantized type is decoded 32 elements at a time ("group"
// g = elements 32g .. 32g+31 of a row): a legacy block, a Q4_K/Q5_K
// sub-block, or two Q6_K scale groups. The formulas are those of the CPU
// dequantizers (quant_legacy.cpp, quant_k.cpp); every product is exact in
// float (quant_internal.h), so the results are the same bits.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/quant.h"
#include "engine/tensor_type.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define TARS_HD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__)  // the device pass; the host pass's compiler knows no such pragma
#define TARS_UNROLL _Pragma("unroll")
#else
#define TARS_UNROLL
#endif
#else
#include "engine/half.h"  // C++20; the CUDA sources are C++17 and use cuda_fp16.h
#define TARS_HD inline
#define TARS_UNROLL
#endif

namespace tars::engine::cuda {

TARS_HD float f16_bits_to_f32(uint16_t h) {
#if defined(__CUDACC__)
  return __half2float(__ushort_as_half(h));
#else
  return fp16_to_fp32(h);
#endif
}
TARS_HD float bf16_bits_to_f32(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// One element of a plain (F32 / F16 / BF16) row.
template <TensorType T>
TARS_HD float plain_elem(const uint8_t* row, int64_t i) {
  if constexpr (T == TensorType::kF32) return reinterpret_cast<const float*>(row)[i];
  if constexpr (T == TensorType::kF16) return f16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
  if constexpr (T == TensorType::kBF16) return bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
  return 0.0f;
}

// Scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
TARS_HD void k_scale_min(int j, const uint8_t* s, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Byte-wise a - b (mod 256) of 4 packed bytes: __vsub4 on the device.
TARS_HD uint32_t vsub4(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __vsub4(a, b);
#else
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= (((a >> (8 * i)) - (b >> (8 * i))) & 0xFFu) << (8 * i);
  return r;
#endif
}

// Blocks are 2-byte aligned (every block size and field offset is even), so
// 32-bit words are read as two 16-bit halves.
TARS_HD uint32_t load_u32_a2(const uint8_t* p) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
}

// A group of a quantized row as integers: q[k] packs elements 4k .. 4k+3
// (signed bytes), and w = a * q + b (a_lo for elements 0..15, a_hi after).
struct IntGroup {
  int q[8];
  float a_lo, a_hi, b;
};

template <TensorType T>
TARS_HD void int_group32(const uint8_t* row, int64_t g, IntGroup& o) {
  o.b = 0.0f;
  if constexpr (T == TensorType::kQ4_0 || T == TensorType::kQ4_1) {
    // Element j: low nibble of qs[j] (j < 16), high nibble of qs[j - 16].
    using B = std::conditional_t<T == TensorType::kQ4_0, BlockQ4_0, BlockQ4_1>;
    const B* blk = reinterpret_cast<const B*>(row) + g;
TARS_UNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t w = load_u32_a2(blk->qs + 4 * k);
      uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
      if constexpr (T == TensorType::kQ4_0) {
        lo = vsub4(lo, 0x08080808u);
        hi = vsub4(hi, 0x08080808u);
      }
      o.q[k] = static_cast<int>(lo);
      o.q[k + 4] = static_cast<int>(hi);
    }
    o.a_lo = o.a_hi = f16_bits_to_f32(blk->d);
    if constexpr (T == TensorType::kQ4_1) o.b = f16_bits_to_f32(blk->m);
  } else if constexpr (T == TensorType::kQ5_0 || T == TensorType::kQ5_1) {
    // As Q4 plus bit j of qh (element j) as the 5th bit.
    using B = std::conditional_t<T == TensorType::kQ5_0, BlockQ5_0, BlockQ5_1>;
    const B* blk = reinterpret_cast<const B*>(row) + g;
    const uint32_t qh = load_u32_a2(blk->qh);
TARS_UNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t w = load_u32_a2(blk->qs + 4 * k);
      uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
      // The 5th bits of elements 4k..4k+3 and 16+4k..16+4k+3, to bit 4 of each byte.
TARS_UNROLL
      for (int i = 0; i < 4; ++i) {
        lo |= ((qh >> (4 * k + i)) & 1u) << (8 * i + 4);
        hi |= ((qh >> (16 + 4 * k + i)) & 1u) << (8 * i + 4);
      }
      if constexpr (T == TensorType::kQ5_0) {
        lo = vsub4(lo, 0x10101010u);
        hi = vsub4(hi, 0x10101010u);
      }
      o.q[k] = static_cast<int>(lo);
      o.q[k + 4] = static_cast<int>(hi);
    }
    o.a_lo = o.a_hi = f16_bits_to_f32(blk->d);
    if constexpr (T == TensorType::kQ5_1) o.b = f16_bits_to_f32(blk->m);
  } else if constexpr (T == TensorType::kQ8_0) {
    const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(row) + g;
TARS_UNROLL
    for (int k = 0; k < 8; ++k) o.q[k] = static_cast<int>(load_u32_a2(reinterpret_cast<const uint8_t*>(blk->qs) + 4 * k));
    o.a_lo = o.a_hi = f16_bits_to_f32(blk->d);
  } else if constexpr (T == TensorType::kQ4_K || T == TensorType::kQ5_K) {
    // Sub-block j of super-block g / 8 (see dequant_group32): w = d*sc*q - dmin*mn.
    using B = std::conditional_t<T == TensorType::kQ4_K, BlockQ4_K, BlockQ5_K>;
    const B* blk = reinterpret_cast<const B*>(row) + g / 8;
    const int j = static_cast<int>(g % 8), c = j / 2, shift = (j & 1) * 4;
    int sc, mn;
    k_scale_min(j, blk->scales, &sc, &mn);
    const uint8_t* qs = blk->qs + 32 * c;
TARS_UNROLL
    for (int k = 0; k < 8; ++k) {
      uint32_t v = (load_u32_a2(qs + 4 * k) >> shift) & 0x0F0F0F0Fu;
      if constexpr (T == TensorType::kQ5_K) v |= ((load_u32_a2(blk->qh + 4 * k) >> j) & 0x01010101u) << 4;
      o.q[k] = static_cast<int>(v);
    }
    o.a_lo = o.a_hi = f16_bits_to_f32(blk->d) * static_cast<float>(sc);
    o.b = -f16_bits_to_f32(blk->dmin) * static_cast<float>(mn);
  } else if constexpr (T == TensorType::kQ6_K) {
    // Elements 128h + 32k + l of super-block g / 8 (see dequant_group32).
    const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(row) + g / 8;
    const int e0 = static_cast<int>(g % 8) * 32, h = e0 / 128, k = (e0 % 128) / 32;
    const uint8_t* ql = blk->ql + 64 * h + (k & 1) * 32;
    const uint8_t* qh = blk->qh + 32 * h;
    const int nshift = (k >> 1) * 4;
TARS_UNROLL
    for (int m = 0; m < 8; ++m) {
      const uint32_t lo = (load_u32_a2(ql + 4 * m) >> nshift) & 0x0F0F0F0Fu;
      const uint32_t hi = ((load_u32_a2(qh + 4 * m) >> (2 * k)) & 0x03030303u) << 4;
      o.q[m] = static_cast<int>(vsub4(lo | hi, 0x20202020u));
    }
    const float d = f16_bits_to_f32(blk->d);
    o.a_lo = d * static_cast<float>(blk->scales[8 * h + 2 * k]);
    o.a_hi = d * static_cast<float>(blk->scales[8 * h + 2 * k + 1]);
  }
}

// Decodes group g (32 elements) of a quantized row into y[0..31]: the
// integer form above, w = a * q (+ b for the types with a min). The same
// float operations as the CPU dequantizers, so the same bits: each a * q is
// exact (quant_internal.h), and adding b = -m1 equals subtracting m1. Types
// without a min add nothing (adding a +0 offset would turn -0 into +0).
template <TensorType T>
TARS_HD void dequant_group32(const uint8_t* row, int64_t g, float* y) {
  constexpr bool kMin = T == TensorType::kQ4_1 || T == TensorType::kQ5_1 || T == TensorType::kQ4_K ||
                        T == TensorType::kQ5_K;
  IntGroup o;
  int_group32<T>(row, g, o);
TARS_UNROLL
  for (int e = 0; e < 32; ++e) {
    const int8_t q = static_cast<int8_t>((static_cast<uint32_t>(o.q[e / 4]) >> (8 * (e % 4))) & 0xFFu);
    const float w = (e < 16 ? o.a_lo : o.a_hi) * static_cast<float>(q);
    y[e] = kMin ? w + o.b : w;
  }
}

}  // namespace tars::engine::cuda
