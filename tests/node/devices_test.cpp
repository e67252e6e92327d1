// Device discovery: sizes, simulated inventories, JSON, CPU detection on this
// machine, the driver-version check and detection without NVIDIA libraries.
// The NVML / CUDA logic against fake libraries is in device_gpu_test.cpp.
#include "node/devices.h"

#include <gtest/gtest.h>
#include <sys/sysinfo.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "node/device_cpu.h"
#include "node/device_json_fields.h"
#include "support/test_support.h"

namespace tars::node {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr uint64_t kGiB = 1ull << 30;

std::string example_inventory(const std::string& name) {
  fs::path p = fs::path(__FILE__).parent_path().parent_path().parent_path() / "examples" /
               "inventories" / name;
  EXPECT_TRUE(fs::exists(p)) << p;
  return p.string();
}

// Runs fn, expecting a tars::Error of `code` whose message contains every
// one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, ErrorCode code, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one containing " << parts.front();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << p << "\"";
  }
}

// ---- memory sizes in inventory files ----------------------------------------

TEST(DevicesMemorySize, AcceptsBytesAndUnits) {
  DeviceJsonContext ctx{ErrorCode::kConfig, "f: "};
  auto size = [&](const json& v) { return device_json_size(ctx, v, "x"); };
  EXPECT_EQ(size("12GiB"), 12 * kGiB);
  EXPECT_EQ(size("11.5 GiB"), 11 * kGiB + kGiB / 2);
  EXPECT_EQ(size("6GB"), 6000000000ull);
  EXPECT_EQ(size("512MiB"), 512ull << 20);
  EXPECT_EQ(size("4096"), 4096u);
  EXPECT_EQ(size(12884901888ull), 12884901888ull);
  EXPECT_EQ(size(json(0)), 0u);
  EXPECT_EQ(size(json(1024.0)), 1024u);
  // 5.8 GiB is not a whole number of bytes: rounded to the nearest byte.
  EXPECT_EQ(size("5.8GiB"), static_cast<uint64_t>(5.8 * static_cast<double>(kGiB) + 0.5));
}

TEST(DevicesMemorySize, RejectsNegativeWrongTypesAndUnknownUnits) {
  DeviceJsonContext ctx{ErrorCode::kConfig, "file.json: "};
  auto size = [&](const json& v) { return device_json_size(ctx, v, "gpus[0].total_memory"); };
  expect_error([&] { size(-1); }, ErrorCode::kConfig, {"file.json", "gpus[0].total_memory", "negative"});
  expect_error([&] { size("-2GiB"); }, ErrorCode::kConfig, {"negative"});
  expect_error([&] { size(-0.5); }, ErrorCode::kConfig, {"negative"});
  expect_error([&] { size(1.5); }, ErrorCode::kConfig, {"whole number"});
  expect_error([&] { size("12 parsecs"); }, ErrorCode::kConfig, {"\"12 parsecs\"", "GiB"});
  expect_error([&] { size(""); }, ErrorCode::kConfig, {"not a size"});
  expect_error([&] { size(true); }, ErrorCode::kConfig, {"a boolean"});
  expect_error([&] { size(json::array()); }, ErrorCode::kConfig, {"an array"});
}

TEST(DevicesComputeCapability, ParsesStringsAndNumbers) {
  DeviceJsonContext ctx{ErrorCode::kConfig, ""};
  auto cc = [&](const json& v) { return device_json_compute_capability(ctx, v, "cc"); };
  EXPECT_EQ(cc("8.6"), std::make_pair(8, 6));
  EXPECT_EQ(cc("12.0"), std::make_pair(12, 0));
  EXPECT_EQ(cc(7.5), std::make_pair(7, 5));
  EXPECT_EQ(cc(9), std::make_pair(9, 0));
  for (const json& bad : {json("8"), json("8."), json(".6"), json("x.y"), json("8.6.1"),
                          json("0.5"), json(nullptr), json("-8.6")}) {
    expect_error([&] { cc(bad); }, ErrorCode::kConfig, {"cc"});
  }
}

// ---- simulated inventories -------------------------------------------------

CpuInfo fake_detected_cpu() {
  CpuInfo c;
  c.model_name = "Detected CPU";
  c.physical_cores = 4;
  c.logical_cores = 8;
  c.simd = {"sse4.2", "avx2"};
  c.ram_total_bytes = 16 * kGiB;
  c.ram_available_bytes = 10 * kGiB;
  c.sources = {DeviceSource::kCpuid, DeviceSource::kProcfs, DeviceSource::kCpuid, DeviceSource::kProcfs};
  return c;
}

TEST(DevicesSimulated, LoadsTheRtx3060Example) {
  std::string path = example_inventory("pc1-rtx3060.json");
  DeviceInventory inv = devices_load_simulated(path, fake_detected_cpu());
  EXPECT_TRUE(inv.simulated);
  EXPECT_EQ(inv.source, path);
  ASSERT_EQ(inv.gpus.size(), 1u);
  const GpuInfo& g = inv.gpus[0];
  EXPECT_EQ(g.index, 0);
  EXPECT_EQ(g.name, "NVIDIA GeForce RTX 3060");
  EXPECT_EQ(g.total_memory_bytes, 12 * kGiB);
  EXPECT_EQ(g.free_memory_bytes, 11 * kGiB + kGiB / 2);
  EXPECT_EQ(g.compute_major, 8);
  EXPECT_EQ(g.compute_minor, 6);
  EXPECT_EQ(g.sources.total_memory, DeviceSource::kSimulated);
  EXPECT_EQ(g.sources.free_memory, DeviceSource::kSimulated);
  EXPECT_EQ(g.sources.identity, DeviceSource::kSimulated);
  EXPECT_EQ(g.uuid.rfind("GPU-", 0), 0u) << g.uuid;
  // No "cpu" object: the detected CPU stays, sources and all.
  EXPECT_EQ(inv.cpu.model_name, "Detected CPU");
  EXPECT_EQ(inv.cpu.ram_total_bytes, 16 * kGiB);
  EXPECT_EQ(inv.cpu.sources.ram, DeviceSource::kProcfs);
}

TEST(DevicesSimulated, LoadsTheGtx1660SuperExampleWithDefaults) {
  std::string path = example_inventory("pc2-gtx1660super.json");
  DeviceInventory inv = devices_load_simulated(path, fake_detected_cpu());
  ASSERT_EQ(inv.gpus.size(), 1u);
  const GpuInfo& g = inv.gpus[0];
  EXPECT_EQ(g.name, "NVIDIA GeForce GTX 1660 SUPER");
  EXPECT_EQ(g.total_memory_bytes, 6 * kGiB);
  EXPECT_EQ(g.free_memory_bytes, static_cast<uint64_t>(5.8 * static_cast<double>(kGiB) + 0.5));
  EXPECT_EQ(g.compute_major, 7);
  EXPECT_EQ(g.compute_minor, 5);
  // Optional fields left out get their defaults.
  EXPECT_FALSE(g.temperature_c.has_value());
  EXPECT_FALSE(g.utilization_percent.has_value());
  EXPECT_EQ(g.sources.temperature, DeviceSource::kNone);
  EXPECT_EQ(g.driver_version, "simulated");
  // The default UUID is stable for a file and differs between files.
  DeviceInventory again = devices_load_simulated(path, fake_detected_cpu());
  EXPECT_EQ(again.gpus[0].uuid, g.uuid);
  DeviceInventory pc1 = devices_load_simulated(example_inventory("pc1-rtx3060.json"), fake_detected_cpu());
  EXPECT_NE(pc1.gpus[0].uuid, g.uuid);
}

TEST(DevicesSimulated, TwoGpusAndCpuOverrides) {
  test::TempDir dir;
  std::string path = dir.file("two.json");
  test::write_file(path, R"({
    "gpus": [
      {"name": "A", "total_memory": 8589934592, "free_memory": "7GiB", "compute_capability": "8.9",
       "uuid": "GPU-a", "temperature": 50, "utilization": 99, "driver_version": "999.1"},
      {"name": "B", "total_memory": "24 GB", "free_memory": 0, "compute_capability": 12.0}
    ],
    "cpu": {"model_name": "Sim CPU", "physical_cores": 6, "logical_cores": 12,
            "simd": ["avx2", "sse4.2", "avx2"], "ram_total": "32GiB"},
    "cuda_driver_version": 13010
  })");
  DeviceInventory inv = devices_load_simulated(path, fake_detected_cpu());
  ASSERT_EQ(inv.gpus.size(), 2u);
  EXPECT_EQ(inv.gpus[0].uuid, "GPU-a");
  EXPECT_EQ(inv.gpus[0].total_memory_bytes, 8 * kGiB);
  EXPECT_EQ(inv.gpus[0].temperature_c, 50);
  EXPECT_EQ(inv.gpus[0].utilization_percent, 99);
  EXPECT_EQ(inv.gpus[0].driver_version, "999.1");
  EXPECT_EQ(inv.gpus[1].index, 1);
  EXPECT_EQ(inv.gpus[1].total_memory_bytes, 24000000000ull);
  EXPECT_EQ(inv.gpus[1].free_memory_bytes, 0u);
  EXPECT_EQ(inv.gpus[1].compute_major, 12);
  EXPECT_NE(inv.gpus[1].uuid, inv.gpus[0].uuid);
  EXPECT_EQ(inv.cpu.model_name, "Sim CPU");
  EXPECT_EQ(inv.cpu.physical_cores, 6);
  EXPECT_EQ(inv.cpu.logical_cores, 12);
  // Canonical order, no duplicates.
  EXPECT_EQ(inv.cpu.simd, (std::vector<std::string>{"sse4.2", "avx2"}));
  EXPECT_EQ(inv.cpu.ram_total_bytes, 32 * kGiB);
  EXPECT_EQ(inv.cpu.ram_available_bytes, 32 * kGiB);  // ram_total alone: all available
  EXPECT_EQ(inv.cpu.sources.ram, DeviceSource::kSimulated);
  EXPECT_EQ(inv.cuda_driver_version, 13010);
}

// Each bad field: kConfig, naming the file, the GPU (or cpu) and the field.
TEST(DevicesSimulated, RejectsEachBadField) {
  const std::string good_gpu =
      R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6"})";
  struct Case {
    std::string gpu1;                // the second GPU's object ("" = use `whole`)
    std::string whole;               // a whole file instead
    std::vector<std::string> parts;  // the message must contain these
  };
  const std::vector<Case> cases = {
      {R"({"total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6"})", "", {"gpus[1].name", "missing"}},
      {R"({"name": 5, "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6"})", "", {"gpus[1].name", "string"}},
      {R"({"name": "", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6"})", "", {"gpus[1].name", "empty"}},
      {R"({"name": "G", "free_memory": "4GiB", "compute_capability": "8.6"})", "", {"gpus[1].total_memory", "missing"}},
      {R"({"name": "G", "total_memory": -8, "free_memory": 0, "compute_capability": "8.6"})", "", {"gpus[1].total_memory", "negative"}},
      {R"({"name": "G", "total_memory": 0, "free_memory": 0, "compute_capability": "8.6"})", "", {"gpus[1].total_memory", "more than 0"}},
      {R"({"name": "G", "total_memory": "8 GiB", "free_memory": "-1GiB", "compute_capability": "8.6"})", "", {"gpus[1].free_memory", "negative"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "9GiB", "compute_capability": "8.6"})", "", {"gpus[1].free_memory", "more than total_memory"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "lots", "compute_capability": "8.6"})", "", {"gpus[1].free_memory", "\"lots\""}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB"})", "", {"gpus[1].compute_capability", "missing"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "eight"})", "", {"gpus[1].compute_capability"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6", "temperature": "hot"})", "", {"gpus[1].temperature", "integer"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6", "utilization": 101})", "", {"gpus[1].utilization", "0 to 100"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6", "uuid": 7})", "", {"gpus[1].uuid", "string"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6", "driver_version": []})", "", {"gpus[1].driver_version"}},
      {R"({"name": "G", "total_memory": "8GiB", "free_memory": "4GiB", "compute_capability": "8.6", "totl_memory": 1})", "", {"gpus[1].totl_memory", "unknown key"}},
      {R"("not an object")", "", {"gpus[1]", "expected an object"}},
      {"", R"({"gpus": {}})", {"gpus", "array"}},
      {"", R"({"cpus": []})", {"cpus", "unknown key"}},
      {"", R"({})", {"gpus", "missing"}},
      {"", R"([1, 2])", {"JSON object"}},
      {"", R"({"gpus": [)", {"not valid JSON"}},
      {"", R"({"gpus": [], "cpu": {"ram_total": 1e999}})", {"not valid JSON", "overflow"}},  // no double holds it
      {"", R"({"gpus": [], "cpu": {"ram_total": "8GiB", "ram_available": "9GiB"}})", {"cpu.ram_available", "more than ram_total"}},
      {"", R"({"gpus": [], "cpu": {"ram_total": -1}})", {"cpu.ram_total", "negative"}},
      {"", R"({"gpus": [], "cpu": {"physical_cores": 0}})", {"cpu.physical_cores"}},
      {"", R"({"gpus": [], "cpu": {"physical_cores": 16, "logical_cores": 8}})", {"cpu.physical_cores", "more than logical_cores"}},
      {"", R"({"gpus": [], "cpu": {"simd": ["avx9000"]}})", {"cpu.simd", "avx9000"}},
      {"", R"({"gpus": [], "cpu": {"simd": "avx2"}})", {"cpu.simd", "array"}},
      {"", R"({"gpus": [], "cpu": []})", {"cpu", "object"}},
      {"", R"({"gpus": [], "cuda_driver_version": "13.0"})", {"cuda_driver_version", "integer"}},
      {"", R"({"gpus": [{"name": "A", "total_memory": 1, "free_memory": 1, "compute_capability": "8.0", "uuid": "GPU-x"},
                        {"name": "B", "total_memory": 1, "free_memory": 1, "compute_capability": "8.0", "uuid": "GPU-x"}]})",
       {"gpus[1].uuid", "earlier GPU"}},
  };
  test::TempDir dir;
  int n = 0;
  for (const auto& c : cases) {
    std::string path = dir.file("bad" + std::to_string(n++) + ".json");
    test::write_file(path, c.whole.empty() ? R"({"gpus": [)" + good_gpu + ", " + c.gpu1 + "]}" : c.whole);
    std::vector<std::string> parts = c.parts;
    parts.push_back(path);
    SCOPED_TRACE(test::read_file(path));
    expect_error([&] { devices_load_simulated(path, fake_detected_cpu()); }, ErrorCode::kConfig, parts);
  }
}

TEST(DevicesSimulated, MissingFileNamesIt) {
  expect_error([] { devices_load_simulated("/nonexistent/inventory.json", CpuInfo{}); },
               ErrorCode::kConfig, {"/nonexistent/inventory.json", "cannot open"});
}

// ---- JSON ---------------------------------------------------------------------

DeviceInventory varied_inventory() {
  DeviceInventory inv;
  GpuInfo a;
  a.index = 0;
  a.name = "NVIDIA GeForce RTX 3060";
  a.uuid = "GPU-01234567-89ab-cdef-0123-456789abcdef";
  a.total_memory_bytes = 12884901888ull;
  a.free_memory_bytes = 12348030976ull;
  a.compute_major = 8;
  a.compute_minor = 6;
  a.temperature_c = 47;
  a.utilization_percent = 12;
  a.driver_version = "580.65.06";
  a.sources = {DeviceSource::kNvml, DeviceSource::kNvml, DeviceSource::kNvml, DeviceSource::kCuda,
               DeviceSource::kNvml, DeviceSource::kNvml};
  GpuInfo b;  // a GPU with many figures unknown
  b.index = 3;
  b.name = "NVIDIA GPU 3";
  b.total_memory_bytes = 6 * kGiB;
  b.sources.total_memory = DeviceSource::kCuda;
  inv.gpus = {a, b};
  inv.cpu = fake_detected_cpu();
  inv.cuda_driver_version = 13000;
  inv.detection = "NVML: 2 GPUs";
  inv.simulated = false;
  inv.source = "detected";
  inv.warnings = {"first warning", "second \"quoted\" warning"};
  return inv;
}

void expect_same(const DeviceInventory& x, const DeviceInventory& y) {
  ASSERT_EQ(x.gpus.size(), y.gpus.size());
  for (size_t i = 0; i < x.gpus.size(); ++i) {
    const GpuInfo& a = x.gpus[i];
    const GpuInfo& b = y.gpus[i];
    EXPECT_EQ(a.index, b.index);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.uuid, b.uuid);
    EXPECT_EQ(a.total_memory_bytes, b.total_memory_bytes);
    EXPECT_EQ(a.free_memory_bytes, b.free_memory_bytes);
    EXPECT_EQ(a.compute_major, b.compute_major);
    EXPECT_EQ(a.compute_minor, b.compute_minor);
    EXPECT_EQ(a.temperature_c, b.temperature_c);
    EXPECT_EQ(a.utilization_percent, b.utilization_percent);
    EXPECT_EQ(a.driver_version, b.driver_version);
    EXPECT_EQ(a.sources.identity, b.sources.identity);
    EXPECT_EQ(a.sources.total_memory, b.sources.total_memory);
    EXPECT_EQ(a.sources.free_memory, b.sources.free_memory);
    EXPECT_EQ(a.sources.compute_capability, b.sources.compute_capability);
    EXPECT_EQ(a.sources.temperature, b.sources.temperature);
    EXPECT_EQ(a.sources.utilization, b.sources.utilization);
  }
  EXPECT_EQ(x.cpu.model_name, y.cpu.model_name);
  EXPECT_EQ(x.cpu.physical_cores, y.cpu.physical_cores);
  EXPECT_EQ(x.cpu.logical_cores, y.cpu.logical_cores);
  EXPECT_EQ(x.cpu.simd, y.cpu.simd);
  EXPECT_EQ(x.cpu.ram_total_bytes, y.cpu.ram_total_bytes);
  EXPECT_EQ(x.cpu.ram_available_bytes, y.cpu.ram_available_bytes);
  EXPECT_EQ(x.cpu.sources.model_name, y.cpu.sources.model_name);
  EXPECT_EQ(x.cpu.sources.cores, y.cpu.sources.cores);
  EXPECT_EQ(x.cpu.sources.simd, y.cpu.sources.simd);
  EXPECT_EQ(x.cpu.sources.ram, y.cpu.sources.ram);
  EXPECT_EQ(x.cuda_driver_version, y.cuda_driver_version);
  EXPECT_EQ(x.detection, y.detection);
  EXPECT_EQ(x.simulated, y.simulated);
  EXPECT_EQ(x.source, y.source);
  EXPECT_EQ(x.warnings, y.warnings);
}

TEST(DevicesJson, RoundTripsThroughText) {
  DeviceInventory inv = varied_inventory();
  json j = devices_to_json(inv);
  DeviceInventory back = devices_from_json(json::parse(j.dump()));
  expect_same(inv, back);
  EXPECT_EQ(devices_to_json(back), j);
}

TEST(DevicesJson, WritesTheDocumentedShape) {
  json j = devices_to_json(varied_inventory());
  EXPECT_EQ(j["gpus"][0]["total_memory"], 12884901888ull);
  EXPECT_EQ(j["gpus"][0]["compute_capability"], "8.6");
  EXPECT_EQ(j["gpus"][0]["sources"]["compute_capability"], "cuda");
  EXPECT_TRUE(j["gpus"][1]["compute_capability"].is_null());
  EXPECT_TRUE(j["gpus"][1]["temperature"].is_null());
  EXPECT_TRUE(j["gpus"][1]["utilization"].is_null());
  EXPECT_EQ(j["cpu"]["ram_total"], 16 * kGiB);
  EXPECT_EQ(j["cpu"]["simd"], json({"sse4.2", "avx2"}));
  EXPECT_EQ(j["simulated"], false);
  EXPECT_EQ(j["source"], "detected");
}

TEST(DevicesJson, DetectedInventoryRoundTrips) {
  DeviceOptions opts;
  opts.nvml_libraries = {"/nonexistent/libnvidia-ml.so.1"};
  opts.cuda_libraries = {"/nonexistent/libcuda.so.1"};
  DeviceInventory inv = DeviceDetector(opts).inventory();
  expect_same(inv, devices_from_json(devices_to_json(inv)));
}

TEST(DevicesJson, OutputReplaysAsASimulatedInventory) {
  // tars gpus --json on one machine is a valid --simulate-devices file on another.
  test::TempDir dir;
  std::string path = dir.file("recorded.json");
  DeviceInventory recorded = varied_inventory();
  recorded.gpus.pop_back();  // the second GPU lacks a compute capability
  test::write_file(path, devices_to_json(recorded).dump(2));
  DeviceInventory inv = devices_load_simulated(path, CpuInfo{});
  ASSERT_EQ(inv.gpus.size(), 1u);
  EXPECT_EQ(inv.gpus[0].uuid, recorded.gpus[0].uuid);
  EXPECT_EQ(inv.gpus[0].free_memory_bytes, recorded.gpus[0].free_memory_bytes);
  EXPECT_EQ(inv.gpus[0].temperature_c, 47);
  EXPECT_EQ(inv.cpu.model_name, recorded.cpu.model_name);
  EXPECT_EQ(inv.cpu.ram_available_bytes, recorded.cpu.ram_available_bytes);
  EXPECT_TRUE(inv.simulated);
  EXPECT_EQ(inv.source, path);
  EXPECT_TRUE(inv.warnings.empty());
}

TEST(DevicesJson, FromJsonRejectsWrongTypesNamingTheField) {
  auto bad = [](const char* text, std::vector<std::string> parts) {
    expect_error([&] { devices_from_json(json::parse(text)); }, ErrorCode::kInvalidArgument, parts);
  };
  bad(R"([])", {"top level", "object"});
  bad(R"({"gpus": 3})", {"gpus", "array"});
  bad(R"({"gpus": [{"name": 1}]})", {"gpus[0].name"});
  bad(R"({"gpus": [{}, {"total_memory": "x"}]})", {"gpus[1].total_memory"});
  bad(R"({"gpus": [{"total_memory": 1, "free_memory": 2}]})", {"gpus[0].free_memory"});
  bad(R"({"gpus": [{"sources": {"identity": "magic"}}]})", {"gpus[0].sources.identity", "magic"});
  bad(R"({"cpu": {"simd": [1]}})", {"cpu.simd[0]"});
  bad(R"({"cpu": {"ram_total": -5}})", {"cpu.ram_total", "negative"});
  bad(R"({"simulated": "yes"})", {"simulated"});
  bad(R"({"warnings": [1]})", {"warnings[0]"});
}

// Every field replaced by every kind of hostile value: both parsers answer
// with tars::Error or a valid inventory, never another exception or a crash.
TEST(DevicesJson, HostileValuesOnlyEverGiveTarsErrors) {
  const std::vector<json> hostile = {nullptr, true, -1, 1.5, 1e300, "x", "-5GiB", "", json::array(),
                                     json::object(), 18446744073709551615ull, -9223372036854775807ll};
  DeviceInventory base = varied_inventory();
  base.gpus[1].compute_major = 7;  // a complete GPU, so the simulated loader accepts the base
  const json original = devices_to_json(base);
  const json flat = original.flatten();  // every leaf, by JSON pointer
  int cases = 0;
  for (const auto& [path, value] : flat.items()) {
    for (const json& h : hostile) {
      json doc = original;
      doc[json::json_pointer(path)] = h;
      ++cases;
      try {
        devices_from_json(doc);
      } catch (const Error&) {
      } catch (const std::exception& e) {
        ADD_FAILURE() << "devices_from_json, " << path << " = " << h.dump() << ": " << e.what();
      }
      try {
        devices_parse_simulated(doc.dump(), "h.json", CpuInfo{});
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kConfig);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "devices_load_simulated, " << path << " = " << h.dump() << ": " << e.what();
      }
    }
  }
  EXPECT_GT(cases, 300);
}

// ---- CPU and RAM of this machine ----------------------------------------------------

std::string slurp(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(DevicesCpu, DetectsCoresAndRam) {
  CpuInfo cpu = cpu_detect();
  EXPECT_GE(cpu.logical_cores, 1);
  EXPECT_GE(cpu.physical_cores, 1);
  EXPECT_LE(cpu.physical_cores, cpu.logical_cores);
  EXPECT_EQ(cpu.logical_cores, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_FALSE(cpu.model_name.empty());
  EXPECT_GT(cpu.ram_total_bytes, 0u);
  EXPECT_GT(cpu.ram_available_bytes, 0u);
  EXPECT_LE(cpu.ram_available_bytes, cpu.ram_total_bytes);
  EXPECT_EQ(cpu.sources.ram, DeviceSource::kProcfs);
  // The kernel's other view of the same number.
  struct sysinfo si {};
  ASSERT_EQ(::sysinfo(&si), 0);
  EXPECT_EQ(cpu.ram_total_bytes, static_cast<uint64_t>(si.totalram) * si.mem_unit);
}

TEST(DevicesCpu, SimdFlagsAgreeWithProcCpuinfo) {
  std::vector<std::string> flags = cpu_parse_flags(slurp("/proc/cpuinfo"));
  ASSERT_FALSE(flags.empty()) << "/proc/cpuinfo has no flags line";
  std::set<std::string> flag_set(flags.begin(), flags.end());
  CpuInfo cpu = cpu_detect();
  std::set<std::string> detected(cpu.simd.begin(), cpu.simd.end());
  ASSERT_FALSE(cpu_simd_features().empty());
  for (const auto& f : cpu_simd_features()) {
    EXPECT_EQ(detected.count(f.name) == 1, flag_set.count(f.cpuinfo_flag) == 1)
        << f.name << " (/proc/cpuinfo: " << f.cpuinfo_flag << ")";
  }
#if defined(__x86_64__)
  // Every x86-64 CPU tars runs on has SSE3; a detector that finds nothing is broken.
  EXPECT_TRUE(detected.count("sse3"));
#endif
}

TEST(DevicesCpu, ParsesMeminfo) {
  uint64_t total = 0, available = 0;
  ASSERT_TRUE(cpu_parse_meminfo("MemTotal:       16384000 kB\nMemFree:  1000 kB\n"
                                "MemAvailable:    8192000 kB\nBuffers: 5 kB\n",
                                &total, &available));
  EXPECT_EQ(total, 16384000ull * 1024);
  EXPECT_EQ(available, 8192000ull * 1024);
  // Before Linux 3.14 there is no MemAvailable: MemFree stands in.
  ASSERT_TRUE(cpu_parse_meminfo("MemTotal: 2048 kB\nMemFree: 1024 kB\n", &total, &available));
  EXPECT_EQ(available, 1024ull * 1024);
  EXPECT_FALSE(cpu_parse_meminfo("garbage\n", &total, &available));
}

TEST(DevicesCpu, CountsPhysicalCores) {
  // Two packages, two cores each, two threads per core.
  std::string text;
  int proc = 0;
  for (int pkg = 0; pkg < 2; ++pkg) {
    for (int core = 0; core < 2; ++core) {
      for (int thread = 0; thread < 2; ++thread) {
        text += "processor\t: " + std::to_string(proc++) + "\nphysical id\t: " + std::to_string(pkg) +
                "\ncore id\t\t: " + std::to_string(core) + "\nflags\t\t: fpu sse\n\n";
      }
    }
  }
  EXPECT_EQ(cpu_parse_physical_cores(text), 4);
  EXPECT_EQ(cpu_parse_physical_cores("processor : 0\nFeatures : asimd\n"), 0);
  EXPECT_EQ(cpu_parse_flags(text), (std::vector<std::string>{"fpu", "sse"}));
}

// ---- driver version check ---------------------------------------------------------------

TEST(DevicesDriver, OldDriverWarnsNamingBothVersionsAndTheMinimumDriver) {
  auto w = devices_driver_warning(12020, 13000, "580.65.06");
  ASSERT_TRUE(w.has_value());
  for (const char* part : {"12.2", "12020", "13.0", "13000", "580.65.06"}) {
    EXPECT_NE(w->find(part), std::string::npos) << *w << " lacks " << part;
  }
  // The defaults are the constants next to their comment.
  auto d = devices_driver_warning(12020);
  ASSERT_TRUE(d.has_value());
  EXPECT_NE(d->find("580"), std::string::npos) << *d;
  EXPECT_EQ(kDevicesBuiltCudaVersion, 13000);
}

TEST(DevicesDriver, NewEnoughOrUnknownDriverIsFine) {
  EXPECT_FALSE(devices_driver_warning(13000, 13000, "580").has_value());
  EXPECT_FALSE(devices_driver_warning(13020, 13000, "580").has_value());
  EXPECT_FALSE(devices_driver_warning(0, 13000, "580").has_value());
  EXPECT_TRUE(devices_driver_warning(12090, 13000, "580").has_value());
  EXPECT_EQ(devices_cuda_version_string(12020), "12.2");
  EXPECT_EQ(devices_cuda_version_string(13000), "13.0");
  EXPECT_EQ(devices_cuda_version_string(11080), "11.8");
}

TEST(DevicesDriver, SimulatedOldDriverListsOnlyTheCpu) {
  test::TempDir dir;
  std::string path = dir.file("old-driver.json");
  test::write_file(path, R"({"gpus": [{"name": "G", "total_memory": "8GiB", "free_memory": "8GiB",
                                       "compute_capability": "8.6"}],
                             "cuda_driver_version": 12020})");
  DeviceOptions opts;
  opts.simulate_file = path;
  DeviceInventory inv = DeviceDetector(opts).inventory();
  EXPECT_TRUE(inv.gpus.empty());
  ASSERT_EQ(inv.warnings.size(), 1u);
  EXPECT_NE(inv.warnings[0].find("580"), std::string::npos) << inv.warnings[0];
  EXPECT_NE(inv.warnings[0].find("12.2"), std::string::npos) << inv.warnings[0];
  EXPECT_GT(inv.cpu.ram_total_bytes, 0u);
}

// ---- the detector ------------------------------------------------------------------------

TEST(DevicesDetector, NoNvidiaLibraryGivesCleanCpuOnlyInventory) {
  DeviceOptions opts;
  opts.nvml_libraries = {"/nonexistent/libnvidia-ml.so.1"};
  opts.cuda_libraries = {"/nonexistent/libcuda.so.1"};
  DeviceDetector detector(opts);
  DeviceInventory inv = detector.inventory();
  EXPECT_TRUE(inv.gpus.empty());
  EXPECT_TRUE(inv.warnings.empty()) << inv.warnings.front();
  EXPECT_FALSE(inv.simulated);
  EXPECT_EQ(inv.source, "detected");
  EXPECT_EQ(inv.cuda_driver_version, 0);
  EXPECT_NE(inv.detection.find("no NVIDIA"), std::string::npos) << inv.detection;
  EXPECT_GE(inv.cpu.logical_cores, 1);
  EXPECT_GT(inv.cpu.ram_total_bytes, 0u);
  DeviceInventory refreshed = detector.refresh();
  EXPECT_TRUE(refreshed.gpus.empty());
  EXPECT_EQ(refreshed.cpu.ram_total_bytes, inv.cpu.ram_total_bytes);
}

TEST(DevicesDetector, ALibraryThatIsNotNvidiasIsNotACrash) {
  // libm loads but has none of the NVML / CUDA entry points: every function
  // pointer stays null and must not be called.
  DeviceOptions opts;
  opts.nvml_libraries = {"libm.so.6"};
  opts.cuda_libraries = {"libm.so.6"};
  DeviceInventory inv = DeviceDetector(opts).inventory();
  EXPECT_TRUE(inv.gpus.empty());
  EXPECT_NE(inv.detection.find("lacks"), std::string::npos) << inv.detection;
}

TEST(DevicesDetector, DefaultOptionsNeverThrow) {
  // Whatever this machine has (GPU or not), detection answers.
  DeviceInventory inv = DeviceDetector(DeviceOptions{}).inventory();
  EXPECT_GE(inv.cpu.logical_cores, 1);
  for (const auto& g : inv.gpus) EXPECT_FALSE(g.name.empty());
}

TEST(DevicesDetector, SimulatedInventoryKeepsFileFiguresAndRefreshesRealRam) {
  DeviceOptions opts;
  opts.simulate_file = example_inventory("pc1-rtx3060.json");
  DeviceDetector detector(opts);
  DeviceInventory inv = detector.inventory();
  EXPECT_TRUE(inv.simulated);
  EXPECT_EQ(inv.source, opts.simulate_file);
  EXPECT_NE(inv.detection.find(opts.simulate_file), std::string::npos);
  ASSERT_EQ(inv.gpus.size(), 1u);
  EXPECT_EQ(inv.cpu.sources.ram, DeviceSource::kProcfs);
  // Refresh from several threads at once: the detector is shared by the
  // HTTP handlers.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        DeviceInventory r = detector.refresh();
        ASSERT_EQ(r.gpus.size(), 1u);
        EXPECT_EQ(r.gpus[0].free_memory_bytes, 11 * kGiB + kGiB / 2);
        EXPECT_GT(r.cpu.ram_available_bytes, 0u);
      }
    });
  }
  for (auto& t : threads) t.join();
}

TEST(DevicesDetector, SimulatedRamFromTheFileIsNotRefreshed) {
  test::TempDir dir;
  std::string path = dir.file("ram.json");
  test::write_file(path, R"({"gpus": [], "cpu": {"ram_total": "1TiB", "ram_available": "3GiB"}})");
  DeviceOptions opts;
  opts.simulate_file = path;
  DeviceDetector detector(opts);
  DeviceInventory r = detector.refresh();
  EXPECT_EQ(r.cpu.ram_total_bytes, 1ull << 40);
  EXPECT_EQ(r.cpu.ram_available_bytes, 3 * kGiB);
}

TEST(DevicesDetector, BadSimulatedFileThrowsConfigError) {
  DeviceOptions opts;
  opts.simulate_file = "/nonexistent/sim.json";
  expect_error([&] { DeviceDetector d(opts); }, ErrorCode::kConfig, {"/nonexistent/sim.json"});
}

TEST(DevicesSources, NamesRoundTrip) {
  for (auto s : {DeviceSource::kNone, DeviceSource::kNvml, DeviceSource::kCuda, DeviceSource::kCpuid,
                 DeviceSource::kProcfs, DeviceSource::kSysconf, DeviceSource::kSimulated}) {
    EXPECT_EQ(device_source_from_name(device_source_name(s)), s);
  }
  EXPECT_FALSE(device_source_from_name("bogus").has_value());
}

}  // namespace
}  // namespace tars::node
