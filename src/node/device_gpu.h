#pragma once
// GPU detection from NVML and the CUDA driver API, written against the
// NvmlApi / CudaApi function tables so the logic is tested with fakes on
// machines without a GPU. Nothing here throws: a call that fails leaves its
// figure unknown or, for a failure a person should act on, adds a warning;
// one GPU failing never drops the others.

#include <string>
#include <vector>

#include "node/device_cuda.h"
#include "node/device_nvml.h"
#include "node/devices.h"

namespace tars::node {

// What gpu_detect found, before the driver-version check.
struct GpuDetection {
  std::vector<GpuInfo> gpus;
  // Parallel to gpus: the NVML handle for live refresh, or nullptr for a GPU
  // only CUDA listed (its live figures stay unknown).
  std::vector<NvmlDevice> nvml_devices;
  int cuda_driver_version = 0;  // 1000 * major + 10 * minor; 0 unknown
  std::string detection;        // "NVML: 2 GPUs, driver 580.65.06 (CUDA 13.0)"; "" when no API
  std::vector<std::string> warnings;
};

// `nvml` (already initialised) and `cuda` may each be null (library missing).
// NVML lists the GPUs; CUDA (cuInit is called only then) fills what NVML
// could not tell (compute capability, total memory), matched by UUID, or
// lists the GPUs itself when NVML is missing.
GpuDetection gpu_detect(const NvmlApi* nvml, const CudaApi* cuda);

// Re-reads the live figures of one NVML GPU: free (and total) memory,
// temperature, utilisation. A failing call makes its figure unknown.
void gpu_refresh(const NvmlApi& nvml, NvmlDevice device, GpuInfo& gpu);

}  // namespace tars::node
