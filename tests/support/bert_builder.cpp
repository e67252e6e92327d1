#include "support/bert_builder.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/gguf.h"
#include "support/random_tensors.h"
#include "engine/quant.h"
#include "engine/vocab_convert.h"

namespace tars::test {

using engine::GgufWriter;
using engine::TensorType;

RandomBertSpec bert_spec_from_hf_config(const std::string& config_json, const std::string& vocab_txt) {
  std::ifstream in(config_json);
  if (!in) throw std::runtime_error("cannot open " + config_json);
  const nlohmann::json c = nlohmann::json::parse(in);
  if (c.value("model_type", "") != "bert") throw std::runtime_error(config_json + " is not a BERT config");
  if (c.value("hidden_act", "gelu") != "gelu") {
    throw std::runtime_error(config_json + ": hidden_act is not gelu");
  }
  RandomBertSpec s;
  s.n_embd = c.at("hidden_size").get<int>();
  s.n_layer = c.at("num_hidden_layers").get<int>();
  s.n_head = c.at("num_attention_heads").get<int>();
  s.n_ff = c.at("intermediate_size").get<int>();
  s.n_ctx = c.at("max_position_embeddings").get<int>();
  s.n_token_types = c.value("type_vocab_size", 2);
  s.norm_eps = c.value("layer_norm_eps", 1e-12f);
  s.vocab_txt = vocab_txt;
  return s;
}

void write_random_bert(const RandomBertSpec& s, const std::string& path) {
  const engine::Vocab vocab = engine::vocab_from_wordpiece_file(s.vocab_txt);
  const int V = vocab.n_vocab(), E = s.n_embd, F = s.n_ff;
  RandomTensorWriter wr{GgufWriter(), std::mt19937_64(s.seed), s.weight_type};
  GgufWriter& w = wr.w;
  const std::string a = "bert";
  w.set_string("general.architecture", a);
  w.set_string("general.name", "random-bert-" + std::to_string(E) + "x" + std::to_string(s.n_layer));
  w.set_u32(a + ".context_length", s.n_ctx);
  w.set_u32(a + ".embedding_length", E);
  w.set_u32(a + ".block_count", s.n_layer);
  w.set_u32(a + ".feed_forward_length", F);
  w.set_u32(a + ".attention.head_count", s.n_head);
  w.set_f32(a + ".attention.layer_norm_epsilon", s.norm_eps);
  w.set_bool(a + ".attention.causal", false);
  w.set_u32(a + ".pooling_type", static_cast<uint32_t>(s.pooling));
  w.set_u32("tokenizer.ggml.token_type_count", s.n_token_types);
  engine::vocab_write_gguf(w, vocab);

  const double se = 1.0 / std::sqrt(E), sf = 1.0 / std::sqrt(F);
  wr.tensor("token_embd.weight", E, V, 0.5);
  wr.tensor("token_types.weight", E, s.n_token_types, 0.5, 0, /*force_f32=*/true);
  wr.tensor("position_embd.weight", E, s.n_ctx, 0.5);
  wr.tensor("token_embd_norm.weight", E, 1, 0.1, 1.0);
  wr.tensor("token_embd_norm.bias", E, 1, 0.05);
  for (int il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    wr.tensor(p + "attn_q.weight", E, E, 1.5 * se);
    wr.tensor(p + "attn_q.bias", E, 1, 0.05);
    wr.tensor(p + "attn_k.weight", E, E, 1.5 * se);
    wr.tensor(p + "attn_k.bias", E, 1, 0.05);
    wr.tensor(p + "attn_v.weight", E, E, se);
    wr.tensor(p + "attn_v.bias", E, 1, 0.05);
    wr.tensor(p + "attn_output.weight", E, E, se);
    wr.tensor(p + "attn_output.bias", E, 1, 0.05);
    wr.tensor(p + "attn_output_norm.weight", E, 1, 0.1, 1.0);
    wr.tensor(p + "attn_output_norm.bias", E, 1, 0.05);
    wr.tensor(p + "ffn_up.weight", E, F, se);
    wr.tensor(p + "ffn_up.bias", F, 1, 0.05);
    wr.tensor(p + "ffn_down.weight", F, E, sf);
    wr.tensor(p + "ffn_down.bias", E, 1, 0.05);
    wr.tensor(p + "layer_output_norm.weight", E, 1, 0.1, 1.0);
    wr.tensor(p + "layer_output_norm.bias", E, 1, 0.05);
  }
  if (s.pooling == 4) {
    // Larger than the trunk's matrices: scores spread over several units.
    const int mid = s.cls_dense ? E : 0;
    if (s.cls_dense) {
      wr.tensor("cls.weight", E, s.cls_out ? E : s.n_cls_out, 2 * se);
      wr.tensor("cls.bias", s.cls_out ? E : s.n_cls_out, 1, 0.05);
    }
    if (s.cls_out) {
      wr.tensor("cls.output.weight", mid > 0 ? mid : E, s.n_cls_out, 3 * se);
      wr.tensor("cls.output.bias", s.n_cls_out, 1, 0.05);
    }
  }
  w.write(path);
}

}  // namespace tars::test
