// The AVX2 level (AVX2 + FMA + F16C): integer block products with
// maddubs/madd. Compiled with -mavx2 -mfma -mf16c (CMakeLists.txt); only
// kernels_cpu.cpp calls into it, after checking the CPU. Everything here has
// internal linkage (see kernels_internal.h).
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>

#include "engine/quant.h"

namespace tars::engine::cpu {
// A namespace of its own: unqualified names here hide the public ones of
// kernels_cpu.h (dot_f32, swiglu, ...).
namespace avx2 {
namespace {

// acc + sums of 4 products u8 x s8 per int32 lane (pairs summed in int16
// first: exact while |u| <= 128 and |s| <= 127).
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// acc + sums of 2 products i16 x i16 per int32 lane.
inline __m256i dot_i16(__m256i acc, __m256i p, __m256i sc) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p, sc));
}

// Byte j = 0xFF where bit j of `bits` is set.
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i shuf = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));  // every bit but j % 8
  return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

#include "engine/kernels_simd_common.inc"
#include "engine/kernels_simd_quant.inc"
#include "engine/kernels_simd_float.inc"

}  // namespace
}  // namespace avx2

const KernelTable* kernel_table_avx2() {
  static KernelTable table;  // zeroed static storage; filled once
  static const bool filled = [] {
    table.isa = Isa::kAvx2;
    avx2::fill_simd_table(table);
    return true;
  }();
  (void)filled;
  return &table;
}

}  // namespace tars::engine::cpu

#else
namespace tars::engine::cpu {
const KernelTable* kernel_table_avx2() { return nullptr; }
}  // namespace tars::engine::cpu
#endif
