#pragma once
// Constrained sampling with random logits over a real vocabulary, for the
// tests of JSON mode (json_prefix.h) and structured output (json_schema.h):
// a run samples until the end of generation is chosen or the steps run out,
// its logits leaning toward closing characters so that many runs finish.

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/sampler.h"
#include "engine/tokenizer.h"

namespace tars::test {

struct ConstrainedRun {
  bool ended = false;          // the end of generation was chosen
  bool complete_at_end = false;  // the constraint called the text complete then
  std::string text;            // the text before it
};

// Greedy when `run` is a multiple of 3 (temperature 1 otherwise), top_k 40 on
// even runs when `vary_top_k` (0, every token, otherwise); seed = run.
inline engine::SamplerOptions constrained_run_options(int run, bool vary_top_k) {
  engine::SamplerOptions o;
  o.temperature = run % 3 == 0 ? 0.0f : 1.0f;
  o.top_k = vary_top_k && run % 2 == 0 ? 40 : 0;
  o.top_p = 1;
  o.min_p = 0;
  o.seed = static_cast<uint64_t>(run);
  return o;
}

template <class Constraint>
ConstrainedRun random_constrained_run(const engine::Tokenizer& tok, const engine::SamplerOptions& options,
                                      std::unique_ptr<Constraint> constraint, std::mt19937& rng, int max_steps) {
  const int n_vocab = tok.vocab().n_vocab();
  std::normal_distribution<float> noise(0.0f, 2.0f);
  engine::Sampler s(options);
  const Constraint* c = constraint.get();
  s.set_constraint(std::move(constraint));
  ConstrainedRun out;
  std::vector<float> logits(n_vocab);
  for (int step = 0; step < max_steps; ++step) {
    for (auto& l : logits) l = noise(rng);
    for (const char* piece : {"}", "]", "\"", ",", "1"}) {
      const int32_t id = tok.find_token(piece);
      if (id >= 0) logits[id] += 4.0f;
    }
    const int32_t id = s.sample(logits, {});
    if (tok.is_end_of_generation(id)) {
      out.ended = true;
      out.complete_at_end = c->complete();
      return out;
    }
    out.text += tok.token_to_piece(id);
  }
  return out;
}

}  // namespace tars::test
