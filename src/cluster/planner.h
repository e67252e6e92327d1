#pragma once
// Placement planner: which device of which node runs each declared model, at
// which quantization and with how many slots, from the memory estimates
// (estimate.h) and the devices' free memory. A pure function: the same input
// gives the same plan, so `tars plan` prints exactly what the coordinator
// does on every change of nodes or models.
//
// ---- Rules --------------------------------------------------------------------
//
// Memory on a device (all figures from estimate.h):
//   used = overhead (once, when the device hosts anything)
//        + the sum of its resident (load = "always") models
//        + the largest of its on-demand models (they share one area and swap
//          with each other, least recently used out first, as Ollama does)
//   A placement fits when used + margin <= free memory, with
//   margin = max(kPlanMarginMinBytes, kPlanMarginFraction x the device's
//   total memory): room for the allocator's rounding and for what other
//   processes take after the plan was made.
//
// Order: pinned models first, then always-loaded ones, then on-demand ones;
// within each group the largest first (by parameter count: a 7B before a 3B,
// whatever the files' types, since the type is chosen here), ties by
// declaration order.
//
// Candidates per model: the quantization ladder F32 -> F16 -> Q8_0 -> Q6_K ->
// Q5_K_M -> Q4_K_M -> Q4_0, starting at the file's own type and going down
// only (a float file is quantized by the engine's quantizer; a quantized file
// is used as it is: requantizing compounds two errors, and the quantizer
// refuses it), restricted to decl.quant when given. Each candidate is tried
// with the declared slots; only when no candidate fits with them are slots
// reduced, one at a time, down to 1.
//
// A declared gpu_layers (ModelDecl, as llama.cpp's -ngl) comes first: 0
// keeps the model in RAM, 1 .. n_layer - 1 splits a resident decoder at
// exactly that count over a GPU and its node's RAM (unplaced, with the
// numbers, when that split fits nowhere; moot where no GPU is allowed).
// Otherwise:
// Device choice for a model, among the devices where some candidate fits:
//   1. a pin restricts the devices to the pinned node (or node/device);
//   2. GPUs before the CPU: system RAM is the last resort;
//   3. partial offload: a resident decoder that no allowed GPU holds whole
//      (at any candidate, with any number of slots) is split by layers when
//      a GPU can take some of them: the GPU holds as many first layers as
//      fit in its available memory (free - used before - margin, the
//      overhead included when the GPU is new), the node's RAM (its "cpu"
//      device) holds the other layers and the output head, and must have
//      room for them too (estimate_split gives both parts). A whole
//      placement on any GPU, even at a lower candidate, beats a split; a
//      split beats RAM alone. Among the splits (each GPU x candidate; the
//      declared slots first, fewer only when no split fits with them): the
//      highest precision that puts at least half of the layers on its GPU,
//      then the most GPU layers; when none reaches half, the most GPU
//      layers, then the highest precision; then rule 4, then the node and
//      device order. Splits use at least 1 and at most n_layer - 1 GPU
//      layers (with all of them the node would load the model whole).
//      Encoders never split, and neither do on-demand models (they swap in
//      one area of one device; only residents split, to keep swapping
//      simple). A pin to "NODE" or "NODE/gpuN" allows a split there (the
//      RAM part goes to that node's RAM); a pin to "NODE/cpu" does not;
//   4. the embedding model avoids the device of the main chat model (the
//      largest always-loaded chat model, or the largest chat model when none
//      is always loaded), and the main chat model avoids the embedding
//      model's, when another GPU can take it;
//   5. the best precision class the model can get on any of them, where
//      F32/F16/BF16/Q8_0 form one class (8-bit weights are as good as
//      16-bit in every published measure) and each lower type is a class of
//      its own;
//   6. the fewest models of the same load kind already there (resident
//      models spread over devices so they run in parallel; on-demand models
//      spread so fewer swap with each other);
//   7. the highest precision on the device, then the most slots;
//   8. the most memory left after placing it;
//   9. the input order of nodes and devices.
// A model that fits nowhere is left unplaced with the reason (for each
// device, what its smallest candidate needs and what the device has, and for
// a GPU, how far a split got).
// Every decision carries its numbers: need, free, used, margin, available,
// and the candidates rejected on each device and why.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cluster/estimate.h"
#include "node/config.h"
#include "node/devices.h"

namespace tars::engine {
class GgufFile;
}

namespace tars::cluster {

// margin = max(kPlanMarginMinBytes, kPlanMarginFraction x total memory).
inline constexpr uint64_t kPlanMarginMinBytes = uint64_t{256} << 20;
inline constexpr double kPlanMarginFraction = 0.02;

// One device a node offers.
struct PlanDevice {
  std::string id;            // "gpu0", "gpu1", ... (GPU index), or "cpu": pins name it
  std::string uuid;          // GPU uuid ("" for the CPU); a pin may name it too
  std::string name;          // "NVIDIA GeForce RTX 3060", or the CPU's model name
  DeviceKind kind = DeviceKind::kCpu;
  uint64_t total_bytes = 0;  // device memory, or RAM
  uint64_t free_bytes = 0;   // what tars may use now (GPU free memory, MemAvailable);
                             // a running coordinator adds back what its own models hold
  int compute_major = 0;     // GPU compute capability; 0 for the CPU
  int compute_minor = 0;
};

struct PlanNode {
  std::string name;                  // node name (pins name it)
  std::vector<PlanDevice> devices;   // GPUs first, then the CPU
};

// A node's devices from its inventory: one PlanDevice per GPU (with free
// memory known) and one for the CPU's RAM.
PlanNode plan_node_from_inventory(const std::string& name, const node::DeviceInventory& inv);

// One way to run a model: its weights' type and the memory for one slot.
struct PlanCandidate {
  std::string quant;           // "F16", "Q8_0", "Q4_K_M", ...
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes_per_slot = 0;
  uint64_t compute_bytes = 0;
  // By layer, for a split (rule 3): the estimate's figures at this quant.
  // Empty (no layer_weights_bytes) for encoders: such a candidate never splits.
  SplitFigures split;
  uint64_t model_bytes(int slots) const {
    return weights_bytes + kv_bytes_per_slot * static_cast<uint64_t>(slots) + compute_bytes;
  }
};

struct PlanModel {
  node::ModelDecl decl;        // alias, role, pin, quant, load; ctx_size and slots resolved (> 0)
  std::string name;            // the alias (or the file name) shown in plans
  std::string source_quant;    // the file's type ("Q4_K_M", "F16", "F32")
  uint64_t n_params = 0;       // elements in all tensors: "largest first"
  bool encoder = false;        // BERT
  std::vector<PlanCandidate> candidates;  // highest precision first; [0] is the file's type
  std::string error;           // non-empty: the file could not be read (the model is unplaced)
};

// Options for building PlanModels from files.
struct PlanModelOptions {
  int default_ctx = 0;          // [engine] ctx_size: used when decl.ctx_size is 0 (0 = trained, at most 4096)
  int default_slots = 4;        // [engine] slots: used when decl.slots is 0
  int max_batch = 512;          // [engine] batch
  engine::TensorType kv_type = engine::TensorType::kF16;
};

// The quantization ladder for a file of type `source` restricted to `allowed`
// (empty = any): highest precision first. "Q4_K_M" -> {"Q4_K_M"}; "F16" ->
// {"F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"}.
std::vector<std::string> plan_quant_ladder(const std::string& source,
                                           const std::vector<std::string>& allowed);

// The model as the planner sees it: the ladder's estimates from the header
// (estimate_model for each candidate). Throws tars::Error as estimate_model.
PlanModel plan_model_from_gguf(const node::ModelDecl& decl, const engine::GgufFile& file,
                               const PlanModelOptions& options);

struct PlanOptions {
  uint64_t margin_min_bytes = kPlanMarginMinBytes;
  double margin_fraction = kPlanMarginFraction;
};

// Why one device did not get a model, or what it would have given.
struct PlanRejection {
  std::string node, device;  // "pc2", "gpu0"
  std::string why;           // "F16 needs 5.99 GiB > 5.31 GiB available", "not chosen: ..."
};

// The RAM part of a split placement (PlanPlacement::gpu_layers >= 0): the
// layers after the GPU's and the output head, in the node's "cpu" device.
// The memory arithmetic of a model, or of one part of a split model, on
// the device that holds it.
struct PlanFit {
  uint64_t weights_bytes = 0, kv_bytes = 0, compute_bytes = 0;
  uint64_t need_bytes = 0;      // weights + kv + compute: what the device's residents count
  uint64_t free_bytes = 0;      // the device's free memory
  uint64_t used_before = 0;     // what the device held for the plan before this model
                                // (overhead, residents, and for a resident the on-demand peak)
  uint64_t margin_bytes = 0;
  uint64_t available_bytes = 0; // free - used_before - margin (overhead included when new)
};

// The RAM part of a split model (its figures are the RAM device's).
struct PlanCpuPart : PlanFit {
  std::string device;           // the RAM device's id ("cpu")
  int first_layer = 0;          // layers [first_layer, n_layer)
  int n_layers = 0;
};

// A model's place; its PlanFit figures are for `device` (for a split: the
// GPU part alone, see cpu_part for the rest).
struct PlanPlacement : PlanFit {
  std::string model;         // PlanModel::name
  std::string role;          // "chat" | "embedding"
  bool resident = true;      // load = "always"; false: on demand (swaps)
  bool placed = false;
  // Where and how (placed only).
  std::string node, device, device_name;  // "pc1", "gpu0", "NVIDIA GeForce RTX 3060"
  std::string device_uuid;   // the GPU's uuid (PlanDevice::uuid; "" for RAM): how the node finds it
  DeviceKind kind = DeviceKind::kGpu;
  std::string quant;         // the type it runs at
  std::string source_quant;  // the file's type; quant differs: quantized at load
  int slots = 0, n_ctx = 0;
  // Partial offload (rule 3): the first gpu_layers layers on `device` (a
  // GPU), the rest in the node's RAM (cpu_part). -1: the whole model on
  // `device`. This is what ModelDecl::gpu_layers tells the node.
  int gpu_layers = -1;
  int n_layer = 0;           // the model's layers (decoders; 0 when unknown or an encoder)
  PlanCpuPart cpu_part;       // the RAM part of a split (all zero when gpu_layers is -1)
  std::vector<std::string> swaps_with;  // on-demand: the others sharing the area
  std::string reason;        // why this device, or (unplaced) why none
  std::vector<PlanRejection> rejected;  // the other devices and the candidates above quant
};

// What each device ends up holding.
struct PlanDeviceUse {
  std::string node, device, device_name;
  DeviceKind kind = DeviceKind::kGpu;
  uint64_t total_bytes = 0, free_bytes = 0, margin_bytes = 0;
  uint64_t overhead_bytes = 0;       // 0 when it hosts nothing
  uint64_t resident_bytes = 0;       // sum of resident models (a split model's part here)
  uint64_t on_demand_peak_bytes = 0; // the largest on-demand model
  std::vector<std::string> residents, on_demand;  // a split model is a resident of its GPU
                                                  // and of its node's RAM (each its part)
  uint64_t used_bytes() const { return overhead_bytes + resident_bytes + on_demand_peak_bytes; }
};

struct Plan {
  std::vector<PlanPlacement> placements;  // in the order of the models given
  std::vector<PlanDeviceUse> devices;     // every device, in node order
  const PlanPlacement* find(const std::string& model) const;
};

Plan plan_placement(const std::vector<PlanNode>& nodes, const std::vector<PlanModel>& models,
                    const PlanOptions& options = {});

// The plan as a table, one row per model, with the arithmetic below each row
// and a summary per device.
std::string plan_to_table(const Plan& plan);
nlohmann::json plan_to_json(const Plan& plan);

}  // namespace tars::cluster
