// The memory estimator (estimate.h): header arithmetic, sharing the buffer
// sizes with the engine.
#include "cluster/estimate.h"

#include <algorithm>

#include "common/error.h"
#include "common/units.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quantize.h"

namespace tars::cluster {
namespace {

using engine::TensorType;

bool is_float(TensorType t) {
  return t == TensorType::kF32 || t == TensorType::kF16 || t == TensorType::kBF16;
}

// Bytes a tensor of `type` and `n_elems` takes as a backend holds it: 1-D
// vectors become F32 (Backend::load_weight converts them).
uint64_t held_bytes(const engine::GgufFile& f, const std::string& name, TensorType type,
                    const std::vector<uint64_t>& shape, uint64_t n_elems, TensorType* held) {
  bool vector = true;
  for (size_t i = 1; i < shape.size(); ++i) vector = vector && shape[i] == 1;
  *held = vector && is_float(type) ? TensorType::kF32 : type;
  auto bytes = engine::tensor_type_row_bytes(*held, n_elems);
  if (!bytes) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": tensor '" + name + "' has " +
                                             std::to_string(n_elems) + " elements, not whole " +
                                             std::string(engine::tensor_type_name(*held)) +
                                             " blocks");
  }
  return *bytes;
}

void add_weights(MemoryEstimate& e, TensorType t, uint64_t bytes) {
  e.weights_bytes += bytes;
  e.weights_by_type[t] += bytes;
}

// The layer of a tensor named "blk.<i>.<rest>", or -1.
int layer_of(const std::string& name) {
  if (name.compare(0, 4, "blk.") != 0) return -1;
  size_t end = 4;
  int il = 0;
  while (end < name.size() && name[end] >= '0' && name[end] <= '9' && il < (1 << 20)) {
    il = il * 10 + (name[end++] - '0');
  }
  return end > 4 && end < name.size() && name[end] == '.' ? il : -1;
}

// Groups each tensor's held bytes by the part of a split that holds it
// (SplitFigures). `held` is every tensor's name and bytes as held.
void fill_split_weights(SplitFigures& s, const std::vector<std::pair<std::string, uint64_t>>& held,
                        int n_layer) {
  s.layer_weights_bytes.assign(static_cast<size_t>(n_layer), 0);
  bool has_output = false;
  uint64_t embd = 0;
  for (const auto& [name, bytes] : held) {
    const int il = layer_of(name);
    if (il >= 0 && il < n_layer) {
      s.layer_weights_bytes[static_cast<size_t>(il)] += bytes;
    } else if (name == "token_embd.weight") {
      embd = bytes;
    } else if (name == "output_norm.weight" || name == "output_norm.bias" || name == "output.bias") {
      s.head_bytes += bytes;
    } else if (name == "output.weight") {
      s.head_bytes += bytes;
      has_output = true;
    }
  }
  s.embd_bytes = embd;
  s.head_tied = !has_output;
  if (s.head_tied) s.head_bytes += embd;  // the CPU part loads token_embd again for the head
}

}  // namespace

const char* device_kind_name(DeviceKind kind) { return kind == DeviceKind::kCpu ? "cpu" : "gpu"; }

uint64_t estimate_runtime_overhead(DeviceKind kind) {
  return kind == DeviceKind::kGpu ? kGpuRuntimeOverheadBytes : 0;
}

std::string estimate_file_quant(const engine::GgufFile& f) {
  if (auto ft = f.opt_u64("general.file_type")) {
    // Reverse order: the mixes ("Q4_K_S") come after the plain names that
    // share their number ("Q4_K") in quantize_targets().
    const auto& targets = engine::quantize_targets();
    for (auto it = targets.rbegin(); it != targets.rend(); ++it) {
      if (static_cast<uint64_t>(it->file_type) == *ft) return it->name;
    }
  }
  std::map<TensorType, uint64_t> elems;
  for (const auto& t : f.tensors()) {
    if (t.shape.size() >= 2) elems[t.type] += t.n_elems;
  }
  if (elems.empty()) return "F32";
  auto best = std::max_element(elems.begin(), elems.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  return std::string(engine::tensor_type_name(best->first));
}

MemoryEstimate estimate_model(const engine::GgufFile& f, const EstimateOptions& o) {
  MemoryEstimate e;
  e.path = f.path();
  e.arch = f.get_string("general.architecture");
  e.encoder = engine::encoder_is_encoder_file(f);
  e.device = o.device;
  e.overhead_bytes = estimate_runtime_overhead(o.device);
  for (const auto& t : f.tensors()) e.n_params += t.n_elems;

  // ---- weights ----
  const std::string file_quant = estimate_file_quant(f);
  const bool as_file = o.quant.empty() || o.quant == file_quant;
  e.quant = as_file ? file_quant : o.quant;
  std::vector<std::pair<std::string, uint64_t>> by_tensor;  // name, bytes as held
  if (as_file) {
    for (const auto& t : f.tensors()) {
      TensorType held;
      const uint64_t b = held_bytes(f, t.name, t.type, t.shape, t.n_elems, &held);
      add_weights(e, held, b);
      by_tensor.emplace_back(t.name, b);
    }
  } else {
    auto target = engine::quantize_target_from_name(o.quant);
    if (!target) {
      throw Error(ErrorCode::kInvalidArgument, f.path() + ": unknown quantization '" + o.quant +
                                                   "' (known: " + engine::quantize_target_list() +
                                                   ")");
    }
    e.quant = target->name;
    engine::QuantizeOptions qo;
    qo.target = *target;
    // Throws, naming the tensor, for a file that is already quantized.
    for (const auto& p : engine::quantize_plan(f, qo)) {
      uint64_t n = 1;
      for (uint64_t d : p.shape) n *= d;
      TensorType held;
      const uint64_t b = held_bytes(f, p.name, p.dst_type, p.shape, n, &held);
      add_weights(e, held, b);
      by_tensor.emplace_back(p.name, b);
    }
  }

  // ---- KV cache and compute buffers: the engine's own size functions ----
  if (e.encoder) {
    const engine::EncoderHParams hp = engine::encoder_read_hparams(f);
    engine::EncoderOptions eo;
    eo.max_batch_tokens = o.encoder_batch_tokens;
    e.n_layer = hp.n_layer;
    e.compute_bytes = engine::encoder_buffer_sizes(hp, eo).compute_bytes();
    return e;
  }
  engine::ModelHParams hp = engine::model_read_hparams(f);
  const engine::GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb || emb->shape.size() != 2) {
    throw Error(ErrorCode::kCorruptData,
                f.path() + ": tensor 'token_embd.weight' is missing or not 2-D");
  }
  hp.n_vocab = static_cast<int>(emb->shape[1]);
  if (o.n_slots < 1 || o.max_batch < 1) {
    throw Error(ErrorCode::kInvalidArgument, "n_slots and max_batch must be at least 1");
  }
  if (o.kv_type != TensorType::kF16 && o.kv_type != TensorType::kF32) {
    throw Error(ErrorCode::kInvalidArgument, "the KV cache type must be f16 or f32");
  }
  engine::ModelOptions mo;
  mo.n_ctx = o.n_ctx > 0 ? o.n_ctx : engine::default_context(hp.n_ctx_train);  // as Model::load resolves it
  mo.n_slots = o.n_slots;
  mo.max_batch = o.max_batch;
  mo.kv_type = o.kv_type;
  const engine::ModelBufferSizes s = engine::model_buffer_sizes(hp, mo);
  e.n_layer = hp.n_layer;
  e.n_ctx = mo.n_ctx;
  e.n_slots = mo.n_slots;
  e.kv_type = mo.kv_type;
  e.kv_bytes = s.kv_bytes();
  e.kv_bytes_per_slot = e.kv_bytes / static_cast<uint64_t>(mo.n_slots);
  e.compute_bytes = s.compute_bytes();
  // By layer, for splits: the same size function's pieces.
  fill_split_weights(e.split, by_tensor, hp.n_layer);
  e.split.kv_layer_slot_bytes = 2 * static_cast<uint64_t>(s.kv_layer_bytes) / static_cast<uint64_t>(mo.n_slots);
  e.split.compute_x_bytes = s.x_bytes();
  e.split.compute_layers_bytes = s.layer_bytes();
  e.split.compute_head_bytes = s.head_bytes();
  return e;
}

SplitEstimate estimate_split(const MemoryEstimate& e, int gpu_layers) {
  if (e.encoder) {
    throw Error(ErrorCode::kInvalidArgument,
                e.path + ": an encoder (" + e.arch + ") is not split over devices");
  }
  return estimate_split(e.split, e.n_slots, gpu_layers);
}

SplitEstimate estimate_split(const SplitFigures& f, int n_slots, int gpu_layers) {
  const int n_layer = f.n_layer();
  if (n_layer < 1) {
    throw Error(ErrorCode::kInvalidArgument, "the model has no per-layer figures to split it by");
  }
  if (gpu_layers < 0 || gpu_layers > n_layer) {
    throw Error(ErrorCode::kInvalidArgument, "gpu_layers " + std::to_string(gpu_layers) +
                                                 " is outside 0.." + std::to_string(n_layer) +
                                                 " (the model's layers)");
  }
  if (n_slots < 1) throw Error(ErrorCode::kInvalidArgument, "n_slots must be at least 1");
  const uint64_t kv_layer = f.kv_layer_slot_bytes * static_cast<uint64_t>(n_slots);
  auto layers = [&](int l0, int l1) {
    uint64_t b = 0;
    for (int il = l0; il < l1; ++il) b += f.layer_weights_bytes[static_cast<size_t>(il)];
    return b;
  };
  SplitEstimate s;
  s.gpu_layers = gpu_layers;
  SplitPart& d = s.device;
  d.first_layer = 0;
  d.n_layers = gpu_layers;
  d.weights_bytes = f.embd_bytes + layers(0, gpu_layers);
  d.kv_bytes = kv_layer * static_cast<uint64_t>(gpu_layers);
  d.compute_bytes = f.compute_x_bytes + (gpu_layers > 0 ? f.compute_layers_bytes : 0);
  d.overhead_bytes = estimate_runtime_overhead(DeviceKind::kGpu);
  SplitPart& c = s.cpu;
  c.first_layer = gpu_layers;
  c.n_layers = n_layer - gpu_layers;
  c.weights_bytes = layers(gpu_layers, n_layer) + f.head_bytes;
  c.kv_bytes = kv_layer * static_cast<uint64_t>(c.n_layers);
  c.compute_bytes = f.compute_x_bytes + (c.n_layers > 0 ? f.compute_layers_bytes : 0) + f.compute_head_bytes;
  c.overhead_bytes = 0;
  return s;
}

std::string estimate_to_string(const MemoryEstimate& e) {
  std::string types;
  // Largest share first.
  std::vector<std::pair<TensorType, uint64_t>> by(e.weights_by_type.begin(), e.weights_by_type.end());
  std::sort(by.begin(), by.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [t, b] : by) {
    types += (types.empty() ? "" : ", ") + std::string(engine::tensor_type_name(t)) + " " +
             format_bytes(b);
  }
  std::string s = "weights " + format_bytes(e.weights_bytes) + " (" + types + ")";
  if (!e.encoder) {
    s += " + KV " + format_bytes(e.kv_bytes) + " (" + std::to_string(e.n_ctx) + " ctx x " +
         std::to_string(e.n_slots) + (e.n_slots == 1 ? " slot, " : " slots, ") +
         std::string(engine::tensor_type_name(e.kv_type)) + ")";
  }
  s += " + compute " + format_bytes(e.compute_bytes);
  s += " + overhead " + format_bytes(e.overhead_bytes) + " (" + device_kind_name(e.device) + ")";
  s += " = " + format_bytes(e.total_bytes());
  return s;
}

}  // namespace tars::cluster
