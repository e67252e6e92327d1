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
// Weights: each row is staged through shared memory a chunk at a time (see
// matvec_q8_kernel), then every quantized type is read 32 elements (a group) at a time as
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

constexpr int kWarps = 4;          // output rows per block (one warp each)
constexpr int kChunkGroups = 128;  // groups of 32 a warp stages at a time (4096 elements)

// Storage blocks: groups of 32 elements per block and bytes per block.
template <TensorType T>
struct BlockOf {
  static constexpr int kGroups = (T == TensorType::kQ4_K || T == TensorType::kQ5_K || T == TensorType::kQ6_K) ? 8 : 1;
  static constexpr int kBytes = T == TensorType::kQ4_0   ? sizeof(BlockQ4_0)
                                : T == TensorType::kQ4_1 ? sizeof(BlockQ4_1)
                                : T == TensorType::kQ5_0 ? sizeof(BlockQ5_0)
                                : T == TensorType::kQ5_1 ? sizeof(BlockQ5_1)
                                : T == TensorType::kQ8_0 ? sizeof(BlockQ8_0)
                                : T == TensorType::kQ4_K ? sizeof(BlockQ4_K)
                                : T == TensorType::kQ5_K ? sizeof(BlockQ5_K)
                                                         : sizeof(BlockQ6_K);
};

// Bytes of shared memory a warp stages: a chunk, plus the 16-byte word the
// chunk's first block may start inside of (blocks are only 2-byte aligned).
template <TensorType T>
struct StageOf {
  static constexpr int kBytes = (kChunkGroups / BlockOf<T>::kGroups * BlockOf<T>::kBytes + 15) / 16 * 16 + 16;
};

// One warp per row. The row is read a chunk at a time into shared memory
// with aligned 16-byte loads, every byte once and coalesced over the warp
// (decoding straight from the 2-byte-aligned blocks took one small load per
// field and lane, and reached half the memory bandwidth); each lane then
// decodes its groups from shared memory.
template <TensorType T>
__global__ void __launch_bounds__(32 * kWarps) matvec_q8_kernel(const uint8_t* __restrict__ w, size_t row_bytes,
                                                                 int64_t cols, int64_t rows, const uint8_t* w_end,
                                                                 const int8_t* __restrict__ qx,
                                                                 const float* __restrict__ dx,
                                                                 const int* __restrict__ sx,
                                                                 const float* __restrict__ bias, float* y) {
  constexpr int kG = BlockOf<T>::kGroups, kB = BlockOf<T>::kBytes, kWords = StageOf<T>::kBytes / 16;
  __shared__ uint4 stage[kWarps][kWords];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= rows) return;  // whole warps leave together
  const uint8_t* row = w + row_bytes * r;
  const int64_t n_blocks = cols / (32 * kG);
  float sum = 0.0f;
  for (int64_t b0 = 0; b0 < n_blocks; b0 += kChunkGroups / kG) {
    const int nb = static_cast<int>(n_blocks - b0 < kChunkGroups / kG ? n_blocks - b0 : kChunkGroups / kG);
    const uint8_t* src = row + b0 * kB;
    const uint8_t* a0 = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(src) & ~uintptr_t{15});
    const int skew = static_cast<int>(src - a0);
    const int words = (skew + nb * kB + 15) / 16;
    __syncwarp();  // the previous chunk's readers are done
    for (int i = lane; i < words; i += 32) {
      const uint8_t* p = a0 + 16 * i;
      if (p + 16 <= w_end) {
        stage[warp][i] = __ldg(reinterpret_cast<const uint4*>(p));
      } else {  // the matrix's last word: only its bytes before the end exist (2-byte steps)
        uint16_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int k = 0; k < 8 && p + 2 * k + 2 <= w_end; ++k) h[k] = reinterpret_cast<const uint16_t*>(p)[k];
        stage[warp][i] = make_uint4(h[0] | (uint32_t{h[1]} << 16), h[2] | (uint32_t{h[3]} << 16),
                                    h[4] | (uint32_t{h[5]} << 16), h[6] | (uint32_t{h[7]} << 16));
      }
    }
    __syncwarp();
    const uint8_t* local = reinterpret_cast<const uint8_t*>(stage[warp]) + skew;
    for (int gl = lane; gl < nb * kG; gl += 32) {
      IntGroup wg;
      int_group32<T>(local, gl, wg);
      const int64_t g = b0 * kG + gl;
      const int4* a = reinterpret_cast<const int4*>(qx + g * 32);
      const int4 a0v = a[0], a1v = a[1];
      int lo = __dp4a(wg.q[0], a0v.x, 0);
      lo = __dp4a(wg.q[1], a0v.y, lo);
      lo = __dp4a(wg.q[2], a0v.z, lo);
      lo = __dp4a(wg.q[3], a0v.w, lo);
      int hi = __dp4a(wg.q[4], a1v.x, 0);
      hi = __dp4a(wg.q[5], a1v.y, hi);
      hi = __dp4a(wg.q[6], a1v.z, hi);
      hi = __dp4a(wg.q[7], a1v.w, hi);
      sum += dx[g] * (wg.a_lo * static_cast<float>(lo) + wg.a_hi * static_cast<float>(hi) +
                      wg.b * static_cast<float>(sx[g]));
    }
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
      const uint8_t* w8 = static_cast<const uint8_t*>(w);
      matvec_q8_kernel<T><<<blocks, 32 * kWarps, 0, stream>>>(w8, row_bytes, cols, rows, w8 + row_bytes * rows, qx,
                                                              dx, sx, bias, y);
    }
  });
}

}  // namespace tars::engine::cuda
