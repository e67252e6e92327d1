#include "support/sparse_model.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "engine/gguf.h"
#include "engine/quantize.h"
#include "engine/tensor_type.h"

namespace tars::test {
namespace {

using engine::TensorType;

struct TensorDecl {
  std::string name;
  std::vector<uint64_t> shape;  // innermost first
  TensorType type = TensorType::kF16;
};

// The tensors of each architecture, as the engine loads them, all F16 except
// 1-D vectors (F32) and BERT's token_types (F32, as converters write it).
std::vector<TensorDecl> layout(const SparseModelSpec& s, int V) {
  const uint64_t E = s.n_embd, F = s.n_ff, hd = s.n_embd / s.n_head;
  const uint64_t Q = s.n_head * hd, K = (s.n_head_kv ? s.n_head_kv : s.n_head) * hd;
  const std::string& a = s.arch;
  std::vector<TensorDecl> t;
  auto mat = [&](const std::string& n, uint64_t cols, uint64_t rows) {
    t.push_back({n, {cols, rows}, TensorType::kF16});
  };
  auto vec = [&](const std::string& n, uint64_t len) { t.push_back({n, {len}, TensorType::kF32}); };
  if (a == "bert") {
    mat("token_embd.weight", E, V);
    t.push_back({"token_types.weight", {E, 2}, TensorType::kF32});
    mat("position_embd.weight", E, s.n_ctx);
    vec("token_embd_norm.weight", E);
    vec("token_embd_norm.bias", E);
    for (int il = 0; il < s.n_layer; ++il) {
      const std::string p = "blk." + std::to_string(il) + ".";
      for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
        mat(p + w + ".weight", E, E);
        vec(p + w + ".bias", E);
      }
      vec(p + "attn_output_norm.weight", E);
      vec(p + "attn_output_norm.bias", E);
      mat(p + "ffn_up.weight", E, F);
      vec(p + "ffn_up.bias", F);
      mat(p + "ffn_down.weight", F, E);
      vec(p + "ffn_down.bias", E);
      vec(p + "layer_output_norm.weight", E);
      vec(p + "layer_output_norm.bias", E);
    }
    return t;
  }
  const bool layer_norm = a == "phi2" || a == "stablelm";
  mat("token_embd.weight", E, V);
  for (int il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    vec(p + "attn_norm.weight", E);
    if (layer_norm) vec(p + "attn_norm.bias", E);
    if (a == "phi2") {
      mat(p + "attn_qkv.weight", E, Q + 2 * K);
      vec(p + "attn_qkv.bias", Q + 2 * K);
    } else {
      mat(p + "attn_q.weight", E, Q);
      mat(p + "attn_k.weight", E, K);
      mat(p + "attn_v.weight", E, K);
      if (a == "qwen2") {
        vec(p + "attn_q.bias", Q);
        vec(p + "attn_k.bias", K);
        vec(p + "attn_v.bias", K);
      }
    }
    mat(p + "attn_output.weight", Q, E);
    if (a == "phi2") vec(p + "attn_output.bias", E);
    if (a != "phi2") {
      vec(p + "ffn_norm.weight", E);
      if (layer_norm) vec(p + "ffn_norm.bias", E);
      mat(p + "ffn_gate.weight", E, F);
    }
    mat(p + "ffn_up.weight", E, F);
    if (a == "phi2") vec(p + "ffn_up.bias", F);
    mat(p + "ffn_down.weight", F, E);
    if (a == "phi2") vec(p + "ffn_down.bias", E);
  }
  vec("output_norm.weight", E);
  if (layer_norm) vec("output_norm.bias", E);
  if (a != "qwen2") mat("output.weight", E, V);  // qwen2: tied to token_embd
  if (a == "phi2") vec("output.bias", V);
  return t;
}

void put_u32(std::vector<uint8_t>& b, uint32_t v) {
  uint8_t x[4];
  std::memcpy(x, &v, 4);
  b.insert(b.end(), x, x + 4);
}
void put_u64(std::vector<uint8_t>& b, uint64_t v) {
  uint8_t x[8];
  std::memcpy(x, &v, 8);
  b.insert(b.end(), x, x + 8);
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Metadata through the project's writer (no tensors: it ends right after the
// key/value pairs), then the tensor table appended by hand, padding, and the
// data region left as a hole.
void write_header_and_extend(engine::GgufWriter& w, const std::vector<TensorDecl>& tensors,
                             const std::string& path) {
  std::vector<uint8_t> b = w.to_bytes();
  const uint64_t n = tensors.size();
  std::memcpy(b.data() + 8, &n, 8);  // magic, version, then n_tensors
  constexpr uint64_t kAlign = 32;    // no general.alignment: the default
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    offset = align_up(offset, kAlign);
    put_u64(b, t.name.size());
    b.insert(b.end(), t.name.begin(), t.name.end());
    put_u32(b, static_cast<uint32_t>(t.shape.size()));
    uint64_t elems = 1;
    for (uint64_t d : t.shape) {
      put_u64(b, d);
      elems *= d;
    }
    put_u32(b, static_cast<uint32_t>(t.type));
    put_u64(b, offset);
    auto bytes = engine::tensor_type_row_bytes(t.type, elems);
    if (!bytes) throw std::runtime_error("sparse model: " + t.name + " is not whole blocks");
    offset += *bytes;
  }
  b.resize(align_up(b.size(), kAlign), 0);
  const uint64_t total = b.size() + align_up(offset, kAlign);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  const bool ok = ::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size()) &&
                  ::ftruncate(fd, static_cast<off_t>(total)) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace

void write_sparse_model(const SparseModelSpec& s, const std::string& path) {
  auto target = engine::quantize_target_from_name(s.quant);
  if (!target) throw std::runtime_error("sparse model: unknown quantization " + s.quant);
  const std::string& a = s.arch;
  engine::GgufWriter w;
  w.set_string("general.architecture", a);
  if (!s.name.empty()) w.set_string("general.name", s.name);
  w.set_u32("general.file_type", static_cast<uint32_t>(target->file_type));
  w.set_u32(a + ".context_length", s.n_ctx);
  w.set_u32(a + ".embedding_length", s.n_embd);
  w.set_u32(a + ".block_count", s.n_layer);
  w.set_u32(a + ".feed_forward_length", s.n_ff);
  w.set_u32(a + ".attention.head_count", s.n_head);
  int V = s.n_vocab;
  if (a == "bert") {
    w.set_f32(a + ".attention.layer_norm_epsilon", 1e-12f);
    w.set_bool(a + ".attention.causal", false);
    w.set_u32(a + ".pooling_type", 1);
  } else {
    w.set_u32(a + ".attention.head_count_kv", s.n_head_kv ? s.n_head_kv : s.n_head);
    w.set_u32(a + ".rope.dimension_count", s.n_rot ? s.n_rot : s.n_embd / s.n_head);
    const bool layer_norm = a == "phi2" || a == "stablelm";
    w.set_f32(a + (layer_norm ? ".attention.layer_norm_epsilon" : ".attention.layer_norm_rms_epsilon"),
              1e-5f);
  }
  if (!s.vocab_from.empty()) {
    auto vocab = engine::GgufFile::open(s.vocab_from);
    const auto* tokens = vocab->get_string_array("tokenizer.ggml.tokens");
    if (!tokens) throw std::runtime_error(s.vocab_from + " has no vocabulary");
    V = static_cast<int>(tokens->size());
    for (const auto& [key, value] : vocab->metadata()) {
      if (key.rfind("tokenizer.ggml.", 0) == 0) w.set_value(key, value);
    }
  }
  std::vector<TensorDecl> tensors = layout(s, V);
  if (target->base != TensorType::kF16) {
    if (target->base == TensorType::kF32 || target->base == TensorType::kBF16) {
      for (auto& t : tensors) {
        if (t.shape.size() >= 2 && t.name != "token_types.weight") t.type = target->base;
      }
    } else {
      // The engine's type rules, applied to the F16 layout written first.
      write_header_and_extend(w, tensors, path);
      auto f16 = engine::GgufFile::open(path);
      engine::QuantizeOptions qo;
      qo.target = *target;
      const auto plan = engine::quantize_plan(*f16, qo);
      for (size_t i = 0; i < tensors.size(); ++i) tensors[i].type = plan[i].dst_type;
    }
  }
  write_header_and_extend(w, tensors, path);
}

std::vector<ScenarioModel> issue6_scenario_models() {
  auto llama = [](int kv_heads, int ff, int ctx) {
    SparseModelSpec s;
    s.arch = "llama";
    s.n_embd = 4096;
    s.n_layer = 32;
    s.n_head = 32;
    s.n_head_kv = kv_heads;
    s.n_ff = ff;
    s.n_vocab = 32000;
    s.n_ctx = ctx;
    s.quant = "Q4_K_M";
    return s;
  };
  SparseModelSpec minilm;
  minilm.arch = "bert";
  minilm.n_embd = 384;
  minilm.n_layer = 6;
  minilm.n_head = 12;
  minilm.n_ff = 1536;
  minilm.n_vocab = 30522;
  minilm.n_ctx = 512;
  minilm.quant = "F32";
  SparseModelSpec phi2;
  phi2.arch = "phi2";
  phi2.n_embd = 2560;
  phi2.n_layer = 32;
  phi2.n_head = 32;
  phi2.n_ff = 10240;
  phi2.n_vocab = 51200;
  phi2.n_ctx = 2048;
  phi2.n_rot = 32;
  phi2.quant = "F16";
  SparseModelSpec stablelm = phi2;
  stablelm.arch = "stablelm";
  stablelm.n_ff = 6912;
  stablelm.n_vocab = 50304;
  stablelm.n_ctx = 4096;
  stablelm.n_rot = 20;  // partial rotary: 25% of the 80-dim heads
  return {
      {"mistral-7b-instruct", "chat", "always", 4096, llama(8, 14336, 32768)},
      {"llama-2-7b-chat", "chat", "on_demand", 4096, llama(32, 11008, 4096)},
      {"neural-chat-7b", "chat", "on_demand", 4096, llama(8, 14336, 32768)},
      {"all-minilm-l6-v2", "embedding", "always", 2048, minilm},
      {"phi-2", "chat", "on_demand", 2048, phi2},
      {"stablelm-3b", "chat", "on_demand", 2048, stablelm},
  };
}

unsigned long long sparse_disk_bytes(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<unsigned long long>(st.st_blocks) * 512ull;
}

}  // namespace tars::test
