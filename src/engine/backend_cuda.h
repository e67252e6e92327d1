#pragma once
// The CUDA backend (src/engine/cuda/): every Backend operation on one NVIDIA
// device, weights and KV cache in device memory. Built when nvcc is found
// (TARS_CUDA, see the top CMakeLists); used only when a device is present at
// run time. Without a driver, device, or a build for the device's
// architecture, creation returns nullptr and says why, so the caller can
// fall back to backend_cpu_create().

#include <memory>
#include <string>

#include "engine/backend.h"

namespace tars::engine {

struct CudaBackendOptions {
  int device = 0;  // CUDA device ordinal (default: the first device)
  // Batched products (n > 1) through cuBLAS SGEMM (default: true, when
  // libcublas.so.13 loads); false uses the backend's own tiled kernel.
  bool use_cublas = true;
};

// True when this build has the CUDA backend and a usable device exists;
// otherwise false with *reason set ("built without CUDA", "no CUDA device",
// "driver too old", ...).
bool backend_cuda_available(std::string* reason = nullptr);

// The backend, or nullptr with *reason set when it cannot run here.
std::unique_ptr<Backend> backend_cuda_create(const CudaBackendOptions& options, std::string* reason = nullptr);

}  // namespace tars::engine
