#pragma once
// Internal entry points of the CUDA backend, called by backend_cuda.cpp.
#include <memory>
#include <string>

#include "engine/backend_cuda.h"

namespace tars::engine::cuda {

bool cuda_backend_available(std::string* reason);
std::unique_ptr<Backend> cuda_backend_create(const CudaBackendOptions& options, std::string* reason);
CudaStats cuda_stats(const Backend& backend);
int cuda_ordinal_for_uuid(const std::string& uuid);

}  // namespace tars::engine::cuda
