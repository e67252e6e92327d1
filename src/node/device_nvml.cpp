#include "node/device_nvml.h"

namespace tars::node {

std::string nvml_error_text(const NvmlApi& api, NvmlReturn code) {
  const char* text = api.error_string ? api.error_string(code) : nullptr;
  std::string s = text && *text ? text : "NVML error";
  return s + " (" + std::to_string(code) + ")";
}

NvmlSession::NvmlSession(const std::vector<std::string>& library_names)
    : library_(library_names) {
  if (!library_.loaded()) {
    note_ = library_.error();
    return;
  }
  const DynamicLibrary& lib = library_;
  api_.init = lib.function<decltype(api_.init)>("nvmlInit_v2");
  api_.shutdown = lib.function<decltype(api_.shutdown)>("nvmlShutdown");
  api_.error_string = lib.function<decltype(api_.error_string)>("nvmlErrorString");
  api_.system_get_driver_version =
      lib.function<decltype(api_.system_get_driver_version)>("nvmlSystemGetDriverVersion");
  // _v2 reads the version from libcuda itself; v1 may report a "known
  // supported" version when libcuda is missing.
  api_.system_get_cuda_driver_version =
      lib.function<decltype(api_.system_get_cuda_driver_version)>("nvmlSystemGetCudaDriverVersion_v2");
  if (!api_.system_get_cuda_driver_version) {
    api_.system_get_cuda_driver_version =
        lib.function<decltype(api_.system_get_cuda_driver_version)>("nvmlSystemGetCudaDriverVersion");
  }
  api_.device_get_count = lib.function<decltype(api_.device_get_count)>("nvmlDeviceGetCount_v2");
  api_.device_get_handle_by_index =
      lib.function<decltype(api_.device_get_handle_by_index)>("nvmlDeviceGetHandleByIndex_v2");
  api_.device_get_name = lib.function<decltype(api_.device_get_name)>("nvmlDeviceGetName");
  api_.device_get_uuid = lib.function<decltype(api_.device_get_uuid)>("nvmlDeviceGetUUID");
  api_.device_get_memory_info =
      lib.function<decltype(api_.device_get_memory_info)>("nvmlDeviceGetMemoryInfo");
  api_.device_get_temperature =
      lib.function<decltype(api_.device_get_temperature)>("nvmlDeviceGetTemperature");
  api_.device_get_utilization_rates =
      lib.function<decltype(api_.device_get_utilization_rates)>("nvmlDeviceGetUtilizationRates");
  api_.device_get_cuda_compute_capability =
      lib.function<decltype(api_.device_get_cuda_compute_capability)>(
          "nvmlDeviceGetCudaComputeCapability");

  if (!api_.init || !api_.shutdown || !api_.device_get_count || !api_.device_get_handle_by_index) {
    note_ = library_.name() + " lacks nvmlInit_v2 / nvmlDeviceGetCount_v2";
    warning_ = library_.name() + " is too old for tars (it lacks nvmlInit_v2); update the NVIDIA driver";
    return;
  }
  NvmlReturn rc = api_.init();
  if (rc != kNvmlSuccess) {
    note_ = "nvmlInit failed: " + nvml_error_text(api_, rc);
    // The library without a loaded kernel driver is a machine without a GPU
    // (a container image, a driver package on a headless box): normal.
    driver_not_loaded_ = rc == kNvmlErrorDriverNotLoaded;
    if (!driver_not_loaded_) {
      warning_ = "NVML (" + library_.name() + ") failed to start: " + nvml_error_text(api_, rc) +
                 "; GPUs are not listed. Check that the NVIDIA driver is installed and loaded "
                 "(nvidia-smi should work)";
    }
    return;
  }
  ready_ = true;
}

NvmlSession::~NvmlSession() {
  if (ready_) api_.shutdown();
}

}  // namespace tars::node
