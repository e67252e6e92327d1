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

#include <algorithm>
#include <cstdlib>
#include <string>

#include "engine/cuda/cuda_dispatch.cuh"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_launch.cuh"
#include "engine/cuda/cuda_next.h"
#include "engine/cuda/cuda_q8.cuh"
#include "engine/cuda/cuda_quant.cuh"

namespace tars::engine::cuda {
namespace {

// One warp per group of 32 (cuda_q8.cuh).
__global__ void quantize_q8_kernel(const float* x, int64_t n_groups, Q8Row q) {
  pdl_prologue();
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32; g < n_groups; g += warps) {
    quantize_group_q8(x[g * 32 + lane], lane, g, q);
  }
}

constexpr int kWarps = 4;          // output rows per block (one warp each)
constexpr int kChunkGroups = 128;  // groups of 32 a warp stages at a time (4096 elements)
constexpr int kPipeBlocksPerSm = 8;  // variant 2's grid: 32 warps per multiprocessor

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

// The matrices of one launch (same type and columns), rows numbered on
// from one to the next.
struct Parts {
  struct Part {
    const uint8_t* w;
    const uint8_t* w_end;  // w + rows * row_bytes: no load reaches past it
    int64_t rows;
    const float* bias;
    float* y;
  } part[kMaxMatvecParts];
  int count;
};

// Where one chunk of one row lies: the 16-byte words that cover it (from
// a0; the chunk starts skew bytes into the first), its nb blocks from block
// b0, and the row's matrix m and row r in it.
struct Chunk {
  const uint8_t* a0;
  const uint8_t* w_end;
  int skew, words, nb, m;
  int64_t r, b0;
};

// Blocks in the chunk starting at block b0 of a row of n_blocks.
template <TensorType T>
__device__ __forceinline__ int chunk_blocks(int64_t n_blocks, int64_t b0) {
  constexpr int kCB = kChunkGroups / BlockOf<T>::kGroups;
  return static_cast<int>(n_blocks - b0 < kCB ? n_blocks - b0 : kCB);
}

// Row `row` of the launch as matrix *m, row *r of it.
__device__ __forceinline__ void locate_row(const Parts& parts, int64_t row, int* m, int64_t* r) {
  int i = 0;
  while (i + 1 < parts.count && row >= parts.part[i].rows) row -= parts.part[i++].rows;
  *m = i;
  *r = row;
}

// y[r] of matrix m = sum (+ its bias).
__device__ __forceinline__ void store_row(const Parts& parts, int m, int64_t r, float sum) {
  const float* bias = parts.part[m].bias;
  parts.part[m].y[r] = bias ? sum + bias[r] : sum;
}

template <TensorType T>
__device__ __forceinline__ Chunk chunk_at(const Parts& parts, size_t row_bytes, int64_t n_blocks, int64_t row,
                                          int64_t b0) {
  constexpr int kB = BlockOf<T>::kBytes;
  Chunk c;
  locate_row(parts, row, &c.m, &c.r);
  row = c.r;
  c.b0 = b0;
  c.nb = chunk_blocks<T>(n_blocks, b0);
  const uint8_t* src = parts.part[c.m].w + row_bytes * row + b0 * kB;
  c.a0 = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(src) & ~uintptr_t{15});
  c.skew = static_cast<int>(src - c.a0);
  c.words = (c.skew + c.nb * kB + 15) / 16;
  c.w_end = parts.part[c.m].w_end;
  return c;
}

// Word i of a chunk (an aligned 16-byte load; the matrix's last word only up
// to its end, in 2-byte steps).
__device__ __forceinline__ uint4 load_word(const uint8_t* p, const uint8_t* w_end) {
  if (p + 16 <= w_end) return __ldg(reinterpret_cast<const uint4*>(p));
  uint16_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < 8 && p + 2 * k + 2 <= w_end; ++k) h[k] = reinterpret_cast<const uint16_t*>(p)[k];
  return make_uint4(h[0] | (uint32_t{h[1]} << 16), h[2] | (uint32_t{h[3]} << 16), h[4] | (uint32_t{h[5]} << 16),
                    h[6] | (uint32_t{h[7]} << 16));
}

// Each lane's words of a chunk (word lane + 32 j in regs[j]): loaded all at
// once, then stored to the warp's stage.
template <int kRegs>
__device__ __forceinline__ void load_chunk(const Chunk& c, int lane, uint4 (&regs)[kRegs]) {
#pragma unroll
  for (int j = 0; j < kRegs; ++j) {
    const int i = lane + 32 * j;
    if (i < c.words) regs[j] = load_word(c.a0 + 16 * i, c.w_end);
  }
}
template <int kRegs>
__device__ __forceinline__ void store_chunk(const Chunk& c, int lane, const uint4 (&regs)[kRegs], uint4* stage) {
#pragma unroll
  for (int j = 0; j < kRegs; ++j) {
    const int i = lane + 32 * j;
    if (i < c.words) stage[i] = regs[j];
  }
}

// One group's dot product: weights wg against x's quants a (32 bytes), with
// x's group scale d and quant sum s.
__device__ __forceinline__ float group_dot(const IntGroup& wg, int4 a0, int4 a1, float d, int s) {
  int lo = __dp4a(wg.q[0], a0.x, 0);
  lo = __dp4a(wg.q[1], a0.y, lo);
  lo = __dp4a(wg.q[2], a0.z, lo);
  lo = __dp4a(wg.q[3], a0.w, lo);
  int hi = __dp4a(wg.q[4], a1.x, 0);
  hi = __dp4a(wg.q[5], a1.y, hi);
  hi = __dp4a(wg.q[6], a1.z, hi);
  hi = __dp4a(wg.q[7], a1.w, hi);
  return d * (wg.a_lo * static_cast<float>(lo) + wg.a_hi * static_cast<float>(hi) + wg.b * static_cast<float>(s));
}

// This lane's share of a staged chunk's dot product with x's 8-bit form:
// group_dot of each of its groups, gl of the chunk (g of the row), with
// x's side from acts(gl, g) (into a0, a1, d, s).
template <TensorType T, class Acts>
__device__ __forceinline__ float chunk_dot(const uint8_t* local, const Chunk& c, int lane, Acts acts) {
  constexpr int kG = BlockOf<T>::kGroups;
  float sum = 0.0f;
  for (int gl = lane; gl < c.nb * kG; gl += 32) {
    IntGroup wg;
    int_group32<T>(local, gl, wg);
    int4 a0, a1;
    float d;
    int s;
    acts(gl, c.b0 * kG + gl, a0, a1, d, s);
    sum += group_dot(wg, a0, a1, d, s);
  }
  return sum;
}

// x's side of group g from the row's arrays in global memory.
struct GlobalActs {
  const int8_t* qx;
  const float* dx;
  const int* sx;
  __device__ void operator()(int, int64_t g, int4& a0, int4& a1, float& d, int& s) const {
    const int4* a = reinterpret_cast<const int4*>(qx + g * 32);
    a0 = a[0];
    a1 = a[1];
    d = dx[g];
    s = sx[g];
  }
};

// x's side of the chunk's group gl from shared memory (variant 4).
struct SharedActs {
  const int4* sqx;
  const float* sdx;
  const int* ssx;
  __device__ void operator()(int gl, int64_t, int4& a0, int4& a1, float& d, int& s) const {
    a0 = sqx[2 * gl];
    a1 = sqx[2 * gl + 1];
    d = sdx[gl];
    s = ssx[gl];
  }
};

__device__ __forceinline__ void finish_row(const Parts& parts, const Chunk& c, float sum, int lane) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) store_row(parts, c.m, c.r, sum);
}

// Variant 1: one warp per row. The row is read a chunk at a time into
// shared memory with aligned 16-byte loads, every byte once and coalesced
// over the warp (decoding straight from the 2-byte-aligned blocks took one
// small load per field and lane, and reached half the memory bandwidth);
// each lane then decodes its groups from shared memory.
// With dependent launches (TARS_CUDA_PDL, cuda_launch.cuh), the first chunk
// of weights is staged before the kernel waits for the one before it, whose
// end it then overlaps (variants 2 and 5 do the same with their first loads).
// kBatchLoads (variant 3, TARS_CUDA_NEXT): each lane's words of a chunk are
// loaded into registers all at once, then stored; the loop below lets the
// compiler issue one load at a time when it cannot unroll it.
template <TensorType T, bool kBatchLoads>
__global__ void __launch_bounds__(32 * kWarps) matvec_q8_kernel(const __grid_constant__ Parts parts, size_t row_bytes, int64_t cols,
                                                                 int64_t total_rows, const int8_t* __restrict__ qx,
                                                                 const float* __restrict__ dx,
                                                                 const int* __restrict__ sx) {
  constexpr int kG = BlockOf<T>::kGroups, kWords = StageOf<T>::kBytes / 16, kRegs = (kWords + 31) / 32;
  __shared__ uint4 stage[kWarps][kWords];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (row >= total_rows) {  // whole warps leave together
    pdl_prologue();
    return;
  }
  const int64_t n_blocks = cols / (32 * kG);
  auto stage_chunk = [&](const Chunk& c) {
    __syncwarp();  // the previous chunk's readers are done
    if constexpr (kBatchLoads) {
      uint4 regs[kRegs];
      load_chunk(c, lane, regs);
      store_chunk(c, lane, regs, stage[warp]);
    } else {
      for (int i = lane; i < c.words; i += 32) stage[warp][i] = load_word(c.a0 + 16 * i, c.w_end);
    }
    __syncwarp();
  };
  auto dot = [&](const Chunk& c) {
    return chunk_dot<T>(reinterpret_cast<const uint8_t*>(stage[warp]) + c.skew, c, lane, GlobalActs{qx, dx, sx});
  };
  Chunk c = chunk_at<T>(parts, row_bytes, n_blocks, row, 0);
  stage_chunk(c);
  pdl_prologue();  // the first chunk of weights is read: now x's 8-bit form, from the kernel before
  float sum = dot(c);
  for (int64_t b0 = kChunkGroups / kG; b0 < n_blocks; b0 += kChunkGroups / kG) {
    c = chunk_at<T>(parts, row_bytes, n_blocks, row, b0);
    stage_chunk(c);
    sum += dot(c);
  }
  finish_row(parts, c, sum, lane);
}

// Variant 4 (TARS_CUDA_MATVEC=4, or TARS_CUDA_NEXT=1): variant 3's loads,
// and the chunk's 8-bit activations copied once per block into shared
// memory, so each lane's groups read them there (not through L1/L2, one
// dependent load after another). Every warp takes part in the block's
// copies and barriers, also one past the last row.
template <TensorType T>
__global__ void __launch_bounds__(32 * kWarps) matvec_q8_shared_kernel(const __grid_constant__ Parts parts, size_t row_bytes, int64_t cols,
                                                                        int64_t total_rows,
                                                                        const int8_t* __restrict__ qx,
                                                                        const float* __restrict__ dx,
                                                                        const int* __restrict__ sx) {
  pdl_prologue();
  constexpr int kG = BlockOf<T>::kGroups, kWords = StageOf<T>::kBytes / 16, kRegs = (kWords + 31) / 32;
  __shared__ uint4 stage[kWarps][kWords];
  __shared__ int4 sqx[2 * kChunkGroups];
  __shared__ float sdx[kChunkGroups];
  __shared__ int ssx[kChunkGroups];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  const bool active = row < total_rows;
  const int64_t n_blocks = cols / (32 * kG);
  float sum = 0.0f;
  Chunk c{};
  for (int64_t b0 = 0; b0 < n_blocks; b0 += kChunkGroups / kG) {
    const int64_t g0 = b0 * kG;
    const int ng = chunk_blocks<T>(n_blocks, b0) * kG;  // groups of the chunk
    uint4 regs[kRegs];
    if (active) {
      c = chunk_at<T>(parts, row_bytes, n_blocks, row, b0);
      load_chunk(c, lane, regs);
    }
    __syncthreads();  // the previous chunk's readers are done
    const int4* qx4 = reinterpret_cast<const int4*>(qx + g0 * 32);
    for (int i = threadIdx.x; i < 2 * ng; i += blockDim.x) sqx[i] = qx4[i];
    for (int i = threadIdx.x; i < ng; i += blockDim.x) {
      sdx[i] = dx[g0 + i];
      ssx[i] = sx[g0 + i];
    }
    if (active) store_chunk(c, lane, regs, stage[warp]);
    __syncthreads();
    if (active) {
      sum += chunk_dot<T>(reinterpret_cast<const uint8_t*>(stage[warp]) + c.skew, c, lane, SharedActs{sqx, sdx, ssx});
    }
  }
  if (active) finish_row(parts, c, sum, lane);
}

// Variant 2 (TARS_CUDA_MATVEC=2): a grid sized to the device, each warp
// walking rows (row, row + all warps, ...) a chunk at a time, with the next
// chunk's words loaded into registers while the current one is decoded from
// shared memory, so a warp always has a load in flight.
template <TensorType T>
__global__ void __launch_bounds__(32 * kWarps) matvec_q8_pipe_kernel(const __grid_constant__ Parts parts, size_t row_bytes, int64_t cols,
                                                                      int64_t total_rows,
                                                                      const int8_t* __restrict__ qx,
                                                                      const float* __restrict__ dx,
                                                                      const int* __restrict__ sx) {
  constexpr int kG = BlockOf<T>::kGroups, kWords = StageOf<T>::kBytes / 16, kRegs = (kWords + 31) / 32;
  constexpr int kCB = kChunkGroups / kG;
  __shared__ uint4 stage[kWarps][kWords];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n_warps = static_cast<int64_t>(gridDim.x) * kWarps;
  int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (row >= total_rows) {
    pdl_prologue();
    return;
  }
  const int64_t n_blocks = cols / (32 * kG);
  uint4 regs[kRegs];
  int64_t b0 = 0;
  Chunk cur = chunk_at<T>(parts, row_bytes, n_blocks, row, b0);
  load_chunk(cur, lane, regs);
  pdl_prologue();  // the first chunk of weights is in flight: now wait for the kernel before
  float sum = 0.0f;
  for (;;) {
    __syncwarp();  // the previous chunk's readers are done
    store_chunk(cur, lane, regs, stage[warp]);
    __syncwarp();
    int64_t next_row = row, next_b0 = b0 + kCB;
    if (next_b0 >= n_blocks) {
      next_row = row + n_warps;
      next_b0 = 0;
    }
    const bool more = next_row < total_rows;
    Chunk next{};
    if (more) {
      next = chunk_at<T>(parts, row_bytes, n_blocks, next_row, next_b0);
      load_chunk(next, lane, regs);
    }
    sum += chunk_dot<T>(reinterpret_cast<const uint8_t*>(stage[warp]) + cur.skew, cur, lane, GlobalActs{qx, dx, sx});
    if (next_b0 == 0) {  // the row is done
      finish_row(parts, cur, sum, lane);
      sum = 0.0f;
    }
    if (!more) break;
    row = next_row;
    b0 = next_b0;
    cur = next;
  }
}

// Variant 5 (TARS_CUDA_MATVEC=5): no staging. For the types whose storage
// blocks tile 16-byte words evenly (UnitOf: eight Q4_0 blocks are 144 bytes,
// nine words; a Q4_K super-block is 144 bytes too), with rows of whole units
// and 16-byte aligned matrices, a lane loads one unit's words at once into
// registers and decodes its groups from them (int_group32 at offsets known at
// compile time, so the unit stays in registers). Half a warp per row (two
// rows per warp), each lane taking units sub, sub + 16, ...; each group's
// arithmetic is group_dot's, in another summation order. Q6_K (210-byte
// blocks) and the shapes that do not fit run variant 1.
template <TensorType T>
struct UnitOf {  // kWords 16-byte words holding kGroups groups of 32; 0: no unit
  static constexpr int kWords = T == TensorType::kQ4_0   ? 9     // 8 blocks of 18 bytes
                                : T == TensorType::kQ4_1 ? 5     // 4 of 20
                                : T == TensorType::kQ5_0 ? 11    // 8 of 22
                                : T == TensorType::kQ5_1 ? 3     // 2 of 24
                                : T == TensorType::kQ8_0 ? 17    // 8 of 34
                                : T == TensorType::kQ4_K ? 9     // a super-block of 144
                                : T == TensorType::kQ5_K ? 11    // a super-block of 176
                                                         : 0;
  static constexpr int kGroups = kWords * 16 / BlockOf<T>::kBytes * BlockOf<T>::kGroups;
};

template <TensorType T>
__global__ void __launch_bounds__(32 * kWarps) matvec_unit_kernel(const __grid_constant__ Parts parts, size_t row_bytes,
                                                                   int64_t cols, int64_t total_rows,
                                                                   const int8_t* __restrict__ qx,
                                                                   const float* __restrict__ dx,
                                                                   const int* __restrict__ sx) {
  constexpr int kW = UnitOf<T>::kWords, kG = UnitOf<T>::kGroups;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, sub = lane % 16;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * 2 + lane / 16;
  const bool active = row < total_rows;  // both halves stay for the shuffles below
  int m = 0;
  int64_t r = row;
  if (active) locate_row(parts, row, &m, &r);
  const int64_t n_units = cols / (32 * kG);
  const uint4* w = reinterpret_cast<const uint4*>(parts.part[m].w + row_bytes * r);
  uint4 words[kW];
  auto load_unit = [&](int64_t u) {
#pragma unroll
    for (int j = 0; j < kW; ++j) words[j] = __ldg(w + u * kW + j);
  };
  const bool first = active && sub < n_units;
  if (first) load_unit(sub);
  pdl_prologue();  // the first unit of weights is in flight: now wait for the kernel before (x's 8-bit form)
  float sum = 0.0f;
  if (first) {
    for (int64_t u = sub;;) {
      const uint8_t* unit = reinterpret_cast<const uint8_t*>(words);
#pragma unroll
      for (int gl = 0; gl < kG; ++gl) {
        IntGroup wg;
        int_group32<T>(unit, gl, wg);
        int4 a0, a1;
        float d;
        int s;
        GlobalActs{qx, dx, sx}(0, u * kG + gl, a0, a1, d, s);
        sum += group_dot(wg, a0, a1, d, s);
      }
      u += 16;
      if (u >= n_units) break;
      load_unit(u);
    }
  }
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (active && sub == 0) store_row(parts, m, r, sum);
}

// Whether variant 5 can read these matrices (type T).
template <TensorType T>
bool unit_fits(const Parts& p, size_t row_bytes, int64_t cols) {
  constexpr int kG = UnitOf<T>::kGroups;
  if constexpr (kG == 0) {
    return false;
  } else {
    if (cols % (32 * kG) != 0 || row_bytes % 16 != 0) return false;
    for (int i = 0; i < p.count; ++i) {
      if (reinterpret_cast<uintptr_t>(p.part[i].w) % 16 != 0) return false;
    }
    return true;
  }
}

// Streaming multiprocessors of the current device (cached per device).
int sm_count() {
  const int v = device_attribute<cudaDevAttrMultiProcessorCount>();
  return v > 0 ? v : 32;
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
  TARS_LAUNCH_PDL(grid_for(groups * 32, threads), threads, 0, stream, quantize_q8_kernel)(x, groups, Q8Row{qx, dx, sx});
}

void launch_matvec_q8_multi(TensorType type, const MatvecQ8Part* parts, int count, size_t row_bytes, int64_t cols,
                            const int8_t* qx, const float* dx, const int* sx, cudaStream_t stream, int variant) {
  if (count <= 0) return;
  static const int env_variant = [] {
    const char* v = std::getenv("TARS_CUDA_MATVEC");
    if (v && std::string(v) == "2") return 2;
    if (v && std::string(v) == "3") return 3;
    if (v && std::string(v) == "4") return 4;
    if (v && std::string(v) == "5") return 5;
    return cuda_next_kernels() ? 4 : 1;
  }();
  if (variant == 0) variant = env_variant;
  Parts p{};
  p.count = count < kMaxMatvecParts ? count : kMaxMatvecParts;
  int64_t rows = 0;
  for (int i = 0; i < p.count; ++i) {
    const uint8_t* w8 = static_cast<const uint8_t*>(parts[i].w);
    p.part[i] = {w8, w8 + row_bytes * parts[i].rows, parts[i].rows, parts[i].bias, parts[i].y};
    rows += parts[i].rows;
  }
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    if constexpr (!is_plain_type(T)) {
      long long blocks = (rows + kWarps - 1) / kWarps;
      if (variant == 5 && unit_fits<T>(p, row_bytes, cols)) {
        if constexpr (UnitOf<T>::kWords > 0) {
          blocks = (rows + 2 * kWarps - 1) / (2 * kWarps);
          TARS_LAUNCH_PDL(static_cast<unsigned>(blocks), 32 * kWarps, 0, stream, matvec_unit_kernel<T>)
          (p, row_bytes, cols, rows, qx, dx, sx);
        }
      } else if (variant == 2) {
        blocks = std::min<long long>(blocks, static_cast<long long>(sm_count()) * kPipeBlocksPerSm);
        TARS_LAUNCH_PDL(static_cast<unsigned>(blocks), 32 * kWarps, 0, stream, matvec_q8_pipe_kernel<T>)
        (p, row_bytes, cols, rows, qx, dx, sx);
      } else if (variant == 4) {
        TARS_LAUNCH_PDL(static_cast<unsigned>(blocks), 32 * kWarps, 0, stream, matvec_q8_shared_kernel<T>)
        (p, row_bytes, cols, rows, qx, dx, sx);
      } else if (variant == 3) {
        TARS_LAUNCH_PDL(static_cast<unsigned>(blocks), 32 * kWarps, 0, stream, matvec_q8_kernel<T, true>)
        (p, row_bytes, cols, rows, qx, dx, sx);
      } else {
        TARS_LAUNCH_PDL(static_cast<unsigned>(blocks), 32 * kWarps, 0, stream, matvec_q8_kernel<T, false>)
        (p, row_bytes, cols, rows, qx, dx, sx);
      }
    }
  });
}

void launch_matvec_q8(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows, const int8_t* qx,
                      const float* dx, const int* sx, const float* bias, float* y, cudaStream_t stream) {
  const MatvecQ8Part part{w, rows, bias, y};
  launch_matvec_q8_multi(type, &part, 1, row_bytes, cols, qx, dx, sx, stream);
}

}  // namespace tars::engine::cuda
