// Attention of the CUDA backend: one block per (query token, query head),
// keys in tiles of kThreads with a running (online) softmax, so memory does
// not grow with the context. Scores: each warp takes every fourth key of the
// tile, its lanes striding the head dimension (coalesced reads of the key
// row) and a warp sum; the value sums are coalesced over the head dimension.
#include <cuda_fp16.h>

#include <cfloat>

#include "engine/cuda/cuda_kernels.h"

namespace tars::engine::cuda {
namespace {

constexpr int kThreads = 128;      // threads per block = keys per tile
constexpr int kMaxHeadDim = 512;   // shared-memory bound on head_dim

template <bool F16>
__device__ __forceinline__ float kv_elem(const void* base, int64_t i) {
  if constexpr (F16) return __half2float(static_cast<const __half*>(base)[i]);
  else return static_cast<const float*>(base)[i];
}

// Reduces v over the block with op; every thread gets the result.
template <class Op>
__device__ float block_reduce(float v, float* shared, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // shared may still be read by a previous call
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  float r = shared[0];
  for (int w = 1; w < kThreads / 32; ++w) r = op(r, shared[w]);
  return r;
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

template <bool F16>
__global__ void __launch_bounds__(kThreads) attention_kernel(const float* q, const void* k, const void* v, int64_t kv_stride,
                                 const int64_t* key_row0, const int32_t* n_keys, int n_head, int n_head_kv,
                                 int head_dim, float scale, float* out) {
  __shared__ float sq[kMaxHeadDim];   // the query head
  __shared__ float acc[kMaxHeadDim];  // running sum of p * v (unnormalized)
  __shared__ float sp[kThreads];      // the tile's probabilities
  __shared__ float ss[kThreads];      // the tile's scores
  __shared__ float red[kThreads / 32];
  const int tid = threadIdx.x;
  const int t = blockIdx.x / n_head, h = blockIdx.x % n_head;
  const int g = h / (n_head / n_head_kv);
  const int64_t qo = (static_cast<int64_t>(t) * n_head + h) * head_dim;
  for (int d = tid; d < head_dim; d += kThreads) {
    sq[d] = q[qo + d];
    acc[d] = 0.0f;
  }
  __syncthreads();
  const int nk = n_keys[t];
  const int64_t row0 = key_row0[t];
  const int64_t col0 = static_cast<int64_t>(g) * head_dim;
  float m = -FLT_MAX, l = 0.0f;  // running max and normalizer (same in every thread)
  for (int j0 = 0; j0 < nk; j0 += kThreads) {
    const int j = j0 + tid;
    const int lane = tid % 32;
    for (int jj = tid / 32; jj < kThreads; jj += kThreads / 32) {
      float dot = 0.0f;
      if (j0 + jj < nk) {  // the same for the whole warp
        const int64_t kr = (row0 + j0 + jj) * kv_stride + col0;
        for (int d = lane; d < head_dim; d += 32) dot += sq[d] * kv_elem<F16>(k, kr + d);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      }
      if (lane == 0) ss[jj] = j0 + jj < nk ? dot * scale : -FLT_MAX;
    }
    __syncthreads();  // every score of the tile written
    const float s = ss[tid];
    const float m_new = fmaxf(m, block_reduce(s, red, MaxOp{}));
    const float alpha = expf(m - m_new);  // 0 on the first tile (m = -FLT_MAX)
    const float p = j < nk ? expf(s - m_new) : 0.0f;
    sp[tid] = p;
    l = l * alpha + block_reduce(p, red, SumOp{});  // its syncs also publish sp
    const int tile = min(kThreads, nk - j0);
    for (int d = tid; d < head_dim; d += kThreads) {
      float a = acc[d] * alpha;
      for (int jj = 0; jj < tile; ++jj) a += sp[jj] * kv_elem<F16>(v, (row0 + j0 + jj) * kv_stride + col0 + d);
      acc[d] = a;
    }
    m = m_new;
    __syncthreads();  // sp is rewritten by the next tile
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int d = tid; d < head_dim; d += kThreads) out[qo + d] = acc[d] * inv;
}

}  // namespace

void launch_attention(const float* q, const void* k, const void* v, bool f16, int64_t kv_stride,
                      const int64_t* key_row0, const int32_t* n_keys, int n, int n_head, int n_head_kv, int head_dim,
                      float scale, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>(n) * static_cast<unsigned>(n_head);
  if (f16) {
    attention_kernel<true><<<blocks, kThreads, 0, stream>>>(q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv,
                                                            head_dim, scale, out);
  } else {
    attention_kernel<false><<<blocks, kThreads, 0, stream>>>(q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv,
                                                             head_dim, scale, out);
  }
}

}  // namespace tars::engine::cuda
