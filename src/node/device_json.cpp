// devices_to_json / devices_from_json: the inventory on the wire (tars gpus
// --json, GET /status, node.register). Format documented in devices.h.
#include <tuple>

#include "node/device_json_fields.h"
#include "node/devices.h"

namespace tars::node {

using nlohmann::json;

namespace {

json optional_int(const std::optional<int>& v) { return v ? json(*v) : json(nullptr); }

json gpu_to_json(const GpuInfo& g) {
  const GpuSources& s = g.sources;
  return {
      {"index", g.index},
      {"name", g.name},
      {"uuid", g.uuid},
      {"total_memory", g.total_memory_bytes},
      {"free_memory", g.free_memory_bytes},
      {"compute_capability", g.compute_major > 0 ? json(std::to_string(g.compute_major) + "." +
                                                        std::to_string(g.compute_minor))
                                                  : json(nullptr)},
      {"temperature", optional_int(g.temperature_c)},
      {"utilization", optional_int(g.utilization_percent)},
      {"driver_version", g.driver_version},
      {"sources",
       {{"identity", device_source_name(s.identity)},
        {"total_memory", device_source_name(s.total_memory)},
        {"free_memory", device_source_name(s.free_memory)},
        {"compute_capability", device_source_name(s.compute_capability)},
        {"temperature", device_source_name(s.temperature)},
        {"utilization", device_source_name(s.utilization)}}},
  };
}

json cpu_to_json(const CpuInfo& c) {
  const CpuSources& s = c.sources;
  return {
      {"model_name", c.model_name},
      {"physical_cores", c.physical_cores},
      {"logical_cores", c.logical_cores},
      {"simd", c.simd},
      {"ram_total", c.ram_total_bytes},
      {"ram_available", c.ram_available_bytes},
      {"sources",
       {{"model_name", device_source_name(s.model_name)},
        {"cores", device_source_name(s.cores)},
        {"simd", device_source_name(s.simd)},
        {"ram", device_source_name(s.ram)}}},
  };
}

// Reading side: tolerant of missing keys (a node of another version may
// send fewer), strict on types (a wrong type is a bug or an attack).
struct Reader {
  DeviceJsonContext ctx{ErrorCode::kInvalidArgument, "device inventory: "};

  const json* find(const json& obj, const char* key) const {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  void object(const json& v, const std::string& field) const {
    if (!v.is_object()) device_json_fail(ctx, field, "expected an object, got " + device_json_type(v));
  }

  DeviceSource source(const json& sources, const char* key, const std::string& field) const {
    const json* v = find(sources, key);
    if (!v) return DeviceSource::kNone;
    std::string path = device_json_path(field, key);
    auto s = device_source_from_name(device_json_string(ctx, *v, path));
    if (!s) device_json_fail(ctx, path, "unknown source " + v->dump());
    return *s;
  }

  std::optional<int> nullable_int(const json& obj, const char* key, const std::string& field, int lo,
                                  int hi) const {
    const json* v = find(obj, key);
    if (!v || v->is_null()) return std::nullopt;
    return device_json_int(ctx, *v, device_json_path(field, key), lo, hi);
  }

  GpuInfo gpu(const json& j, const std::string& field) const {
    object(j, field);
    GpuInfo g;
    auto path = [&](const char* key) { return device_json_path(field, key); };
    if (const json* v = find(j, "index")) g.index = device_json_int(ctx, *v, path("index"), 0, 1 << 20);
    if (const json* v = find(j, "name")) g.name = device_json_string(ctx, *v, path("name"));
    if (const json* v = find(j, "uuid")) g.uuid = device_json_string(ctx, *v, path("uuid"));
    if (const json* v = find(j, "total_memory")) g.total_memory_bytes = device_json_size(ctx, *v, path("total_memory"));
    if (const json* v = find(j, "free_memory")) g.free_memory_bytes = device_json_size(ctx, *v, path("free_memory"));
    if (g.free_memory_bytes > g.total_memory_bytes && g.total_memory_bytes > 0) {
      device_json_fail(ctx, path("free_memory"), "is more than total_memory");
    }
    const json* cc = find(j, "compute_capability");
    if (cc && !cc->is_null()) {
      std::tie(g.compute_major, g.compute_minor) =
          device_json_compute_capability(ctx, *cc, path("compute_capability"));
    }
    g.temperature_c = nullable_int(j, "temperature", field, -100, 300);
    g.utilization_percent = nullable_int(j, "utilization", field, 0, 100);
    if (const json* v = find(j, "driver_version")) g.driver_version = device_json_string(ctx, *v, path("driver_version"));
    if (const json* s = find(j, "sources")) {
      object(*s, path("sources"));
      std::string sp = path("sources");
      g.sources.identity = source(*s, "identity", sp);
      g.sources.total_memory = source(*s, "total_memory", sp);
      g.sources.free_memory = source(*s, "free_memory", sp);
      g.sources.compute_capability = source(*s, "compute_capability", sp);
      g.sources.temperature = source(*s, "temperature", sp);
      g.sources.utilization = source(*s, "utilization", sp);
    }
    return g;
  }

  CpuInfo cpu(const json& j) const {
    const std::string field = "cpu";
    object(j, field);
    CpuInfo c;
    auto path = [&](const char* key) { return device_json_path(field, key); };
    if (const json* v = find(j, "model_name")) c.model_name = device_json_string(ctx, *v, path("model_name"));
    if (const json* v = find(j, "physical_cores")) c.physical_cores = device_json_int(ctx, *v, path("physical_cores"), 0, 1 << 20);
    if (const json* v = find(j, "logical_cores")) c.logical_cores = device_json_int(ctx, *v, path("logical_cores"), 0, 1 << 20);
    if (const json* v = find(j, "simd")) {
      if (!v->is_array()) device_json_fail(ctx, path("simd"), "expected an array of strings, got " + device_json_type(*v));
      for (size_t i = 0; i < v->size(); ++i) {
        c.simd.push_back(device_json_string(ctx, (*v)[i], path("simd") + "[" + std::to_string(i) + "]", true));
      }
    }
    if (const json* v = find(j, "ram_total")) c.ram_total_bytes = device_json_size(ctx, *v, path("ram_total"));
    if (const json* v = find(j, "ram_available")) c.ram_available_bytes = device_json_size(ctx, *v, path("ram_available"));
    if (const json* s = find(j, "sources")) {
      object(*s, path("sources"));
      std::string sp = path("sources");
      c.sources.model_name = source(*s, "model_name", sp);
      c.sources.cores = source(*s, "cores", sp);
      c.sources.simd = source(*s, "simd", sp);
      c.sources.ram = source(*s, "ram", sp);
    }
    return c;
  }
};

}  // namespace

json devices_to_json(const DeviceInventory& inv) {
  json gpus = json::array();
  for (const auto& g : inv.gpus) gpus.push_back(gpu_to_json(g));
  return {
      {"simulated", inv.simulated},
      {"source", inv.source},
      {"detection", inv.detection},
      {"cuda_driver_version", inv.cuda_driver_version},
      {"gpus", std::move(gpus)},
      {"cpu", cpu_to_json(inv.cpu)},
      {"warnings", inv.warnings},
  };
}

DeviceInventory devices_from_json(const json& j) {
  Reader r;
  r.object(j, "(top level)");
  DeviceInventory inv;
  const auto& ctx = r.ctx;
  if (const json* v = r.find(j, "simulated")) inv.simulated = device_json_bool(ctx, *v, "simulated");
  if (const json* v = r.find(j, "source")) inv.source = device_json_string(ctx, *v, "source");
  if (const json* v = r.find(j, "detection")) inv.detection = device_json_string(ctx, *v, "detection");
  if (const json* v = r.find(j, "cuda_driver_version")) {
    inv.cuda_driver_version = device_json_int(ctx, *v, "cuda_driver_version", 0, 1000000);
  }
  if (const json* v = r.find(j, "gpus")) {
    if (!v->is_array()) device_json_fail(ctx, "gpus", "expected an array, got " + device_json_type(*v));
    for (size_t i = 0; i < v->size(); ++i) inv.gpus.push_back(r.gpu((*v)[i], "gpus[" + std::to_string(i) + "]"));
  }
  if (const json* v = r.find(j, "cpu")) inv.cpu = r.cpu(*v);
  if (const json* v = r.find(j, "warnings")) {
    if (!v->is_array()) device_json_fail(ctx, "warnings", "expected an array, got " + device_json_type(*v));
    for (size_t i = 0; i < v->size(); ++i) {
      inv.warnings.push_back(device_json_string(ctx, (*v)[i], "warnings[" + std::to_string(i) + "]"));
    }
  }
  return inv;
}

}  // namespace tars::node
