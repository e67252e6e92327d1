#pragma once
// Rotary cos/sin per position of one batch, shared by the backends so that
// each rotates with the same numbers: angles in double, rounded to float
// once. A backend keeps one table and asks it for every rope call: the
// layers and q/k of a forward pass reuse it, and it is rebuilt only when the
// positions or the parameters change. Header-only: the CUDA library uses it
// without linking the engine.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/backend.h"

namespace tars::engine {

class RopeTable {
 public:
  // Makes the table describe `pos` (n_tokens positions) under `p`; true
  // when it had to be rebuilt.
  bool update(const int32_t* pos, int n_tokens, const RopeParams& p) {
    const bool same = built_ && params_.mode == p.mode && params_.n_rot == p.n_rot &&
                      params_.freq_base == p.freq_base && params_.freq_scale == p.freq_scale &&
                      params_.freq_factors == p.freq_factors && pos_.size() == static_cast<size_t>(n_tokens) &&
                      std::equal(pos_.begin(), pos_.end(), pos);
    if (same) return false;
    const int half = p.n_rot / 2;
    std::vector<double> theta(half);
    for (int i = 0; i < half; ++i) {
      theta[i] = std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.n_rot);
      if (p.freq_factors) theta[i] /= p.freq_factors[i];
    }
    built_ = true;
    pos_.assign(pos, pos + n_tokens);
    params_ = p;
    cos_.resize(static_cast<size_t>(n_tokens) * half);
    sin_.resize(static_cast<size_t>(n_tokens) * half);
    for (int t = 0; t < n_tokens; ++t) {
      const double x = static_cast<double>(pos[t]) * p.freq_scale;
      for (int i = 0; i < half; ++i) {
        cos_[static_cast<size_t>(t) * half + i] = static_cast<float>(std::cos(x * theta[i]));
        sin_[static_cast<size_t>(t) * half + i] = static_cast<float>(std::sin(x * theta[i]));
      }
    }
    return true;
  }

  // [n_tokens x n_rot/2] each, row t for the batch's token t.
  const std::vector<float>& cos() const { return cos_; }
  const std::vector<float>& sin() const { return sin_; }

 private:
  bool built_ = false;
  std::vector<int32_t> pos_;
  RopeParams params_;
  std::vector<float> cos_, sin_;
};

}  // namespace tars::engine
