// A plan as text (`tars plan`) and as JSON (`tars plan --json`, the
// coordinator's /status).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cluster/planner.h"
#include "common/units.h"

namespace tars::cluster {
namespace {

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s + " ";
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// "weights 3.50 GiB + KV 1.00 GiB + compute 90.00 MiB = 4.59 GiB" (no KV
// term for an encoder).
std::string parts_sum(uint64_t weights, uint64_t kv, uint64_t compute) {
  std::string s = "weights " + format_bytes(weights);
  if (kv > 0) s += " + KV " + format_bytes(kv);
  return s + " + compute " + format_bytes(compute) + " = " + format_bytes(weights + kv + compute);
}

// "free 5.80 GiB - used 384.00 MiB - margin 256.00 MiB = 5.17 GiB available".
std::string room(uint64_t free, uint64_t used, uint64_t margin, uint64_t available) {
  return "free " + format_bytes(free) + " - used " + format_bytes(used) + " - margin " + format_bytes(margin) +
         " = " + format_bytes(available) + " available";
}

}  // namespace

std::string plan_to_table(const Plan& plan) {
  std::string out;
  size_t w_model = 5, w_dev = 6;
  for (const auto& p : plan.placements) {
    w_model = std::max(w_model, p.model.size());
    w_dev = std::max(w_dev, p.node.size() + 1 + p.device.size() + 1 + p.device_name.size());
  }
  out += pad("MODEL", w_model) + pad("ROLE", 9) + pad("LOAD", 9) + pad("PLACEMENT", w_dev) +
         pad("QUANT", 7) + pad("SLOTS", 5) + pad("CTX", 6) + "NEED\n";
  for (const auto& p : plan.placements) {
    const std::string load = p.resident ? "resident" : "on-demand";
    if (!p.placed) {
      out += pad(p.model, w_model) + pad(p.role, 9) + pad(load, 9) + pad("UNPLACED", w_dev) +
             pad("-", 7) + pad("-", 5) + pad("-", 6) + "-\n";
      out += "    reason: " + p.reason + "\n";
    } else {
      const bool split = p.gpu_layers >= 0;
      // A split's NEED: the GPU part, then the RAM part.
      const std::string need_cell =
          split ? format_bytes(p.need_bytes) + " + " + format_bytes(p.cpu_part.need_bytes) + " RAM (" +
                      std::to_string(p.gpu_layers) + "/" + std::to_string(p.n_layer) + " layers on GPU)"
                : format_bytes(p.need_bytes);
      out += pad(p.model, w_model) + pad(p.role, 9) + pad(load, 9) +
             pad(p.node + "/" + p.device + " " + p.device_name, w_dev) + pad(p.quant, 7) +
             pad(std::to_string(p.slots), 5) + pad(p.n_ctx > 0 ? std::to_string(p.n_ctx) : "-", 6) +
             need_cell + "\n";
      const std::string quantized =
          p.quant != p.source_quant ? " (file is " + p.source_quant + ": quantized at load)" : "";
      if (split) {
        out += "    split: layers 0-" + std::to_string(p.gpu_layers - 1) + " and the embeddings on " +
               p.node + "/" + p.device + ", layers " + std::to_string(p.cpu_part.first_layer) + "-" +
               std::to_string(p.n_layer - 1) + " and the output head in " + p.node + "/" +
               p.cpu_part.device + " RAM (gpu_layers = " + std::to_string(p.gpu_layers) + ")\n";
        out += "    need on " + p.device + ": " + parts_sum(p.weights_bytes, p.kv_bytes, p.compute_bytes) +
               quantized + "\n";
        out += "    room on " + p.device + ": " +
               room(p.free_bytes, p.used_before, p.margin_bytes, p.available_bytes) + "\n";
        const PlanCpuPart& c = p.cpu_part;
        out += "    need in RAM: " + parts_sum(c.weights_bytes, c.kv_bytes, c.compute_bytes) + "\n";
        out += "    room in RAM: " + room(c.free_bytes, c.used_before, c.margin_bytes, c.available_bytes) + "\n";
      } else {
        out += "    need: " + parts_sum(p.weights_bytes, p.kv_bytes, p.compute_bytes) + quantized + "\n";
        out += "    room: " + room(p.free_bytes, p.used_before, p.margin_bytes, p.available_bytes) + "\n";
      }
      out += "    why: " + p.reason + "\n";
      if (!p.resident) {
        out += "    on demand: loaded when first asked" +
               (p.swaps_with.empty() ? std::string(", no other on-demand model there")
                                     : "; swaps with " + join(p.swaps_with) +
                                           " (the least recently used is unloaded)") +
               "\n";
      }
    }
    for (const auto& r : p.rejected) {
      out += "    - " + r.node + "/" + r.device + ": " + r.why + "\n";
    }
  }
  out += "\n" + pad("DEVICE", w_dev) + pad("FREE", 11) + pad("OVERHEAD", 11) + pad("RESIDENT", 11) +
         pad("ON-DEMAND", 11) + pad("MARGIN", 11) + "LEFT\n";
  for (const auto& d : plan.devices) {
    const uint64_t used = d.used_bytes() + d.margin_bytes;
    const std::string left = d.free_bytes >= used ? format_bytes(d.free_bytes - used)
                                                  : format_bytes(used - d.free_bytes).insert(0, 1, '-');
    out += pad(d.node + "/" + d.device + " " + d.device_name, w_dev) + pad(format_bytes(d.free_bytes), 11) +
           pad(format_bytes(d.overhead_bytes), 11) + pad(format_bytes(d.resident_bytes), 11) +
           pad(format_bytes(d.on_demand_peak_bytes), 11) + pad(format_bytes(d.margin_bytes), 11) + left +
           "\n";
  }
  return out;
}

nlohmann::json plan_to_json(const Plan& plan) {
  nlohmann::json j;
  j["models"] = nlohmann::json::array();
  for (const auto& p : plan.placements) {
    nlohmann::json m = {{"model", p.model},   {"role", p.role},        {"resident", p.resident},
                        {"placed", p.placed}, {"reason", p.reason},    {"source_quant", p.source_quant}};
    if (p.placed) {
      m["node"] = p.node;
      m["device"] = p.device;
      m["device_name"] = p.device_name;
      m["device_kind"] = device_kind_name(p.kind);
      m["quant"] = p.quant;
      m["slots"] = p.slots;
      m["ctx_size"] = p.n_ctx;
      m["weights_bytes"] = p.weights_bytes;
      m["kv_bytes"] = p.kv_bytes;
      m["compute_bytes"] = p.compute_bytes;
      m["need_bytes"] = p.need_bytes;
      m["free_bytes"] = p.free_bytes;
      m["used_before_bytes"] = p.used_before;
      m["margin_bytes"] = p.margin_bytes;
      m["available_bytes"] = p.available_bytes;
      m["swaps_with"] = p.swaps_with;
      // Partial offload: -1 = the whole model on `device`; else its first
      // gpu_layers layers there and the rest (cpu_bytes) in the node's RAM.
      m["gpu_layers"] = p.gpu_layers;
      m["n_layer"] = p.n_layer;
      m["cpu_bytes"] = p.gpu_layers >= 0 ? p.cpu_part.need_bytes : 0;
      if (p.gpu_layers >= 0) {
        const PlanCpuPart& c = p.cpu_part;
        m["cpu_part"] = {{"device", c.device},
                         {"first_layer", c.first_layer},
                         {"n_layers", c.n_layers},
                         {"weights_bytes", c.weights_bytes},
                         {"kv_bytes", c.kv_bytes},
                         {"compute_bytes", c.compute_bytes},
                         {"need_bytes", c.need_bytes},
                         {"free_bytes", c.free_bytes},
                         {"used_before_bytes", c.used_before},
                         {"margin_bytes", c.margin_bytes},
                         {"available_bytes", c.available_bytes}};
      }
    }
    m["rejected"] = nlohmann::json::array();
    for (const auto& r : p.rejected) m["rejected"].push_back({{"node", r.node}, {"device", r.device}, {"why", r.why}});
    j["models"].push_back(m);
  }
  j["devices"] = nlohmann::json::array();
  for (const auto& d : plan.devices) {
    j["devices"].push_back({{"node", d.node},
                            {"device", d.device},
                            {"device_name", d.device_name},
                            {"kind", device_kind_name(d.kind)},
                            {"total_bytes", d.total_bytes},
                            {"free_bytes", d.free_bytes},
                            {"margin_bytes", d.margin_bytes},
                            {"overhead_bytes", d.overhead_bytes},
                            {"resident_bytes", d.resident_bytes},
                            {"on_demand_peak_bytes", d.on_demand_peak_bytes},
                            {"residents", d.residents},
                            {"on_demand", d.on_demand}});
  }
  return j;
}

}  // namespace tars::cluster
