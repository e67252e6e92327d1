#pragma once
// CUDA_CHECK(expr): a CUDA runtime call that must succeed. A failure throws
// tars::Error naming the call, file, line and CUDA's message: kUnavailable
// for out-of-memory (the caller can offload less), kInternal otherwise.
#include <cuda_runtime.h>

namespace tars::engine::cuda {

[[noreturn]] void cuda_fail(cudaError_t e, const char* expr, const char* file, int line);

}  // namespace tars::engine::cuda

#define CUDA_CHECK(expr)                                                                \
  do {                                                                                  \
    const cudaError_t cuda_check_e_ = (expr);                                           \
    if (cuda_check_e_ != cudaSuccess)                                                   \
      ::tars::engine::cuda::cuda_fail(cuda_check_e_, #expr, __FILE__, __LINE__);        \
  } while (0)
