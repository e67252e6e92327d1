#include "node/device_cuda.h"

#include <cstdio>

namespace tars::node {

std::string cuda_error_text(const CudaApi& api, CudaResult code) {
  const char* text = nullptr;
  if (!api.get_error_string || api.get_error_string(code, &text) != kCudaSuccess || !text) {
    text = "CUDA error";
  }
  return std::string(text) + " (" + std::to_string(code) + ")";
}

std::string cuda_uuid_string(const CudaUuid& uuid) {
  char out[64];
  const unsigned char* b = uuid.bytes;
  std::snprintf(out, sizeof out,
                "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                b[14], b[15]);
  return out;
}

CudaLibrary::CudaLibrary(const std::vector<std::string>& library_names) : library_(library_names) {
  if (!library_.loaded()) {
    note_ = library_.error();
    return;
  }
  library_.keep_loaded();
  const DynamicLibrary& lib = library_;
  api_.init = lib.function<decltype(api_.init)>("cuInit");
  api_.driver_get_version = lib.function<decltype(api_.driver_get_version)>("cuDriverGetVersion");
  api_.device_get_count = lib.function<decltype(api_.device_get_count)>("cuDeviceGetCount");
  api_.device_get = lib.function<decltype(api_.device_get)>("cuDeviceGet");
  api_.device_get_name = lib.function<decltype(api_.device_get_name)>("cuDeviceGetName");
  api_.device_get_attribute =
      lib.function<decltype(api_.device_get_attribute)>("cuDeviceGetAttribute");
  api_.device_total_mem = lib.function<decltype(api_.device_total_mem)>("cuDeviceTotalMem_v2");
  // The physical GPU's UUID (what NVML reports); _v2 differs only for MIG.
  api_.device_get_uuid = lib.function<decltype(api_.device_get_uuid)>("cuDeviceGetUuid");
  if (!api_.device_get_uuid) {
    api_.device_get_uuid = lib.function<decltype(api_.device_get_uuid)>("cuDeviceGetUuid_v2");
  }
  api_.get_error_string = lib.function<decltype(api_.get_error_string)>("cuGetErrorString");
  if (!api_.init || !api_.device_get_count || !api_.device_get) {
    note_ = library_.name() + " lacks cuInit / cuDeviceGetCount / cuDeviceGet";
    return;
  }
  ready_ = true;
}

}  // namespace tars::node
