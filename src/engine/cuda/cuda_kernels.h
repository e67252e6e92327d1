#pragma once
// Launchers of the CUDA backend's kernels, callable from host C++ (the
// backend, cuda_backend.cpp). Every pointer is device memory unless named
// host_*; every launcher enqueues on `stream` and returns without waiting.
// The caller checks cudaGetLastError() after each launch (CUDA_CHECK).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "engine/tensor_type.h"

namespace tars::engine::cuda {

// True for the weight types these kernels decode: F32, F16, BF16, Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
bool cuda_type_supported(TensorType t);
// True for the types with a block-reading mat-vec kernel (n == 1 products).
bool cuda_matvec_supported(TensorType t);

// One row's 8-bit form for the integer mat-vec (cuda_q8.cuh): qx[cols]
// quants, dx[cols / 32] scales, sx[cols / 32] quant sums. A kernel given one
// with qx null writes none.
struct Q8Row {
  int8_t* qx = nullptr;
  float* dx = nullptr;
  int* sx = nullptr;
};

// ---- weights (cuda_dequant.cu) ----
// out[t] = dequantized row ids[t] of a [rows x cols] table; ids on device.
void launch_get_rows(TensorType type, const void* table, size_t row_bytes, int64_t cols,
                     const int32_t* ids, int n, float* out, cudaStream_t stream);
// y = dequantized rows of a [rows x cols] matrix as float ([rows x cols]).
void launch_dequantize(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows,
                       float* y, cudaStream_t stream);
// The same as IEEE half (round to nearest even), for the FP16 GEMM path.
void launch_dequantize_f16(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows,
                           void* y_half, cudaStream_t stream);
// y_half[i] = x[i] rounded to half, i < n.
void launch_f32_to_f16(const float* x, size_t n, void* y_half, cudaStream_t stream);
// y[r] = W[r] . x (+ bias[r]) for one vector x of `cols` floats.
void launch_matvec(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows,
                   const float* x, const float* bias, float* y, cudaStream_t stream);

// ---- 8-bit activations (cuda_matvec_q8.cu) ----
// True for the quantized types with an integer (dp4a) mat-vec: Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
bool cuda_matvec_q8_supported(TensorType t);
// x (cols floats, a multiple of 32) -> per group of 32: qx (int8 quants,
// cols bytes, 16-byte aligned), dx (float scale amax/127), sx (quant sum).
void launch_quantize_q8(const float* x, int64_t cols, int8_t* qx, float* dx, int* sx, cudaStream_t stream);
// y[r] = W[r] . x (+ bias[r]) with x as launch_quantize_q8 left it.
void launch_matvec_q8(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows, const int8_t* qx,
                      const float* dx, const int* sx, const float* bias, float* y, cudaStream_t stream);
// The same for up to kMaxMatvecParts matrices of one type and width in one
// launch (Q/K/V, gate/up of a decode step): y_i = W_i x (+ bias_i).
inline constexpr int kMaxMatvecParts = 3;
struct MatvecQ8Part {
  const void* w;
  int64_t rows;
  const float* bias;  // null: none
  float* y;
};
// variant: 1 one warp per row, 2 a device-sized grid of warps that load a
// row's next chunk while decoding the current one, 3 variant 1 with each
// chunk's loads issued together, 4 variant 3 with the chunk's activations in
// shared memory; 0 the environment's choice (TARS_CUDA_MATVEC=2, 3 or 4;
// else 4 with TARS_CUDA_NEXT=1, else 1).
void launch_matvec_q8_multi(TensorType type, const MatvecQ8Part* parts, int count, size_t row_bytes, int64_t cols,
                            const int8_t* qx, const float* dx, const int* sx, cudaStream_t stream, int variant = 0);

// ---- dense products (cuda_gemm.cu) ----
// Y[n x rows] = X[n x cols] W^T for a float W [rows x cols] (all row-major;
// row t of Y starts at y + t * ldy): the fallback when cuBLAS is not loaded.
void launch_sgemm_nt(const float* w, const float* x, int64_t rows, int64_t cols, int n, float* y, int64_t ldy,
                     cudaStream_t stream);
// Launches an empty kernel: fails when this build has no code for the device.
cudaError_t launch_probe(cudaStream_t stream);
// y[t * rows + r] += bias[r] for t < n.
void launch_add_bias(float* y, const float* bias, int64_t rows, int n, cudaStream_t stream);

// ---- row operations (cuda_ops.cu) ----
void launch_rms_norm(float* x, const float* w, int n, int d, float eps, cudaStream_t stream);
// out = rms_norm of x + a (a may be null) over [n x d], with x updated to
// x + a when a is given; q (n == 1, d % 32 == 0): out's 8-bit form too.
// Occupies the stream for about `cycles` GPU clock cycles, so that the host
// can queue the work after it without the GPU waiting (TARS_CUDA_PROFILE's
// decode steps: the per-operation times are then the GPU's alone).
void launch_hold(long long cycles, cudaStream_t stream);
void launch_rms_norm_to(float* x, const float* a, float* out, const float* w, int n, int d, float eps, Q8Row q,
                        cudaStream_t stream);
// swiglu over n floats (n % 32 == 0) with gate's 8-bit form written to q.
void launch_swiglu_q8(float* gate, const float* up, size_t n, Q8Row q, cudaStream_t stream);
// rope of q (n_head heads) and k (n_head_kv heads, in place), then k and v
// rows to cache row seq[t] * n_ctx + pos[t]: launch_rope twice and
// launch_kv_store in one kernel, with the same arithmetic.
void launch_rope_store(float* q, float* k, const float* v, const float* cos, const float* sin, int n_tokens,
                       int n_head, int n_head_kv, int head_dim, int n_rot, bool mode_neox, void* cache_k,
                       void* cache_v, bool f16, int n_ctx, const int32_t* pos, const int32_t* seq,
                       cudaStream_t stream);
void launch_layer_norm(float* x, const float* w, const float* b, int n, int d, float eps,
                       cudaStream_t stream);
// Rotates the first n_rot dimensions of each head of token t by cos/sin row
// t ([n_tokens x n_rot/2] each: engine/rope_table.h, computed on the host in
// double). mode_neox: pairs (i, i + n_rot/2) instead of (2i, 2i+1).
void launch_rope(float* x, const float* cos, const float* sin, int n_tokens, int n_heads, int head_dim, int n_rot,
                 bool mode_neox, cudaStream_t stream);
// Rows t of k and v ([n x kv_dim]) to cache row seq[t] * n_ctx + pos[t].
void launch_kv_store(void* cache_k, void* cache_v, bool f16, int n_ctx, int kv_dim, const float* k,
                     const float* v, const int32_t* pos, const int32_t* seq, int n, cudaStream_t stream);
void launch_add(float* a, const float* b, size_t n, cudaStream_t stream);
void launch_swiglu(float* gate, const float* up, size_t n, cudaStream_t stream);
void launch_gelu_tanh(float* x, size_t n, cudaStream_t stream);
void launch_gelu_erf(float* x, size_t n, cudaStream_t stream);
// dst[i] = src[rows[i]] for rows of d floats.
void launch_gather_rows(const float* src, const int32_t* rows, int n, int d, float* dst,
                        cudaStream_t stream);
// out[i] = mean of rows start[i] .. start[i+1]-1 of x ([.. x d]).
void launch_seq_mean(const float* x, const int32_t* start, int n_seqs, int d, float* out,
                     cudaStream_t stream);

// ---- attention (cuda_attention.cu) ----
// For each query token t and head h: softmax(scale * q . k_j) v over keys
// j < n_keys[t], where key j of KV head g is the row key_row0[t] + j of k and
// v (row stride kv_stride elements, float or f16), at column g * head_dim.
// Query head h uses KV head h / (n_head / n_head_kv). q and out are
// [n x n_head * head_dim]. Serves both the causal cache attention (rows of a
// sequence's cache slot) and the packed encoder attention (rows of the
// token's own sequence).
void launch_attention(const float* q, const void* k, const void* v, bool f16, int64_t kv_stride,
                      const int64_t* key_row0, const int32_t* n_keys, int n, int n_head,
                      int n_head_kv, int head_dim, float scale, float* out, cudaStream_t stream,
                      Q8Row q8 = {});  // n == 1 and head_dim % 32 == 0: out's 8-bit form too
// The same with each (token, head)'s keys split into n_split ranges of
// split_len (n_split * split_len >= the largest n_keys), one block each, then
// merged: for long contexts, where one block per head leaves the GPU idle.
// part: n * n_head * n_split * (head_dim + 2) floats of scratch.
void launch_attention_split(const float* q, const void* k, const void* v, bool f16, int64_t kv_stride,
                            const int64_t* key_row0, const int32_t* n_keys, int n, int n_head, int n_head_kv,
                            int head_dim, float scale, float* out, int n_split, int split_len, float* part,
                            cudaStream_t stream, Q8Row q8 = {});

// The GEMM attention's softmax: row r of s ([rows x ld] float, r = head *
// n + token, token = r % n) becomes p_j = exp(s_j - max) / sum over the
// token's keys j < n_keys[token], and 0 for j in [n_keys[token], cols),
// written to p (the same layout, half).
void launch_masked_softmax(const float* s, int64_t ld, int cols, int rows, int n, const int32_t* n_keys, void* p_half,
                           cudaStream_t stream);

}  // namespace tars::engine::cuda
