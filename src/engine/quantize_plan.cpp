// The type rules of quantize.h: which tensor of a model gets which type.
// Pure decisions from names, shapes and the target; no data is touched here.

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/quantize.h"

namespace tars::engine {

namespace {

using T = TensorType;

bool is_float_type(T t) { return t == T::kF32 || t == T::kF16 || t == T::kBF16; }

// Bits per weight below 6: the targets for which output.weight is raised (rule 4).
bool below_6_bits(T t) {
  switch (t) {
    case T::kQ4_0: case T::kQ4_1: case T::kQ5_0: case T::kQ5_1: case T::kQ4_K: case T::kQ5_K:
      return true;
    default:
      return false;
  }
}

// "blk.12.attn_v.weight" -> 12; nullopt for tensors outside the blocks.
std::optional<int> layer_of(std::string_view name) {
  constexpr std::string_view kPrefix = "blk.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const char* b = name.data() + kPrefix.size();
  const char* e = name.data() + name.size();
  int layer = 0;
  auto [p, ec] = std::from_chars(b, e, layer);
  if (ec != std::errc() || p == b || p == e || *p != '.') return std::nullopt;
  return layer;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Rule 10: a type whose block divides the row length.
T fit_row(T t, uint64_t row, std::string& note) {
  const auto block = static_cast<uint64_t>(quant_block_info(t).block_elems);
  if (row % block == 0) return t;
  T fallback = T::kF16;
  if (t == T::kQ4_K) fallback = T::kQ5_0;
  if (t == T::kQ5_K) fallback = T::kQ5_1;
  if (t == T::kQ6_K) fallback = T::kQ8_0;
  if (row % static_cast<uint64_t>(quant_block_info(fallback).block_elems) != 0) fallback = T::kF16;
  if (!note.empty()) note += "; ";
  note += "row of " + std::to_string(row) + " is not a multiple of the " +
          std::string(tensor_type_name(t)) + " block (" + std::to_string(block) + "): " +
          std::string(tensor_type_name(fallback));
  return fallback;
}

struct ModelShape {
  int n_layer = 0;
  bool has_output = false;  // false: token_embd doubles as the output matrix
};

ModelShape model_shape(const GgufFile& in) {
  ModelShape s;
  s.has_output = in.find_tensor("output.weight") != nullptr;
  int max_layer = -1;
  for (const auto& t : in.tensors()) {
    if (auto l = layer_of(t.name)) max_layer = std::max(max_layer, *l);
  }
  s.n_layer = max_layer + 1;
  if (auto arch = in.opt_string("general.architecture")) {
    if (auto n = in.opt_u64(*arch + ".block_count")) {
      s.n_layer = std::max<int>(s.n_layer, static_cast<int>(std::min<uint64_t>(*n, 1 << 20)));
    }
  }
  return s;
}

// Rules 3-9 for a matrix (2-D or more) of a float model.
T choose_matrix_type(const std::string& name, const ModelShape& m, const QuantizeOptions& o,
                     std::string& note) {
  const QuantizeTarget& tg = o.target;
  const T base = tg.base;
  if (is_float_type(base) || o.pure) return base;
  const bool is_output =
      name == "output.weight" || (!m.has_output && name == "token_embd.weight");
  if (is_output) {
    if (below_6_bits(base)) {
      note = "output matrix: Q6_K";
      return T::kQ6_K;
    }
    return base;
  }
  const std::optional<int> layer = layer_of(name);
  if (!layer) return base;
  const int i = *layer, n = m.n_layer;
  const bool attn_v = ends_with(name, ".attn_v.weight");
  const bool ffn_down = ends_with(name, ".ffn_down.weight");
  const bool attn_qkv = ends_with(name, ".attn_qkv.weight");
  if (tg.mix == QuantMix::kKM) {
    if ((attn_v || ffn_down) && quantize_use_more_bits(i, n)) {
      note = "use_more_bits(" + std::to_string(i) + ", " + std::to_string(n) + "): Q6_K";
      return T::kQ6_K;
    }
    if (attn_qkv) {
      const T up = base == T::kQ4_K ? T::kQ5_K : T::kQ6_K;
      note = "fused QKV holds V: " + std::string(tensor_type_name(up));
      return up;
    }
  }
  if (tg.mix == QuantMix::kKS && base == T::kQ4_K) {
    if ((attn_v && i < 4) || (ffn_down && i < n / 8)) {
      note = "first layers: Q5_K";
      return T::kQ5_K;
    }
  }
  return base;
}

std::string upper(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

}  // namespace

const std::vector<QuantizeTarget>& quantize_targets() {
  using F = QuantFileType;
  static const std::vector<QuantizeTarget> kTargets = {
      {"F32", T::kF32, QuantMix::kPlain, F::kAllF32},
      {"F16", T::kF16, QuantMix::kPlain, F::kF16},
      {"BF16", T::kBF16, QuantMix::kPlain, F::kBF16},
      {"Q8_0", T::kQ8_0, QuantMix::kPlain, F::kQ8_0},
      {"Q4_0", T::kQ4_0, QuantMix::kPlain, F::kQ4_0},
      {"Q4_1", T::kQ4_1, QuantMix::kPlain, F::kQ4_1},
      {"Q5_0", T::kQ5_0, QuantMix::kPlain, F::kQ5_0},
      {"Q5_1", T::kQ5_1, QuantMix::kPlain, F::kQ5_1},
      {"Q4_K", T::kQ4_K, QuantMix::kPlain, F::kQ4_K_S},
      {"Q5_K", T::kQ5_K, QuantMix::kPlain, F::kQ5_K_S},
      {"Q6_K", T::kQ6_K, QuantMix::kPlain, F::kQ6_K},
      {"Q4_K_S", T::kQ4_K, QuantMix::kKS, F::kQ4_K_S},
      {"Q4_K_M", T::kQ4_K, QuantMix::kKM, F::kQ4_K_M},
      {"Q5_K_S", T::kQ5_K, QuantMix::kKS, F::kQ5_K_S},
      {"Q5_K_M", T::kQ5_K, QuantMix::kKM, F::kQ5_K_M},
  };
  return kTargets;
}

std::optional<QuantizeTarget> quantize_target_from_name(std::string_view name) {
  const std::string u = upper(name);
  for (const auto& t : quantize_targets()) {
    if (t.name == u) return t;
  }
  return std::nullopt;
}

std::string quantize_target_list() {
  std::string s;
  for (const auto& t : quantize_targets()) {
    if (!s.empty()) s += ", ";
    s += t.name;
  }
  return s;
}

bool quantize_use_more_bits(int layer, int n_layer) {
  const int eighth = n_layer / 8;
  return layer < eighth || layer >= 7 * n_layer / 8 || (layer - eighth) % 3 == 2;
}

std::vector<QuantizeTensorPlan> quantize_plan(const GgufFile& in, const QuantizeOptions& options) {
  const ModelShape m = model_shape(in);
  std::vector<QuantizeTensorPlan> plan;
  plan.reserve(in.tensors().size());
  for (const auto& t : in.tensors()) {
    QuantizeTensorPlan p;
    p.name = t.name;
    p.shape = t.shape;
    p.src_type = t.type;
    if (!quant_supported(t.type)) {  // I8, I32, F64, ...: not weights to convert (rule 2)
      p.dst_type = t.type;
      p.copy = true;
      plan.push_back(std::move(p));
      continue;
    }
    if (!is_float_type(t.type) && !options.allow_requantize) {
      throw Error(ErrorCode::kInvalidArgument,
                  in.path() + ": tensor '" + t.name + "' is already quantized (" +
                      std::string(tensor_type_name(t.type)) +
                      "); quantize from an F32/F16/BF16 model, or pass --allow-requantize to "
                      "dequantize and quantize it again (this compounds the errors)");
    }
    const bool vector = t.shape.size() < 2;
    if (vector) {
      p.dst_type = T::kF32;  // rule 1
    } else {
      p.dst_type = choose_matrix_type(t.name, m, options, p.note);
      p.dst_type = fit_row(p.dst_type, t.shape[0], p.note);
    }
    p.copy = p.dst_type == p.src_type;
    plan.push_back(std::move(p));
  }
  return plan;
}

}  // namespace tars::engine
