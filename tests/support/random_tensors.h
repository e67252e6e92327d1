#pragma once
// Random tensors into a GgufWriter, shared by the test model builders
// (model_builder.cpp for decoders, bert_builder.cpp for encoders).

#include <cstdint>
#include <random>
#include <string>

#include "engine/gguf.h"
#include "engine/tensor_type.h"

namespace tars::test {

struct RandomTensorWriter {
  engine::GgufWriter w;
  std::mt19937_64 rng;
  engine::TensorType matrix_type;  // the type of 2-D tensors

  // A tensor of `rows` rows of `cols` values drawn from N(mean, std),
  // quantized with the engine's quantize_row. 1-D tensors (and force_f32
  // ones) are F32; matrices are matrix_type.
  void tensor(const std::string& name, int64_t cols, int64_t rows, double std, double mean = 0,
              bool force_f32 = false);
};

}  // namespace tars::test
