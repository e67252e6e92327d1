#include "support/random_tensors.h"

#include <vector>

#include "engine/quant.h"

namespace tars::test {

void RandomTensorWriter::tensor(const std::string& name, int64_t cols, int64_t rows, double std,
                                double mean, bool force_f32) {
  std::normal_distribution<float> dist(static_cast<float>(mean), static_cast<float>(std));
  std::vector<float> v(static_cast<size_t>(cols) * rows);
  for (auto& x : v) x = dist(rng);
  const engine::TensorType t = (rows == 1 || force_f32) ? engine::TensorType::kF32 : matrix_type;
  const size_t row_bytes = engine::quant_row_bytes(t, cols);
  std::vector<uint8_t> bytes(row_bytes * rows);
  for (int64_t r = 0; r < rows; ++r) {
    engine::quantize_row(t, v.data() + r * cols, bytes.data() + r * row_bytes, cols);
  }
  std::vector<uint64_t> shape = {static_cast<uint64_t>(cols)};
  if (rows > 1) shape.push_back(static_cast<uint64_t>(rows));
  w.add_tensor(name, t, shape, bytes);
}

}  // namespace tars::test
