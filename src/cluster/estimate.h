#pragma once
// Memory estimator: what a model will occupy on a device, from its GGUF
// header alone (shapes, types, metadata; no tensor data is read, so a sparse
// file whose data region is a hole works as well as the real one).
//
//   need = weights + KV cache + compute buffers      (per model)
//        + runtime overhead                          (once per device in use)
//
// Each component is the figure the engine's own accounting reports for it
// (Backend::allocated(MemoryKind)) after Model::load / Encoder::load:
//
//  - weights: the bytes of every tensor as the backend holds it: the file's
//    type (or, for a requantization target, the type quantize_plan gives each
//    tensor, so no quantizing is needed to know the size), with 1-D vectors
//    (norms, biases) as F32, which is how every backend keeps them.
//    What this is on each kind of device:
//      GPU: a copy of those bytes in device memory.
//      CPU: the mapped file is used in place until the first matrix product
//           repacks each matrix into row-interleaved panels (the same bytes
//           per weight; Q4_K/Q5_K panels are 3% larger and rows are padded
//           to 16), which then replace the file's pages. Either way the
//           figure is the RAM the weights take, within about 3%.
//  - KV cache: 2 (K and V) x n_layer x n_slots x n_ctx x kv_dim x bytes per
//    element (F16: 2, F32: 4), kv_dim = n_kv_head x head_dim. Encoders have
//    none.
//  - compute: the activation buffers, sized by engine::model_buffer_sizes /
//    engine::encoder_buffer_sizes: the functions Model::alloc_buffers and
//    Encoder::alloc_buffers themselves use.
//  - overhead: a constant per device kind for what the runtime holds before
//    any model (kGpuRuntimeOverheadBytes below; 0 on the CPU).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor_type.h"

namespace tars::engine {
class GgufFile;
}

namespace tars::cluster {

enum class DeviceKind {
  kCpu,  // system RAM
  kGpu,  // an NVIDIA GPU's memory
};
const char* device_kind_name(DeviceKind kind);  // "cpu", "gpu"

// What a CUDA process holds on a GPU before the first model byte: the
// context (driver state, the kernel images of the loaded modules: about
// 250-300 MiB on CUDA 12/13 with lazy module loading on Ampere/Turing cards)
// plus the matrix library's workspace and the allocator's slack. Counted once
// per GPU that hosts at least one model.
inline constexpr uint64_t kGpuRuntimeOverheadBytes = uint64_t{384} << 20;

// The overhead for a device kind: kGpuRuntimeOverheadBytes, or 0 for the CPU
// (the process exists anyway).
uint64_t estimate_runtime_overhead(DeviceKind kind);

struct EstimateOptions {
  // The weights' types: "" = as in the file; otherwise a quantization target
  // of `tars quantize` ("F16", "Q8_0", "Q4_K_M", ...): the sizes after
  // requantizing a float model. A target other than the file's own type for a
  // file that is already quantized throws kInvalidArgument (tars does not
  // requantize quantized weights).
  std::string quant;
  int n_ctx = 0;        // context per slot; 0 = engine::default_context (the trained one, at most 4096)
  int n_slots = 1;      // sequences in the KV cache at once (decoders)
  int max_batch = 512;  // decoder tokens per forward chunk (ModelOptions::max_batch)
  engine::TensorType kv_type = engine::TensorType::kF16;  // F16 or F32
  int encoder_batch_tokens = 2048;  // EncoderOptions::max_batch_tokens
  DeviceKind device = DeviceKind::kGpu;  // decides the overhead
};

// A decoder by layer, for splitting it over two devices (estimate_split):
// the first layers on a GPU, the rest in RAM. Every figure is as held (1-D
// vectors as F32, the quantization target's per-tensor types from
// quantize_plan, so a Q4_K_M mix gives layers different sizes). The parts
// hold what Model::load gives each ModelPart:
//   device part: token_embd + layers [0, N) + their KV cache + the compute
//                buffers x, h, q, k, v, qkv, att, tmp, ff1, ff2 (x alone when
//                N = 0; never out_rows or logits);
//   CPU part:    layers [N, L) + their KV cache + output_norm.*, output.*
//                (a tied head: token_embd a second time) + the compute
//                buffers x ... ff2 when it has layers, and always x,
//                out_rows and logits.
// Tensors in none of these groups (rope_freqs.weight, which the engine keeps
// in host memory) count in MemoryEstimate::weights_bytes but in neither part.
struct SplitFigures {
  std::vector<uint64_t> layer_weights_bytes;  // [n_layer]: the tensors blk.<i>.* of layer i
  uint64_t embd_bytes = 0;   // token_embd.weight (the device part)
  uint64_t head_bytes = 0;   // output_norm.*, output.* (the CPU part); when the head is
                             // tied, token_embd.weight's bytes (the CPU part loads it again)
  bool head_tied = false;    // no output.weight: token_embd doubles as the output matrix
  uint64_t kv_layer_slot_bytes = 0;  // K + V of one layer for one slot:
                                     // 2 x n_ctx x kv_dim x (2 for F16, 4 for F32)
  uint64_t compute_x_bytes = 0;       // the residual stream x: every part
  uint64_t compute_layers_bytes = 0;  // h, q, k, v, qkv, att, tmp, ff1, ff2: a part with layers
  uint64_t compute_head_bytes = 0;    // out_rows, logits: the CPU (last) part
  int n_layer() const { return static_cast<int>(layer_weights_bytes.size()); }
};

struct MemoryEstimate {
  std::string path;       // the GGUF file
  std::string arch;       // general.architecture
  bool encoder = false;   // BERT (no KV cache)
  std::string quant;      // the type label of the weights: the target, or the file's
                          // ("Q4_K_M", "F16", "F32"; see estimate_file_quant)
  uint64_t n_params = 0;  // elements in all tensors
  uint64_t weights_bytes = 0;
  std::map<engine::TensorType, uint64_t> weights_by_type;  // the same, by held type
  int n_layer = 0;
  int n_ctx = 0;          // resolved context per slot (0 for encoders)
  int n_slots = 0;        // 0 for encoders
  engine::TensorType kv_type = engine::TensorType::kF16;
  uint64_t kv_bytes = 0;          // all slots
  uint64_t kv_bytes_per_slot = 0; // kv_bytes / n_slots: the planner reduces slots with it
  uint64_t compute_bytes = 0;
  DeviceKind device = DeviceKind::kGpu;
  uint64_t overhead_bytes = 0;
  // By layer, for estimate_split (decoders; empty layer_weights_bytes for
  // encoders, which never split). Its KV figure is per slot; compute and
  // weights add up to compute_bytes and (less any rope_freqs.weight, and
  // with a tied head counted once) weights_bytes.
  SplitFigures split;

  // What the model itself takes (no overhead): what the planner adds up.
  uint64_t model_bytes() const { return weights_bytes + kv_bytes + compute_bytes; }
  // Alone on a device: model_bytes() + overhead_bytes.
  uint64_t total_bytes() const { return model_bytes() + overhead_bytes; }
};

// The estimate for `file` under `options`. Throws tars::Error naming the file
// for an architecture tars does not run, a missing key, or a target it cannot
// make (see EstimateOptions::quant).
MemoryEstimate estimate_model(const engine::GgufFile& file, const EstimateOptions& options);

// One part of a split model (estimate_split).
struct SplitPart {
  int first_layer = 0;        // the part holds layers [first_layer, first_layer + n_layers)
  int n_layers = 0;
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes = 0;      // its layers' KV cache, all slots
  uint64_t compute_bytes = 0;
  uint64_t overhead_bytes = 0;  // the device part: kGpuRuntimeOverheadBytes; the CPU part: 0
  uint64_t model_bytes() const { return weights_bytes + kv_bytes + compute_bytes; }
  uint64_t total_bytes() const { return model_bytes() + overhead_bytes; }
};

// A decoder split after `gpu_layers` layers: what Model::load(file,
// {{gpu, gpu_layers}, {cpu, -1}}, options) allocates on each backend.
struct SplitEstimate {
  int gpu_layers = 0;  // layers on the device (0 ... n_layer)
  SplitPart device;    // the GPU part: embeddings and the first layers
  SplitPart cpu;       // the RAM part: the other layers and the output head
};

// The parts for `gpu_layers` in [0, n_layer] with the estimate's slots
// (e.n_slots). Throws tars::Error(kInvalidArgument) for an encoder (they
// never split) or gpu_layers out of range.
SplitEstimate estimate_split(const MemoryEstimate& e, int gpu_layers);
// The same from the figures alone, with `n_slots` sequences in the KV cache
// (the planner tries several slot counts on one estimate).
SplitEstimate estimate_split(const SplitFigures& f, int n_slots, int gpu_layers);

// The file's quantization label: from general.file_type when present
// ("Q4_K_M" for 15), else the type most matrix elements have ("F32", "F16").
std::string estimate_file_quant(const engine::GgufFile& file);

// One line: "weights 4.07 GiB (Q4_K 3.05 GiB, Q6_K 1.02 GiB, F32 0.25 MiB) +
// KV 512 MiB (4096 ctx x 1 slot, F16) + compute 182 MiB + overhead 384 MiB = 5.12 GiB".
std::string estimate_to_string(const MemoryEstimate& e);

}  // namespace tars::cluster
