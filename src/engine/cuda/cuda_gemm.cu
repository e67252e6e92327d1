// A plain tiled SGEMM: the product of a float weight matrix and a batch of
// activations when cuBLAS is not there to load (cuda_blas.cpp). Slow but
// simple and exact in its float arithmetic.
#include "engine/cuda/cuda_dispatch.cuh"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_launch.cuh"

namespace tars::engine::cuda {
namespace {

constexpr int kTile = 16;

// y[t][r] = sum_c x[t][c] w[r][c]; threadIdx.x walks r, threadIdx.y walks t.
__global__ void sgemm_nt_kernel(const float* w, const float* x, int64_t rows, int64_t cols, int n, float* y,
                                int64_t ldy) {
  __shared__ float xs[kTile][kTile + 1];
  __shared__ float ws[kTile][kTile + 1];
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile, t0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int tx = threadIdx.x, ty = threadIdx.y;
  float sum = 0.0f;
  for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
    const int64_t c = c0 + tx;
    xs[ty][tx] = (t0 + ty < n && c < cols) ? x[(t0 + ty) * cols + c] : 0.0f;
    ws[ty][tx] = (r0 + ty < rows && c < cols) ? w[(r0 + ty) * cols + c] : 0.0f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) sum += xs[ty][kk] * ws[tx][kk];
    __syncthreads();
  }
  if (t0 + ty < n && r0 + tx < rows) y[(t0 + ty) * ldy + r0 + tx] = sum;
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t rows, int n) {
  const int64_t total = rows * n;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < total;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[u] += bias[u % rows];
  }
}

__global__ void probe_kernel() {}

}  // namespace

cudaError_t launch_probe(cudaStream_t stream) {
  TARS_LAUNCH(1, 1, 0, stream, probe_kernel)();
  cudaError_t e = cudaGetLastError();
  return e != cudaSuccess ? e : cudaStreamSynchronize(stream);
}

void launch_sgemm_nt(const float* w, const float* x, int64_t rows, int64_t cols, int n, float* y, int64_t ldy,
                     cudaStream_t stream) {
  if (n <= 0 || rows <= 0) return;
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((rows + kTile - 1) / kTile), static_cast<unsigned>((n + kTile - 1) / kTile));
  TARS_LAUNCH(grid, block, 0, stream, sgemm_nt_kernel)(w, x, rows, cols, n, y, ldy);
}

void launch_add_bias(float* y, const float* bias, int64_t rows, int n, cudaStream_t stream) {
  const long long total = static_cast<long long>(rows) * n;
  if (total <= 0) return;
  TARS_LAUNCH(grid_for(total, 256), 256, 0, stream, add_bias_kernel)(y, bias, rows, n);
}

}  // namespace tars::engine::cuda
