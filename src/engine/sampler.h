#pragma once
// Choosing the next token from logits.
//
// Order of the steps (the common one, so outputs compare with other engines):
//   penalties (repetition, frequency, presence) over the last
//   `penalty_last_n` tokens -> temperature 0: argmax, done ->
//   top-k -> top-p -> min-p -> [infill] -> softmax at the temperature ->
//   draw with the seeded generator.
// The infill step (for filling in the middle; llama.cpp documents a sampler
// of that name with these aims, and llama-server's /infill clients ask for
// it) works on the candidates' probabilities at temperature 1:
//   1. when the ends of generation among them, weighed by the number of
//      candidates, outweigh the rest (p_end * n > p_text), only the ends
//      stay: the middle is done;
//   2. text tokens that begin alike (one's text a prefix of the other's)
//      count as one, under the likelier of the two;
//   3. text tokens below kInfillFloor of what is left go;
//   4. when nothing is left, the vocabulary's end token is chosen.
// (At most kInfillCandidates, the likeliest, take part.)
// Everything is off by default, so temperature 0 is plain argmax (the lowest
// id wins a tie). A constraint (JSON mode, json_prefix.h) removes the tokens
// it does not allow right after the penalties and biases, before any of the
// rest, and is told which token was chosen.

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>
#include <utility>

namespace tars::engine {

struct SamplerOptions {
  float temperature = 0.8f;   // 0 = greedy
  int top_k = 40;             // 0 = off
  float top_p = 0.95f;        // 1 = off
  float min_p = 0.05f;        // 0 = off: drop tokens with p < min_p * p_max
  float repeat_penalty = 1;   // 1 = off: divide positive logits (multiply negative) of seen tokens
  float frequency_penalty = 0;  // subtract count * this
  float presence_penalty = 0;   // subtract this once per seen token
  int penalty_last_n = 64;      // window for the penalties
  uint64_t seed = 0xFFFFFFFFFFFFFFFFull;  // kSeedRandom = draw a seed from the OS
  // Added to a token's logit after the penalties, also when greedy (OpenAI's
  // logit_bias: -100 all but bans a token, +100 all but forces it). Ids
  // outside the vocabulary are the caller's to refuse; the sampler skips them.
  std::vector<std::pair<int32_t, float>> logit_bias;
  bool infill = false;  // the infill step (needs Sampler::set_infill_tokens)
};

inline constexpr double kInfillFloor = 0.2;
inline constexpr size_t kInfillCandidates = 256;

// What the infill step knows of the vocabulary.
struct InfillTokens {
  std::function<bool(int32_t)> is_end;                     // ends generation
  std::function<const std::string&(int32_t)> text;         // a token's text
  int32_t end = -1;                                        // chosen when nothing is left
};

inline constexpr uint64_t kSeedRandom = 0xFFFFFFFFFFFFFFFFull;

// One candidate after filtering.
struct TokenProb {
  int32_t id;
  float logit;
  float p;
};

// Which tokens may come next (a grammar over the generated text).
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  virtual bool allows(int32_t id) const = 0;
  // `id` was chosen (and comes next in the text).
  virtual void accept(int32_t id) = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);

  // From now on, only the tokens `c` allows are chosen (when it allows none,
  // the choice is as without it).
  void set_constraint(std::unique_ptr<TokenConstraint> c) { constraint_ = std::move(c); }
  // The vocabulary for the infill step (used when options().infill).
  void set_infill_tokens(InfillTokens t) { infill_ = std::move(t); }

  // Chooses a token from `logits` (n_vocab values). `history` is the
  // sequence so far (prompt and generated), for the penalties.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  const SamplerOptions& options() const { return opt_; }
  uint64_t seed() const { return seed_; }

 private:
  void constrain();  // keeps the candidates the constraint allows
  void infill();     // the infill step, on cand_ (probabilities at temperature 1, best first)
  int32_t choose();  // the steps after the penalties, biases and constraint, on cand_

  SamplerOptions opt_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::vector<TokenProb> cand_;
  std::unique_ptr<TokenConstraint> constraint_;
  InfillTokens infill_;
};

// log-softmax of logits, in double for accuracy; used by --logits and logprobs.
std::vector<double> log_softmax(std::span<const float> logits);
// The k highest logits, best first (ties: lower id first).
std::vector<int32_t> top_k_ids(std::span<const float> logits, int k);
// argmax, lowest id on ties.
int32_t argmax(std::span<const float> logits);

}  // namespace tars::engine
