#pragma once
// The few CUDA driver API (libcuda.so.1) calls device discovery uses,
// declared here so no CUDA header is needed, loaded with dlopen.
//
// Why the driver API and not the runtime (libcudart): libcuda ships with
// the driver, so it is present exactly where a GPU can be used, while
// libcudart ships with a toolkit and is itself only a layer over libcuda.
// NVML answers most questions; CUDA fills in what NVML cannot (compute
// capability on old drivers) and lists GPUs when NVML is missing.
//
// Types mirror the C ABI: CUresult and CUdevice_attribute are ints, CUdevice
// is an int ordinal, CUuuid is 16 bytes.

#include <cstddef>
#include <string>
#include <vector>

#include "node/device_dynlib.h"

namespace tars::node {

using CudaResult = int;  // CUresult
using CudaDevice = int;  // CUdevice

inline constexpr CudaResult kCudaSuccess = 0;
inline constexpr CudaResult kCudaErrorNoDevice = 100;  // CUDA_ERROR_NO_DEVICE
// CUdevice_attribute values.
inline constexpr int kCudaAttrComputeCapabilityMajor = 75;
inline constexpr int kCudaAttrComputeCapabilityMinor = 76;

// CUuuid.
struct CudaUuid {
  unsigned char bytes[16];
};

// Driver API entry points. Any may be null; callers check.
struct CudaApi {
  CudaResult (*init)(unsigned flags) = nullptr;                   // cuInit
  CudaResult (*driver_get_version)(int*) = nullptr;               // cuDriverGetVersion
  CudaResult (*device_get_count)(int*) = nullptr;                 // cuDeviceGetCount
  CudaResult (*device_get)(CudaDevice*, int ordinal) = nullptr;   // cuDeviceGet
  CudaResult (*device_get_name)(char*, int, CudaDevice) = nullptr;
  CudaResult (*device_get_attribute)(int*, int attribute, CudaDevice) = nullptr;
  CudaResult (*device_total_mem)(size_t*, CudaDevice) = nullptr;  // cuDeviceTotalMem_v2
  CudaResult (*device_get_uuid)(CudaUuid*, CudaDevice) = nullptr;
  CudaResult (*get_error_string)(CudaResult, const char**) = nullptr;
};

// "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected (100)".
std::string cuda_error_text(const CudaApi& api, CudaResult code);

// 16 bytes -> "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", the form NVML and
// nvidia-smi print, so GPUs seen by both can be matched.
std::string cuda_uuid_string(const CudaUuid& uuid);

// libcuda loaded for the life of the process (cuInit state cannot be torn
// down, and the CUDA backend uses the same library later). cuInit is not
// called here: gpu_detect calls it only when NVML leaves a gap.
class CudaLibrary {
 public:
  explicit CudaLibrary(const std::vector<std::string>& library_names);

  // Null when the library is missing or lacks cuInit / cuDeviceGetCount / cuDeviceGet.
  const CudaApi* api() const { return ready_ ? &api_ : nullptr; }
  const std::string& note() const { return note_; }  // why api() is null

 private:
  DynamicLibrary library_;
  CudaApi api_;
  bool ready_ = false;
  std::string note_;
};

}  // namespace tars::node
