#pragma once
// CPU kernels: dot products of quantized weight rows with 8-bit activation
// rows, float dots, the packed products (matrix x many tokens, and the
// decode step), attention and the element-wise helpers of the forward pass.
//
// Every kernel exists at several instruction-set levels, chosen once at run
// time from cpuid (one binary runs on any x86-64):
//   scalar  plain C++, the reference the others are tested against;
//   avx2    AVX2 + FMA + F16C (maddubs/madd integer products);
//   avx512  AVX-512 F/BW/VL/DQ + VNNI (vpdpbusd), the packed products and
//           the tiled prompt attention.
// The integer part of every quantized dot product is exact at every level, so
// levels differ only in the order float block sums are added.
//
// How a quantized matrix product runs (the way fast CPU engines do it): the
// activation rows are quantized once per product to the activation type the
// weight type pairs with (vec_dot_act_type: Q8_0, or Q8_1 where the weight has
// a min, Q8_K for the k-quants), then each output is a sum over blocks of
// (integer dot of the block's quants) x (weight scale x activation scale).
// At the avx512 level the weights are repacked once into row-interleaved
// panels and every product, decode included, runs on them (panel_q_*); the
// other levels call vec_dot per row and token. kernels_ops.h drives both
// over the thread pool.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/tensor_type.h"

namespace tars::engine::cpu {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The best level this CPU (and OS) supports.
Isa isa_detected();
// The level in use: isa_detected(), or the override.
Isa isa_active();
// Forces a lower level (tests and benchmarks compare levels on one machine);
// a level above isa_detected() is clamped to it. Not thread-safe: call it
// between products, not during one.
void isa_set_override(Isa isa);
void isa_clear_override();
std::string_view isa_name(Isa isa);

// ---- quantized dot products ----------------------------------------------

// The activation type a weight type's dot product takes: kQ8_0 (Q4_0, Q5_0,
// Q8_0), kQ8_1 (Q4_1, Q5_1: the min term needs the block sums), kQ8_K (Q4_K,
// Q5_K, Q6_K), kF32 for float weights (F32, F16, BF16: float activations).
// Returns false for a type with no dot product (the caller dequantizes).
bool vec_dot_act_type(TensorType weight, TensorType* act);

// sum_i w[i] * a[i] over n elements: w a row of `weight` type, a a row of
// its activation type (floats for F32/F16/BF16). n is a whole number of
// blocks of both types.
using VecDotFn = float (*)(const void* w, const void* a, int64_t n);
// x (n floats, a whole number of blocks) -> activation blocks at y.
using QuantizeActFn = void (*)(const float* x, void* y, int64_t n);

// The kernels of the active level (null where the type has none).
VecDotFn vec_dot_fn(TensorType weight);
QuantizeActFn quantize_act_fn(TensorType act);
// The same at a given level (tests).
VecDotFn vec_dot_fn(TensorType weight, Isa isa);
QuantizeActFn quantize_act_fn(TensorType act, Isa isa);

// ---- float helpers (active level) -----------------------------------------

// sum a[i] * b[i]
float dot_f32(const float* a, const float* b, int64_t n);
// y[i] += s * x[i]; x in F32 or F16
void axpy_f32(float s, const float* x, float* y, int64_t n);
void axpy_f16(float s, const uint16_t* x, float* y, int64_t n);
// F16 bits <-> float over n values (round to nearest even)
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n);
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n);
// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int64_t n);
// x[i] = exp(x[i] - max), returns the sum of the results
float softmax_exp(float* x, int64_t n, float max);
// x[i] = x[i] * s * g[i]
void scale_mul(float* x, float s, const float* g, int64_t n);

// ---- packed products -------------------------------------------------------
//
// Levels with packed products (AVX-512) read weights in panels of kGemmRows
// rows interleaved so that one vector instruction computes kGemmRows partial
// dot products at once (kernels_panel.h has the layouts). Quantized weights
// are repacked once per matrix (same bytes per weight) and serve every token
// count, one token (decode) included; float weights are packed per product
// into float panels, worth it from a few tokens on.

inline constexpr int kGemmRows = 16;  // weight rows per panel

// True when the active level has the packed integer product for `weight`.
bool panel_q_available(TensorType weight);
// Bytes of one panel of kGemmRows rows of `cols` elements (0 without a layout).
size_t panel_q_bytes(TensorType weight, int64_t cols);
// Repacks rows [0, n_rows) (n_rows <= kGemmRows; missing rows become zero)
// of a matrix whose rows are row_bytes apart into one panel.
void panel_q_pack(TensorType weight, const void* rows, size_t row_bytes, int n_rows, int64_t cols,
                  void* panel);

// Activations in the packed integer product's layout, built from activation
// blocks (vec_dot_act_type) of n tokens. Per block of `block` elements (32,
// or 16 for Q6_K): the quants, the float scale, the float scale x sum (for
// weight types with a min) and -offset x the sum (the panels hold unsigned
// quant codes; the offset is the weight type's). Tokens are interleaved in
// tiles of kGemmActTile, so that the tile's values for one block sit side
// by side (the product broadcasts each from one base address):
//   qs:   [tile][block][block/4 groups][kGemmActTile tokens][4 quants]
//   d, s, corr: [tile][block][kGemmActTile tokens]
// The last tile's unused lanes are left uninitialized (never read).
// A single token (decode) uses tiles of one token instead (tile = 1): its
// quants then lie contiguous, the scalars one per block, and a product
// step touches an eighth of the memory.
inline constexpr int kGemmActTile = 8;
struct GemmActs {
  int64_t k = 0;                  // elements per token
  int block = 32;                 // elements per scale block
  int tile = kGemmActTile;        // tokens per tile: kGemmActTile, or 1 when built for one token
  const int8_t* qs = nullptr;     // quants (layout above)
  const float* d = nullptr;       // scales
  const float* s = nullptr;       // scale x sum of quants
  const int32_t* corr = nullptr;  // -offset x sum of quants
};

// Bytes of scratch that gemm_acts_build needs for n tokens of k elements.
size_t gemm_acts_bytes(TensorType weight, int64_t k, int n);
// Builds the layout in `scratch` from n rows of activation blocks (row
// stride act_row_bytes). Tokens [t0, t1) only, so threads can share the
// work; every call returns the same GemmActs.
GemmActs gemm_acts_build(TensorType weight, const void* act, size_t act_row_bytes, int64_t k, int n,
                         int t0, int t1, void* scratch);
// The same activations from token t0 (a multiple of the tile) on.
GemmActs gemm_acts_from(const GemmActs& a, int t0);
// y[t * y_stride + r] = panel row r . token t, for t < n, r < n_rows, plus
// bias[r] when bias is not null.
void panel_q_run(TensorType weight, const void* panel, const GemmActs& a, int n, int n_rows,
                 const float* bias, float* y, int64_t y_stride);

// Cached float panels of F32 / F16 / BF16 weights: k vectors of kGemmRows
// values of the weight's own type (element i of each row), the same bytes
// per weight as the file, repacked once like the quantized ones.
bool panel_f_available(TensorType weight);
size_t panel_f_bytes(TensorType weight, int64_t cols);
void panel_f_pack(TensorType weight, const void* rows, size_t row_bytes, int n_rows, int64_t cols,
                  void* panel);
void panel_f_run(TensorType weight, const void* panel, int64_t k, const float* x, int64_t x_stride, int n,
                 int n_rows, const float* bias, float* y, int64_t y_stride);

// Float panels packed per product: k vectors of kGemmRows floats (element i
// of each row).
bool gemm_f_available();
size_t gemm_f_panel_bytes(int64_t k);
// Packs rows [0, n_rows) of any supported type (quantized types through the
// reference dequantize_row).
void gemm_f_pack(TensorType weight, const void* w, size_t row_bytes, int n_rows, int64_t k,
                 void* panel);
// The float product for activations x ([n x k], row stride x_stride).
void gemm_f_run(const void* panel, int64_t k, const float* x, int64_t x_stride, int n, int n_rows,
                const float* bias, float* y, int64_t y_stride);

}  // namespace tars::engine::cpu
