#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "engine/generate.h"

namespace tars::engine {
namespace {

SamplerOptions greedy() {
  SamplerOptions o;
  o.temperature = 0;
  return o;
}

TEST(Sampler, TemperatureZeroIsArgmaxWithLowestIdOnTies) {
  Sampler s(greedy());
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.sample(l, {}), 1);
  EXPECT_EQ(argmax(l), 1);
}

TEST(Sampler, PenaltiesAreOffByDefault) {
  Sampler s(greedy());
  std::vector<float> l = {1.0f, 0.9f};
  std::vector<int32_t> hist(50, 0);  // token 0 seen many times
  EXPECT_EQ(s.sample(l, hist), 0);
}

TEST(Sampler, RepetitionFrequencyAndPresencePenalties) {
  SamplerOptions o = greedy();
  o.repeat_penalty = 2.0f;  // 1.0 -> 0.5 for a seen token
  std::vector<float> l = {1.0f, 0.9f};
  std::vector<int32_t> hist = {0};
  EXPECT_EQ(Sampler(o).sample(l, hist), 1);

  SamplerOptions f = greedy();
  f.frequency_penalty = 0.06f;  // 1.0 - 2 * 0.06 = 0.88 < 0.9
  EXPECT_EQ(Sampler(f).sample(l, std::vector<int32_t>{0, 0}), 1);
  EXPECT_EQ(Sampler(f).sample(l, std::vector<int32_t>{0}), 0);  // 0.94 > 0.9

  SamplerOptions p = greedy();
  p.presence_penalty = 0.2f;  // once, whatever the count
  EXPECT_EQ(Sampler(p).sample(l, std::vector<int32_t>{0}), 1);

  SamplerOptions w = greedy();
  w.repeat_penalty = 2.0f;
  w.penalty_last_n = 1;  // token 0 is outside the window
  EXPECT_EQ(Sampler(w).sample(l, std::vector<int32_t>{0, 1}), 0);
}

TEST(Sampler, LogitBiasBansAndForcesAlsoWhenGreedy) {
  std::vector<float> l = {1.0f, 0.9f, 0.1f};
  SamplerOptions o = greedy();
  o.logit_bias = {{0, -100.0f}};  // bans the argmax
  EXPECT_EQ(Sampler(o).sample(l, {}), 1);
  o.logit_bias = {{2, 100.0f}};   // forces the least likely
  EXPECT_EQ(Sampler(o).sample(l, {}), 2);
  o.logit_bias = {{0, -0.2f}, {7, 100.0f}, {-1, 100.0f}};  // small bias; ids outside the vocabulary skipped
  EXPECT_EQ(Sampler(o).sample(l, {}), 1);
  SamplerOptions t;
  t.temperature = 1.0f;
  t.seed = 3;
  t.logit_bias = {{2, 100.0f}};
  Sampler s(t);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(l, {}), 2);
}

// Draws follow the softmax at the temperature, within sampling error.
TEST(Sampler, DrawsFollowTheDistribution) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  o.seed = 42;
  Sampler s(o);
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(l, {})];
  EXPECT_NEAR(counts[0] / double(n), 0.5, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.2, 0.02);
}

TEST(Sampler, TopKTopPMinPFilter) {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  auto seen = [&](SamplerOptions o) {
    o.temperature = 1.0f;
    o.seed = 7;
    Sampler s(o);
    std::set<int> ids;
    for (int i = 0; i < 3000; ++i) ids.insert(s.sample(l, {}));
    return ids;
  };
  SamplerOptions k;
  k.top_k = 2;
  k.top_p = 1;
  k.min_p = 0;
  EXPECT_EQ(seen(k), (std::set<int>{0, 1}));
  SamplerOptions p;
  p.top_k = 0;
  p.top_p = 0.75f;  // 0.5 is not enough, 0.5 + 0.3 is
  p.min_p = 0;
  EXPECT_EQ(seen(p), (std::set<int>{0, 1}));
  SamplerOptions m;
  m.top_k = 0;
  m.top_p = 1;
  m.min_p = 0.2f;  // keep p >= 0.1
  EXPECT_EQ(seen(m), (std::set<int>{0, 1, 2}));
}

TEST(Sampler, SameSeedSameDraws) {
  SamplerOptions o;
  o.seed = 1234;
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[i] = std::sin(i * 0.7f) * 3;
  Sampler a(o), b(o);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a.sample(l, {}), b.sample(l, {}));
}

// The infill step (sampler.h) on a five-token vocabulary whose token 4 ends
// generation; logits are log-probabilities, every other filter is off.
struct InfillCase {
  std::vector<std::string> texts = {"hel", "hell", "hello", "dummy", ""};
  SamplerOptions options() const {
    SamplerOptions o;
    o.temperature = 1;
    o.top_k = 0;
    o.top_p = 1;
    o.min_p = 0;
    o.infill = true;
    return o;
  }
  Sampler sampler(uint64_t seed, int32_t end = 4) const {
    SamplerOptions o = options();
    o.seed = seed;
    Sampler s(o);
    s.set_infill_tokens({[](int32_t id) { return id == 4; }, [this](int32_t id) -> const std::string& { return texts[id]; },
                         end});
    return s;
  }
  // How often each token is drawn in `n` seeded draws.
  std::map<int32_t, int> draws(const std::vector<double>& p, int n, int32_t end = 4) const {
    std::vector<float> logits;
    for (double x : p) logits.push_back(x > 0 ? static_cast<float>(std::log(x)) : -INFINITY);
    std::map<int32_t, int> count;
    Sampler s = sampler(7, end);
    for (int i = 0; i < n; ++i) ++count[s.sample(logits, {})];
    return count;
  }
};

TEST(SamplerInfill, AlikeTokensCountAsOneAndUnlikelyOnesGo) {
  // hel 0.5, hell 0.2, hello 0.1, dummy 0.1, end 0.1: the ends do not
  // outweigh the text (0.1 * 5 < 0.9); hell and hello join hel (0.8);
  // dummy (0.1 of 1.0) is under the floor of 0.2 and goes; the end stays.
  const auto count = InfillCase().draws({0.5, 0.2, 0.1, 0.1, 0.1}, 4000);
  EXPECT_EQ(count.count(1) + count.count(2) + count.count(3), 0u);
  // hel 0.8 against end 0.1: 8/9 of the draws.
  EXPECT_NEAR(count.at(0) / 4000.0, 8.0 / 9.0, 0.02);
  EXPECT_NEAR(count.at(4) / 4000.0, 1.0 / 9.0, 0.02);
  // Without the step, every token is drawn.
  SamplerOptions plain = InfillCase().options();
  plain.infill = false;
  plain.seed = 7;
  Sampler s(plain);
  std::set<int32_t> seen;
  const std::vector<float> logits = {std::log(0.5f), std::log(0.2f), std::log(0.1f), std::log(0.1f), std::log(0.1f)};
  for (int i = 0; i < 4000; ++i) seen.insert(s.sample(logits, {}));
  EXPECT_EQ(seen.size(), 5u);
}

TEST(SamplerInfill, EndsThatOutweighTheTextEndIt) {
  // end 0.25 among 5 candidates: 0.25 * 5 > 0.75, so the middle is done.
  const auto count = InfillCase().draws({0.3, 0.0, 0.0, 0.45, 0.25}, 500);
  EXPECT_EQ(count.size(), 1u);
  EXPECT_EQ(count.at(4), 500);
}

TEST(SamplerInfill, NothingLeftMeansTheEndToken) {
  // Six unrelated texts of 1/6 each, no end among them: each is under the
  // floor of 0.2, all go, and the vocabulary's end token (here 2) is chosen.
  const std::vector<std::string> texts = {"a", "b", "c", "d", "e", "f"};
  const InfillTokens tokens = {[](int32_t) { return false; }, [&texts](int32_t id) -> const std::string& { return texts[id]; }, 2};
  SamplerOptions o = InfillCase().options();
  o.seed = 1;
  Sampler s(o);
  s.set_infill_tokens(tokens);
  const std::vector<float> logits(6, std::log(1.0f / 6));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(logits, {}), 2);
  // Greedy stays greedy: the step is part of the draw.
  o.temperature = 0;
  Sampler greedy_sampler(o);
  greedy_sampler.set_infill_tokens(tokens);
  EXPECT_EQ(greedy_sampler.sample(logits, {}), 0);
}

TEST(Sampler, LogSoftmaxAndTopK) {
  std::vector<float> l = {1.0f, 3.0f, 2.0f, 3.0f};
  auto lp = log_softmax(l);
  double sum = 0;
  for (double v : lp) sum += std::exp(v);
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_EQ(top_k_ids(l, 3), (std::vector<int32_t>{1, 3, 2}));
}

TEST(StopMatcher, HoldsBackPrefixesAndCutsAtTheStop) {
  StopMatcher m({"END", "\n\n"});
  bool stopped = false;
  EXPECT_EQ(m.push("hello E", stopped), "hello ");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.push("N", stopped), "");
  EXPECT_EQ(m.push("X more", stopped), "ENX more");
  EXPECT_EQ(m.push(" then\n", stopped), " then");
  EXPECT_EQ(m.matched(), "");
  EXPECT_EQ(m.push("\nrest", stopped), "");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(m.matched(), "\n\n");  // which stop string it was (Anthropic's stop_sequence)
  StopMatcher n({"END"});
  EXPECT_EQ(n.push("abcEN", stopped), "abc");
  EXPECT_EQ(n.flush(), "EN");
  EXPECT_EQ(n.matched(), "");
  // Two in the text: the first one stops it, whatever their order in the list.
  StopMatcher o({"zz", "b"});
  EXPECT_EQ(o.push("abzz", stopped), "a");
  EXPECT_EQ(o.matched(), "b");
}

}  // namespace
}  // namespace tars::engine
