// Attention of the CUDA backend: one block per (query token, query head),
// its warps taking tiles of 32 keys in turn, each warp with its own running
// (online) softmax, merged at the end; memory does not grow with the context.
// In a tile each lane scores one key (the whole key row, read in 16-byte
// pieces, against the query in shared memory), the warp agrees on the tile's
// maximum and sum with shuffles, and then adds the tile's values, each lane
// owning two adjacent dimensions of every 64 (coalesced reads of each value
// row). Before, the block scored each key with a warp reduction and
// accumulated values one key at a time after block-wide reductions: 24 us per
// decode step of a 7B layer on an H100.
#include <cuda_fp16.h>

#include <cfloat>
#include <type_traits>

#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_launch.cuh"
#include "engine/cuda/cuda_next.h"
#include "engine/cuda/cuda_q8.cuh"

namespace tars::engine::cuda {
namespace {

constexpr int kWarps = 4;          // warps per block
constexpr int kMaxHeadDim = 512;   // shared-memory bound on head_dim
constexpr int kPairs = kMaxHeadDim / 64;  // dimension pairs per lane

template <bool F16>
__device__ __forceinline__ float kv_elem(const void* base, int64_t i) {
  if constexpr (F16) return __half2float(static_cast<const __half*>(base)[i]);
  else return static_cast<const float*>(base)[i];
}

// Elements i and i + 1 (i even; base + i 4-byte aligned for half, 8 for float).
template <bool F16>
__device__ __forceinline__ float2 kv_pair(const void* base, int64_t i) {
  if constexpr (F16) return __half22float2(*reinterpret_cast<const __half2*>(static_cast<const __half*>(base) + i));
  else return *reinterpret_cast<const float2*>(static_cast<const float*>(base) + i);
}

// q . key row (head_dim elements from element kr of k), q in shared memory.
// Vec: head_dim % 8 == 0, so every piece of 8 elements is 16-byte aligned
// (half) or two aligned float4 (float).
// kHD > 0 (TARS_CUDA_NEXT, cuda_next.h): head_dim is kHD and the loop is
// unrolled, so all of a key row's loads are in flight together.
template <bool F16, bool Vec, int kHD>
__device__ __forceinline__ float key_dot(const float* sq, const void* k, int64_t kr, int head_dim) {
  float dot = 0.0f;
  if constexpr (Vec) {
    auto piece = [&](int d) {
      const float4 qa = *reinterpret_cast<const float4*>(sq + d), qb = *reinterpret_cast<const float4*>(sq + d + 4);
      float e[8];
      if constexpr (F16) {
        const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const __half*>(k) + kr + d);
        const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 f = __half22float2(h[i]);
          e[2 * i] = f.x;
          e[2 * i + 1] = f.y;
        }
      } else {
        const float4 a = *reinterpret_cast<const float4*>(static_cast<const float*>(k) + kr + d);
        const float4 b = *reinterpret_cast<const float4*>(static_cast<const float*>(k) + kr + d + 4);
        e[0] = a.x, e[1] = a.y, e[2] = a.z, e[3] = a.w, e[4] = b.x, e[5] = b.y, e[6] = b.z, e[7] = b.w;
      }
      dot += qa.x * e[0] + qa.y * e[1] + qa.z * e[2] + qa.w * e[3] + qb.x * e[4] + qb.y * e[5] + qb.z * e[6] +
             qb.w * e[7];
    };
    if constexpr (kHD > 0) {
#pragma unroll
      for (int d = 0; d < kHD; d += 8) piece(d);
    } else {
      for (int d = 0; d < head_dim; d += 8) piece(d);  // as measured: the body is piece's, not unrolled
    }
  } else {
    for (int d = 0; d < head_dim; ++d) dot += sq[d] * kv_elem<F16>(k, kr + d);
  }
  return dot;
}

// kSplit (launch_attention_split): block (token * n_head + head, s) takes
// keys [s * split_len, (s + 1) * split_len) and writes its partial softmax
// state (max, normalizer, unnormalized sums) to part instead of out.
template <bool F16, bool Vec, int kHD, bool kSplit>
__global__ void __launch_bounds__(32 * kWarps)
    attention_kernel(const float* q, const void* k, const void* v, int64_t kv_stride, const int64_t* key_row0,
                     const int32_t* n_keys, int n_head, int n_head_kv, int head_dim, float scale, float* out,
                     Q8Row q8, int split_len, float* part) {
  pdl_prologue();
  __shared__ __align__(16) float sq[kMaxHeadDim];  // the query head
  __shared__ float wacc[kWarps][kMaxHeadDim];      // each warp's unnormalized sum of p * v
  __shared__ float wm[kWarps], wl[kWarps];         // each warp's running max and normalizer
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int t = blockIdx.x / n_head, h = blockIdx.x % n_head;
  const int g = h / (n_head / n_head_kv);
  const int64_t qo = (static_cast<int64_t>(t) * n_head + h) * head_dim;
  for (int d = tid; d < head_dim; d += blockDim.x) sq[d] = q[qo + d];
  __syncthreads();
  int kbeg = 0, nk = n_keys[t];  // this block's keys: [kbeg, nk)
  if constexpr (kSplit) {
    kbeg = static_cast<int>(blockIdx.y) * split_len;
    nk = min(nk, kbeg + split_len);
  }
  const int64_t row0 = key_row0[t];
  const int64_t col0 = static_cast<int64_t>(g) * head_dim;
  float m = -FLT_MAX, l = 0.0f;  // this warp's running max and normalizer (the same in every lane)
  float acc[2 * kPairs];         // dimensions 64 i + 2 lane and + 1
#pragma unroll
  for (int i = 0; i < 2 * kPairs; ++i) acc[i] = 0.0f;
  for (int j0 = kbeg + warp * 32; j0 < nk; j0 += kWarps * 32) {
    const int j = j0 + lane;
    const float s = j < nk ? key_dot<F16, Vec, kHD>(sq, k, (row0 + j) * kv_stride + col0, head_dim) * scale : -FLT_MAX;
    float tmax = s;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
    const float m_new = fmaxf(m, tmax);  // key j0 < nk exists, so this is a real score
    const float alpha = expf(m - m_new);  // 0 on the warp's first tile (m = -FLT_MAX)
    const float p = j < nk ? expf(s - m_new) : 0.0f;
    float psum = p;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
    l = l * alpha + psum;
#pragma unroll
    for (int i = 0; i < 2 * kPairs; ++i) acc[i] *= alpha;
    const int tile = min(32, nk - j0);
    auto add_value = [&](int jj) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
      const int64_t vr = (row0 + j0 + jj) * kv_stride + col0;
#pragma unroll
      for (int i = 0; i < kPairs; ++i) {
        const int d = 64 * i + 2 * lane;
        if (d < head_dim) {
          if constexpr (Vec) {
            const float2 e = kv_pair<F16>(v, vr + d);
            acc[2 * i] += pj * e.x;
            acc[2 * i + 1] += pj * e.y;
          } else {
            acc[2 * i] += pj * kv_elem<F16>(v, vr + d);
            if (d + 1 < head_dim) acc[2 * i + 1] += pj * kv_elem<F16>(v, vr + d + 1);
          }
        }
      }
    };
    if constexpr (kHD > 0 && F16 && Vec) {
      // The tile's value pairs all loaded before any is used (kHD / 64 per
      // key and lane, at most 64 registers): one round of memory latency per
      // tile instead of one per 8 keys. Same sums in the same order.
      constexpr int kP = kHD / 64;
      __half2 raw[32][kP];
#pragma unroll
      for (int jj = 0; jj < 32; ++jj) {
        if (jj < tile) {
          const __half* vr = static_cast<const __half*>(v) + (row0 + j0 + jj) * kv_stride + col0 + 2 * lane;
#pragma unroll
          for (int i = 0; i < kP; ++i) raw[jj][i] = *reinterpret_cast<const __half2*>(vr + 64 * i);
        }
      }
#pragma unroll
      for (int jj = 0; jj < 32; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);  // 0 past the last key
        if (jj < tile) {
#pragma unroll
          for (int i = 0; i < kP; ++i) {
            const float2 e = __half22float2(raw[jj][i]);
            acc[2 * i] += pj * e.x;
            acc[2 * i + 1] += pj * e.y;
          }
        }
      }
    } else if constexpr (kHD > 0) {
#pragma unroll 8
      for (int jj = 0; jj < tile; ++jj) add_value(jj);
    } else {
#pragma unroll 4
      for (int jj = 0; jj < tile; ++jj) add_value(jj);
    }
    m = m_new;
  }
  // Merge the warps: a warp that had no key has l = 0 and zero sums.
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kPairs; ++i) {
    const int d = 64 * i + 2 * lane;
    if (d < head_dim) wacc[warp][d] = acc[2 * i];
    if (d + 1 < head_dim) wacc[warp][d + 1] = acc[2 * i + 1];
  }
  __syncthreads();
  float mx = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, wm[w]);
  float f[kWarps], lsum = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    f[w] = wl[w] > 0.0f ? expf(wm[w] - mx) : 0.0f;
    lsum += f[w] * wl[w];
  }
  if constexpr (kSplit) {  // [max, normalizer, sums...] of this block's keys
    float* slot = part + (static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y) * (head_dim + 2);
    if (tid == 0) {
      slot[0] = mx;
      slot[1] = lsum;
    }
    for (int d = tid; d < head_dim; d += blockDim.x) {
      float a = 0.0f;
      for (int w = 0; w < kWarps; ++w) a += f[w] * wacc[w][d];
      slot[2 + d] = a;
    }
    return;
  }
  const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
  if (q8.qx) {  // one token, head_dim % 32 == 0: each warp writes and quantizes whole groups
    for (int gl = warp; gl < head_dim / 32; gl += kWarps) {
      const int d = gl * 32 + lane;
      float a = 0.0f;
      for (int w = 0; w < kWarps; ++w) a += f[w] * wacc[w][d];
      out[qo + d] = a * inv;
      quantize_group_q8(a * inv, lane, qo / 32 + gl, q8);
    }
    return;
  }
  for (int d = tid; d < head_dim; d += blockDim.x) {
    float a = 0.0f;
    for (int w = 0; w < kWarps; ++w) a += f[w] * wacc[w][d];
    out[qo + d] = a * inv;
  }
}

template <bool F16>
void launch_typed(bool vec, unsigned blocks, cudaStream_t stream, const float* q, const void* k, const void* v,
                  int64_t kv_stride, const int64_t* key_row0, const int32_t* n_keys, int n_head, int n_head_kv,
                  int head_dim, float scale, float* out, Q8Row q8) {
  const bool next = vec && cuda_next_kernels();
  if (next && head_dim == 128) {
    TARS_LAUNCH_PDL(blocks, 32 * kWarps, 0, stream, attention_kernel<F16, true, 128, false>)
    (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, q8, 0, nullptr);
  } else if (next && head_dim == 64) {
    TARS_LAUNCH_PDL(blocks, 32 * kWarps, 0, stream, attention_kernel<F16, true, 64, false>)
    (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, q8, 0, nullptr);
  } else if (vec) {
    TARS_LAUNCH_PDL(blocks, 32 * kWarps, 0, stream, attention_kernel<F16, true, 0, false>)
    (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, q8, 0, nullptr);
  } else {
    TARS_LAUNCH_PDL(blocks, 32 * kWarps, 0, stream, attention_kernel<F16, false, 0, false>)
    (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, q8, 0, nullptr);
  }
}

// The split attention's second step: per (token, head), the blocks' partial
// states merged (each rescaled to the common maximum), normalized, written
// (and quantized, as the one-block kernel does, when q8 is given).
__global__ void __launch_bounds__(32 * kWarps)
    attention_merge_kernel(const float* part, int n_split, int head_dim, float* out, Q8Row q8) {
  pdl_prologue();
  const int64_t bh = blockIdx.x;  // token * n_head + head
  const float* base = part + bh * n_split * (head_dim + 2);
  float mx = -FLT_MAX;
  for (int s = 0; s < n_split; ++s) {
    if (base[s * (head_dim + 2) + 1] > 0.0f) mx = fmaxf(mx, base[s * (head_dim + 2)]);
  }
  float lsum = 0.0f;
  for (int s = 0; s < n_split; ++s) {
    const float l = base[s * (head_dim + 2) + 1];
    if (l > 0.0f) lsum += expf(base[s * (head_dim + 2)] - mx) * l;
  }
  const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
  auto value = [&](int d) {
    float a = 0.0f;
    for (int s = 0; s < n_split; ++s) {
      const float* slot = base + s * (head_dim + 2);
      if (slot[1] > 0.0f) a += expf(slot[0] - mx) * slot[2 + d];
    }
    return a * inv;
  };
  const int64_t qo = bh * head_dim;
  if (q8.qx) {
    const int lane = threadIdx.x % 32;
    for (int gl = threadIdx.x / 32; gl < head_dim / 32; gl += kWarps) {
      const float o = value(gl * 32 + lane);
      out[qo + gl * 32 + lane] = o;
      quantize_group_q8(o, lane, qo / 32 + gl, q8);
    }
    return;
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out[qo + d] = value(d);
}

constexpr int kSoftmaxThreads = 256;

__device__ float block_reduce(float v, float* shared, bool is_max) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, other) : v + other;
  }
  __syncthreads();  // shared may still be read by a previous call
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  float r = shared[0];
  for (int w = 1; w < kSoftmaxThreads / 32; ++w) r = is_max ? fmaxf(r, shared[w]) : r + shared[w];
  return r;
}

__global__ void __launch_bounds__(kSoftmaxThreads)
    masked_softmax_kernel(const float* s, int64_t ld, int cols, int n, const int32_t* n_keys, __half* p) {
  __shared__ float shared[kSoftmaxThreads / 32];
  const int64_t r = blockIdx.x;
  const int nk = min(n_keys[r % n], cols);
  const float* row = s + r * ld;
  __half* out = p + r * ld;
  float m = -FLT_MAX;
  for (int j = threadIdx.x; j < nk; j += kSoftmaxThreads) m = fmaxf(m, row[j]);
  m = block_reduce(m, shared, true);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < nk; j += kSoftmaxThreads) sum += expf(row[j] - m);
  sum = block_reduce(sum, shared, false);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int j = threadIdx.x; j < cols; j += kSoftmaxThreads) {
    out[j] = __float2half_rn(j < nk ? expf(row[j] - m) * inv : 0.0f);
  }
}

}  // namespace

void launch_masked_softmax(const float* s, int64_t ld, int cols, int rows, int n, const int32_t* n_keys, void* p_half,
                           cudaStream_t stream) {
  if (rows <= 0) return;
  TARS_LAUNCH(rows, kSoftmaxThreads, 0, stream, masked_softmax_kernel)
  (s, ld, cols, n, n_keys, static_cast<__half*>(p_half));
}

void launch_attention_split(const float* q, const void* k, const void* v, bool f16, int64_t kv_stride,
                            const int64_t* key_row0, const int32_t* n_keys, int n, int n_head, int n_head_kv,
                            int head_dim, float scale, float* out, int n_split, int split_len, float* part,
                            cudaStream_t stream, Q8Row q8) {
  if (n <= 0) return;
  if (n != 1 || head_dim % 32 != 0) q8 = Q8Row{};
  const dim3 grid(static_cast<unsigned>(n) * static_cast<unsigned>(n_head), static_cast<unsigned>(n_split));
  const bool vec = head_dim % 8 == 0 && kv_stride % 8 == 0 && reinterpret_cast<uintptr_t>(k) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(v) % 16 == 0;
  auto go = [&](auto f16_tag) {
    constexpr bool F16 = decltype(f16_tag)::value;
    if (vec && head_dim == 128) {
      TARS_LAUNCH_PDL(grid, 32 * kWarps, 0, stream, attention_kernel<F16, true, 128, true>)
      (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, Q8Row{}, split_len, part);
    } else if (vec && head_dim == 64) {
      TARS_LAUNCH_PDL(grid, 32 * kWarps, 0, stream, attention_kernel<F16, true, 64, true>)
      (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, Q8Row{}, split_len, part);
    } else if (vec) {
      TARS_LAUNCH_PDL(grid, 32 * kWarps, 0, stream, attention_kernel<F16, true, 0, true>)
      (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, Q8Row{}, split_len, part);
    } else {
      TARS_LAUNCH_PDL(grid, 32 * kWarps, 0, stream, attention_kernel<F16, false, 0, true>)
      (q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale, out, Q8Row{}, split_len, part);
    }
  };
  if (f16) go(std::true_type{});
  else go(std::false_type{});
  TARS_LAUNCH_PDL(static_cast<unsigned>(n) * static_cast<unsigned>(n_head), 32 * kWarps, 0, stream, attention_merge_kernel)
  (part, n_split, head_dim, out, q8);
}

void launch_attention(const float* q, const void* k, const void* v, bool f16, int64_t kv_stride,
                      const int64_t* key_row0, const int32_t* n_keys, int n, int n_head, int n_head_kv, int head_dim,
                      float scale, float* out, cudaStream_t stream, Q8Row q8) {
  if (n <= 0) return;
  if (n != 1 || head_dim % 32 != 0) q8 = Q8Row{};
  const unsigned blocks = static_cast<unsigned>(n) * static_cast<unsigned>(n_head);
  // 16-byte pieces of every key row need head_dim and the row stride in
  // multiples of 8 elements (and an aligned cache, as cudaMalloc's is).
  const bool vec = head_dim % 8 == 0 && kv_stride % 8 == 0 &&
                   reinterpret_cast<uintptr_t>(k) % 16 == 0 && reinterpret_cast<uintptr_t>(v) % 16 == 0;
  if (f16) {
    launch_typed<true>(vec, blocks, stream, q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim, scale,
                       out, q8);
  } else {
    launch_typed<false>(vec, blocks, stream, q, k, v, kv_stride, key_row0, n_keys, n_head, n_head_kv, head_dim,
                        scale, out, q8);
  }
}

}  // namespace tars::engine::cuda
