#include "node/device_gpu.h"

#include <cstring>

namespace tars::node {

namespace {

// A string NVML or CUDA wrote into `buf`, even if it forgot the terminator.
std::string from_buffer(const char* buf, size_t size) { return std::string(buf, ::strnlen(buf, size)); }

std::string plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// Reads name, uuid and compute capability of one NVML GPU (the figures that
// do not change), then its live figures.
GpuInfo nvml_read_gpu(const NvmlApi& nvml, NvmlDevice dev, unsigned index,
                      const std::string& driver_version, std::vector<std::string>& warnings) {
  GpuInfo g;
  g.index = static_cast<int>(index);
  g.driver_version = driver_version;
  char buf[kNvmlNameBufferSize > kNvmlUuidBufferSize ? kNvmlNameBufferSize : kNvmlUuidBufferSize];

  NvmlReturn rc = -1;
  if (nvml.device_get_name) {
    std::memset(buf, 0, sizeof buf);
    rc = nvml.device_get_name(dev, buf, kNvmlNameBufferSize);
  }
  if (rc == kNvmlSuccess) {
    g.name = from_buffer(buf, kNvmlNameBufferSize);
    g.sources.identity = DeviceSource::kNvml;
  } else {
    g.name = "NVIDIA GPU " + std::to_string(index);
    warnings.push_back("GPU " + std::to_string(index) + ": NVML could not read its name" +
                       (nvml.device_get_name ? ": " + nvml_error_text(nvml, rc) : std::string()));
  }

  rc = -1;
  if (nvml.device_get_uuid) {
    std::memset(buf, 0, sizeof buf);
    rc = nvml.device_get_uuid(dev, buf, kNvmlUuidBufferSize);
  }
  if (rc == kNvmlSuccess) g.uuid = from_buffer(buf, kNvmlUuidBufferSize);

  int major = 0, minor = 0;
  if (nvml.device_get_cuda_compute_capability &&
      nvml.device_get_cuda_compute_capability(dev, &major, &minor) == kNvmlSuccess && major > 0) {
    g.compute_major = major;
    g.compute_minor = minor;
    g.sources.compute_capability = DeviceSource::kNvml;
  }
  gpu_refresh(nvml, dev, g);
  return g;
}

// One GPU as the CUDA driver API sees it.
struct CudaGpu {
  std::string uuid;  // "" when unknown
  std::string name;
  int major = 0, minor = 0;
  uint64_t total = 0;
};

bool cuda_read_gpu(const CudaApi& cuda, int ordinal, CudaGpu& out) {
  CudaDevice dev = 0;
  if (cuda.device_get(&dev, ordinal) != kCudaSuccess) return false;
  CudaUuid uuid{};
  if (cuda.device_get_uuid && cuda.device_get_uuid(&uuid, dev) == kCudaSuccess) {
    out.uuid = cuda_uuid_string(uuid);
  }
  char name[256] = {};
  if (cuda.device_get_name && cuda.device_get_name(name, sizeof name - 1, dev) == kCudaSuccess) {
    out.name = from_buffer(name, sizeof name);
  }
  if (cuda.device_get_attribute) {
    int major = 0, minor = 0;
    if (cuda.device_get_attribute(&major, kCudaAttrComputeCapabilityMajor, dev) == kCudaSuccess &&
        cuda.device_get_attribute(&minor, kCudaAttrComputeCapabilityMinor, dev) == kCudaSuccess &&
        major > 0) {
      out.major = major;
      out.minor = minor;
    }
  }
  size_t total = 0;
  if (cuda.device_total_mem && cuda.device_total_mem(&total, dev) == kCudaSuccess) out.total = total;
  return true;
}

bool needs_cuda(const GpuInfo& g) {
  return g.sources.compute_capability == DeviceSource::kNone ||
         g.sources.total_memory == DeviceSource::kNone;
}

// Lists the GPUs through CUDA (when NVML did not) or fills NVML's gaps.
// Returns whether CUDA contributed anything.
bool cuda_detect(const CudaApi& cuda, bool nvml_listed, GpuDetection& out) {
  if (out.cuda_driver_version == 0 && cuda.driver_get_version) {
    int v = 0;
    if (cuda.driver_get_version(&v) == kCudaSuccess && v > 0) out.cuda_driver_version = v;
  }
  CudaResult rc = cuda.init(0);
  if (rc != kCudaSuccess) {
    // No device is the normal answer of a machine without a GPU.
    if (rc != kCudaErrorNoDevice || nvml_listed) {
      out.warnings.push_back("the CUDA driver API (cuInit) failed: " + cuda_error_text(cuda, rc) +
                             (nvml_listed ? "; compute capability may be unknown"
                                          : "; GPUs are not listed"));
    }
    return false;
  }
  int count = 0;
  rc = cuda.device_get_count(&count);
  if (rc != kCudaSuccess) {
    out.warnings.push_back("CUDA could not count the GPUs: " + cuda_error_text(cuda, rc));
    return false;
  }
  bool used = false;
  for (int ordinal = 0; ordinal < count; ++ordinal) {
    CudaGpu c;
    if (!cuda_read_gpu(cuda, ordinal, c)) {
      if (!nvml_listed) out.warnings.push_back("CUDA device " + std::to_string(ordinal) + " cannot be opened");
      continue;
    }
    if (nvml_listed) {
      for (auto& g : out.gpus) {
        if (c.uuid.empty() || g.uuid != c.uuid) continue;
        if (g.sources.compute_capability == DeviceSource::kNone && c.major > 0) {
          g.compute_major = c.major;
          g.compute_minor = c.minor;
          g.sources.compute_capability = DeviceSource::kCuda;
          used = true;
        }
        if (g.sources.total_memory == DeviceSource::kNone && c.total > 0) {
          g.total_memory_bytes = c.total;
          g.sources.total_memory = DeviceSource::kCuda;
          used = true;
        }
      }
      continue;
    }
    GpuInfo g;
    g.index = ordinal;
    g.name = c.name.empty() ? "NVIDIA GPU " + std::to_string(ordinal) : c.name;
    g.uuid = c.uuid;
    g.sources.identity = c.name.empty() ? DeviceSource::kNone : DeviceSource::kCuda;
    if (c.major > 0) {
      g.compute_major = c.major;
      g.compute_minor = c.minor;
      g.sources.compute_capability = DeviceSource::kCuda;
    }
    if (c.total > 0) {
      g.total_memory_bytes = c.total;
      g.sources.total_memory = DeviceSource::kCuda;
    }
    // Free memory would need a CUDA context (hundreds of MiB on the GPU);
    // it stays unknown rather than guessed.
    out.gpus.push_back(std::move(g));
    out.nvml_devices.push_back(nullptr);
    used = true;
  }
  return used;
}

}  // namespace

void gpu_refresh(const NvmlApi& nvml, NvmlDevice device, GpuInfo& gpu) {
  NvmlMemory mem{};
  if (nvml.device_get_memory_info && nvml.device_get_memory_info(device, &mem) == kNvmlSuccess &&
      mem.total > 0) {
    gpu.total_memory_bytes = mem.total;
    gpu.free_memory_bytes = mem.free <= mem.total ? mem.free : mem.total;
    gpu.sources.total_memory = DeviceSource::kNvml;
    gpu.sources.free_memory = DeviceSource::kNvml;
  } else {
    // The total, once known, does not change; free memory is now unknown.
    gpu.free_memory_bytes = 0;
    gpu.sources.free_memory = DeviceSource::kNone;
  }

  unsigned temp = 0;
  if (nvml.device_get_temperature &&
      nvml.device_get_temperature(device, kNvmlTemperatureGpu, &temp) == kNvmlSuccess) {
    gpu.temperature_c = static_cast<int>(temp);
    gpu.sources.temperature = DeviceSource::kNvml;
  } else {
    gpu.temperature_c.reset();
    gpu.sources.temperature = DeviceSource::kNone;
  }

  NvmlUtilization util{};
  if (nvml.device_get_utilization_rates &&
      nvml.device_get_utilization_rates(device, &util) == kNvmlSuccess) {
    gpu.utilization_percent = static_cast<int>(util.gpu);
    gpu.sources.utilization = DeviceSource::kNvml;
  } else {
    gpu.utilization_percent.reset();
    gpu.sources.utilization = DeviceSource::kNone;
  }
}

GpuDetection gpu_detect(const NvmlApi* nvml, const CudaApi* cuda) {
  GpuDetection out;
  bool nvml_listed = false;
  std::string driver_version;
  if (nvml) {
    char buf[kNvmlDriverVersionBufferSize] = {};
    if (nvml->system_get_driver_version &&
        nvml->system_get_driver_version(buf, sizeof buf) == kNvmlSuccess) {
      driver_version = from_buffer(buf, sizeof buf);
    }
    int cuda_version = 0;
    if (nvml->system_get_cuda_driver_version &&
        nvml->system_get_cuda_driver_version(&cuda_version) == kNvmlSuccess && cuda_version > 0) {
      out.cuda_driver_version = cuda_version;
    }
    unsigned count = 0;
    NvmlReturn rc = nvml->device_get_count(&count);
    if (rc != kNvmlSuccess) {
      out.warnings.push_back("NVML could not count the GPUs: " + nvml_error_text(*nvml, rc));
    } else {
      nvml_listed = true;
      for (unsigned i = 0; i < count; ++i) {
        NvmlDevice dev = nullptr;
        rc = nvml->device_get_handle_by_index(i, &dev);
        if (rc != kNvmlSuccess || !dev) {
          out.warnings.push_back("GPU " + std::to_string(i) + ": NVML cannot open it (" +
                                 nvml_error_text(*nvml, rc) + "); it is left out");
          continue;
        }
        out.gpus.push_back(nvml_read_gpu(*nvml, dev, i, driver_version, out.warnings));
        out.nvml_devices.push_back(dev);
      }
    }
  }

  bool cuda_used = false;
  bool gaps = false;
  for (const auto& g : out.gpus) gaps = gaps || needs_cuda(g);
  if (cuda && (!nvml_listed || gaps)) cuda_used = cuda_detect(*cuda, nvml_listed, out);

  for (const auto& g : out.gpus) {
    if (g.sources.total_memory == DeviceSource::kNone) {
      out.warnings.push_back("GPU " + std::to_string(g.index) + " (" + g.name +
                             "): its memory size could not be read");
    }
  }
  if (nvml_listed) {
    out.detection = "NVML: " + plural(out.gpus.size(), "GPU");
    if (cuda_used) out.detection += " (gaps filled by the CUDA driver API)";
  } else if (cuda) {
    out.detection = "CUDA driver API: " + plural(out.gpus.size(), "GPU");
    if (!out.gpus.empty()) {
      out.warnings.push_back(
          "NVML (libnvidia-ml.so.1) is not available, so the GPUs' free memory, temperature and "
          "utilisation are unknown; it comes with the NVIDIA driver, reinstall the driver to get it");
    }
  }
  if (!out.detection.empty() && !driver_version.empty()) {
    out.detection += ", driver " + driver_version;
  }
  if (!out.detection.empty() && out.cuda_driver_version > 0) {
    out.detection += ", CUDA " + devices_cuda_version_string(out.cuda_driver_version);
  }
  return out;
}

}  // namespace tars::node
