// Weight decoding on the device: embedding rows, whole-matrix dequantization
// (before a GEMM), and the n == 1 mat-vec that reads the blocks directly.
#include "engine/cuda/cuda_dispatch.cuh"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_launch.cuh"
#include "engine/cuda/cuda_quant.cuh"

namespace tars::engine::cuda {
namespace {

// Decodes rows of a matrix: output row r is source row ids[r] (or r when ids
// is null).
__device__ __forceinline__ void store_elem(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_elem(__half* p, float v) { *p = __float2half_rn(v); }

// Plain types: one thread per element (reads and writes are coalesced).
template <TensorType T, typename Out>
__global__ void dequant_plain_kernel(const uint8_t* w, size_t row_bytes, int64_t cols, const int32_t* ids,
                                     int64_t n_rows, Out* out) {
  const int64_t total = n_rows * cols;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = u / cols, i = u % cols;
    const int64_t src = ids ? ids[r] : r;
    store_elem(out + u, plain_elem<T>(w + row_bytes * src, i));
  }
}

constexpr int kDequantWarps = 4;

// Quantized types: each warp takes 32 consecutive groups of the output
// (1024 elements, contiguous: rows are whole groups), each lane decodes one
// group, and the warp writes them out through shared memory, 32 consecutive
// elements per store (a lane writing its own 32 elements made every store
// instruction touch 32 separate sectors). The tile's rows are padded to 33
// so that neither the per-group writes nor the per-element reads collide in
// a bank.
template <TensorType T, typename Out>
__global__ void __launch_bounds__(32 * kDequantWarps) dequant_rows_kernel(const uint8_t* w, size_t row_bytes,
                                                                          int64_t cols, const int32_t* ids,
                                                                          int64_t n_rows, Out* out) {
  __shared__ float tile[kDequantWarps][32][33];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t per_row = cols / 32, total = n_rows * per_row;
  const int64_t n_units = (total + 31) / 32;
  for (int64_t unit = static_cast<int64_t>(blockIdx.x) * kDequantWarps + warp; unit < n_units;
       unit += static_cast<int64_t>(gridDim.x) * kDequantWarps) {
    const int64_t g = unit * 32 + lane;
    if (g < total) {
      const int64_t r = g / per_row, i = g % per_row;
      const int64_t src = ids ? ids[r] : r;
      float y[32];
      dequant_group32<T>(w + row_bytes * src, i, y);
#pragma unroll
      for (int e = 0; e < 32; ++e) tile[warp][lane][e] = y[e];
    }
    __syncwarp();
    const int64_t base = unit * 32 * 32;  // output element of the unit's first group
    const int n_groups = static_cast<int>(total - unit * 32 < 32 ? total - unit * 32 : 32);
    for (int k = 0; k < n_groups; ++k) store_elem(out + base + k * 32 + lane, tile[warp][k][lane]);
    __syncwarp();  // the tile is rewritten by the next unit
  }
}

template <TensorType T, typename Out>
void launch_dequant_rows(const uint8_t* w, size_t row_bytes, int64_t cols, const int32_t* ids, int64_t n_rows,
                         Out* out, cudaStream_t stream) {
  if constexpr (is_plain_type(T)) {
    TARS_LAUNCH(grid_for(n_rows * cols, 256), 256, 0, stream, dequant_plain_kernel<T, Out>)
    (w, row_bytes, cols, ids, n_rows, out);
  } else {
    const int64_t units = (n_rows * (cols / 32) + 31) / 32;
    TARS_LAUNCH(grid_for(units * 32, 32 * kDequantWarps), 32 * kDequantWarps, 0, stream, dequant_rows_kernel<T, Out>)
    (w, row_bytes, cols, ids, n_rows, out);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr int kMatvecWarps = 4;  // output rows per block (one warp each)

// y[r] = W[r] . x (+ bias[r]); one warp per row, lanes striding over the
// row's 32-element groups (quantized) or elements (plain types).
template <TensorType T>
__global__ void matvec_kernel(const uint8_t* w, size_t row_bytes, int64_t cols, int64_t rows,
                              const float* x, const float* bias, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kMatvecWarps + threadIdx.x / 32;
  if (r >= rows) return;  // whole warps leave together
  const uint8_t* row = w + row_bytes * r;
  float sum = 0.0f;
  if constexpr (is_plain_type(T)) {
    for (int64_t i = lane; i < cols; i += 32) sum += plain_elem<T>(row, i) * x[i];
  } else {
    for (int64_t g = lane; g < cols / 32; g += 32) {
      float v[32];
      dequant_group32<T>(row, g, v);
      const float* xs = x + g * 32;
#pragma unroll
      for (int j = 0; j < 32; ++j) sum += v[j] * xs[j];
    }
  }
  sum = warp_sum(sum);
  if (lane == 0) y[r] = bias ? sum + bias[r] : sum;
}

}  // namespace

bool cuda_type_supported(TensorType t) {
  return dispatch_weight_type(t, [](auto) {});
}

bool cuda_matvec_supported(TensorType t) {
  return cuda_type_supported(t);  // every decodable type has a (block-reading) mat-vec
}

void launch_get_rows(TensorType type, const void* table, size_t row_bytes, int64_t cols, const int32_t* ids,
                     int n, float* out, cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    launch_dequant_rows<T>(static_cast<const uint8_t*>(table), row_bytes, cols, ids, n, out, stream);
  });
}

void launch_dequantize(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows, float* y,
                       cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    launch_dequant_rows<T>(static_cast<const uint8_t*>(w), row_bytes, cols, nullptr, rows, y, stream);
  });
}

void launch_dequantize_f16(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows,
                           void* y_half, cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    launch_dequant_rows<T>(static_cast<const uint8_t*>(w), row_bytes, cols, nullptr, rows,
                           static_cast<__half*>(y_half), stream);
  });
}

void launch_matvec(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows, const float* x,
                   const float* bias, float* y, cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    const unsigned blocks = static_cast<unsigned>((rows + kMatvecWarps - 1) / kMatvecWarps);
    TARS_LAUNCH(blocks, 32 * kMatvecWarps, 0, stream, matvec_kernel<T>)
    (static_cast<const uint8_t*>(w), row_bytes, cols, rows, x, bias, y);
  });
}

}  // namespace tars::engine::cuda
