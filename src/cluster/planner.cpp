// The placement planner (planner.h): candidate ladder, device state, and the
// ordered rules that choose a device for each model.
#include "cluster/planner.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <tuple>

#include "common/error.h"
#include "common/units.h"
#include "engine/gguf.h"
#include "engine/quantize.h"

namespace tars::cluster {
namespace {

// The ladder, highest precision first.
constexpr std::array<const char*, 7> kLadder = {"F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Precision rank: lower is more precise. Types off the ladder sit beside the
// ladder type of the same bits.
int quant_rank(const std::string& q) {
  static const std::vector<std::pair<std::string, int>> kRanks = {
      {"F32", 0},    {"F16", 1},    {"BF16", 1},   {"Q8_0", 2},   {"Q6_K", 3},
      {"Q5_K_M", 4}, {"Q5_K", 4},   {"Q5_K_S", 4}, {"Q5_1", 4},   {"Q5_0", 4},
      {"Q4_K_M", 5}, {"Q4_K", 5},   {"Q4_K_S", 5}, {"Q4_1", 5},   {"Q4_0", 6}};
  for (const auto& [name, rank] : kRanks) {
    if (name == q) return rank;
  }
  return 7;
}

// Rule 5's classes: 8 bits and more are one class.
int quant_class(const std::string& q) { return std::max(0, quant_rank(q) - 2); }

// What a device holds as the plan is built.
struct DeviceState {
  std::string node;
  PlanDevice dev;
  uint64_t margin = 0;
  uint64_t resident_bytes = 0;
  uint64_t on_demand_peak = 0;
  std::vector<std::string> residents, on_demand;
  bool in_use() const { return !residents.empty() || !on_demand.empty(); }
  std::string where() const { return node + "/" + dev.id; }
};

// The figures of `weights + kv + compute` bytes on device `d`, with what the
// plan had put there before (`used_before`) and the room that left.
PlanFit fit_on(const DeviceState& d, uint64_t weights, uint64_t kv, uint64_t compute, uint64_t used_before,
               uint64_t available) {
  PlanFit f;
  f.weights_bytes = weights;
  f.kv_bytes = kv;
  f.compute_bytes = compute;
  f.need_bytes = weights + kv + compute;
  f.free_bytes = d.dev.free_bytes;
  f.used_before = used_before;
  f.margin_bytes = d.margin;
  f.available_bytes = available;
  return f;
}

// The best way to run a model on one device, if any.
struct Option {
  size_t device = 0;
  size_t cand = 0;
  int slots = 0;
  uint64_t need = 0, used_before = 0, available = 0;
};

std::string gib(uint64_t b) { return format_bytes(b); }

uint64_t used_before(const DeviceState& d, bool resident) {
  return estimate_runtime_overhead(d.dev.kind) + d.resident_bytes + (resident ? d.on_demand_peak : 0);
}

uint64_t available(const DeviceState& d, bool resident) {
  const uint64_t used = used_before(d, resident) + d.margin;
  return d.dev.free_bytes > used ? d.dev.free_bytes - used : 0;
}

// Highest candidate with the declared slots; when none fits, fewer slots.
// `why` gets the candidates above the chosen one (or all, when none fits).
std::optional<Option> best_on_device(const PlanModel& m, const DeviceState& d, size_t index,
                                     std::vector<std::string>* why) {
  const bool resident = m.decl.load != "on_demand";
  const uint64_t avail = available(d, resident);
  const int declared = std::max(1, m.decl.slots);
  for (int slots = declared; slots >= 1; --slots) {
    for (size_t c = 0; c < m.candidates.size(); ++c) {
      const uint64_t need = m.candidates[c].model_bytes(slots);
      if (need <= avail) {
        return Option{index, c, slots, need, used_before(d, resident), avail};
      }
      if (why && slots == declared) {
        why->push_back(m.candidates[c].quant + " needs " + gib(need) + " > " + gib(avail) +
                       " available");
      }
    }
  }
  if (why && declared > 1) {
    const auto& last = m.candidates.back();
    why->push_back("even " + last.quant + " with 1 slot needs " + gib(last.model_bytes(1)) + " > " +
                   gib(avail) + " available");
  }
  return std::nullopt;
}

// Does the pin allow this device? "NODE" or "NODE/DEVICE" (id, uuid, or a
// bare GPU index).
bool pin_allows(const std::string& pin, const DeviceState& d) {
  if (pin.empty()) return true;
  const size_t slash = pin.find('/');
  const std::string node = pin.substr(0, slash);
  if (node != d.node) return false;
  if (slash == std::string::npos) return true;
  const std::string dev = pin.substr(slash + 1);
  return dev == d.dev.id || (!d.dev.uuid.empty() && dev == d.dev.uuid) ||
         (d.dev.kind == DeviceKind::kGpu && "gpu" + dev == d.dev.id);
}

std::string explain_pin_miss(const std::string& pin, const std::vector<DeviceState>& devices) {
  const std::string node = pin.substr(0, pin.find('/'));
  for (const auto& d : devices) {
    if (d.node == node) return "pinned to " + pin + ", which names no device of node " + node;
  }
  return "pinned to " + pin + ", but node " + node + " is not in the cluster";
}

// ---- Rule 3: splits ----------------------------------------------------------------

// One way to split a model: the first gpu_layers layers on GPU `gpu`, the
// rest in RAM device `ram` of the same node.
struct SplitOption {
  size_t gpu = 0, ram = 0;  // device indices
  size_t cand = 0;
  int slots = 0;
  int gpu_layers = 0;
  SplitEstimate est;
  uint64_t gpu_used_before = 0, gpu_available = 0;
  uint64_t ram_used_before = 0, ram_available = 0;
};

// Can this model split at all? Resident decoders with two layers or more.
bool splittable(const PlanModel& m) {
  if (m.encoder || m.decl.load == "on_demand" || m.candidates.empty()) return false;
  return std::all_of(m.candidates.begin(), m.candidates.end(),
                     [](const PlanCandidate& c) { return c.split.n_layer() >= 2; });
}

// The RAM device of the node of device `g`, if the node has one.
std::optional<size_t> ram_of(const std::vector<DeviceState>& devs, size_t g) {
  for (size_t r = 0; r < devs.size(); ++r) {
    if (devs[r].node == devs[g].node && devs[r].dev.kind == DeviceKind::kCpu) return r;
  }
  return std::nullopt;
}

// Candidate `c` with `slots` split over GPU g and RAM r: as many first layers
// as fit on the GPU (1 .. n_layer - 1), or exactly `forced` layers (the
// configuration's gpu_layers) when it is > 0; the rest must fit in RAM.
// nullopt (with `why`) when not even one layer (or not the forced count)
// fits, or the rest does not.
std::optional<SplitOption> split_on(const PlanModel& m, const std::vector<DeviceState>& devs, size_t g,
                                    size_t r, size_t c, int slots, std::string* why, int forced = 0) {
  const PlanCandidate& cand = m.candidates[c];
  const int L = cand.split.n_layer();
  const uint64_t ga = available(devs[g], true), ra = available(devs[r], true);
  const std::string n_of = " of " + std::to_string(L) + " layers";
  for (int n = forced > 0 ? forced : L - 1; n >= (forced > 0 ? forced : 1); --n) {
    const SplitEstimate e = estimate_split(cand.split, slots, n);
    if (e.device.model_bytes() > ga) {
      if (forced > 0) {
        *why = cand.quant + " split: " + std::to_string(n) + n_of + " (gpu_layers) need " +
               gib(e.device.model_bytes()) + " > " + gib(ga) + " available on " + devs[g].dev.id;
        return std::nullopt;
      }
      continue;
    }
    if (e.cpu.model_bytes() > ra) {
      *why = cand.quant + " split: " + std::to_string(n) + n_of + " fit on " + devs[g].dev.id +
             " but the other " + std::to_string(L - n) + " and the head need " + gib(e.cpu.model_bytes()) +
             " > " + gib(ra) + " of RAM available";
      return std::nullopt;
    }
    SplitOption o;
    o.gpu = g;
    o.ram = r;
    o.cand = c;
    o.slots = slots;
    o.gpu_layers = n;
    o.est = e;
    o.gpu_used_before = used_before(devs[g], true);
    o.gpu_available = ga;
    o.ram_used_before = used_before(devs[r], true);
    o.ram_available = ra;
    return o;
  }
  *why = cand.quant + " split: not even 1" + n_of + " fits on " + devs[g].dev.id + " (" +
         gib(estimate_split(cand.split, slots, 1).device.model_bytes()) + " > " + gib(ga) + " available)";
  return std::nullopt;
}

// Rule 3's order: at least half the layers on the GPU, then the highest
// precision and the most GPU layers; below half, the most GPU layers, then
// the highest precision; then the device order.
bool split_better(const SplitOption& a, const SplitOption& b, int n_layer) {
  const bool ha = 2 * a.gpu_layers >= n_layer, hb = 2 * b.gpu_layers >= n_layer;
  if (ha != hb) return ha;
  if (ha) {
    if (a.cand != b.cand) return a.cand < b.cand;
    if (a.gpu_layers != b.gpu_layers) return a.gpu_layers > b.gpu_layers;
  } else {
    if (a.gpu_layers != b.gpu_layers) return a.gpu_layers > b.gpu_layers;
    if (a.cand != b.cand) return a.cand < b.cand;
  }
  return a.gpu < b.gpu;
}

std::string layers_word(int n) { return std::to_string(n) + (n == 1 ? " layer" : " layers"); }

}  // namespace

const PlanPlacement* Plan::find(const std::string& model) const {
  for (const auto& p : placements) {
    if (p.model == model) return &p;
  }
  return nullptr;
}

PlanNode plan_node_from_inventory(const std::string& name, const node::DeviceInventory& inv) {
  PlanNode n;
  n.name = name;
  for (const auto& g : inv.gpus) {
    if (g.sources.free_memory == node::DeviceSource::kNone && g.free_memory_bytes == 0) continue;
    PlanDevice d;
    d.id = "gpu" + std::to_string(g.index);
    d.uuid = g.uuid;
    d.name = g.name;
    d.kind = DeviceKind::kGpu;
    d.total_bytes = g.total_memory_bytes;
    d.free_bytes = g.free_memory_bytes;
    d.compute_major = g.compute_major;
    d.compute_minor = g.compute_minor;
    n.devices.push_back(d);
  }
  PlanDevice cpu;
  cpu.id = "cpu";
  cpu.name = inv.cpu.model_name.empty() ? "CPU" : inv.cpu.model_name;
  cpu.kind = DeviceKind::kCpu;
  cpu.total_bytes = inv.cpu.ram_total_bytes;
  cpu.free_bytes = inv.cpu.ram_available_bytes;
  n.devices.push_back(cpu);
  return n;
}

std::vector<std::string> plan_quant_ladder(const std::string& source,
                                           const std::vector<std::string>& allowed) {
  const std::string src = upper(source);
  std::vector<std::string> out;
  const bool is_float = src == "F32" || src == "F16" || src == "BF16";
  if (!is_float) {
    out.push_back(src);  // a quantized file runs as it is
  } else {
    out.push_back(src);
    bool below = false;
    for (const char* q : kLadder) {
      if (below && q != src) out.push_back(q);
      if (quant_rank(q) >= quant_rank(src)) below = true;
    }
  }
  if (allowed.empty()) return out;
  std::vector<std::string> kept;
  for (const auto& q : out) {
    for (const auto& a : allowed) {
      if (upper(a) == q) {
        kept.push_back(q);
        break;
      }
    }
  }
  return kept;
}

PlanModel plan_model_from_gguf(const node::ModelDecl& decl, const engine::GgufFile& file,
                               const PlanModelOptions& o) {
  PlanModel m;
  m.decl = decl;
  m.name = decl.alias;
  if (m.name.empty()) {
    std::string base = decl.path.substr(decl.path.find_last_of('/') + 1);
    if (base.size() > 5 && base.substr(base.size() - 5) == ".gguf") base.resize(base.size() - 5);
    m.name = base;
  }
  if (m.decl.ctx_size <= 0) m.decl.ctx_size = o.default_ctx;
  if (m.decl.slots <= 0) m.decl.slots = std::max(1, o.default_slots);
  m.source_quant = estimate_file_quant(file);
  const std::vector<std::string> ladder = plan_quant_ladder(m.source_quant, decl.quant);
  if (ladder.empty()) {
    std::string allowed;
    for (const auto& a : decl.quant) allowed += (allowed.empty() ? "" : ", ") + a;
    throw Error(ErrorCode::kConfig, "model " + m.name + ": the file is " + m.source_quant +
                                        " and quant = [" + allowed +
                                        "] allows none of the types it can run at");
  }
  for (const auto& q : ladder) {
    EstimateOptions eo;
    eo.quant = q;
    eo.n_ctx = m.decl.ctx_size;
    eo.n_slots = 1;
    eo.max_batch = o.max_batch;
    eo.kv_type = o.kv_type;
    const MemoryEstimate e = estimate_model(file, eo);
    m.n_params = e.n_params;
    m.encoder = e.encoder;
    if (!e.encoder && m.decl.ctx_size <= 0) m.decl.ctx_size = e.n_ctx;
    PlanCandidate c{e.quant, e.weights_bytes, e.kv_bytes_per_slot, e.compute_bytes, {}};
    if (!e.encoder) c.split = e.split;
    m.candidates.push_back(std::move(c));
  }
  return m;
}

Plan plan_placement(const std::vector<PlanNode>& nodes, const std::vector<PlanModel>& models,
                    const PlanOptions& options) {
  std::vector<DeviceState> devs;
  for (const auto& n : nodes) {
    for (const auto& d : n.devices) {
      DeviceState s;
      s.node = n.name;
      s.dev = d;
      s.margin = std::max<uint64_t>(options.margin_min_bytes,
                                    static_cast<uint64_t>(options.margin_fraction * d.total_bytes));
      devs.push_back(s);
    }
  }

  // The main chat model: the largest always-loaded chat model, else the
  // largest chat model.
  std::optional<size_t> main_chat;
  for (int pass = 0; pass < 2 && !main_chat; ++pass) {
    for (size_t i = 0; i < models.size(); ++i) {
      const auto& m = models[i];
      if (m.decl.role != "chat" || !m.error.empty() || m.candidates.empty()) continue;
      if (pass == 0 && m.decl.load == "on_demand") continue;
      if (!main_chat || m.n_params > models[*main_chat].n_params) main_chat = i;
    }
  }

  // Placement order: pins, always-loaded, on-demand; largest first.
  std::vector<size_t> order(models.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& ma = models[a];
    const auto& mb = models[b];
    auto key = [](const PlanModel& m) {
      return std::make_tuple(m.decl.pin.empty() ? 1 : 0, m.decl.load == "on_demand" ? 1 : 0);
    };
    if (key(ma) != key(mb)) return key(ma) < key(mb);
    return ma.n_params > mb.n_params;
  });

  Plan plan;
  plan.placements.resize(models.size());
  std::optional<size_t> main_chat_device, embedding_device;

  // Rule 3: splits model mi (that no allowed GPU holds whole) over a GPU in
  // `allowed` and its node's RAM into p. False, with split_why[g] saying why
  // for each GPU g, when no split fits. `feasible` (the whole placements, in
  // RAM only) and `why` (each device's rejected candidates) feed p.rejected.
  // forced > 0: exactly that many GPU layers (the configuration's gpu_layers).
  auto place_split = [&](const PlanModel& m, size_t mi, PlanPlacement& p, const std::vector<size_t>& allowed,
                         const std::vector<Option>& feasible, const std::vector<std::vector<std::string>>& why,
                         std::vector<std::string>& split_why, int forced) {
    const int L = m.candidates.front().split.n_layer();
    const int declared = std::max(1, m.decl.slots);
    std::vector<SplitOption> options;
    // Per GPU, each candidate's outcome with the slots that gave options.
    std::vector<std::vector<std::string>> cand_why(devs.size());
    for (int slots = declared; slots >= 1 && options.empty(); --slots) {
      for (size_t g : allowed) {
        if (devs[g].dev.kind != DeviceKind::kGpu) continue;
        const std::optional<size_t> r = ram_of(devs, g);
        if (!r) {
          split_why[g] = "no RAM device on node " + devs[g].node + " to split with";
          continue;
        }
        cand_why[g].assign(m.candidates.size(), "");
        for (size_t c = 0; c < m.candidates.size(); ++c) {
          std::string w;
          if (auto o = split_on(m, devs, g, *r, c, slots, &w, forced)) {
            options.push_back(*o);
            cand_why[g][c] = m.candidates[c].quant + " split: " + std::to_string(o->gpu_layers) + " of " +
                             std::to_string(L) + " layers on " + devs[g].dev.id;
          } else {
            cand_why[g][c] = w;
            split_why[g] = w + (slots > 1 ? " (" + std::to_string(slots) + " slots)" : "");
          }
        }
      }
    }
    if (options.empty()) return false;
    // Rule 4: the main chat model avoids the embedding model's GPU when
    // another can take a part.
    std::vector<std::pair<size_t, std::string>> avoided;  // device, why
    if (main_chat && mi == *main_chat && embedding_device) {
      const bool other = std::any_of(options.begin(), options.end(),
                                     [&](const SplitOption& o) { return o.gpu != *embedding_device; });
      if (other) {
        std::vector<SplitOption> kept;
        for (const auto& o : options) {
          if (o.gpu == *embedding_device) avoided.emplace_back(o.gpu, "hosts the embedding model");
          else kept.push_back(o);
        }
        options = kept;
      }
    }
    std::stable_sort(options.begin(), options.end(),
                     [&](const SplitOption& a, const SplitOption& b) { return split_better(a, b, L); });
    const SplitOption& best = options.front();
    DeviceState& gpu = devs[best.gpu];
    DeviceState& ram = devs[best.ram];
    const PlanCandidate& c = m.candidates[best.cand];
    const int rest = L - best.gpu_layers;

    p.reason = (m.decl.pin.empty() ? "" : "pinned to " + m.decl.pin + "; ") + "split: " +
               std::to_string(best.gpu_layers) + " of " + std::to_string(L) + " layers on " + gpu.dev.id +
               " (" + gib(best.est.device.model_bytes()) + "), " + std::to_string(rest) + " in RAM (" +
               gib(best.est.cpu.model_bytes()) + "): " +
               (forced > 0 ? std::string("gpu_layers = ") + std::to_string(forced) + " in the configuration"
                           : std::string("no GPU holds it whole"));
    if (forced <= 0 && 2 * best.gpu_layers < L) p.reason += "; no candidate puts half of the layers on a GPU";
    // The chosen GPU's higher candidates, the other splits, and each device's whole-model figure.
    for (size_t k = 0; k < best.cand; ++k) {
      std::string w = cand_why[best.gpu][k];
      if (w.find(" layers on ") != std::string::npos) w += ", fewer than half (chosen: " + c.quant + ")";
      p.rejected.push_back({gpu.node, gpu.dev.id, w});
    }
    for (size_t k = 1; k < options.size(); ++k) {
      const SplitOption& o = options[k];
      if (o.gpu == best.gpu) continue;  // the chosen GPU's candidates are above or below the choice
      p.rejected.push_back({devs[o.gpu].node, devs[o.gpu].dev.id,
                            "would split at " + m.candidates[o.cand].quant + " with " +
                                layers_word(o.gpu_layers) + " on it, not chosen"});
    }
    for (const auto& [d, because] : avoided) {
      p.rejected.push_back({devs[d].node, devs[d].dev.id, "avoided: " + because});
    }
    for (size_t d : allowed) {
      const auto whole = std::find_if(feasible.begin(), feasible.end(), [&](const Option& o) { return o.device == d; });
      if (whole != feasible.end()) {
        p.rejected.push_back({devs[d].node, devs[d].dev.id,
                              "fits whole at " + m.candidates[whole->cand].quant +
                                  ", not chosen: a split over a GPU comes before RAM alone"});
      } else if (!why[d].empty()) {
        p.rejected.push_back({devs[d].node, devs[d].dev.id, why[d].back()});
      }
    }

    // Commit: the GPU part on the GPU, the rest in RAM, each a resident.
    p.placed = true;
    p.node = gpu.node;
    p.device = gpu.dev.id;
    p.device_name = gpu.dev.name;
    p.device_uuid = gpu.dev.uuid;
    p.kind = gpu.dev.kind;
    p.quant = c.quant;
    p.slots = best.slots;
    p.gpu_layers = best.gpu_layers;
    p.n_layer = L;
    static_cast<PlanFit&>(p) = fit_on(gpu, best.est.device.weights_bytes, best.est.device.kv_bytes,
                                      best.est.device.compute_bytes, best.gpu_used_before, best.gpu_available);
    PlanCpuPart& cp = p.cpu_part;
    static_cast<PlanFit&>(cp) = fit_on(ram, best.est.cpu.weights_bytes, best.est.cpu.kv_bytes,
                                       best.est.cpu.compute_bytes, best.ram_used_before, best.ram_available);
    cp.device = ram.dev.id;
    cp.first_layer = best.gpu_layers;
    cp.n_layers = rest;
    gpu.resident_bytes += p.need_bytes;
    gpu.residents.push_back(m.name);
    ram.resident_bytes += cp.need_bytes;
    ram.residents.push_back(m.name);
    if (main_chat && mi == *main_chat && !main_chat_device) main_chat_device = best.gpu;
    return true;
  };

  // Places model mi into p on a device of a node not in exclude_nodes (the
  // nodes already holding a copy of it).
  auto place = [&](size_t mi, PlanPlacement& p, const std::set<std::string>& exclude_nodes) {
    const PlanModel& m = models[mi];
    p.model = m.name;
    p.role = m.decl.role;
    p.resident = m.decl.load != "on_demand";
    p.source_quant = m.source_quant;
    p.n_ctx = m.decl.ctx_size;
    if (!m.error.empty() || m.candidates.empty()) {
      p.reason = m.error.empty() ? "no candidate quantization" : m.error;
      return;
    }

    // Rule 1: the pin.
    std::vector<size_t> allowed;
    for (size_t d = 0; d < devs.size(); ++d) {
      if (pin_allows(m.decl.pin, devs[d]) && !exclude_nodes.count(devs[d].node)) allowed.push_back(d);
    }
    if (allowed.empty()) {
      p.reason = explain_pin_miss(m.decl.pin, devs);
      return;
    }

    // A split the configuration declares (gpu_layers, as llama.cpp's -ngl):
    // 0 keeps the model in RAM; 1 .. n_layer - 1 splits it at exactly that
    // count over a GPU and its node's RAM, even where a GPU could hold it
    // whole (the user chose to keep GPU memory free); n_layer or more is the
    // default, whole on one device.
    const int declared = m.decl.gpu_layers;
    if (declared == 0) {
      std::vector<size_t> ram;
      for (size_t d : allowed) {
        if (devs[d].dev.kind == DeviceKind::kCpu) ram.push_back(d);
      }
      if (ram.empty()) {
        p.reason = "gpu_layers = 0 in the configuration, and no RAM device is allowed";
        return;
      }
      allowed = ram;
    } else if (declared > 0 && splittable(m) && declared < m.candidates.front().split.n_layer() &&
               std::any_of(allowed.begin(), allowed.end(),
                           [&](size_t d) { return devs[d].dev.kind == DeviceKind::kGpu; })) {
      // (Without a GPU among the allowed devices the declaration is moot, as
      // -ngl is on a machine without one: the rules below put it in RAM.)
      std::vector<std::vector<std::string>> none(devs.size());
      std::vector<std::string> split_why(devs.size());
      if (place_split(m, mi, p, allowed, {}, none, split_why, declared)) return;
      p.reason = "gpu_layers = " + std::to_string(declared) +
                 " in the configuration: that split fits on no GPU and its node's RAM";
      for (size_t d : allowed) {
        if (!split_why[d].empty()) p.rejected.push_back({devs[d].node, devs[d].dev.id, split_why[d]});
      }
      return;
    }

    // What each allowed device can give.
    std::vector<Option> feasible;
    std::vector<std::vector<std::string>> why(devs.size());
    for (size_t d : allowed) {
      if (auto o = best_on_device(m, devs[d], d, &why[d])) feasible.push_back(*o);
    }
    // Rule 2: GPUs first.
    const bool any_gpu = std::any_of(feasible.begin(), feasible.end(), [&](const Option& o) {
      return devs[o.device].dev.kind == DeviceKind::kGpu;
    });
    // Rule 3: no GPU holds it whole: split it over a GPU and its node's RAM.
    std::vector<std::string> split_why(devs.size());
    bool split_tried = false;
    if (!any_gpu && splittable(m)) {
      if (place_split(m, mi, p, allowed, feasible, why, split_why, 0)) return;
      split_tried = std::any_of(allowed.begin(), allowed.end(),
                                [&](size_t d) { return !split_why[d].empty(); });
    }
    if (feasible.empty()) {
      p.reason = m.decl.pin.empty() ? "fits on no device" : "does not fit on " + m.decl.pin;
      if (split_tried) p.reason += ", whole or split over a GPU and its node's RAM";
      for (size_t d : allowed) {
        std::string w = why[d].empty() ? "no candidate" : why[d].back();
        if (!split_why[d].empty()) w += "; " + split_why[d];
        p.rejected.push_back({devs[d].node, devs[d].dev.id, w});
      }
      return;
    }
    std::vector<std::pair<size_t, std::string>> excluded;  // device, why
    auto drop = [&](auto pred, const std::string& because) {
      std::vector<Option> kept;
      for (const auto& o : feasible) {
        if (pred(o)) excluded.emplace_back(o.device, because);
        else kept.push_back(o);
      }
      feasible = kept;
    };
    if (any_gpu) {
      drop([&](const Option& o) { return devs[o.device].dev.kind == DeviceKind::kCpu; },
           "CPU RAM is the last resort and a GPU can take it");
    }
    // Rule 4: the embedding model and the main chat model apart.
    std::optional<size_t> avoid;
    std::string avoid_why;
    if (node::model_role_is_encoder(m.decl.role) && main_chat_device) {
      avoid = main_chat_device;
      avoid_why = "hosts the main chat model " + models[*main_chat].name;
    } else if (main_chat && mi == *main_chat && embedding_device) {
      avoid = embedding_device;
      avoid_why = "hosts the embedding model";
    }
    if (avoid) {
      const bool other = std::any_of(feasible.begin(), feasible.end(), [&](const Option& o) {
        return o.device != *avoid && devs[o.device].dev.kind == DeviceKind::kGpu;
      });
      if (other) drop([&](const Option& o) { return o.device == *avoid; }, avoid_why);
    }

    // Rules 5-9 as one ordered key.
    auto same_kind = [&](const DeviceState& d) {
      return p.resident ? d.residents.size() : d.on_demand.size();
    };
    auto left = [&](const Option& o) { return o.available - o.need; };
    std::stable_sort(feasible.begin(), feasible.end(), [&](const Option& a, const Option& b) {
      const std::string& qa = m.candidates[a.cand].quant;
      const std::string& qb = m.candidates[b.cand].quant;
      if (quant_class(qa) != quant_class(qb)) return quant_class(qa) < quant_class(qb);
      if (same_kind(devs[a.device]) != same_kind(devs[b.device])) {
        return same_kind(devs[a.device]) < same_kind(devs[b.device]);
      }
      if (a.cand != b.cand) return a.cand < b.cand;
      if (a.slots != b.slots) return a.slots > b.slots;
      if (left(a) != left(b)) return left(a) > left(b);
      return a.device < b.device;
    });
    const Option& best = feasible.front();
    DeviceState& dst = devs[best.device];
    const PlanCandidate& c = m.candidates[best.cand];

    // Why this device: the first rule on which the runner-up lost.
    const char* kind_word = p.resident ? "resident" : "on-demand";
    if (!m.decl.pin.empty()) {
      p.reason = "pinned to " + m.decl.pin;
    } else if (feasible.size() == 1 && excluded.empty()) {
      p.reason = "the only device where it fits";
    } else if (feasible.size() == 1) {
      p.reason = "the only device left where it fits";
    } else {
      p.reason = "best of " + std::to_string(feasible.size()) + " devices where it fits";
    }
    for (size_t k = 1; k < feasible.size(); ++k) {
      const Option& o = feasible[k];
      const DeviceState& d = devs[o.device];
      const std::string& q = m.candidates[o.cand].quant;
      std::string lost;
      if (quant_class(q) != quant_class(c.quant)) {
        lost = "would only get " + q;
      } else if (same_kind(d) != same_kind(dst)) {
        lost = "already holds " + std::to_string(same_kind(d)) + " " + kind_word + " model" +
               (same_kind(d) == 1 ? "" : "s") + " (chosen: " + std::to_string(same_kind(dst)) + ")";
      } else if (o.cand != best.cand) {
        lost = "would only get " + q;
      } else if (o.slots != best.slots) {
        lost = "would only get " + std::to_string(o.slots) + " slots";
      } else if (left(o) != left(best)) {
        lost = "less room left (" + gib(left(o)) + " vs " + gib(left(best)) + ")";
      } else {
        lost = "later in the node order";
      }
      p.rejected.push_back({d.node, d.dev.id, "fits at " + q + ", not chosen: " + lost});
    }
    for (const auto& [d, because] : excluded) {
      p.rejected.push_back({devs[d].node, devs[d].dev.id, "avoided: " + because});
    }
    for (size_t d : allowed) {
      const bool is_feasible =
          std::any_of(feasible.begin(), feasible.end(), [&](const Option& o) { return o.device == d; }) ||
          std::any_of(excluded.begin(), excluded.end(), [&](const auto& e) { return e.first == d; });
      if (!is_feasible) {
        p.rejected.push_back({devs[d].node, devs[d].dev.id,
                              why[d].empty() ? "no candidate fits" : why[d].back()});
      }
    }
    // The candidates above the chosen one on the chosen device.
    for (size_t k = 0; k < best.cand && k < why[best.device].size(); ++k) {
      p.rejected.push_back({dst.node, dst.dev.id, why[best.device][k]});
    }

    // Commit.
    p.placed = true;
    p.node = dst.node;
    p.device = dst.dev.id;
    p.device_name = dst.dev.name;
    p.device_uuid = dst.dev.uuid;
    p.kind = dst.dev.kind;
    p.quant = c.quant;
    p.slots = best.slots;
    p.n_layer = c.split.n_layer();
    static_cast<PlanFit&>(p) = fit_on(dst, c.weights_bytes, c.kv_bytes_per_slot * static_cast<uint64_t>(best.slots),
                                      c.compute_bytes, best.used_before, best.available);
    if (p.resident) {
      dst.resident_bytes += best.need;
      dst.residents.push_back(m.name);
    } else {
      dst.on_demand_peak = std::max(dst.on_demand_peak, best.need);
      dst.on_demand.push_back(m.name);
    }
    if (main_chat && mi == *main_chat && !main_chat_device) main_chat_device = best.device;
    if (node::model_role_is_encoder(m.decl.role) && !embedding_device) embedding_device = best.device;
  };
  for (size_t mi : order) place(mi, plan.placements[mi], {});
  // Replicas: more copies of a model, each on another node, placed after
  // every first copy (a replica never takes a device from another model's
  // first copy). A copy that fits nowhere is listed unplaced with the reason.
  for (size_t mi : order) {
    const PlanPlacement& first = plan.placements[mi];
    if (!first.placed || models[mi].decl.replicas <= 1) continue;
    std::set<std::string> nodes = {first.node};
    for (int r = 2; r <= models[mi].decl.replicas; ++r) {
      PlanPlacement extra;
      place(mi, extra, nodes);
      if (extra.placed) {
        nodes.insert(extra.node);
        extra.reason = "replica " + std::to_string(r) + " of " + std::to_string(models[mi].decl.replicas) +
                       " (another node than the other copies): " + extra.reason;
      } else {
        extra.reason = "replica " + std::to_string(r) + " of " + std::to_string(models[mi].decl.replicas) +
                       ": no other node can take it (" + extra.reason + ")";
      }
      plan.placements.push_back(std::move(extra));
    }
  }

  // Who swaps with whom, and the per-device summary.
  for (auto& p : plan.placements) {
    if (!p.placed || p.resident) continue;
    for (const auto& d : devs) {
      if (d.node != p.node || d.dev.id != p.device) continue;
      for (const auto& other : d.on_demand) {
        if (other != p.model) p.swaps_with.push_back(other);
      }
    }
  }
  for (const auto& d : devs) {
    PlanDeviceUse u;
    u.node = d.node;
    u.device = d.dev.id;
    u.device_name = d.dev.name;
    u.kind = d.dev.kind;
    u.total_bytes = d.dev.total_bytes;
    u.free_bytes = d.dev.free_bytes;
    u.margin_bytes = d.margin;
    u.overhead_bytes = d.in_use() ? estimate_runtime_overhead(d.dev.kind) : 0;
    u.resident_bytes = d.resident_bytes;
    u.on_demand_peak_bytes = d.on_demand_peak;
    u.residents = d.residents;
    u.on_demand = d.on_demand;
    plan.devices.push_back(u);
  }
  return plan;
}

}  // namespace tars::cluster
