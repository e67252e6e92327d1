// Row and element-wise operations of the CUDA backend. Each follows the CPU
// backend's formula (backend_cpu.cpp) and precision choices: double where
// the CPU uses double (layer-norm statistics, sequence means; the rope
// angles are the CPU's own table, computed on the host).
#include <cuda_fp16.h>

#include <algorithm>

#include "engine/cuda/cuda_dispatch.cuh"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_launch.cuh"
#include "engine/cuda/cuda_next.h"
#include "engine/cuda/cuda_q8.cuh"

namespace tars::engine::cuda {
namespace {

constexpr int kRowThreads = 256;      // threads per row in the normalizations
constexpr int kOneRowThreads = 1024;  // the most threads of rms_norm_row_kernel (TARS_CUDA_NEXT, cuda_next.h)

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024; shared
// holds 32); every thread gets it.
template <class T>
__device__ T block_sum(T v, T* shared) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += shared[w];
  return total;
}

// out = (x + a) / rms * w per row (a may be null; with a, x becomes x + a).
// Each thread's loads are issued together (float4 when the row allows, four
// at a time): a row is read by one block, and one load after another per
// thread was latency-bound (13 us for a 4096-wide row on an H100). q: the
// row's 8-bit form as well (one row, d % 32 == 0).
__global__ void rms_norm_kernel(float* x, const float* a, float* out, const float* w, int d, float eps, Q8Row q) {
  pdl_prologue();
  __shared__ float shared[32];
  const int64_t off = static_cast<int64_t>(blockIdx.x) * d;
  float* r = x + off;
  const float* ar = a ? a + off : nullptr;
  float* o = out + off;
  auto al16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vec = d % 4 == 0 && al16(r) && al16(o) && al16(w) && (!ar || al16(ar));
  float ss = 0.0f;
  if (vec) {
    float4* r4 = reinterpret_cast<float4*>(r);
    const float4* a4 = reinterpret_cast<const float4*>(ar);
#pragma unroll 4
    for (int i = threadIdx.x; i < d / 4; i += blockDim.x) {
      float4 v = r4[i];
      if (a4) {
        const float4 b = a4[i];
        v.x = v.x + b.x;
        v.y = v.y + b.y;
        v.z = v.z + b.z;
        v.w = v.w + b.w;
        r4[i] = v;
      }
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
#pragma unroll 4
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
      float v = r[i];
      if (ar) r[i] = v = v + ar[i];
      ss += v * v;
    }
  }
  ss = block_sum(ss, shared);
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(ss) / d + eps));
  if (vec) {  // each thread reads back its own elements
    const float4* r4 = reinterpret_cast<const float4*>(r);
    float4* o4 = reinterpret_cast<float4*>(o);
    const float4* w4 = reinterpret_cast<const float4*>(w);
#pragma unroll 4
    for (int i = threadIdx.x; i < d / 4; i += blockDim.x) {
      float4 v = r4[i];
      const float4 g = w4[i];
      v.x = v.x * scale * g.x;
      v.y = v.y * scale * g.y;
      v.z = v.z * scale * g.z;
      v.w = v.w * scale * g.w;
      o4[i] = v;
    }
  } else {
    for (int i = threadIdx.x; i < d; i += blockDim.x) o[i] = r[i] * scale * w[i];
  }
  if (q.qx) {
    __syncthreads();  // out written by the whole block
    const int lane = threadIdx.x % 32;
    for (int g = threadIdx.x / 32; g < d / 32; g += blockDim.x / 32) quantize_group_q8(o[g * 32 + lane], lane, g, q);
  }
}

// The one-row norm with TARS_CUDA_NEXT (a decode step's): the row stays in
// registers. Each thread loads its float4s of x, a and w at once (kPer of
// them, element 4 i for i = thread + j * blockDim.x; w's before the
// dependent-launch wait), so the block's loads are all in flight together;
// the 8-bit form is made from the registers:
// a group of 32 elements is 8 consecutive threads' float4s, whose maximum and
// quant sum are shuffles among those 8 lanes (quantize_group_q8's arithmetic,
// so the same quants). Before, the one 256-thread block read its elements
// again for the products and once more to quantize them, one group per warp
// at a time.
// Requires d % 4 == 0, 16-byte aligned rows, blockDim.x a multiple of 32 and
// kPer * blockDim.x * 4 >= d; q (when given) needs d % 32 == 0.
template <int kPer>
__global__ void __launch_bounds__(1024) rms_norm_row_kernel(float* x, const float* a, float* out, const float* w, int d,
                                                            float eps, Q8Row q) {
  __shared__ float shared[32];
  const int n4 = d / 4, t = threadIdx.x, nt = blockDim.x;
  float4* x4 = reinterpret_cast<float4*>(x);
  const float4* a4 = reinterpret_cast<const float4*>(a);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  float4 v[kPer], g[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {  // the weights, which no kernel writes: before the wait (cuda_launch.cuh)
    const int i = t + j * nt;
    g[j] = i < n4 ? w4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  pdl_prologue();
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = t + j * nt;
    v[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (i < n4) {
      v[j] = x4[i];
      if (a4) {
        const float4 b = a4[i];
        v[j].x = v[j].x + b.x;
        v[j].y = v[j].y + b.y;
        v[j].z = v[j].z + b.z;
        v[j].w = v[j].w + b.w;
      }
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = t + j * nt;
    if (i < n4) {
      if (a4) x4[i] = v[j];
      ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
    }
  }
  ss = block_sum(ss, shared);
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(ss) / d + eps));
  float4* o4 = reinterpret_cast<float4*>(out);
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = t + j * nt;
    if (i < n4) {
      v[j].x = v[j].x * scale * g[j].x;
      v[j].y = v[j].y * scale * g[j].y;
      v[j].z = v[j].z * scale * g[j].z;
      v[j].w = v[j].w * scale * g[j].w;
      o4[i] = v[j];
    }
  }
  if (!q.qx) return;
  const bool word_stores = reinterpret_cast<uintptr_t>(q.qx) % 4 == 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    if (j * nt >= n4) break;  // the same for the whole block: every lane reaches the shuffles below
    const int i = t + j * nt;
    const bool in = i < n4;   // whole 8-lane groups are in or out (n4 % 8 == 0, nt % 8 == 0)
    float amax = in ? fmaxf(fmaxf(fabsf(v[j].x), fabsf(v[j].y)), fmaxf(fabsf(v[j].z), fabsf(v[j].w))) : 0.0f;
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float dq = q8_scale(amax);
    const int q0 = q8_quant(v[j].x, amax, dq), q1 = q8_quant(v[j].y, amax, dq), q2 = q8_quant(v[j].z, amax, dq),
              q3 = q8_quant(v[j].w, amax, dq);
    int s = in ? q0 + q1 + q2 + q3 : 0;
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (in) {
      if (word_stores) {
        reinterpret_cast<uint32_t*>(q.qx)[i] = (static_cast<uint32_t>(q0) & 0xffu) |
                                              ((static_cast<uint32_t>(q1) & 0xffu) << 8) |
                                              ((static_cast<uint32_t>(q2) & 0xffu) << 16) |
                                              (static_cast<uint32_t>(q3) << 24);
      } else {
        int8_t* p = q.qx + 4 * static_cast<int64_t>(i);
        p[0] = static_cast<int8_t>(q0);
        p[1] = static_cast<int8_t>(q1);
        p[2] = static_cast<int8_t>(q2);
        p[3] = static_cast<int8_t>(q3);
      }
      if (i % 8 == 0) {
        q.dx[i / 8] = dq;
        q.sx[i / 8] = s;
      }
    }
  }
}

__global__ void layer_norm_kernel(float* x, const float* w, const float* b, int d, float eps) {
  __shared__ double shared[32];
  float* r = x + static_cast<int64_t>(blockIdx.x) * d;
  double s = 0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) s += r[i];
  const double mean = block_sum(s, shared) / d;
  double v = 0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) v += (r[i] - mean) * (r[i] - mean);
  const double var = block_sum(v, shared) / d;
  const float inv = static_cast<float>(1.0 / sqrt(var + eps));
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float y = static_cast<float>(r[i] - mean) * inv * w[i];
    r[i] = b ? y + b[i] : y;
  }
}

// One thread per (token, head, rotated pair); the angles' cos/sin come
// from the host's table, so the rotation is the CPU backend's to the bit.
__global__ void rope_kernel(float* x, const float* cos_t, const float* sin_t, int n_tokens, int n_heads, int head_dim,
                            int n_rot, bool neox) {
  const int half = n_rot / 2;
  const int64_t total = static_cast<int64_t>(n_tokens) * n_heads * half;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(u % half);
    const int64_t th = u / half;  // token * n_heads + head
    const int64_t t = th / n_heads;
    const float c = cos_t[t * half + i], s = sin_t[t * half + i];
    float* v = x + th * head_dim;
    const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const float x0 = v[a], x1 = v[b];
    // Each product rounded on its own, as on the CPU (no fused multiply-add).
    v[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    v[b] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
  }
}

__global__ void kv_store_kernel(void* ck, void* cv, bool f16, int n_ctx, int kv_dim, const float* k,
                                const float* v, const int32_t* pos, const int32_t* seq, int n) {
  const int64_t total = static_cast<int64_t>(n) * kv_dim;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(u / kv_dim), j = static_cast<int>(u % kv_dim);
    const int64_t dst = (static_cast<int64_t>(seq[t]) * n_ctx + pos[t]) * kv_dim + j;
    if (f16) {
      static_cast<__half*>(ck)[dst] = __float2half_rn(k[u]);
      static_cast<__half*>(cv)[dst] = __float2half_rn(v[u]);
    } else {
      static_cast<float*>(ck)[dst] = k[u];
      static_cast<float*>(cv)[dst] = v[u];
    }
  }
}

// Element-wise kernels: Op is one of the functors below.
template <class Op>
__global__ void elementwise_kernel(float* a, const float* b, size_t n, Op op) {
  pdl_prologue();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    a[i] = op(a[i], b ? b[i] : 0.0f);
  }
}

struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct SwigluOp {
  __device__ float operator()(float g, float u) const { return g / (1.0f + expf(-g)) * u; }
};
struct GeluTanhOp {
  __device__ float operator()(float v, float) const {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    return 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
};
struct GeluErfOp {
  __device__ float operator()(float v, float) const { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }
};

template <class Op>
void launch_elementwise(float* a, const float* b, size_t n, Op op, cudaStream_t stream) {
  if (n == 0) return;
  TARS_LAUNCH_PDL(grid_for(static_cast<long long>(n), 256), 256, 0, stream, elementwise_kernel<Op>)(a, b, n, op);
}

__global__ void gather_rows_kernel(const float* src, const int32_t* rows, int n, int d, float* dst) {
  const int64_t total = static_cast<int64_t>(n) * d;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = u / d, j = u % d;
    dst[u] = src[static_cast<int64_t>(rows[i]) * d + j];
  }
}

// One thread per (sequence, column), summing in double as the CPU does.
__global__ void seq_mean_kernel(const float* x, const int32_t* start, int n_seqs, int d, float* out) {
  const int64_t total = static_cast<int64_t>(n_seqs) * d;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(u / d), j = static_cast<int>(u % d);
    const int r0 = start[i], r1 = start[i + 1];
    double acc = 0;
    for (int r = r0; r < r1; ++r) acc += x[static_cast<int64_t>(r) * d + j];
    out[u] = static_cast<float>(r1 > r0 ? acc * (1.0 / (r1 - r0)) : 0.0);
  }
}

// swiglu with the result's 8-bit form: one warp per group of 32.
__global__ void swiglu_q8_kernel(float* gate, const float* up, int64_t n_groups, Q8Row q) {
  pdl_prologue();
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32; g < n_groups; g += warps) {
    const int64_t i = g * 32 + lane;
    const float v = SwigluOp{}(gate[i], up[i]);
    gate[i] = v;
    quantize_group_q8(v, lane, g, q);
  }
}

// Rotated pair (a, b) of head row v (the arithmetic of rope_kernel).
__device__ __forceinline__ void rotate_pair(float* v, int i, int half, bool neox, float c, float s, int* pa, int* pb) {
  const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
  const float x0 = v[a], x1 = v[b];
  v[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
  v[b] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
  *pa = a;
  *pb = b;
}

__device__ __forceinline__ void cache_put(void* c, bool f16, int64_t i, float v) {
  if (f16) static_cast<__half*>(c)[i] = __float2half_rn(v);
  else static_cast<float*>(c)[i] = v;
}

// Work items, in order: q pairs, k pairs (rotated, stored), k's unrotated
// dimensions (stored), v elements (stored).
__global__ void rope_store_kernel(float* q, float* k, const float* v, const float* cos_t, const float* sin_t, int n,
                                  int n_head, int n_head_kv, int hd, int n_rot, bool neox, void* ck, void* cv, bool f16,
                                  int n_ctx, const int32_t* pos, const int32_t* seq) {
  pdl_prologue();
  const int half = n_rot / 2, rest = hd - n_rot, kv_dim = n_head_kv * hd;
  const int64_t nq = static_cast<int64_t>(n) * n_head * half, nkp = static_cast<int64_t>(n) * n_head_kv * half;
  const int64_t nku = static_cast<int64_t>(n) * n_head_kv * rest, nv = static_cast<int64_t>(n) * kv_dim;
  const int64_t total = nq + nkp + nku + nv;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int a, b;
    if (u < nq) {
      const int i = static_cast<int>(u % half);
      const int64_t th = u / half, t = th / n_head;
      rotate_pair(q + th * hd, i, half, neox, cos_t[t * half + i], sin_t[t * half + i], &a, &b);
      continue;
    }
    int64_t w = u - nq;
    if (w < nkp) {
      const int i = static_cast<int>(w % half);
      const int64_t th = w / half, t = th / n_head_kv;
      const int h = static_cast<int>(th % n_head_kv);
      float* kr = k + th * hd;
      rotate_pair(kr, i, half, neox, cos_t[t * half + i], sin_t[t * half + i], &a, &b);
      const int64_t row = (static_cast<int64_t>(seq[t]) * n_ctx + pos[t]) * kv_dim + h * hd;
      cache_put(ck, f16, row + a, kr[a]);
      cache_put(ck, f16, row + b, kr[b]);
      continue;
    }
    w -= nkp;
    if (w < nku) {
      const int j = n_rot + static_cast<int>(w % rest);
      const int64_t th = w / rest, t = th / n_head_kv;
      const int h = static_cast<int>(th % n_head_kv);
      cache_put(ck, f16, (static_cast<int64_t>(seq[t]) * n_ctx + pos[t]) * kv_dim + h * hd + j, k[th * hd + j]);
      continue;
    }
    w -= nku;
    const int64_t t = w / kv_dim;
    const int j = static_cast<int>(w % kv_dim);
    cache_put(cv, f16, (static_cast<int64_t>(seq[t]) * n_ctx + pos[t]) * kv_dim + j, v[w]);
  }
}

// An RMS norm of n rows: one block per row, or (TARS_CUDA_NEXT, one row
// that fits) rms_norm_row_kernel. The fused and unfused paths choose alike,
// so their sums agree bit for bit.
void launch_norm(float* x, const float* a, float* out, const float* w, int n, int d, float eps, Q8Row q,
                 cudaStream_t stream) {
  auto al16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const int n4 = d / 4;
  if (n == 1 && cuda_next_kernels() && d % 4 == 0 && n4 <= 4 * kOneRowThreads && al16(x) && al16(out) && al16(w) &&
      (!a || al16(a))) {
    const int threads = std::min(kOneRowThreads, (n4 + 31) / 32 * 32);
    const int per = (n4 + threads - 1) / threads;
    if (per == 1) {
      TARS_LAUNCH_PDL(1, threads, 0, stream, rms_norm_row_kernel<1>)(x, a, out, w, d, eps, q);
    } else if (per == 2) {
      TARS_LAUNCH_PDL(1, threads, 0, stream, rms_norm_row_kernel<2>)(x, a, out, w, d, eps, q);
    } else {
      TARS_LAUNCH_PDL(1, threads, 0, stream, rms_norm_row_kernel<4>)(x, a, out, w, d, eps, q);
    }
    return;
  }
  TARS_LAUNCH_PDL(n, kRowThreads, 0, stream, rms_norm_kernel)(x, a, out, w, d, eps, q);
}

}  // namespace

void launch_rms_norm_to(float* x, const float* a, float* out, const float* w, int n, int d, float eps, Q8Row q,
                        cudaStream_t stream) {
  if (n <= 0) return;
  if (n != 1 || d % 32 != 0) q = Q8Row{};
  launch_norm(x, a, out, w, n, d, eps, q, stream);
}

void launch_swiglu_q8(float* gate, const float* up, size_t n, Q8Row q, cudaStream_t stream) {
  if (n == 0) return;
  const long long groups = static_cast<long long>(n / 32);
  TARS_LAUNCH_PDL(grid_for(groups * 32, 256), 256, 0, stream, swiglu_q8_kernel)(gate, up, groups, q);
}

void launch_rope_store(float* q, float* k, const float* v, const float* cos, const float* sin, int n_tokens, int n_head,
                       int n_head_kv, int head_dim, int n_rot, bool mode_neox, void* cache_k, void* cache_v, bool f16,
                       int n_ctx, const int32_t* pos, const int32_t* seq, cudaStream_t stream) {
  const long long total = static_cast<long long>(n_tokens) * (static_cast<long long>(n_head) * (n_rot / 2) +
                                                              static_cast<long long>(n_head_kv) * (n_rot / 2) +
                                                              static_cast<long long>(n_head_kv) * (head_dim - n_rot) +
                                                              static_cast<long long>(n_head_kv) * head_dim);
  if (total <= 0) return;
  TARS_LAUNCH_PDL(grid_for(total, 256), 256, 0, stream, rope_store_kernel)
  (q, k, v, cos, sin, n_tokens, n_head, n_head_kv, head_dim, n_rot, mode_neox, cache_k, cache_v, f16, n_ctx, pos, seq);
}

namespace {
// Keeps the GPU busy for about `cycles` clock cycles (TARS_CUDA_PROFILE).
__global__ void hold_kernel(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}
}  // namespace

void launch_hold(long long cycles, cudaStream_t stream) { TARS_LAUNCH(1, 1, 0, stream, hold_kernel)(cycles); }

void launch_rms_norm(float* x, const float* w, int n, int d, float eps, cudaStream_t stream) {
  if (n <= 0) return;
  launch_norm(x, nullptr, x, w, n, d, eps, Q8Row{}, stream);
}

void launch_layer_norm(float* x, const float* w, const float* b, int n, int d, float eps, cudaStream_t stream) {
  if (n <= 0) return;
  TARS_LAUNCH(n, kRowThreads, 0, stream, layer_norm_kernel)(x, w, b, d, eps);
}

void launch_rope(float* x, const float* cos, const float* sin, int n_tokens, int n_heads, int head_dim, int n_rot,
                 bool mode_neox, cudaStream_t stream) {
  const long long total = static_cast<long long>(n_tokens) * n_heads * (n_rot / 2);
  if (total <= 0) return;
  TARS_LAUNCH(grid_for(total, 256), 256, 0, stream, rope_kernel)
  (x, cos, sin, n_tokens, n_heads, head_dim, n_rot, mode_neox);
}

void launch_kv_store(void* cache_k, void* cache_v, bool f16, int n_ctx, int kv_dim, const float* k, const float* v,
                     const int32_t* pos, const int32_t* seq, int n, cudaStream_t stream) {
  const long long total = static_cast<long long>(n) * kv_dim;
  if (total <= 0) return;
  TARS_LAUNCH(grid_for(total, 256), 256, 0, stream, kv_store_kernel)
  (cache_k, cache_v, f16, n_ctx, kv_dim, k, v, pos, seq, n);
}

void launch_add(float* a, const float* b, size_t n, cudaStream_t stream) { launch_elementwise(a, b, n, AddOp{}, stream); }
void launch_swiglu(float* gate, const float* up, size_t n, cudaStream_t stream) {
  launch_elementwise(gate, up, n, SwigluOp{}, stream);
}
void launch_gelu_tanh(float* x, size_t n, cudaStream_t stream) { launch_elementwise(x, nullptr, n, GeluTanhOp{}, stream); }
void launch_gelu_erf(float* x, size_t n, cudaStream_t stream) { launch_elementwise(x, nullptr, n, GeluErfOp{}, stream); }

namespace {
__global__ void f32_to_f16_kernel(const float* x, size_t n, __half* y) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    y[i] = __float2half_rn(x[i]);
  }
}
}  // namespace

void launch_f32_to_f16(const float* x, size_t n, void* y_half, cudaStream_t stream) {
  if (n == 0) return;
  TARS_LAUNCH(grid_for(static_cast<long long>(n), 256), 256, 0, stream, f32_to_f16_kernel)
  (x, n, static_cast<__half*>(y_half));
}

void launch_gather_rows(const float* src, const int32_t* rows, int n, int d, float* dst, cudaStream_t stream) {
  const long long total = static_cast<long long>(n) * d;
  if (total <= 0) return;
  TARS_LAUNCH(grid_for(total, 256), 256, 0, stream, gather_rows_kernel)(src, rows, n, d, dst);
}

void launch_seq_mean(const float* x, const int32_t* start, int n_seqs, int d, float* out, cudaStream_t stream) {
  const long long total = static_cast<long long>(n_seqs) * d;
  if (total <= 0) return;
  TARS_LAUNCH(grid_for(total, 256), 256, 0, stream, seq_mean_kernel)(x, start, n_seqs, d, out);
}

}  // namespace tars::engine::cuda
