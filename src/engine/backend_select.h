#pragma once
// Choosing the backend a model runs on, from a device name: "cpu", "cuda"
// (the first CUDA device; an error when there is none) or "auto" (CUDA when a
// usable device exists, else the CPU). Used by the CLI (--device) and the
// node ([engine] device), so both choose the same way.

#include <memory>
#include <string>

#include <vector>

#include "engine/backend.h"
#include "engine/model.h"

namespace tars::engine {

// Throws tars::Error(kUnavailable) for "cuda" without a usable device (the
// message says why) and kInvalidArgument for an unknown name. With "auto"
// and no device, *fallback (if given) gets the reason the CPU was chosen.
// cuda_device: the CUDA ordinal used (backend_cuda_ordinal_for_uuid).
std::unique_ptr<Backend> backend_for_device(const std::string& device, int threads,
                                            std::string* fallback = nullptr, int cuda_device = 0);

// The backends of one decoder model with partial offload (--gpu-layers):
// `device` holds the first `gpu_layers` layers and a CPU backend the rest.
// There is no split (one backend, `cpu` null) when gpu_layers < 0 or >=
// n_layer, or when the device is the CPU anyway ("cpu", or "auto" without a
// usable GPU). gpu_layers = 0 is the CPU alone, as --device cpu.
struct ModelBackends {
  std::unique_ptr<Backend> device;  // the first part
  std::unique_ptr<Backend> cpu;     // the rest; null when not split
  int device_layers = -1;           // layers on `device`; -1 = all
  std::vector<ModelPart> parts() const;
};
ModelBackends model_backends(const std::string& device, int threads, int gpu_layers, int n_layer,
                             std::string* fallback = nullptr, int cuda_device = 0);

}  // namespace tars::engine
