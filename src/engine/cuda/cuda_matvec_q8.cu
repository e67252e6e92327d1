// The one-token mat-vec of quantized weights with 8-bit activations
// (CudaBackendOptions::exact_activations false): decode is memory-bound, so
// the weights are read once, as stored, and the arithmetic is integer dot
// products of four int8 pairs at a time (dp4a, on every card from 6.1 on:
// the GTX 1660 Super has no tensor cores, and needs none for this).
//
// Activations: each group of 32 elements g of x becomes a float scale
// d = amax / 127 and quants q = round-half-even(x / d) (all zero when amax is
// 0), and the group's quant sum. The host tests quantize the same way with the
// same IEEE operations, so their reference has the same quants.
//
// Weights: every quantized type is read 32 elements (a group) at a time as
// integers w = a * q + b with q fitting int8 (int_group32, cuda_quant.cuh):
// a is the scale of the group's first 16 elements (a_lo) and of its last 16
// (a_hi; they differ only for Q6_K, whose scales cover 16 elements), b the
// offset (Q4_1 / Q5_1 mins, Q4_K / Q5_K sub-block mins). Group dot product:
//   d_x * (a_lo * sum_lo(q * qx) + a_hi * sum_hi(q * qx) + b * sum(qx)).
#include <cuda_fp16.h>

#include "engine/cuda/cuda_dispatch.cuh"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_quant.cuh"

namespace tars::engine::cuda {
namespace {

// One warp per group of 32: scale, quants, quant sum.
__global__ void quantize_q8_kernel(const float* x, int64_t n_groups, int8_t* qx, float* dx, int* sx) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32; g < n_groups; g += warps) {
    const float v = x[g * 32 + lane];
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f;
    const int q = amax == 0.0f ? 0 : __float2int_rn(v / d);
    qx[g * 32 + lane] = static_cast<int8_t>(q);
    int s = q;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) {
      dx[g] = d;
      sx[g] = s;
    }
  }
}

constexpr int kWarps = 4;  // output rows per block (one warp each)

template <TensorType T>
__global__ void matvec_q8_kernel(const uint8_t* w, size_t row_bytes, int64_t cols, int64_t rows, const int8_t* qx,
                                 const float* dx, const int* sx, const float* bias, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (r >= rows) return;  // whole warps leave together
  const uint8_t* row = w + row_bytes * r;
  float sum = 0.0f;
  for (int64_t g = lane; g < cols / 32; g += 32) {
    IntGroup wg;
    int_group32<T>(row, g, wg);
    const int4* a = reinterpret_cast<const int4*>(qx + g * 32);
    const int4 a0 = a[0], a1 = a[1];
    int lo = __dp4a(wg.q[0], a0.x, 0);
    lo = __dp4a(wg.q[1], a0.y, lo);
    lo = __dp4a(wg.q[2], a0.z, lo);
    lo = __dp4a(wg.q[3], a0.w, lo);
    int hi = __dp4a(wg.q[4], a1.x, 0);
    hi = __dp4a(wg.q[5], a1.y, hi);
    hi = __dp4a(wg.q[6], a1.z, hi);
    hi = __dp4a(wg.q[7], a1.w, hi);
    sum += dx[g] * (wg.a_lo * static_cast<float>(lo) + wg.a_hi * static_cast<float>(hi) +
                    wg.b * static_cast<float>(sx[g]));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) y[r] = bias ? sum + bias[r] : sum;
}

}  // namespace

bool cuda_matvec_q8_supported(TensorType t) {
  switch (t) {
    case TensorType::kQ4_0: case TensorType::kQ4_1: case TensorType::kQ5_0: case TensorType::kQ5_1:
    case TensorType::kQ8_0: case TensorType::kQ4_K: case TensorType::kQ5_K: case TensorType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void launch_quantize_q8(const float* x, int64_t cols, int8_t* qx, float* dx, int* sx, cudaStream_t stream) {
  const int64_t groups = cols / 32;
  const int threads = 256;
  quantize_q8_kernel<<<grid_for(groups * 32, threads), threads, 0, stream>>>(x, groups, qx, dx, sx);
}

void launch_matvec_q8(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows, const int8_t* qx,
                      const float* dx, const int* sx, const float* bias, float* y, cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    if constexpr (!is_plain_type(T)) {
      const unsigned blocks = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
      matvec_q8_kernel<T><<<blocks, 32 * kWarps, 0, stream>>>(static_cast<const uint8_t*>(w), row_bytes, cols, rows,
                                                              qx, dx, sx, bias, y);
    }
  });
}

}  // namespace tars::engine::cuda
