#pragma once
// Builds BERT encoders with random weights in the GGUF layout of the "bert"
// architecture, with the project's own writer and its vocab.txt conversion:
// MiniLM-shaped models for the numerical tests and the embedding benchmark
// (real MiniLM weights are not available here; speed and numerics do not
// depend on the values).

#include <cstdint>
#include <string>

#include "engine/tensor_type.h"

namespace tars::test {

struct RandomBertSpec {
  int n_embd = 384;         // hidden_size
  int n_layer = 6;          // num_hidden_layers
  int n_head = 12;          // num_attention_heads
  int n_ff = 1536;          // intermediate_size
  int n_ctx = 512;          // max_position_embeddings
  int n_token_types = 2;    // type_vocab_size
  float norm_eps = 1e-12f;  // layer_norm_eps
  int pooling = 1;          // bert.pooling_type: 0 none, 1 mean, 2 cls, 4 rank
  // Rank pooling: the classification head written. cls.weight (n_embd x
  // n_embd) + cls.bias when cls_dense, cls.output.weight (n_cls_out rows) +
  // cls.output.bias when cls_out; at least one of the two.
  bool cls_dense = true;
  bool cls_out = true;
  int n_cls_out = 1;
  // Type of the 2-D matrices (token and position tables included; the tiny
  // token_types table stays F32, as converters write it).
  engine::TensorType weight_type = engine::TensorType::kF32;
  uint64_t seed = 1;
  // BERT vocab.txt, converted to GGUF's WordPiece convention by
  // engine::vocab_from_wordpiece_file; its size sets n_vocab.
  std::string vocab_txt;
};

// A small BERT with the MiniLM vocabulary (../shared/models/minilm/vocab.txt):
// 64 wide, 2 layers of 4 heads, FFN 128, 128 positions. Fast enough for many
// variants of a test, and for a cluster's embedding model. In
// tars_test_support (bert_small.cpp: it reads the fixtures).
RandomBertSpec small_random_bert(int pooling = 1);

// The shape of a Hugging Face BERT config.json (hidden_size, num_hidden_layers,
// num_attention_heads, intermediate_size, max_position_embeddings,
// type_vocab_size, layer_norm_eps), with `vocab_txt` as the vocabulary.
// Throws std::runtime_error when the file is unreadable, not BERT, or its
// hidden_act is not "gelu".
RandomBertSpec bert_spec_from_hf_config(const std::string& config_json, const std::string& vocab_txt);

// Writes the model to `path`. Matrices are normal with std 1/sqrt(fan-in)
// (q and k 1.5x that, so attention is neither one-hot nor uniform),
// embedding tables std 0.5, LayerNorm weights 1 + N(0, 0.1), biases
// N(0, 0.05): never zeros.
void write_random_bert(const RandomBertSpec& spec, const std::string& path);

}  // namespace tars::test
