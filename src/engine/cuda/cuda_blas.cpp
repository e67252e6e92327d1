// cuBLAS through dlopen (cuda_blas.h says why). The header is used for its
// types and constants only; every function comes from dlsym.
#include "engine/cuda/cuda_blas.h"

#include <cublas_v2.h>
#include <dlfcn.h>

#include "common/error.h"

namespace tars::engine::cuda {

struct Blas::Impl {
  void* lib = nullptr;
  cublasHandle_t handle = nullptr;
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  // The C entry point (the header also declares a C++ overload taking the
  // legacy cudaDataType compute type, so decltype cannot name it).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long, const void*,
                                            cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                            long long, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
};

std::unique_ptr<Blas> Blas::open(cudaStream_t stream, bool fast_math, std::string* reason) {
  auto impl = std::make_unique<Impl>();
#ifdef TARS_CUBLAS_LIBRARY
  // The kernel emulator's stand-in (tests/gpu/emu/emu_cublas.cpp), by path.
  for (const char* name : {TARS_CUBLAS_LIBRARY}) {
#else
  for (const char* name : {"libcublas.so.13", "libcublas.so"}) {
#endif
    impl->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (impl->lib) break;
  }
  if (!impl->lib) {
    if (reason) *reason = "libcublas.so.13 not found (install the CUDA 13 libraries or add them to LD_LIBRARY_PATH)";
    return nullptr;
  }
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(impl->lib, name));
    return fn != nullptr;
  };
  if (!sym(impl->create, "cublasCreate_v2") || !sym(impl->destroy, "cublasDestroy_v2") ||
      !sym(impl->set_stream, "cublasSetStream_v2") || !sym(impl->set_math_mode, "cublasSetMathMode") ||
      !sym(impl->sgemm, "cublasSgemm_v2") || !sym(impl->gemm_ex, "cublasGemmEx") ||
      !sym(impl->gemm_strided_batched_ex, "cublasGemmStridedBatchedEx")) {
    if (reason) *reason = "libcublas lacks an expected function";
    dlclose(impl->lib);
    return nullptr;
  }
  if (impl->create(&impl->handle) != CUBLAS_STATUS_SUCCESS) {
    if (reason) *reason = "cublasCreate failed";
    dlclose(impl->lib);
    return nullptr;
  }
  impl->set_stream(impl->handle, stream);
  // Neither mode enables TF32, so SGEMM is strict FP32 in both.
  impl->set_math_mode(impl->handle, fast_math ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH);
  return std::unique_ptr<Blas>(new Blas(std::move(impl)));
}

Blas::Blas(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Blas::~Blas() {
  if (impl_->handle) impl_->destroy(impl_->handle);
  // The library stays loaded: cuBLAS may keep state tied to the CUDA context.
}

void Blas::sgemm_nt(const float* w, const float* x, int64_t rows, int64_t cols, int n, float* y, int64_t ldy) {
  // Column-major view: W (row-major rows x cols) is W^T with ld = cols, X is
  // [cols x n] with ld = cols, Y is [rows x n] with ld = ldy:
  // Y = op_T(W^T) X.
  const float one = 1.0f, zero = 0.0f;
  const cublasStatus_t s =
      impl_->sgemm(impl_->handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), n, static_cast<int>(cols), &one, w,
                   static_cast<int>(cols), x, static_cast<int>(cols), &zero, y, static_cast<int>(ldy));
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(ErrorCode::kInternal, "cublasSgemm failed with status " + std::to_string(static_cast<int>(s)) +
                                          " (rows " + std::to_string(rows) + ", cols " + std::to_string(cols) +
                                          ", n " + std::to_string(n) + ")");
  }
}

void Blas::gemm_f16_nt(const void* w, const void* x, int64_t rows, int64_t cols, int n, float* y, int64_t ldy) {
  // The column-major view of sgemm_nt, with 16-bit A and B.
  const float one = 1.0f, zero = 0.0f;
  const cublasStatus_t s = impl_->gemm_ex(
      impl_->handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), n, static_cast<int>(cols), &one, w, CUDA_R_16F,
      static_cast<int>(cols), x, CUDA_R_16F, static_cast<int>(cols), &zero, y, CUDA_R_32F, static_cast<int>(ldy),
      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(ErrorCode::kInternal, "cublasGemmEx (FP16) failed with status " + std::to_string(static_cast<int>(s)) +
                                          " (rows " + std::to_string(rows) + ", cols " + std::to_string(cols) +
                                          ", n " + std::to_string(n) + ")");
  }
}

void Blas::gemm_f16_batched(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void* a, int64_t lda,
                            int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc,
                            int64_t stride_c, int batch) {
  const float zero = 0.0f;
  const cublasStatus_t s = impl_->gemm_strided_batched_ex(
      impl_->handle, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, a,
      CUDA_R_16F, static_cast<int>(lda), stride_a, b, CUDA_R_16F, static_cast<int>(ldb), stride_b, &zero, c,
      CUDA_R_32F, static_cast<int>(ldc), stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(ErrorCode::kInternal, "cublasGemmStridedBatchedEx failed with status " +
                                          std::to_string(static_cast<int>(s)) + " (m " + std::to_string(m) + ", n " +
                                          std::to_string(n) + ", k " + std::to_string(k) + ", batch " +
                                          std::to_string(batch) + ")");
  }
}

}  // namespace tars::engine::cuda
