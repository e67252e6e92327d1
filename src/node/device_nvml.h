#pragma once
// The few NVML (NVIDIA Management Library, libnvidia-ml.so.1) calls device
// discovery uses, declared here so no NVIDIA header is needed, and loaded
// with dlopen so machines without the driver run the same binary.
//
// The types mirror NVML's C ABI: nvmlReturn_t and the enums are ints,
// nvmlDevice_t is an opaque pointer, nvmlMemory_t and nvmlUtilization_t are
// the plain structs below. Tests fill an NvmlApi with fake functions.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node/device_dynlib.h"

namespace tars::node {

struct NvmlDeviceOpaque;
using NvmlDevice = NvmlDeviceOpaque*;  // nvmlDevice_t
using NvmlReturn = int;                // nvmlReturn_t

inline constexpr NvmlReturn kNvmlSuccess = 0;
inline constexpr NvmlReturn kNvmlErrorNotSupported = 3;
inline constexpr NvmlReturn kNvmlErrorDriverNotLoaded = 9;
inline constexpr int kNvmlTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
// Buffer sizes NVML documents as enough (NVML_DEVICE_NAME_V2_BUFFER_SIZE,
// NVML_DEVICE_UUID_V2_BUFFER_SIZE, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE).
inline constexpr unsigned kNvmlNameBufferSize = 96;
inline constexpr unsigned kNvmlUuidBufferSize = 96;
inline constexpr unsigned kNvmlDriverVersionBufferSize = 80;

// nvmlMemory_t (version 1): bytes.
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlUtilization_t: percent of the last sample period.
struct NvmlUtilization {
  unsigned int gpu;     // a kernel was running
  unsigned int memory;  // device memory was read or written
};

// NVML entry points. Any may be null (an older driver lacks newer calls);
// callers check before calling.
struct NvmlApi {
  NvmlReturn (*init)() = nullptr;                          // nvmlInit_v2
  NvmlReturn (*shutdown)() = nullptr;                      // nvmlShutdown
  const char* (*error_string)(NvmlReturn) = nullptr;       // nvmlErrorString
  NvmlReturn (*system_get_driver_version)(char*, unsigned) = nullptr;
  NvmlReturn (*system_get_cuda_driver_version)(int*) = nullptr;  // _v2, else v1
  NvmlReturn (*device_get_count)(unsigned*) = nullptr;           // _v2
  NvmlReturn (*device_get_handle_by_index)(unsigned, NvmlDevice*) = nullptr;  // _v2
  NvmlReturn (*device_get_name)(NvmlDevice, char*, unsigned) = nullptr;
  NvmlReturn (*device_get_uuid)(NvmlDevice, char*, unsigned) = nullptr;
  NvmlReturn (*device_get_memory_info)(NvmlDevice, NvmlMemory*) = nullptr;
  NvmlReturn (*device_get_temperature)(NvmlDevice, int sensor, unsigned*) = nullptr;
  NvmlReturn (*device_get_utilization_rates)(NvmlDevice, NvmlUtilization*) = nullptr;
  NvmlReturn (*device_get_cuda_compute_capability)(NvmlDevice, int*, int*) = nullptr;
};

// "Driver Not Loaded (9)": NVML's own text when it has nvmlErrorString.
std::string nvml_error_text(const NvmlApi& api, NvmlReturn code);

// NVML loaded and initialised for the lifetime of this object.
class NvmlSession {
 public:
  // Opens the first of `library_names` that loads and calls nvmlInit.
  explicit NvmlSession(const std::vector<std::string>& library_names);
  ~NvmlSession();  // nvmlShutdown, then unload
  NvmlSession(const NvmlSession&) = delete;
  NvmlSession& operator=(const NvmlSession&) = delete;

  // The entry points, or nullptr when the library is missing, lacks the
  // required calls, or nvmlInit failed.
  const NvmlApi* api() const { return ready_ ? &api_ : nullptr; }
  // Why api() is null, for the inventory's detection line.
  const std::string& note() const { return note_; }
  // Set when NVML is there but broken (a failure a person should fix, e.g. a
  // library/driver version mismatch); not for a missing library or a machine
  // whose driver is simply not loaded.
  const std::optional<std::string>& warning() const { return warning_; }
  // NVML is there but the kernel driver is not loaded: CUDA cannot work
  // either, so it is not tried (its error would only confuse).
  bool driver_not_loaded() const { return driver_not_loaded_; }

 private:
  DynamicLibrary library_;
  NvmlApi api_;
  bool ready_ = false;
  bool driver_not_loaded_ = false;
  std::string note_;
  std::optional<std::string> warning_;
};

}  // namespace tars::node
