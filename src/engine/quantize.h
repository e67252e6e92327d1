#pragma once
// Model-level quantization: `tars quantize IN OUT TYPE`.
//
// Reads an F32/F16/BF16 GGUF model, decides a type for every tensor (the
// rules below), converts each one row by row with quantize_row (quant.h) on
// a thread pool, and writes OUT with the metadata copied. Tensors are made
// one at a time while the file is written (GgufWriter::add_tensor_stream), so
// memory holds the mapped input plus one converted tensor, never the model.
//
// ---- Which tensor gets which type --------------------------------------------
//
// The rules follow the files people download (llama.cpp's quantizer), so a
// tars Q4_K_M file has the same tensor types as a downloaded Q4_K_M file;
// ../shared/models/reference/quant holds such files and the tests compare.
//
//  1. 1-D tensors (norm weights, biases, rope_freqs) stay F32: they are tiny,
//     and every backend reads them as float anyway.
//  2. Non-float tensors (I8, I32, ...) are copied as they are.
//  3. TYPE F32 / F16 / BF16: every other tensor gets that type.
//  4. output.weight, the matrix that makes the logits (token_embd.weight when
//     the model has no output.weight: tied embeddings), gets Q6_K whenever
//     the target is below 6 bits: its errors land directly on every logit and
//     it is one tensor of many. Q8_0 and Q6_K keep their own type.
//  5. token_embd.weight (untied) keeps the target type: a lookup table, one
//     row per token, whose error enters only the first residual; downloaded
//     Q4_K_M files keep it at Q4_K too.
//  6. The _M mixes spend more bits where they pay most: in Q4_K_M and Q5_K_M,
//     attn_v.weight and ffn_down.weight of layer i go Q6_K when
//     use_more_bits(i, n_layer): the first n/8 layers, the last n/8 layers,
//     and every third layer between (i - n/8) % 3 == 2. V and down are the
//     last projections before the residual adds, so their errors pass
//     through nothing that damps them; the first and last layers matter most.
//     For 22 layers this is 10 of 22 (0, 1, 4, 7, 10, 13, 16, 19, 20, 21).
//     A fused attn_qkv.weight (phi2) goes one step up instead (Q4_K_M ->
//     Q5_K, Q5_K_M -> Q6_K), since it holds V.
//  7. Q4_K_S: attn_v.weight of layers 0..3 and ffn_down.weight of the first
//     n/8 layers go Q5_K. Q5_K_S: only rule 4.
//  8. Plain Q4_K / Q5_K: the k-quant everywhere except rule 4 (labelled as
//     Q4_K_S / Q5_K_S in general.file_type, the nearest conventional number).
//  9. --pure: every matrix in the target type, rules 4-7 off (for kernel
//     tests and comparisons); rule 10 still applies.
// 10. A matrix whose row length is not a multiple of the chosen type's block
//     (256 for k-quants, 32 for the legacy types) falls back to a type that
//     fits: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (similar bits per
//     weight with 32-element blocks), and a legacy type -> F16. The plan
//     records why, and the progress log shows it.
//
// Tensors already quantized in IN are refused (re-quantizing compounds two
// errors), unless allow_requantize: then they are dequantized to float first,
// or copied unchanged when their type is already the one chosen.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tensor_type.h"

namespace tars::engine {

class GgufFile;

// general.file_type values (llama_ftype), part of the file convention.
enum class QuantFileType : uint32_t {
  kAllF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 7,
  kQ5_0 = 8,
  kQ5_1 = 9,
  kQ4_K_S = 14,
  kQ4_K_M = 15,
  kQ5_K_S = 16,
  kQ5_K_M = 17,
  kQ6_K = 18,
  kBF16 = 32,
};

// Which extra rules (above) a target applies on top of its base type.
enum class QuantMix {
  kPlain,  // rule 4 only (and rule 3 for the float types, which skip rule 4)
  kKS,     // Q4_K_S / Q5_K_S: rule 7
  kKM,     // Q4_K_M / Q5_K_M: rule 6
};

// What the user asked for: "Q4_K_M" is base Q4_K, mix kKM, file type 15.
struct QuantizeTarget {
  std::string name;         // as the user writes it: "Q4_K_M"
  TensorType base;          // the type most matrices get
  QuantMix mix;
  QuantFileType file_type;  // written to general.file_type
};

// The targets tars knows, in the order help text lists them.
const std::vector<QuantizeTarget>& quantize_targets();
// Case-insensitive lookup ("q4_k_m"); nullopt for an unknown name.
std::optional<QuantizeTarget> quantize_target_from_name(std::string_view name);
// "F32, F16, BF16, Q8_0, ...": for error messages and help.
std::string quantize_target_list();

// use_more_bits(i, n) of rule 6.
bool quantize_use_more_bits(int layer, int n_layer);

// The decision for one tensor.
struct QuantizeTensorPlan {
  std::string name;
  std::vector<uint64_t> shape;  // innermost first (shape[0] is the row length)
  TensorType src_type;
  TensorType dst_type;
  bool copy = false;            // bytes copied unchanged (same type, or non-float)
  std::string note;             // why dst_type differs from the target's base
                                // type ("output", "use_more_bits", "row 96 is not
                                // a multiple of 256: Q5_0"); empty otherwise
};

struct QuantizeOptions {
  QuantizeTarget target;
  int n_threads = 0;               // 0 = the number of physical cores
  bool allow_requantize = false;   // accept already-quantized tensors in IN
  bool pure = false;               // rule 9
};

// The type of every tensor of `in`, in file order (rules above). Throws
// tars::Error(kInvalidArgument) naming the first already-quantized tensor
// when allow_requantize is off, and kUnsupported for a tensor tars cannot
// convert.
std::vector<QuantizeTensorPlan> quantize_plan(const GgufFile& in, const QuantizeOptions& options);

// Progress after each tensor is converted (just before its bytes are written).
struct QuantizeProgress {
  int index = 0;      // 1-based
  int count = 0;      // tensors in all
  const QuantizeTensorPlan* plan = nullptr;
  uint64_t in_bytes = 0;
  uint64_t out_bytes = 0;
  double seconds = 0; // this tensor's conversion time
};

struct QuantizeSummary {
  int n_tensors = 0;
  uint64_t n_elements = 0;  // weights in all tensors
  uint64_t in_bytes = 0;    // tensor data of IN
  uint64_t out_bytes = 0;   // tensor data of OUT
  uint64_t in_file_bytes = 0;
  uint64_t out_file_bytes = 0;
  double bits_per_weight = 0;  // 8 * out_bytes / n_elements
  double seconds = 0;          // wall time of the whole run
};

// Quantizes the model file `in_path` into `out_path` (written to
// out_path + ".tmp", renamed when complete). `on_tensor` (optional) is
// called after each tensor, from the calling thread. Throws tars::Error:
// kIo / kCorruptData for an unreadable or invalid IN, kIo when OUT cannot be
// written, kInvalidArgument as quantize_plan.
QuantizeSummary quantize_model(const std::string& in_path, const std::string& out_path,
                               const QuantizeOptions& options,
                               const std::function<void(const QuantizeProgress&)>& on_tensor = {});

}  // namespace tars::engine
