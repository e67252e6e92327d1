#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace tars::engine {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<double> log_softmax(std::span<const float> logits) {
  double mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, static_cast<double>(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(v - mx);
  double lse = mx + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
  return out;
}

std::vector<int32_t> top_k_ids(std::span<const float> logits, int k) {
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  k = std::min<int>(k, static_cast<int>(ids.size()));
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  ids.resize(k);
  return ids;
}

Sampler::Sampler(const SamplerOptions& options) : opt_(options) {
  seed_ = opt_.seed;
  if (seed_ == kSeedRandom) {
    std::random_device rd;
    seed_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  rng_.seed(seed_);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const size_t n = logits.size();
  cand_.resize(n);
  for (size_t i = 0; i < n; ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0};

  // Penalties over the recent window.
  const bool penalize = opt_.repeat_penalty != 1 || opt_.frequency_penalty != 0 ||
                        opt_.presence_penalty != 0;
  if (penalize && opt_.penalty_last_n != 0) {
    size_t window = opt_.penalty_last_n < 0 ? history.size()
                                            : std::min<size_t>(history.size(), opt_.penalty_last_n);
    std::unordered_map<int32_t, int> counts;
    for (size_t i = history.size() - window; i < history.size(); ++i) ++counts[history[i]];
    for (auto [id, count] : counts) {
      if (id < 0 || static_cast<size_t>(id) >= n) continue;
      float& l = cand_[id].logit;
      if (opt_.repeat_penalty != 1) l = l > 0 ? l / opt_.repeat_penalty : l * opt_.repeat_penalty;
      l -= count * opt_.frequency_penalty + opt_.presence_penalty;
    }
  }
  for (const auto& [id, bias] : opt_.logit_bias) {
    if (id >= 0 && static_cast<size_t>(id) < n) cand_[id].logit += bias;
  }

  if (constraint_) constrain();
  const int32_t id = choose();
  if (constraint_) constraint_->accept(id);
  return id;
}

namespace {
bool better(const TokenProb& a, const TokenProb& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); }
}  // namespace

void Sampler::constrain() {
  // Only what the constraint allows stays; when it allows nothing, the
  // candidates stay as they are. The steps after this one look at no more
  // than the best `need` candidates (1 when greedy, top_k), so those are
  // looked for among the best few hundred first, and the whole vocabulary is
  // tried only when they are not all there: the same candidates either way,
  // for a fraction of the constraint's work (bench/json_mode_bench.cpp).
  const size_t n = cand_.size();
  const size_t need = opt_.temperature <= 0 ? 1 : opt_.top_k > 0 ? static_cast<size_t>(opt_.top_k) : n;
  size_t kept = 0;
  size_t tried = 0;
  if (need < n) {
    const size_t first = std::min(n, std::max<size_t>(8 * need, 256));
    std::partial_sort(cand_.begin(), cand_.begin() + first, cand_.end(), better);
    for (; tried < first; ++tried) {
      if (constraint_->allows(cand_[tried].id)) cand_[kept++] = cand_[tried];
    }
    if (kept >= need) {
      cand_.resize(kept);
      return;
    }
  }
  for (; tried < n; ++tried) {
    if (constraint_->allows(cand_[tried].id)) cand_[kept++] = cand_[tried];
  }
  if (kept > 0) cand_.resize(kept);
}

int32_t Sampler::choose() {
  const size_t n = cand_.size();
  if (opt_.temperature <= 0) {
    return std::min_element(cand_.begin(), cand_.end(), better)->id;
  }
  size_t keep = n;
  if (opt_.top_k > 0 && static_cast<size_t>(opt_.top_k) < n) keep = opt_.top_k;
  std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), better);
  cand_.resize(keep);

  // Probabilities at temperature 1 for top-p / min-p (as the filters are
  // defined on the model's distribution), then at the requested temperature.
  auto softmax = [&](float temp) {
    double mx = cand_.front().logit / temp, sum = 0;
    for (auto& c : cand_) sum += (c.p = static_cast<float>(std::exp(c.logit / temp - mx)));
    for (auto& c : cand_) c.p = static_cast<float>(c.p / sum);
  };
  softmax(1.0f);
  if (opt_.top_p < 1) {
    double cum = 0;
    size_t k = 0;
    while (k < cand_.size()) {
      cum += cand_[k++].p;
      if (cum >= opt_.top_p) break;
    }
    cand_.resize(std::max<size_t>(k, 1));
  }
  if (opt_.min_p > 0) {
    float limit = cand_.front().p * opt_.min_p;
    size_t k = 1;
    while (k < cand_.size() && cand_[k].p >= limit) ++k;
    cand_.resize(k);
  }
  if (opt_.infill && infill_.is_end && infill_.text) infill();
  softmax(opt_.temperature);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  double r = uni(rng_), cum = 0;
  for (const auto& c : cand_) {
    cum += c.p;
    if (r < cum) return c.id;
  }
  return cand_.back().id;
}

void Sampler::infill() {
  if (cand_.size() > kInfillCandidates) cand_.resize(kInfillCandidates);
  const TokenProb best = cand_.front();
  const double n = static_cast<double>(cand_.size());
  // Each candidate's probability, and whether it ends generation (asked once:
  // the pairs below would ask it n^2 times).
  std::vector<double> p(cand_.size());
  std::vector<char> end(cand_.size());
  double p_end = 0, p_text = 0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    p[i] = cand_[i].p;
    end[i] = infill_.is_end(cand_[i].id);
    (end[i] ? p_end : p_text) += p[i];
  }
  if (p_end * n > p_text) {
    // 1. The middle is done: only the ends stay.
    for (size_t i = 0; i < cand_.size(); ++i) {
      if (!end[i]) p[i] = 0;
    }
  } else {
    // 2. Text tokens that begin alike count as one, under the likelier.
    for (size_t i = 0; i < cand_.size(); ++i) {
      if (p[i] == 0 || end[i]) continue;
      const std::string& a = infill_.text(cand_[i].id);
      if (a.empty()) continue;
      for (size_t j = i + 1; j < cand_.size(); ++j) {
        if (p[j] == 0 || end[j]) continue;
        const std::string& b = infill_.text(cand_[j].id);
        if (b.empty()) continue;
        const bool alike = a.size() <= b.size() ? b.compare(0, a.size(), a) == 0 : a.compare(0, b.size(), b) == 0;
        if (!alike) continue;
        // (ties: the earlier, which is the likelier or the lower id)
        const size_t keep = p[i] >= p[j] ? i : j, drop = keep == i ? j : i;
        p[keep] += p[drop];
        p[drop] = 0;
        if (drop == i) break;
      }
    }
    // 3. Unlikely text tokens go.
    double total = 0;
    for (double x : p) total += x;
    for (size_t i = 0; i < cand_.size(); ++i) {
      if (p[i] > 0 && !end[i] && p[i] < kInfillFloor * total) p[i] = 0;
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    if (p[i] <= 0) continue;
    cand_[kept] = cand_[i];
    cand_[kept].logit = static_cast<float>(std::log(p[i]));  // the draw's softmax starts from these
    ++kept;
  }
  cand_.resize(kept);
  if (cand_.empty()) {  // 4. nothing left: the end (the likeliest token when the vocabulary has none)
    cand_.push_back(infill_.end >= 0 ? TokenProb{infill_.end, 0.0f, 1.0f} : best);
  }
  std::sort(cand_.begin(), cand_.end(), better);  // best first again, for the draw
}

}  // namespace tars::engine
