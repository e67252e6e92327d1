#pragma once
// Builds decoder models with random weights in the GGUF layout of each
// architecture, with the project's own writer: for numerical tests against
// the double-precision reference, and for benchmarks of realistic shapes.

#include <cstdint>
#include <string>

#include "engine/tensor_type.h"

namespace tars::test {

struct RandomModelSpec {
  std::string arch = "llama";  // llama | qwen2 | phi2 | stablelm
  int n_embd = 256;
  int n_layer = 2;
  int n_head = 4;
  int n_head_kv = 4;
  int n_ff = 512;
  int n_rot = 0;               // 0 = the whole head
  int n_ctx = 256;
  float rope_base = 10000;
  float linear_rope_factor = 0;  // > 0 writes rope.scaling.type = linear
  engine::TensorType weight_type = engine::TensorType::kF32;  // 2-D matrices
  uint64_t seed = 1;
  // The tokenizer.ggml.* keys are copied from this GGUF (its vocabulary
  // size sets n_vocab).
  std::string vocab_from;
};

// Writes the model to `path`. Matrices are normal with std 1/sqrt(fan-in)
// (scaled so attention is neither one-hot nor uniform), norm weights
// 1 + N(0, 0.1), biases N(0, 0.05); never all zeros.
void write_random_model(const RandomModelSpec& spec, const std::string& path);

}  // namespace tars::test
