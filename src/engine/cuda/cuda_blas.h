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
  // `batch` column-major products C_i[m x n] = alpha op(A_i) op(B_i), A_i
  // and B_i FP16, C_i FP32 (FP32 accumulation), op a transpose when trans_*;
  // problem i's operands start stride_* elements after problem i-1's
  // (cublasGemmStridedBatchedEx). The GEMM attention's two products.
  void gemm_f16_batched(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void* a, int64_t lda,
                        int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc,
                        int64_t stride_c, int batch);

 private:
  struct Impl;
  explicit Blas(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tars::engine::cuda
