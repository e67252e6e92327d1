#include "engine/backend_select.h"

#include "common/error.h"
#include "engine/backend_cuda.h"

namespace tars::engine {

std::unique_ptr<Backend> backend_for_device(const std::string& device, int threads, std::string* fallback) {
  if (device != "cpu" && device != "cuda" && device != "auto") {
    throw Error(ErrorCode::kInvalidArgument, "device '" + device + "': expected cpu, cuda or auto");
  }
  if (device != "cpu") {
    std::string reason;
    if (auto b = backend_cuda_create({}, &reason)) return b;
    if (device == "cuda") throw Error(ErrorCode::kUnavailable, "device cuda: " + reason);
    if (fallback) *fallback = reason;
  }
  CpuBackendOptions o;
  o.n_threads = threads;
  return backend_cpu_create(o);
}

}  // namespace tars::engine
