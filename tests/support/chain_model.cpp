#include "support/chain_model.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <span>
#include <stdexcept>

#include "engine/gguf.h"

namespace tars::test {

using engine::GgufWriter;
using engine::TensorType;

void write_chain_model(const ChainModelSpec& s, const std::string& path) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    tokens.push_back(name);
    types.push_back(6);  // byte
  }
  for (const char* c : {"<|im_start|>", "<|im_end|>"}) {
    tokens.push_back(c);
    types.push_back(3);
  }
  for (const auto& c : s.controls) {
    tokens.push_back(c);
    types.push_back(3);
  }
  for (const auto& p : s.pieces) {
    tokens.push_back(p);
    types.push_back(1);  // normal
  }
  std::map<std::string, int> id;
  for (size_t i = 0; i < tokens.size(); ++i) id.emplace(tokens[i], static_cast<int>(i));
  auto id_of = [&](const std::string& t) {
    auto it = id.find(t);
    if (it == id.end()) throw std::runtime_error("chain model: no token '" + t + "'");
    return it->second;
  };
  const int V = static_cast<int>(tokens.size());
  const int E = (V + 7) / 8 * 8, H = 4, F = 16;  // one-hot embeddings need E >= V
  const int end = id_of("<|im_end|>");
  std::vector<int> next(V, end);
  for (const auto& [from, to] : s.chain) next[id_of(from)] = id_of(to);

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "chain");
  w.set_u32("llama.context_length", s.n_ctx);
  w.set_u32("llama.embedding_length", E);
  w.set_u32("llama.block_count", 1);
  w.set_u32("llama.feed_forward_length", F);
  w.set_u32("llama.attention.head_count", H);
  w.set_u32("llama.attention.head_count_kv", H);
  w.set_u32("llama.rope.dimension_count", E / H);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(V, 0.0f));
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", end);
  w.set_string("tokenizer.chat_template", s.chat_template);

  auto add = [&](const std::string& name, int cols, int rows, const std::vector<float>& v) {
    w.add_tensor(name, TensorType::kF32, {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)},
                 std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)));
  };
  std::vector<float> embd(static_cast<size_t>(V) * E, 0.0f), out(static_cast<size_t>(V) * E, 0.0f);
  for (int t = 0; t < V; ++t) {
    embd[static_cast<size_t>(t) * E + t] = 1.0f;      // token t is e_t
    out[static_cast<size_t>(next[t]) * E + t] = 1.0f;  // e_t scores its successor
  }
  const std::vector<float> ones(E, 1.0f), zero_ee(static_cast<size_t>(E) * E, 0.0f),
      zero_ef(static_cast<size_t>(E) * F, 0.0f);
  add("token_embd.weight", E, V, embd);
  add("blk.0.attn_norm.weight", E, 1, ones);
  for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output"}) add(std::string("blk.0.") + m + ".weight", E, E, zero_ee);
  add("blk.0.ffn_norm.weight", E, 1, ones);
  add("blk.0.ffn_gate.weight", E, F, zero_ef);
  add("blk.0.ffn_up.weight", E, F, zero_ef);
  add("blk.0.ffn_down.weight", F, E, zero_ef);
  add("output_norm.weight", E, 1, ones);
  add("output.weight", E, V, out);
  w.write(path);
}

}  // namespace tars::test
