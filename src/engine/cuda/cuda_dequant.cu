// Weight decoding on the device: embedding rows, whole-matrix dequantization
// (before a GEMM), and the n == 1 mat-vec that reads the blocks directly.
#include "engine/cuda/cuda_dispatch.cuh"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_quant.cuh"

namespace tars::engine::cuda {
namespace {

// Decodes rows of a matrix: output row r is source row ids[r] (or r when ids
// is null). One thread per element (plain types) or per 32-element group.
__device__ __forceinline__ void store_elem(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_elem(__half* p, float v) { *p = __float2half_rn(v); }

template <TensorType T, typename Out>
__global__ void dequant_rows_kernel(const uint8_t* w, size_t row_bytes, int64_t cols, const int32_t* ids,
                                    int64_t n_rows, Out* out) {
  constexpr bool kPlain = is_plain_type(T);
  const int64_t units = kPlain ? cols : cols / 32;
  const int64_t total = n_rows * units;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = u / units, i = u % units;
    const int64_t src = ids ? ids[r] : r;
    const uint8_t* row = w + row_bytes * src;
    if constexpr (kPlain) {
      store_elem(out + r * cols + i, plain_elem<T>(row, i));
    } else {
      float y[32];
      dequant_group32<T>(row, i, y);
      Out* o = out + r * cols + i * 32;
#pragma unroll
      for (int j = 0; j < 32; ++j) store_elem(o + j, y[j]);
    }
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
    const int64_t units = static_cast<int64_t>(n) * (is_plain_type(T) ? cols : cols / 32);
    dequant_rows_kernel<T><<<grid_for(units, 256), 256, 0, stream>>>(static_cast<const uint8_t*>(table),
                                                                      row_bytes, cols, ids, n, out);
  });
}

void launch_dequantize(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows, float* y,
                       cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    const int64_t units = rows * (is_plain_type(T) ? cols : cols / 32);
    dequant_rows_kernel<T><<<grid_for(units, 256), 256, 0, stream>>>(static_cast<const uint8_t*>(w), row_bytes,
                                                                      cols, nullptr, rows, y);
  });
}

void launch_dequantize_f16(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows,
                           void* y_half, cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    const int64_t units = rows * (is_plain_type(T) ? cols : cols / 32);
    dequant_rows_kernel<T><<<grid_for(units, 256), 256, 0, stream>>>(static_cast<const uint8_t*>(w), row_bytes,
                                                                      cols, nullptr, rows,
                                                                      static_cast<__half*>(y_half));
  });
}

void launch_matvec(TensorType type, const void* w, size_t row_bytes, int64_t cols, int64_t rows, const float* x,
                   const float* bias, float* y, cudaStream_t stream) {
  dispatch_weight_type(type, [&](auto tag) {
    constexpr TensorType T = decltype(tag)::value;
    const unsigned blocks = static_cast<unsigned>((rows + kMatvecWarps - 1) / kMatvecWarps);
    matvec_kernel<T><<<blocks, 32 * kMatvecWarps, 0, stream>>>(static_cast<const uint8_t*>(w), row_bytes, cols,
                                                                rows, x, bias, y);
  });
}

}  // namespace tars::engine::cuda
