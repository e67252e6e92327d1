#pragma once
// cuBLAS, loaded at run time with dlopen: the binary then starts (and falls
// back to the CPU) on machines with neither a GPU driver nor the CUDA
// libraries, and uses libcublas.so.13 where CUDA is installed. Without it the
// backend uses its own SGEMM kernel (cuda_gemm.cu).
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

namespace tars::engine::cuda {

class Blas {
 public:
  // Loads libcublas and creates a handle bound to `stream`; nullptr (and
  // *reason) when the library or the handle is not available.
  // fast_math: cuBLAS's default math mode (tensor cores for FP16 inputs;
  // SGEMM stays strict FP32 either way: TF32 is never enabled); false: the
  // pedantic mode (reference algorithms only).
  static std::unique_ptr<Blas> open(cudaStream_t stream, bool fast_math, std::string* reason);
  ~Blas();

  // Y[n x rows] = X[n x cols] W^T, all row-major float, row t of Y at
  // y + t * ldy. Strict FP32 (no TF32), so results match a float reference.
  void sgemm_nt(const float* w, const float* x, int64_t rows, int64_t cols, int n, float* y, int64_t ldy);
  // The same with W and X in FP16 (IEEE half, row-major) and FP32
  // accumulation and output (cublasGemmEx, CUBLAS_COMPUTE_32F): tensor cores
  // where the card has them, FP16 units elsewhere.
  void gemm_f16_nt(const void* w, const void* x, int64_t rows, int64_t cols, int n, float* y, int64_t ldy);

 private:
  struct Impl;
  explicit Blas(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tars::engine::cuda
