#pragma once
// 8-bit activations for the integer mat-vec (cuda_matvec_q8.cu): each group
// of 32 elements becomes a float scale d = amax / 127, quants
// q = round-half-even(v / d) (all zero when amax is 0) and the quants' sum.
// One warp per group, lane i holding element i. Shared by the standalone
// quantization kernel and the kernels that produce a decode step's
// activations and quantize them on the way out (norms, swiglu, attention):
// the same operations, so the same quants.
#include <cstdint>

#include "engine/cuda/cuda_kernels.h"  // Q8Row

namespace tars::engine::cuda {

// A group's scale from its largest magnitude, and element v's quant.
__device__ __forceinline__ float q8_scale(float amax) { return amax / 127.0f; }
__device__ __forceinline__ int q8_quant(float v, float amax, float d) {
  return amax == 0.0f ? 0 : __float2int_rn(v / d);
}

// The calling warp quantizes group g (element v of lane `lane`) into q.
__device__ __forceinline__ void quantize_group_q8(float v, int lane, int64_t g, const Q8Row& q) {
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = q8_scale(amax);
  const int qv = q8_quant(v, amax, d);
  q.qx[g * 32 + lane] = static_cast<int8_t>(qv);
  int s = qv;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) {
    q.dx[g] = d;
    q.sx[g] = s;
  }
}

}  // namespace tars::engine::cuda
