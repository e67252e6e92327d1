#include "support/model_builder.h"

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/gguf.h"
#include "support/random_tensors.h"
#include "engine/quant.h"

namespace tars::test {

using engine::GgufWriter;
using engine::TensorType;

void write_random_model(const RandomModelSpec& s, const std::string& path) {
  auto vocab = engine::GgufFile::open(s.vocab_from);
  const auto* tokens = vocab->get_string_array("tokenizer.ggml.tokens");
  if (!tokens) throw std::runtime_error(s.vocab_from + " has no vocabulary");
  const int V = static_cast<int>(tokens->size());
  const int hd = s.n_embd / s.n_head, Q = s.n_head * hd, K = s.n_head_kv * hd;
  const int E = s.n_embd, F = s.n_ff;
  const std::string& a = s.arch;

  RandomTensorWriter wr{GgufWriter(), std::mt19937_64(s.seed), s.weight_type};
  GgufWriter& w = wr.w;
  w.set_string("general.architecture", a);
  w.set_string("general.name", "random-" + a);
  w.set_u32(a + ".context_length", s.n_ctx);
  w.set_u32(a + ".embedding_length", E);
  w.set_u32(a + ".block_count", s.n_layer);
  w.set_u32(a + ".feed_forward_length", F);
  w.set_u32(a + ".attention.head_count", s.n_head);
  w.set_u32(a + ".attention.head_count_kv", s.n_head_kv);
  w.set_u32(a + ".rope.dimension_count", s.n_rot ? s.n_rot : hd);
  w.set_f32(a + ".rope.freq_base", s.rope_base);
  if (s.linear_rope_factor > 0) {
    w.set_string(a + ".rope.scaling.type", "linear");
    w.set_f32(a + ".rope.scaling.factor", s.linear_rope_factor);
  }
  const bool layer_norm = a == "phi2" || a == "stablelm";
  w.set_f32(a + (layer_norm ? ".attention.layer_norm_epsilon" : ".attention.layer_norm_rms_epsilon"),
            1e-5f);
  for (const auto& [key, value] : vocab->metadata()) {
    if (key.rfind("tokenizer.ggml.", 0) == 0) w.set_value(key, value);
  }

  const double se = 1.0 / std::sqrt(E), sf = 1.0 / std::sqrt(F), sq = 1.0 / std::sqrt(Q);
  wr.tensor("token_embd.weight", E, V, 1.0);
  for (int il = 0; il < s.n_layer; ++il) {
    std::string p = "blk." + std::to_string(il) + ".";
    wr.tensor(p + "attn_norm.weight", E, 1, 0.1, 1.0);
    if (layer_norm) wr.tensor(p + "attn_norm.bias", E, 1, 0.05);
    if (a == "phi2") {
      wr.tensor(p + "attn_qkv.weight", E, Q + 2 * K, se);
      wr.tensor(p + "attn_qkv.bias", Q + 2 * K, 1, 0.05);
    } else {
      // Larger q/k weights so attention scores spread (neither uniform nor one-hot).
      wr.tensor(p + "attn_q.weight", E, Q, 2 * se);
      wr.tensor(p + "attn_k.weight", E, K, 2 * se);
      wr.tensor(p + "attn_v.weight", E, K, se);
      if (a == "qwen2") {
        wr.tensor(p + "attn_q.bias", Q, 1, 0.05);
        wr.tensor(p + "attn_k.bias", K, 1, 0.05);
        wr.tensor(p + "attn_v.bias", K, 1, 0.05);
      }
    }
    wr.tensor(p + "attn_output.weight", Q, E, sq);
    if (a == "phi2") wr.tensor(p + "attn_output.bias", E, 1, 0.05);
    if (a != "phi2") {
      wr.tensor(p + "ffn_norm.weight", E, 1, 0.1, 1.0);
      if (layer_norm) wr.tensor(p + "ffn_norm.bias", E, 1, 0.05);
      wr.tensor(p + "ffn_gate.weight", E, F, se);
    }
    wr.tensor(p + "ffn_up.weight", E, F, se);
    if (a == "phi2") wr.tensor(p + "ffn_up.bias", F, 1, 0.05);
    wr.tensor(p + "ffn_down.weight", F, E, sf);
    if (a == "phi2") wr.tensor(p + "ffn_down.bias", E, 1, 0.05);
  }
  wr.tensor("output_norm.weight", E, 1, 0.1, 1.0);
  if (layer_norm) wr.tensor("output_norm.bias", E, 1, 0.05);
  if (a != "qwen2") wr.tensor("output.weight", E, V, se);  // qwen2: tied to token_embd
  if (a == "phi2") wr.tensor("output.bias", V, 1, 0.05);
  w.write(path);
}

}  // namespace tars::test
