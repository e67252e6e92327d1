#pragma once
// Device discovery: what this machine can run models on.
//
// The inventory lists the NVIDIA GPUs (found through NVML and the CUDA driver
// API, both loaded with dlopen at run time, so one build runs on machines with
// and without the driver) and always the CPU with the system RAM, the device
// every machine has. A machine without a GPU is normal: it gets a clean
// CPU-only inventory, no error and no warning.
//
// A simulated inventory (a JSON file, format below) replaces GPU detection so
// the cluster logic can be exercised with an RTX 3060 and a GTX 1660 SUPER on
// machines that have neither.
//
// Simulated inventory file
// ------------------------
//   {
//     "gpus": [                                  // required, may be empty
//       {
//         "name": "NVIDIA GeForce RTX 3060",     // required, non-empty string
//         "total_memory": "12GiB",               // required: bytes (integer) or a size
//         "free_memory": "11.5 GiB",             // required: same forms, <= total_memory
//         "compute_capability": "8.6",           // required: "major.minor"
//         "uuid": "GPU-...",                     // optional; default derived from the
//                                                //   file's text and the GPU's index
//         "temperature": 45,                     // optional, degrees C; default unknown
//         "utilization": 10,                     // optional, percent 0..100; default unknown
//         "driver_version": "580.65.06"          // optional; default "simulated"
//       }
//     ],
//     "cpu": {                                   // optional; each field overrides the
//       "model_name": "AMD Ryzen 5 5600X",       //   figure detected on this machine
//       "physical_cores": 6, "logical_cores": 12,
//       "simd": ["sse4.2", "avx", "avx2", "fma", "f16c"],   // names of cpu_simd_features()
//       "ram_total": "32GiB",                    // given alone, ram_available = ram_total
//       "ram_available": "24GiB"                 //   (<= ram_total)
//     },
//     "cuda_driver_version": 12020               // optional: simulates the driver's CUDA
//   }                                            //   version (see devices_driver_warning)
//
// Sizes are integers (bytes) or strings such as "12GiB", "11.5 GiB", "6GB",
// "512MiB" (binary units are powers of 1024, decimal ones powers of 1000; see
// common/units.h). Unknown keys are errors (a typo must not pass silently),
// except the bookkeeping keys that `tars gpus --json` writes ("index",
// "sources", "simulated", "source", "detection", "warnings"), which are
// ignored: the JSON output of one machine is a valid inventory for another.
// A file that cannot be read, is not JSON, or has a wrong type, a negative
// size or free > total throws tars::Error(kConfig) naming the file, the GPU
// index and the field.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tars::node {

// The CUDA version tars's CUDA backend is built against, as the driver API
// encodes it (1000 * major + 10 * minor: 13000 is CUDA 13.0). A driver whose
// CUDA version is lower cannot run the backend's kernels, so the GPUs are
// left out and the inventory says why.
inline constexpr int kDevicesBuiltCudaVersion = 13000;
// The oldest Linux driver that supports kDevicesBuiltCudaVersion (CUDA 13.0
// GA needs 580.65.06 or newer, per NVIDIA's release notes). Change both
// together.
inline constexpr const char* kDevicesMinLinuxDriver = "580.65.06";

// Where one figure of the inventory came from, so a reader (and the planner)
// can tell a measured number from a configured or unknown one.
enum class DeviceSource {
  kNone,       // unknown: no library has the call, or the call failed
  kNvml,       // NVIDIA Management Library (libnvidia-ml.so.1)
  kCuda,       // CUDA driver API (libcuda.so.1)
  kCpuid,      // the x86 cpuid instruction
  kProcfs,     // /proc/cpuinfo, /proc/meminfo
  kSysconf,    // sysconf(3)
  kSimulated,  // a simulated inventory file
};

// "none", "nvml", "cuda", "cpuid", "procfs", "sysconf", "simulated".
const char* device_source_name(DeviceSource source);
// The inverse; nullopt for an unknown name.
std::optional<DeviceSource> device_source_from_name(std::string_view name);

// Where each figure of one GPU came from.
struct GpuSources {
  DeviceSource identity = DeviceSource::kNone;            // name and uuid
  DeviceSource total_memory = DeviceSource::kNone;
  DeviceSource free_memory = DeviceSource::kNone;         // live
  DeviceSource compute_capability = DeviceSource::kNone;  // major.minor
  DeviceSource temperature = DeviceSource::kNone;
  DeviceSource utilization = DeviceSource::kNone;
};

// One NVIDIA GPU.
struct GpuInfo {
  // NVML's index: nvidia-smi's order. Not necessarily the CUDA ordinal, which
  // CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER change: match GPUs by uuid.
  int index = 0;
  std::string name;                // "NVIDIA GeForce RTX 3060"
  std::string uuid;                // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  uint64_t total_memory_bytes = 0; // device memory; 0 when unknown (see sources)
  uint64_t free_memory_bytes = 0;  // free now (live); 0 when unknown (see sources)
  int compute_major = 0;           // compute capability 8.6 -> 8, 6; 0.0 when unknown
  int compute_minor = 0;
  std::optional<int> temperature_c;        // core temperature, degrees C (live)
  std::optional<int> utilization_percent;  // % of the last sample a kernel ran (live)
  std::string driver_version;      // NVIDIA driver, "580.65.06"; "" when unknown
  GpuSources sources;
};

// Where each figure of the CPU came from.
struct CpuSources {
  DeviceSource model_name = DeviceSource::kNone;
  DeviceSource cores = DeviceSource::kNone;  // physical and logical
  DeviceSource simd = DeviceSource::kNone;
  DeviceSource ram = DeviceSource::kNone;    // total and available
};

// The CPU and the system RAM: the device every machine has.
struct CpuInfo {
  std::string model_name;        // "AMD EPYC 7763 64-Core Processor"
  int physical_cores = 0;        // distinct cores (hyper-threads not counted)
  int logical_cores = 0;         // online hardware threads
  // SIMD features the CPU has AND the OS has enabled, by the names of
  // cpu_simd_features() and in that order: "sse4.2", "avx", "avx2", ...
  std::vector<std::string> simd;
  uint64_t ram_total_bytes = 0;      // MemTotal of /proc/meminfo
  uint64_t ram_available_bytes = 0;  // MemAvailable (live)
  CpuSources sources;
};

// Everything a node reports about its devices (tars gpus, GET /status,
// node.register).
struct DeviceInventory {
  std::vector<GpuInfo> gpus;     // usable GPUs; empty without GPU or driver
  CpuInfo cpu;                   // always filled
  // CUDA version the NVIDIA driver supports (1000 * major + 10 * minor,
  // e.g. 12020 for 12.2); 0 when there is no driver.
  int cuda_driver_version = 0;
  // One line for people on how the GPU list was obtained, e.g.
  // "NVML: 2 GPUs, driver 580.65.06, CUDA 13.0" or "no NVIDIA GPU driver:
  // libnvidia-ml.so.1: cannot open shared object file ...".
  std::string detection;
  bool simulated = false;        // true when a simulated file replaced detection
  std::string source;            // the simulated file, or "detected"
  // Things a person should act on: driver too old, a GPU that did not answer.
  // A missing NVIDIA library is not one (a machine without a GPU is normal).
  std::vector<std::string> warnings;
};

// How to discover devices. Filled by the CLI / node configuration.
struct DeviceOptions {
  // Simulated inventory file replacing GPU detection (format above).
  // Default: "" (detect the real devices).
  std::string simulate_file;
  // Library names tried in order with dlopen. Defaults: the sonames the
  // NVIDIA driver installs; tests point them at files that do not exist.
  std::vector<std::string> nvml_libraries = {"libnvidia-ml.so.1", "libnvidia-ml.so"};
  std::vector<std::string> cuda_libraries = {"libcuda.so.1", "libcuda.so"};
};

// Detects the devices once and keeps the NVIDIA libraries open, so the live
// figures (free memory, temperature, utilisation, available RAM) can be
// refreshed cheaply on every GET /status. Thread-safe.
class DeviceDetector {
 public:
  // Throws tars::Error(kConfig) for a bad simulated inventory; never for a
  // missing library or a GPU that does not answer (those end up in
  // DeviceInventory::warnings or as unknown figures).
  explicit DeviceDetector(const DeviceOptions& options);
  ~DeviceDetector();
  DeviceDetector(const DeviceDetector&) = delete;
  DeviceDetector& operator=(const DeviceDetector&) = delete;

  // The inventory as of construction or the last refresh().
  DeviceInventory inventory() const;
  // Re-reads the live figures (no re-detection, no dlopen) and returns the
  // updated inventory. A simulated GPU's figures stay as in its file.
  DeviceInventory refresh();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The warning for a driver whose CUDA version (driver_cuda_version) is older
// than the one tars is built against, naming both versions and the minimum
// driver; nullopt when the driver is new enough or its version is unknown (0).
// Pure, so it is tested without a driver.
std::optional<std::string> devices_driver_warning(
    int driver_cuda_version, int built_cuda_version = kDevicesBuiltCudaVersion,
    std::string_view min_linux_driver = kDevicesMinLinuxDriver);

// 12020 -> "12.2", 13000 -> "13.0".
std::string devices_cuda_version_string(int cuda_version);

// Reads a simulated inventory file (format above). `detected_cpu` supplies
// the CPU figures the file's "cpu" object does not override. The result has
// simulated = true and source = path; the driver check is the caller's.
// Throws tars::Error(kConfig) naming the file, GPU index and field.
DeviceInventory devices_load_simulated(const std::string& path, const CpuInfo& detected_cpu);
// The same for a file's text already in memory; `path` names it in errors.
DeviceInventory devices_parse_simulated(const std::string& text, const std::string& path,
                                        const CpuInfo& detected_cpu);

// The inventory as JSON: the same keys as the simulated format (sizes in
// bytes, "compute_capability": "8.6", unknown figures null) plus
// "index" and "sources" per device, and "simulated", "source",
// "cuda_driver_version", "detection" and "warnings" at the top.
nlohmann::json devices_to_json(const DeviceInventory& inventory);
// The inverse of devices_to_json (a node.register from another node).
// Throws tars::Error(kInvalidArgument) naming the field that is wrong.
DeviceInventory devices_from_json(const nlohmann::json& json);

}  // namespace tars::node
