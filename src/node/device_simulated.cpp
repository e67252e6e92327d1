// devices_load_simulated: a JSON inventory file that replaces GPU detection
// (format in devices.h).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "common/units.h"
#include "node/device_cpu.h"
#include "node/device_json_fields.h"
#include "node/devices.h"

namespace tars::node {

using nlohmann::json;

namespace {

// 64-bit FNV-1a: a stable hash for default UUIDs (not for security).
uint64_t fnv1a(std::string_view text, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A UUID-shaped id that is the same every time the same file is loaded and
// differs between files, so simulated GPUs of different nodes do not collide.
std::string default_uuid(const std::string& file_text, size_t index) {
  std::string key = file_text + "#gpu" + std::to_string(index);
  uint64_t a = fnv1a(key, 0), b = fnv1a(key, 0x9e3779b97f4a7c15ull);
  char buf[64];
  std::snprintf(buf, sizeof buf, "GPU-%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}

// "7.00 GiB (7516192768 bytes)": readable and exact.
std::string sized(uint64_t bytes) {
  return format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

// Rejects keys outside `known` (a typo must not pass silently).
void check_keys(const DeviceJsonContext& ctx, const json& obj, const std::string& field,
                std::initializer_list<const char*> known) {
  for (const auto& [key, value] : obj.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) {
      std::string list;
      for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
      device_json_fail(ctx, device_json_path(field, key), "unknown key (known keys: " + list + ")");
    }
  }
}

const json* find(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

const json& require(const DeviceJsonContext& ctx, const json& obj, const char* key,
                    const std::string& field) {
  const json* v = find(obj, key);
  if (!v) device_json_fail(ctx, device_json_path(field, key), "missing (required)");
  return *v;
}

GpuInfo read_gpu(const DeviceJsonContext& ctx, const json& j, size_t i, const std::string& file_text) {
  const std::string field = "gpus[" + std::to_string(i) + "]";
  if (!j.is_object()) {
    device_json_fail(ctx, field, "expected an object with name, total_memory, free_memory and "
                                 "compute_capability, got " + device_json_type(j));
  }
  check_keys(ctx, j, field,
             {"name", "total_memory", "free_memory", "compute_capability", "uuid", "temperature",
              "utilization", "driver_version", "index", "sources"});
  auto path = [&](const char* key) { return device_json_path(field, key); };
  GpuInfo g;
  g.index = static_cast<int>(i);
  g.name = device_json_string(ctx, require(ctx, j, "name", field), path("name"), true);
  g.total_memory_bytes = device_json_size(ctx, require(ctx, j, "total_memory", field), path("total_memory"));
  if (g.total_memory_bytes == 0) device_json_fail(ctx, path("total_memory"), "must be more than 0");
  g.free_memory_bytes = device_json_size(ctx, require(ctx, j, "free_memory", field), path("free_memory"));
  if (g.free_memory_bytes > g.total_memory_bytes) {
    device_json_fail(ctx, path("free_memory"),
                     sized(g.free_memory_bytes) + " is more than total_memory " +
                         sized(g.total_memory_bytes));
  }
  std::tie(g.compute_major, g.compute_minor) = device_json_compute_capability(
      ctx, require(ctx, j, "compute_capability", field), path("compute_capability"));
  const json* v = find(j, "uuid");
  g.uuid = v ? device_json_string(ctx, *v, path("uuid"), true) : default_uuid(file_text, i);
  if ((v = find(j, "temperature"))) g.temperature_c = device_json_int(ctx, *v, path("temperature"), -40, 150);
  if ((v = find(j, "utilization"))) g.utilization_percent = device_json_int(ctx, *v, path("utilization"), 0, 100);
  v = find(j, "driver_version");
  g.driver_version = v ? device_json_string(ctx, *v, path("driver_version"), true) : "simulated";

  const DeviceSource sim = DeviceSource::kSimulated;
  g.sources = {sim, sim, sim, sim, g.temperature_c ? sim : DeviceSource::kNone,
               g.utilization_percent ? sim : DeviceSource::kNone};
  return g;
}

// Overrides the detected CPU with what the file's "cpu" object gives.
void read_cpu(const DeviceJsonContext& ctx, const json& j, CpuInfo& cpu) {
  const std::string field = "cpu";
  if (!j.is_object()) device_json_fail(ctx, field, "expected an object, got " + device_json_type(j));
  check_keys(ctx, j, field,
             {"model_name", "physical_cores", "logical_cores", "simd", "ram_total", "ram_available",
              "sources"});
  auto path = [&](const char* key) { return device_json_path(field, key); };
  const DeviceSource sim = DeviceSource::kSimulated;
  const json* v = nullptr;
  if ((v = find(j, "model_name"))) {
    cpu.model_name = device_json_string(ctx, *v, path("model_name"), true);
    cpu.sources.model_name = sim;
  }
  const json* physical = find(j, "physical_cores");
  const json* logical = find(j, "logical_cores");
  if (physical) cpu.physical_cores = device_json_int(ctx, *physical, path("physical_cores"), 1, 1 << 16);
  if (logical) cpu.logical_cores = device_json_int(ctx, *logical, path("logical_cores"), 1, 1 << 16);
  if (physical || logical) {
    cpu.sources.cores = sim;
    if (cpu.physical_cores > cpu.logical_cores) {
      device_json_fail(ctx, path(physical ? "physical_cores" : "logical_cores"),
                       "physical_cores (" + std::to_string(cpu.physical_cores) +
                           ") is more than logical_cores (" + std::to_string(cpu.logical_cores) +
                           "); give both");
    }
  }
  if ((v = find(j, "simd"))) {
    if (!v->is_array()) device_json_fail(ctx, path("simd"), "expected an array of feature names, got " + device_json_type(*v));
    std::set<std::string> given;
    for (size_t i = 0; i < v->size(); ++i) {
      std::string f = "simd[" + std::to_string(i) + "]";
      given.insert(device_json_string(ctx, (*v)[i], path(f.c_str()), true));
    }
    cpu.simd.clear();
    for (const auto& f : cpu_simd_features()) {
      if (given.erase(f.name)) cpu.simd.push_back(f.name);
    }
    if (!given.empty()) {
      std::string known;
      for (const auto& f : cpu_simd_features()) known += std::string(known.empty() ? "" : ", ") + f.name;
      device_json_fail(ctx, path("simd"), "unknown feature \"" + *given.begin() + "\" (known: " + known + ")");
    }
    cpu.sources.simd = sim;
  }
  const json* total = find(j, "ram_total");
  const json* available = find(j, "ram_available");
  if (total) {
    cpu.ram_total_bytes = device_json_size(ctx, *total, path("ram_total"));
    if (cpu.ram_total_bytes == 0) device_json_fail(ctx, path("ram_total"), "must be more than 0");
    cpu.ram_available_bytes = cpu.ram_total_bytes;  // replaced below when given
  }
  if (available) cpu.ram_available_bytes = device_json_size(ctx, *available, path("ram_available"));
  if (total || available) {
    cpu.sources.ram = sim;
    if (cpu.ram_available_bytes > cpu.ram_total_bytes) {
      device_json_fail(ctx, path("ram_available"),
                       sized(cpu.ram_available_bytes) + " is more than ram_total " +
                           sized(cpu.ram_total_bytes));
    }
  }
}

}  // namespace

DeviceInventory devices_load_simulated(const std::string& path, const CpuInfo& detected_cpu) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kConfig, "simulated inventory " + path + ": cannot open it (" +
                                        std::strerror(errno) + ")");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return devices_parse_simulated(ss.str(), path, detected_cpu);
}

DeviceInventory devices_parse_simulated(const std::string& text, const std::string& path,
                                        const CpuInfo& detected_cpu) {
  DeviceJsonContext ctx{ErrorCode::kConfig, "simulated inventory " + path + ": "};
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw Error(ErrorCode::kConfig, "simulated inventory " + path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) {
    throw Error(ErrorCode::kConfig, "simulated inventory " + path +
                                        ": expected a JSON object with a \"gpus\" array, got " +
                                        device_json_type(j));
  }
  check_keys(ctx, j, "",
             {"gpus", "cpu", "cuda_driver_version", "simulated", "source", "detection", "warnings"});

  DeviceInventory inv;
  inv.simulated = true;
  inv.source = path;
  const json& gpus = require(ctx, j, "gpus", "");
  if (!gpus.is_array()) device_json_fail(ctx, "gpus", "expected an array, got " + device_json_type(gpus));
  std::set<std::string> uuids;
  for (size_t i = 0; i < gpus.size(); ++i) {
    inv.gpus.push_back(read_gpu(ctx, gpus[i], i, text));
    if (!uuids.insert(inv.gpus.back().uuid).second) {
      device_json_fail(ctx, "gpus[" + std::to_string(i) + "].uuid",
                       "\"" + inv.gpus.back().uuid + "\" is used by an earlier GPU");
    }
  }
  inv.cpu = detected_cpu;
  if (const json* cpu = find(j, "cpu")) read_cpu(ctx, *cpu, inv.cpu);
  if (const json* v = find(j, "cuda_driver_version")) {
    inv.cuda_driver_version = device_json_int(ctx, *v, "cuda_driver_version", 0, 1000000);
  }
  return inv;
}

}  // namespace tars::node
