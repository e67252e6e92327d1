#include "engine/backend_select.h"

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "engine/backend_cuda.h"

namespace tars::engine {

std::unique_ptr<Backend> backend_for_device(const std::string& device, int threads, std::string* fallback,
                                            int cuda_device) {
  if (device != "cpu" && device != "cuda" && device != "auto") {
    throw Error(ErrorCode::kInvalidArgument, "device '" + device + "': expected cpu, cuda or auto");
  }
  if (device != "cpu") {
    std::string reason;
    CudaBackendOptions co;
    co.device = cuda_device;
    if (const char* g = std::getenv("TARS_CUDA_GRAPHS")) co.graphs = std::string(g) == "1";  // see CudaBackendOptions::graphs
    if (const char* f = std::getenv("TARS_CUDA_FUSE")) co.fuse = std::string(f) != "0";      // see CudaBackendOptions::fuse
    if (auto b = backend_cuda_create(co, &reason)) return b;
    if (device == "cuda") throw Error(ErrorCode::kUnavailable, "device cuda: " + reason);
    if (fallback) *fallback = reason;
  }
  CpuBackendOptions o;
  o.n_threads = threads;
  return backend_cpu_create(o);
}

std::vector<ModelPart> ModelBackends::parts() const {
  if (!cpu) return {{device.get(), -1}};
  return {{device.get(), device_layers}, {cpu.get(), -1}};
}

ModelBackends model_backends(const std::string& device, int threads, int gpu_layers, int n_layer,
                             std::string* fallback, int cuda_device) {
  ModelBackends m;
  m.device = backend_for_device(gpu_layers == 0 ? "cpu" : device, threads, fallback, cuda_device);
  if (m.device->name() != "cpu" && gpu_layers >= 0 && gpu_layers < n_layer) {
    CpuBackendOptions o;
    o.n_threads = threads;
    m.cpu = backend_cpu_create(o);
    m.device_layers = gpu_layers;
  }
  return m;
}

}  // namespace tars::engine
