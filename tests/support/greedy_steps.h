#pragma once
// A fixed decode workload for comparing two ways of running one model: a
// prompt of `prompt` ids ((i * 37 + 11) mod n_vocab, logits of its last
// position), then `steps` one-token steps feeding the argmax back, in slot 0.
#include <vector>

#include "engine/model.h"

namespace tars::test {

// Every logit row (prompt's last, then each step's), concatenated.
std::vector<float> greedy_steps(engine::Model& model, int prompt, int steps);

}  // namespace tars::test
