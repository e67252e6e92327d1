#include "node/devices.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "node/device_cpu.h"
#include "node/device_cuda.h"
#include "node/device_gpu.h"
#include "node/device_nvml.h"

namespace tars::node {

namespace {

constexpr std::pair<DeviceSource, const char*> kSourceNames[] = {
    {DeviceSource::kNone, "none"},     {DeviceSource::kNvml, "nvml"},
    {DeviceSource::kCuda, "cuda"},     {DeviceSource::kCpuid, "cpuid"},
    {DeviceSource::kProcfs, "procfs"}, {DeviceSource::kSysconf, "sysconf"},
    {DeviceSource::kSimulated, "simulated"},
};

// Leaves the GPUs out when the driver is too old for the CUDA version tars
// is built against. Returns whether it did.
bool apply_driver_check(DeviceInventory& inv) {
  if (inv.gpus.empty()) return false;  // nothing to run on anyway
  auto warning = devices_driver_warning(inv.cuda_driver_version);
  if (!warning) return false;
  inv.warnings.push_back(*warning);
  inv.gpus.clear();
  return true;
}

}  // namespace

const char* device_source_name(DeviceSource source) {
  for (const auto& [s, name] : kSourceNames) {
    if (s == source) return name;
  }
  return "none";
}

std::optional<DeviceSource> device_source_from_name(std::string_view name) {
  for (const auto& [s, n] : kSourceNames) {
    if (name == n) return s;
  }
  return std::nullopt;
}

std::string devices_cuda_version_string(int cuda_version) {
  return std::to_string(cuda_version / 1000) + "." + std::to_string(cuda_version % 1000 / 10);
}

std::optional<std::string> devices_driver_warning(int driver_cuda_version, int built_cuda_version,
                                                  std::string_view min_linux_driver) {
  if (driver_cuda_version <= 0 || driver_cuda_version >= built_cuda_version) return std::nullopt;
  return "the NVIDIA driver supports CUDA " + devices_cuda_version_string(driver_cuda_version) +
         " (" + std::to_string(driver_cuda_version) + ") but tars is built for CUDA " +
         devices_cuda_version_string(built_cuda_version) + " (" +
         std::to_string(built_cuda_version) + "): install NVIDIA driver " +
         std::string(min_linux_driver) + " or newer (Linux); until then tars uses the CPU only";
}

// ---- DeviceDetector --------------------------------------------------------

struct DeviceDetector::Impl {
  std::mutex mutex;  // guards everything below
  // Declared before `inventory` so they outlive every use; null when
  // simulating.
  std::unique_ptr<NvmlSession> nvml;
  std::unique_ptr<CudaLibrary> cuda;
  DeviceInventory inventory;
  std::vector<NvmlDevice> nvml_devices;  // parallel to inventory.gpus
  bool ram_from_file = false;            // simulated RAM: do not refresh
};

DeviceDetector::DeviceDetector(const DeviceOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  CpuInfo cpu = cpu_detect();
  if (!options.simulate_file.empty()) {
    d.inventory = devices_load_simulated(options.simulate_file, cpu);
    d.ram_from_file = d.inventory.cpu.sources.ram == DeviceSource::kSimulated;
    d.inventory.detection = "simulated inventory from " + options.simulate_file;
    apply_driver_check(d.inventory);
    return;
  }

  d.nvml = std::make_unique<NvmlSession>(options.nvml_libraries);
  d.cuda = std::make_unique<CudaLibrary>(options.cuda_libraries);
  const CudaApi* cuda = d.nvml->driver_not_loaded() ? nullptr : d.cuda->api();
  GpuDetection found = gpu_detect(d.nvml->api(), cuda);

  DeviceInventory& inv = d.inventory;
  inv.cpu = std::move(cpu);
  inv.source = "detected";
  inv.cuda_driver_version = found.cuda_driver_version;
  inv.gpus = std::move(found.gpus);
  d.nvml_devices = std::move(found.nvml_devices);
  if (d.nvml->warning()) inv.warnings.push_back(*d.nvml->warning());
  for (auto& w : found.warnings) inv.warnings.push_back(std::move(w));
  inv.detection = found.detection;
  if (inv.detection.empty()) {
    inv.detection = "no NVIDIA GPU driver: " + d.nvml->note() +
                    (cuda || !d.cuda->api() ? "; " + d.cuda->note() : std::string());
  }
  spdlog::debug("devices: {}", inv.detection);
  if (apply_driver_check(inv)) d.nvml_devices.clear();
}

DeviceDetector::~DeviceDetector() = default;

DeviceInventory DeviceDetector::inventory() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->inventory;
}

DeviceInventory DeviceDetector::refresh() {
  Impl& d = *impl_;
  std::lock_guard lock(d.mutex);
  const NvmlApi* nvml = d.nvml ? d.nvml->api() : nullptr;
  for (size_t i = 0; nvml && i < d.inventory.gpus.size() && i < d.nvml_devices.size(); ++i) {
    if (d.nvml_devices[i]) gpu_refresh(*nvml, d.nvml_devices[i], d.inventory.gpus[i]);
  }
  if (!d.ram_from_file) cpu_refresh_ram(d.inventory.cpu);
  return d.inventory;
}

}  // namespace tars::node
