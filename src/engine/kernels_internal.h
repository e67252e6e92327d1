#pragma once
// The table of kernels one instruction-set level provides (kernels_cpu.h
// explains the levels). Each level's file fills one table; kernels_cpu.cpp
// picks the table at run time.
//
// Files compiled for a higher level (kernels_avx2.cpp, kernels_avx512*.cpp)
// must not define or instantiate any function with external linkage other
// than their table getter: an inline function or template emitted there
// could be merged by the linker with the baseline copy and run AVX-512 code
// on a CPU without it. They keep everything in an anonymous namespace and
// include nothing but this header, quant.h and the intrinsics.

#include <cstddef>
#include <cstdint>

#include "engine/kernels_cpu.h"

namespace tars::engine::cpu {

inline constexpr int kTypeSlots = 32;     // TensorType numbers 0..31 index the tables
inline constexpr int kAttnKeyBlock = 64;  // keys attn_group / attn_tile convert at a time
inline constexpr int kAttnTileRows = 128; // query rows (tokens x grouped heads) of one attn_tile

// A plain aggregate (no member initializers, so no constructor is emitted in
// the higher-level files): a table in static storage starts zeroed.
struct KernelTable {
  Isa isa;
  VecDotFn vec_dot[kTypeSlots];            // by weight type
  QuantizeActFn quantize_act[kTypeSlots];  // by activation type (Q8_0, Q8_1, Q8_K)
  float (*dot_f32)(const float*, const float*, int64_t);
  void (*axpy_f32)(float, const float*, float*, int64_t);
  void (*axpy_f16)(float, const uint16_t*, float*, int64_t);
  void (*f16_to_f32)(const uint16_t*, float*, int64_t);
  void (*f32_to_f16)(const float*, uint16_t*, int64_t);
  void (*swiglu)(float*, const float*, int64_t);
  float (*softmax_exp)(float*, int64_t, float);
  void (*scale_mul)(float*, float, const float*, int64_t);
  // attn_group(q, group, hd, k, v, stride, f16, n_keys, scale, scores, out, tmp):
  // one token's `group` query heads (q, out: [group x hd]) that share one KV
  // head, over key/value rows j < n_keys at k / v + j * stride elements (F16
  // or F32). Scratch: scores group * n_keys floats, tmp kAttnKeyBlock * hd.
  // The SIMD levels need hd % 8 == 0.
  void (*attn_group)(const float*, int, int, const void*, const void*, int64_t, bool, int, float, float*,
                     float*, float*);
  // attn_tile(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale,
  // out, out_stride, scratch): nt consecutive tokens of one sequence
  // (positions pos[0..nt), increasing by one) times their `group` query heads
  // that share one KV head (nt * group <= kAttnTileRows; token t's heads at
  // q + t * q_stride, its output at out + t * out_stride), over keys 0 ..
  // pos[nt-1]. Needs hd % 16 == 0, hd <= 256, and attn_tile_scratch(hd)
  // floats of scratch. Null at levels without it.
  void (*attn_tile)(const float*, int64_t, int, int, int, const int32_t*, const void*, const void*, int64_t,
                    bool, float, float*, int64_t, float*);
  // Packed products (null at levels without them); see kernels_cpu.h.
  // gemm_f_pack_f32 / _f16(w, row_bytes, n_rows, k, panel).
  void (*panel_q_run)(TensorType, const void*, const GemmActs&, int, int, const float*, float*, int64_t);
  void (*gemm_f_pack_f32)(const float*, size_t, int, int64_t, void*);
  void (*gemm_f_pack_f16)(const uint16_t*, size_t, int, int64_t, void*);
  void (*gemm_f_run)(const void*, int64_t, const float*, int64_t, int, int, const float*, float*,
                     int64_t);
  // panel_f_run(type, panel, k, x, x_stride, n, n_rows, bias, y, y_stride):
  // the float product on a cached panel of F32, F16 or BF16 values.
  void (*panel_f_run)(TensorType, const void*, int64_t, const float*, int64_t, int, int, const float*, float*,
                      int64_t);
};

// Floats of scratch attn_tile needs for head size hd.
static inline size_t attn_tile_scratch(int hd) {
  return static_cast<size_t>(2 * hd + kAttnKeyBlock) * kAttnTileRows + 2 * static_cast<size_t>(kAttnKeyBlock) * hd;
}

// One per level; the higher ones return null when not compiled in.
const KernelTable* kernel_table_scalar();
const KernelTable* kernel_table_avx2();
const KernelTable* kernel_table_avx512();

}  // namespace tars::engine::cpu
