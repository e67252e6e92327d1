// GPU detection logic against fake NVML and CUDA function tables: the paths
// a machine without a GPU never takes (several GPUs, one failing, NVML
// without compute capability, CUDA only, refresh).
#include "node/device_gpu.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tars::node {
namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr NvmlReturn kNvmlErrorUnknown = 999;
constexpr NvmlReturn kNvmlErrorGpuIsLost = 15;

// One fake GPU as both libraries see it. A failing call returns `fail_*`.
struct FakeGpu {
  std::string name;
  CudaUuid uuid;
  uint64_t total = 0, free = 0;
  int major = 0, minor = 0;
  unsigned temperature = 0, utilization = 0;
  NvmlReturn fail_handle = kNvmlSuccess;
  NvmlReturn fail_name = kNvmlSuccess;
  NvmlReturn fail_memory = kNvmlSuccess;
  NvmlReturn fail_temperature = kNvmlSuccess;
  NvmlReturn fail_utilization = kNvmlSuccess;
  NvmlReturn fail_cc = kNvmlSuccess;
};

// The fake machine the fake functions read; reset by each test.
struct FakeMachine {
  std::vector<FakeGpu> gpus;
  int cuda_version = 13000;
  CudaResult cuda_init_result = kCudaSuccess;
  int cuda_init_calls = 0;
} g_machine;

FakeGpu make_gpu(const std::string& name, unsigned char uuid_seed, uint64_t total, uint64_t free,
                 int major, int minor) {
  FakeGpu g;
  g.name = name;
  for (int i = 0; i < 16; ++i) g.uuid.bytes[i] = static_cast<unsigned char>(uuid_seed + i);
  g.total = total;
  g.free = free;
  g.major = major;
  g.minor = minor;
  g.temperature = 40 + uuid_seed % 10;
  g.utilization = uuid_seed % 100;
  return g;
}

FakeGpu* gpu_of(NvmlDevice dev) {
  auto i = reinterpret_cast<uintptr_t>(dev);
  if (i == 0 || i > g_machine.gpus.size()) return nullptr;
  return &g_machine.gpus[i - 1];
}

NvmlReturn copy_out(const std::string& s, char* buf, unsigned size) {
  if (s.size() + 1 > size) return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return kNvmlSuccess;
}

// ---- fake NVML ----
NvmlReturn nv_init() { return kNvmlSuccess; }
NvmlReturn nv_shutdown() { return kNvmlSuccess; }
const char* nv_error_string(NvmlReturn rc) { return rc == kNvmlErrorGpuIsLost ? "GPU is lost" : "Unknown Error"; }
NvmlReturn nv_driver_version(char* buf, unsigned size) { return copy_out("580.65.06", buf, size); }
NvmlReturn nv_cuda_version(int* v) {
  *v = g_machine.cuda_version;
  return kNvmlSuccess;
}
NvmlReturn nv_count(unsigned* n) {
  *n = static_cast<unsigned>(g_machine.gpus.size());
  return kNvmlSuccess;
}
NvmlReturn nv_handle(unsigned i, NvmlDevice* dev) {
  if (i >= g_machine.gpus.size()) return 2;
  if (g_machine.gpus[i].fail_handle != kNvmlSuccess) return g_machine.gpus[i].fail_handle;
  *dev = reinterpret_cast<NvmlDevice>(static_cast<uintptr_t>(i + 1));
  return kNvmlSuccess;
}
NvmlReturn nv_name(NvmlDevice d, char* buf, unsigned size) {
  FakeGpu* g = gpu_of(d);
  if (!g) return 2;
  if (g->fail_name != kNvmlSuccess) return g->fail_name;
  return copy_out(g->name, buf, size);
}
NvmlReturn nv_uuid(NvmlDevice d, char* buf, unsigned size) {
  FakeGpu* g = gpu_of(d);
  if (!g) return 2;
  return copy_out(cuda_uuid_string(g->uuid), buf, size);
}
NvmlReturn nv_memory(NvmlDevice d, NvmlMemory* m) {
  FakeGpu* g = gpu_of(d);
  if (!g) return 2;
  if (g->fail_memory != kNvmlSuccess) return g->fail_memory;
  *m = {g->total, g->free, g->total - g->free};
  return kNvmlSuccess;
}
NvmlReturn nv_temperature(NvmlDevice d, int sensor, unsigned* t) {
  FakeGpu* g = gpu_of(d);
  if (!g || sensor != kNvmlTemperatureGpu) return 2;
  if (g->fail_temperature != kNvmlSuccess) return g->fail_temperature;
  *t = g->temperature;
  return kNvmlSuccess;
}
NvmlReturn nv_utilization(NvmlDevice d, NvmlUtilization* u) {
  FakeGpu* g = gpu_of(d);
  if (!g) return 2;
  if (g->fail_utilization != kNvmlSuccess) return g->fail_utilization;
  *u = {g->utilization, 0};
  return kNvmlSuccess;
}
NvmlReturn nv_cc(NvmlDevice d, int* major, int* minor) {
  FakeGpu* g = gpu_of(d);
  if (!g) return 2;
  if (g->fail_cc != kNvmlSuccess) return g->fail_cc;
  *major = g->major;
  *minor = g->minor;
  return kNvmlSuccess;
}

NvmlApi fake_nvml() {
  NvmlApi api;
  api.init = nv_init;
  api.shutdown = nv_shutdown;
  api.error_string = nv_error_string;
  api.system_get_driver_version = nv_driver_version;
  api.system_get_cuda_driver_version = nv_cuda_version;
  api.device_get_count = nv_count;
  api.device_get_handle_by_index = nv_handle;
  api.device_get_name = nv_name;
  api.device_get_uuid = nv_uuid;
  api.device_get_memory_info = nv_memory;
  api.device_get_temperature = nv_temperature;
  api.device_get_utilization_rates = nv_utilization;
  api.device_get_cuda_compute_capability = nv_cc;
  return api;
}

// ---- fake CUDA driver API ----
// CUDA lists the GPUs in reverse (fastest first), so matching by index
// would be wrong: only the UUID matches.
int cuda_slot(int ordinal) { return static_cast<int>(g_machine.gpus.size()) - 1 - ordinal; }
CudaResult cu_init(unsigned) {
  ++g_machine.cuda_init_calls;
  return g_machine.cuda_init_result;
}
CudaResult cu_version(int* v) {
  *v = g_machine.cuda_version;
  return kCudaSuccess;
}
CudaResult cu_count(int* n) {
  *n = static_cast<int>(g_machine.gpus.size());
  return kCudaSuccess;
}
CudaResult cu_get(CudaDevice* d, int ordinal) {
  if (ordinal < 0 || ordinal >= static_cast<int>(g_machine.gpus.size())) return 101;
  *d = cuda_slot(ordinal);
  return kCudaSuccess;
}
CudaResult cu_name(char* buf, int size, CudaDevice d) {
  const std::string& n = g_machine.gpus[d].name;
  if (static_cast<int>(n.size()) + 1 > size) return 1;
  std::memcpy(buf, n.c_str(), n.size() + 1);
  return kCudaSuccess;
}
CudaResult cu_attribute(int* v, int attr, CudaDevice d) {
  if (attr == kCudaAttrComputeCapabilityMajor) *v = g_machine.gpus[d].major;
  else if (attr == kCudaAttrComputeCapabilityMinor) *v = g_machine.gpus[d].minor;
  else return 1;
  return kCudaSuccess;
}
CudaResult cu_total(size_t* bytes, CudaDevice d) {
  *bytes = g_machine.gpus[d].total;
  return kCudaSuccess;
}
CudaResult cu_uuid(CudaUuid* u, CudaDevice d) {
  *u = g_machine.gpus[d].uuid;
  return kCudaSuccess;
}

CudaApi fake_cuda() {
  CudaApi api;
  api.init = cu_init;
  api.driver_get_version = cu_version;
  api.device_get_count = cu_count;
  api.device_get = cu_get;
  api.device_get_name = cu_name;
  api.device_get_attribute = cu_attribute;
  api.device_total_mem = cu_total;
  api.device_get_uuid = cu_uuid;
  return api;
}

class DeviceGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    g_machine = FakeMachine{};
    g_machine.gpus = {make_gpu("NVIDIA GeForce RTX 3060", 0x10, 12 * kGiB, 11 * kGiB, 8, 6),
                      make_gpu("NVIDIA GeForce GTX 1660 SUPER", 0x20, 6 * kGiB, 5 * kGiB, 7, 5),
                      make_gpu("NVIDIA RTX A4000", 0x30, 16 * kGiB, 15 * kGiB, 8, 6)};
  }
  NvmlApi nvml = fake_nvml();
  CudaApi cuda = fake_cuda();
};

TEST_F(DeviceGpu, UuidStringHasNvmlsShape) {
  CudaUuid u{};
  for (int i = 0; i < 16; ++i) u.bytes[i] = static_cast<unsigned char>(0xa0 + i);
  EXPECT_EQ(cuda_uuid_string(u), "GPU-a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf");
}

TEST_F(DeviceGpu, NvmlListsEveryGpuWithAllFigures) {
  GpuDetection d = gpu_detect(&nvml, &cuda);
  EXPECT_TRUE(d.warnings.empty());
  ASSERT_EQ(d.gpus.size(), 3u);
  ASSERT_EQ(d.nvml_devices.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const GpuInfo& g = d.gpus[i];
    const FakeGpu& f = g_machine.gpus[i];
    EXPECT_EQ(g.index, static_cast<int>(i));
    EXPECT_EQ(g.name, f.name);
    EXPECT_EQ(g.uuid, cuda_uuid_string(f.uuid));
    EXPECT_EQ(g.total_memory_bytes, f.total);
    EXPECT_EQ(g.free_memory_bytes, f.free);
    EXPECT_EQ(g.compute_major, f.major);
    EXPECT_EQ(g.compute_minor, f.minor);
    EXPECT_EQ(g.temperature_c, static_cast<int>(f.temperature));
    EXPECT_EQ(g.utilization_percent, static_cast<int>(f.utilization));
    EXPECT_EQ(g.driver_version, "580.65.06");
    EXPECT_EQ(g.sources.identity, DeviceSource::kNvml);
    EXPECT_EQ(g.sources.compute_capability, DeviceSource::kNvml);
    EXPECT_EQ(g.sources.free_memory, DeviceSource::kNvml);
  }
  EXPECT_EQ(d.cuda_driver_version, 13000);
  // NVML told everything: CUDA was not initialised.
  EXPECT_EQ(g_machine.cuda_init_calls, 0);
  EXPECT_NE(d.detection.find("NVML: 3 GPUs"), std::string::npos) << d.detection;
  EXPECT_NE(d.detection.find("580.65.06"), std::string::npos) << d.detection;
}

TEST_F(DeviceGpu, OneGpuFailingDoesNotDropTheOthers) {
  g_machine.gpus[1].fail_handle = kNvmlErrorGpuIsLost;
  g_machine.gpus[2].fail_name = kNvmlErrorUnknown;
  g_machine.gpus[2].fail_temperature = kNvmlErrorNotSupported;
  g_machine.gpus[2].fail_utilization = kNvmlErrorNotSupported;
  GpuDetection d = gpu_detect(&nvml, nullptr);
  ASSERT_EQ(d.gpus.size(), 2u);
  EXPECT_EQ(d.gpus[0].index, 0);
  EXPECT_EQ(d.gpus[0].name, "NVIDIA GeForce RTX 3060");
  EXPECT_EQ(d.gpus[1].index, 2);
  EXPECT_EQ(d.gpus[1].name, "NVIDIA GPU 2");  // placeholder, and said so
  EXPECT_EQ(d.gpus[1].total_memory_bytes, 16 * kGiB);
  EXPECT_FALSE(d.gpus[1].temperature_c.has_value());
  EXPECT_FALSE(d.gpus[1].utilization_percent.has_value());
  EXPECT_EQ(d.gpus[1].sources.temperature, DeviceSource::kNone);
  ASSERT_EQ(d.warnings.size(), 2u);
  EXPECT_NE(d.warnings[0].find("GPU 1"), std::string::npos) << d.warnings[0];
  EXPECT_NE(d.warnings[0].find("GPU is lost"), std::string::npos) << d.warnings[0];
  EXPECT_NE(d.warnings[1].find("GPU 2"), std::string::npos) << d.warnings[1];
}

TEST_F(DeviceGpu, CudaFillsWhatNvmlCannotTellMatchedByUuid) {
  nvml.device_get_cuda_compute_capability = nullptr;  // an old driver
  g_machine.gpus[0].fail_memory = kNvmlErrorUnknown;
  GpuDetection d = gpu_detect(&nvml, &cuda);
  EXPECT_EQ(g_machine.cuda_init_calls, 1);
  ASSERT_EQ(d.gpus.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d.gpus[i].compute_major, g_machine.gpus[i].major) << i;
    EXPECT_EQ(d.gpus[i].compute_minor, g_machine.gpus[i].minor) << i;
    EXPECT_EQ(d.gpus[i].sources.compute_capability, DeviceSource::kCuda);
  }
  EXPECT_EQ(d.gpus[0].total_memory_bytes, 12 * kGiB);
  EXPECT_EQ(d.gpus[0].sources.total_memory, DeviceSource::kCuda);
  EXPECT_EQ(d.gpus[0].sources.free_memory, DeviceSource::kNone);
  EXPECT_EQ(d.gpus[1].sources.total_memory, DeviceSource::kNvml);
  EXPECT_TRUE(d.warnings.empty()) << d.warnings.front();
  EXPECT_NE(d.detection.find("CUDA"), std::string::npos) << d.detection;
}

TEST_F(DeviceGpu, CudaAloneListsGpusWithUnknownLiveFigures) {
  GpuDetection d = gpu_detect(nullptr, &cuda);
  ASSERT_EQ(d.gpus.size(), 3u);
  // CUDA's order (reversed here), each with its own figures.
  EXPECT_EQ(d.gpus[0].name, "NVIDIA RTX A4000");
  EXPECT_EQ(d.gpus[0].index, 0);
  EXPECT_EQ(d.gpus[0].total_memory_bytes, 16 * kGiB);
  EXPECT_EQ(d.gpus[0].compute_major, 8);
  EXPECT_EQ(d.gpus[2].name, "NVIDIA GeForce RTX 3060");
  EXPECT_EQ(d.gpus[2].uuid, cuda_uuid_string(g_machine.gpus[0].uuid));
  for (const auto& g : d.gpus) {
    EXPECT_EQ(g.sources.identity, DeviceSource::kCuda);
    EXPECT_EQ(g.sources.free_memory, DeviceSource::kNone);
    EXPECT_FALSE(g.temperature_c.has_value());
  }
  for (auto dev : d.nvml_devices) EXPECT_EQ(dev, nullptr);
  EXPECT_EQ(d.cuda_driver_version, 13000);
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("NVML"), std::string::npos);
}

TEST_F(DeviceGpu, CudaWithoutDeviceIsQuiet) {
  g_machine.cuda_init_result = kCudaErrorNoDevice;
  GpuDetection d = gpu_detect(nullptr, &cuda);
  EXPECT_TRUE(d.gpus.empty());
  EXPECT_TRUE(d.warnings.empty());
}

TEST_F(DeviceGpu, CudaBrokenDriverWarns) {
  g_machine.cuda_init_result = 999;  // CUDA_ERROR_UNKNOWN
  GpuDetection d = gpu_detect(nullptr, &cuda);
  EXPECT_TRUE(d.gpus.empty());
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("cuInit"), std::string::npos) << d.warnings[0];
}

TEST_F(DeviceGpu, MissingOptionalEntryPointsLeaveFiguresUnknown) {
  NvmlApi bare;  // only what NvmlSession requires
  bare.init = nv_init;
  bare.shutdown = nv_shutdown;
  bare.device_get_count = nv_count;
  bare.device_get_handle_by_index = nv_handle;
  GpuDetection d = gpu_detect(&bare, nullptr);
  ASSERT_EQ(d.gpus.size(), 3u);
  for (const auto& g : d.gpus) {
    EXPECT_EQ(g.sources.total_memory, DeviceSource::kNone);
    EXPECT_EQ(g.sources.compute_capability, DeviceSource::kNone);
    EXPECT_FALSE(g.temperature_c.has_value());
    EXPECT_TRUE(g.driver_version.empty());
  }
  EXPECT_EQ(d.cuda_driver_version, 0);
  EXPECT_FALSE(d.warnings.empty());
}

TEST_F(DeviceGpu, RefreshReadsLiveFiguresAndMarksFailuresUnknown) {
  GpuDetection d = gpu_detect(&nvml, nullptr);
  ASSERT_EQ(d.gpus.size(), 3u);
  GpuInfo g = d.gpus[1];
  g_machine.gpus[1].free = 1 * kGiB;
  g_machine.gpus[1].temperature = 83;
  g_machine.gpus[1].utilization = 100;
  gpu_refresh(nvml, d.nvml_devices[1], g);
  EXPECT_EQ(g.free_memory_bytes, 1 * kGiB);
  EXPECT_EQ(g.temperature_c, 83);
  EXPECT_EQ(g.utilization_percent, 100);

  g_machine.gpus[1].fail_memory = kNvmlErrorGpuIsLost;
  g_machine.gpus[1].fail_temperature = kNvmlErrorGpuIsLost;
  gpu_refresh(nvml, d.nvml_devices[1], g);
  EXPECT_EQ(g.total_memory_bytes, 6 * kGiB);  // the size does not change
  EXPECT_EQ(g.free_memory_bytes, 0u);
  EXPECT_EQ(g.sources.free_memory, DeviceSource::kNone);
  EXPECT_FALSE(g.temperature_c.has_value());
  EXPECT_EQ(g.utilization_percent, 100);
}

}  // namespace
}  // namespace tars::node
