// The AVX-512 level (F/BW/VL/DQ + VNNI): the 256-bit kernels of the AVX2
// level with vpdpbusd / vpdpwssd for the integer block products, plus the
// packed GEMM of kernels_avx512_gemm.cpp. Compiled with the AVX-512 flags
// (CMakeLists.txt); only kernels_cpu.cpp calls into it, after checking the
// CPU. Everything here has internal linkage (see kernels_internal.h).
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_*), falsely.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "engine/quant.h"

namespace tars::engine::cpu {

void avx512_fill_gemm(KernelTable& t);  // kernels_avx512_gemm.cpp
void avx512_fill_attn(KernelTable& t);  // kernels_avx512_attn.cpp

// A namespace of its own: unqualified names here hide the public ones of
// kernels_cpu.h (dot_f32, swiglu, ...).
namespace avx512 {
namespace {

// acc + sums of 4 products u8 x s8 per int32 lane (exact, no saturation).
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }

// acc + sums of 2 products i16 x i16 per int32 lane.
inline __m256i dot_i16(__m256i acc, __m256i p, __m256i sc) { return _mm256_dpwssd_epi32(acc, p, sc); }

// Byte j = 0xFF where bit j of `bits` is set.
inline __m256i bits_to_bytes(uint32_t bits) { return _mm256_movm_epi8(bits); }

#include "engine/kernels_simd_common.inc"
#include "engine/kernels_simd_quant.inc"
#include "engine/kernels_simd_float.inc"

}  // namespace
}  // namespace avx512

const KernelTable* kernel_table_avx512() {
  static KernelTable table;  // zeroed static storage; filled once
  static const bool filled = [] {
    table.isa = Isa::kAvx512;
    avx512::fill_simd_table(table);
    avx512_fill_gemm(table);
    avx512_fill_attn(table);
    return true;
  }();
  (void)filled;
  return &table;
}

}  // namespace tars::engine::cpu

#else
namespace tars::engine::cpu {
const KernelTable* kernel_table_avx512() { return nullptr; }
}  // namespace tars::engine::cpu
#endif
