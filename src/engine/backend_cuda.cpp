// The one file outside src/engine/cuda that knows whether the CUDA backend
// was built: CMake defines TARS_HAVE_CUDA=1 for it when it was.
#include "engine/backend_cuda.h"

#if TARS_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

namespace tars::engine {

bool backend_cuda_available(std::string* reason) {
#if TARS_HAVE_CUDA
  return cuda::cuda_backend_available(reason);
#else
  if (reason) *reason = "this build of tars has no CUDA backend (configure with TARS_CUDA=ON and nvcc installed)";
  return false;
#endif
}

std::unique_ptr<Backend> backend_cuda_create(const CudaBackendOptions& options, std::string* reason) {
#if TARS_HAVE_CUDA
  return cuda::cuda_backend_create(options, reason);
#else
  backend_cuda_available(reason);
  return nullptr;
#endif
}

int backend_cuda_ordinal_for_uuid(const std::string& uuid) {
#if TARS_HAVE_CUDA
  return cuda::cuda_ordinal_for_uuid(uuid);
#else
  (void)uuid;
  return -1;
#endif
}

CudaStats backend_cuda_stats(const Backend& backend) {
#if TARS_HAVE_CUDA
  return cuda::cuda_stats(backend);
#else
  (void)backend;
  return {};
#endif
}

}  // namespace tars::engine
