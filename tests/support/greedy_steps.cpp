#include "support/greedy_steps.h"

#include <algorithm>

namespace tars::test {

std::vector<float> greedy_steps(engine::Model& model, int prompt, int steps) {
  const int n_vocab = model.hparams().n_vocab;
  std::vector<float> out;
  engine::Batch b;
  for (int i = 0; i < prompt; ++i) b.add((i * 37 + 11) % n_vocab, i, 0, i + 1 == prompt);
  model.forward(b, out);
  for (int step = 0; step < steps; ++step) {
    auto last = out.end() - n_vocab;
    engine::Batch d;
    d.add(static_cast<int32_t>(std::max_element(last, out.end()) - last), prompt + step, 0, true);
    model.forward(d, out);
  }
  return out;
}

}  // namespace tars::test
