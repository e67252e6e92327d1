// The cuBLAS functions the backend loads (cuda_blas.cpp), for the kernel
// emulator: plain column-major products on host memory, accumulated in
// double. Built as a shared library that the emulated build's Blas::open
// loads by path (TARS_CUBLAS_LIBRARY) in place of libcublas.so.13.
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cstdint>

struct cublasContext {
  int unused = 0;
};

namespace {

double element(const void* p, cudaDataType t, int64_t i) {
  if (t == CUDA_R_16F) return static_cast<double>(__half2float(static_cast<const __half*>(p)[i]));
  return static_cast<double>(static_cast<const float*>(p)[i]);
}

// C = alpha op(A) op(B) + beta C, column-major, op(A) m x k, op(B) k x n.
cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, double alpha, const void* a,
                    cudaDataType at, int64_t lda, const void* b, cudaDataType bt, int64_t ldb, double beta, void* c,
                    cudaDataType ct, int64_t ldc) {
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if ((at != CUDA_R_16F && at != CUDA_R_32F) || (bt != CUDA_R_16F && bt != CUDA_R_32F) || ct != CUDA_R_32F) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  float* out = static_cast<float*>(c);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      double s = 0;
      for (int l = 0; l < k; ++l) {
        const int64_t ai = ta == CUBLAS_OP_N ? i + l * lda : l + i * lda;
        const int64_t bi = tb == CUBLAS_OP_N ? l + j * ldb : j + l * ldb;
        s += element(a, at, ai) * element(b, bt, bi);
      }
      float& y = out[i + j * ldc];
      y = static_cast<float>(alpha * s + (beta != 0.0 ? beta * static_cast<double>(y) : 0.0));
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasSgemm_v2(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                              float* c, int ldc) {
  return gemm(ta, tb, m, n, k, *alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb, *beta, c, CUDA_R_32F, ldc);
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType at, int lda, const void* b, cudaDataType bt,
                            int ldb, const void* beta, void* c, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), a, at, lda, b, bt, ldb,
              *static_cast<const float*>(beta), c, ct, ldc);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* a, cudaDataType at, int lda,
                                          long long stride_a, const void* b, cudaDataType bt, int ldb,
                                          long long stride_b, const void* beta, void* c, cudaDataType ct, int ldc,
                                          long long stride_c, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
  if (compute != CUBLAS_COMPUTE_32F || batch < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  auto at_size = at == CUDA_R_16F ? 2 : 4, bt_size = bt == CUDA_R_16F ? 2 : 4;
  for (int i = 0; i < batch; ++i) {
    const cublasStatus_t s =
        gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), static_cast<const char*>(a) + i * stride_a * at_size,
             at, lda, static_cast<const char*>(b) + i * stride_b * bt_size, bt, ldb, *static_cast<const float*>(beta),
             static_cast<float*>(c) + i * stride_c, ct, ldc);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
