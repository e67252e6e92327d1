#include "engine/scheduler.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace tars::engine {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = std::min(a.size(), b.size()), i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

struct Scheduler::Pending {
  GenRequest req;
  std::shared_ptr<RequestHandle> handle;
  Clock::time_point submitted;
};

struct Scheduler::Slot {
  int index = 0;
  SlotState state = SlotState::kIdle;
  std::unique_ptr<Pending> p;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StopMatcher> stop;
  std::unique_ptr<TokenStreamDecoder> decoder;
  std::vector<int32_t> history;  // prompt + generated
  int n_past = 0;                // tokens already in the KV cache
  // Idle: the tokens whose keys and values the cache holds, at positions
  // 0..cached.size()-1 (what the last request read).
  std::vector<int32_t> cached;
  uint64_t last_used = 0;        // admission count when the slot last took a request
  int n_generated = 0;
  int32_t last = 0;              // token to feed next (kGenerating)
  Clock::time_point admitted, first_token;
  RequestStats stats;
};

Scheduler::Scheduler(Model& model, const SchedulerOptions& options) : model_(model), opt_(options) {
  for (int i = 0; i < model_.options().n_slots; ++i) {
    auto s = std::make_unique<Slot>();
    s->index = i;
    slots_.push_back(std::move(s));
  }
  stats_.slots = static_cast<int>(slots_.size());
  views_.resize(slots_.size());
  for (size_t i = 0; i < views_.size(); ++i) views_[i].id = static_cast<int>(i);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { stop(); }

std::shared_ptr<RequestHandle> Scheduler::submit(GenRequest request) {
  const int n_ctx = model_.options().n_ctx;
  const int n_prompt = static_cast<int>(request.prompt.size());
  if (n_prompt == 0) throw Error(ErrorCode::kInvalidArgument, "the prompt is empty");
  int max_tokens = request.options.max_tokens;
  if (max_tokens < 0) max_tokens = n_ctx - n_prompt;
  if (n_prompt + std::max(max_tokens, 1) > n_ctx) {
    throw Error(ErrorCode::kInvalidArgument,
                "the prompt (" + std::to_string(n_prompt) + " tokens) plus max_tokens (" +
                    std::to_string(max_tokens) + ") exceeds " + model_.context_limit_text());
  }
  request.options.max_tokens = max_tokens;
  auto pending = std::make_unique<Pending>();
  pending->req = std::move(request);
  pending->handle = std::make_shared<RequestHandle>();
  pending->submitted = Clock::now();
  auto handle = pending->handle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw Error(ErrorCode::kUnavailable, "the server is shutting down");
    // Free slots take requests at the next step; beyond them, queue_limit
    // requests may wait.
    int free_slots = stats_.slots - stats_.slots_busy;
    if (static_cast<int>(queue_.size()) >= opt_.queue_limit + free_slots) {
      ++stats_.requests_rejected;
      throw Error(ErrorCode::kUnavailable, "the queue is full (" + std::to_string(opt_.queue_limit) +
                                               " requests waiting); try again shortly");
    }
    queue_.push_back(std::move(pending));
  }
  cv_.notify_one();
  return handle;
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SecondsHistogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++counts[i];
  ++count;
  sum += seconds;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::vector<SlotView> Scheduler::slots() const {
  std::lock_guard<std::mutex> lock(mu_);
  return views_;
}

void Scheduler::publish() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : slots_) publish_slot(*s);
}

void Scheduler::publish_slot(const Slot& s) {
  SlotView& v = views_[static_cast<size_t>(s.index)];
  v.busy = s.state != SlotState::kIdle;
  v.generating = s.state == SlotState::kGenerating;
  v.task = s.last_used;
  v.n_prompt = v.busy ? s.stats.n_prompt : 0;
  v.n_generated = v.busy ? s.n_generated : 0;
  v.max_tokens = v.busy ? s.p->req.options.max_tokens : 0;
  v.n_cached = v.busy ? s.n_past : static_cast<int>(s.cached.size());
}

void Scheduler::finish(Slot& s, FinishReason reason, const std::string& error,
                       bool flush_text) {
  // Text still held back by the UTF-8 decoder or the stop matcher.
  if (flush_text && error.empty() && !s.p->handle->cancelled()) {
    bool stopped = false;
    std::string tail = s.stop->push(s.decoder->flush(), stopped);
    if (!stopped) tail += s.stop->flush();
    if (!tail.empty() && s.p->req.on_token) {
      TokenEvent e;
      e.id = -1;
      e.text = std::move(tail);
      s.p->req.on_token(e);
    }
  }
  auto now = Clock::now();
  s.stats.n_generated = s.n_generated;
  if (reason == FinishReason::kStop && s.stop) s.stats.stop_sequence = s.stop->matched();
  if (s.n_generated > 0) s.stats.generate_ms = ms_between(s.first_token, now);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (s.p->handle->cancelled()) ++stats_.requests_cancelled;
    else ++stats_.requests_done;
    stats_.tokens_out += s.n_generated;
    stats_.generation_seconds += s.stats.generate_ms / 1000.0;
    if (s.n_generated > 1 && s.stats.generate_ms > 0) {
      stats_.last_tokens_per_s = (s.n_generated - 1) / (s.stats.generate_ms / 1000.0);
    }
    --stats_.slots_busy;
  }
  auto on_done = std::move(s.p->req.on_done);
  s.cached.assign(s.history.begin(), s.history.begin() + std::min<size_t>(s.n_past, s.history.size()));
  s.p.reset();
  s.sampler.reset();
  s.stop.reset();
  s.decoder.reset();
  s.history.clear();
  s.state = SlotState::kIdle;
  {
    // Idle before the caller hears it is done: a client that asks for the
    // slots after its answer finds the slot free.
    std::lock_guard<std::mutex> lock(mu_);
    publish_slot(s);
  }
  if (on_done) on_done(reason, s.stats, error);
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        if (stopping_ || !queue_.empty()) return true;
        for (auto& s : slots_) {
          if (s->state != SlotState::kIdle) return true;
        }
        return false;
      });
      if (stopping_) {
        // Cancel everything, waiting or running.
        std::deque<std::unique_ptr<Pending>> waiting;
        waiting.swap(queue_);
        lock.unlock();
        for (auto& p : waiting) {
          p->handle->cancel();
          if (p->req.on_done) p->req.on_done(FinishReason::kStop, {}, "the server is shutting down");
        }
        for (auto& s : slots_) {
          if (s->state != SlotState::kIdle) {
            s->p->handle->cancel();
            finish(*s, FinishReason::kStop, "the server is shutting down", false);
          }
        }
        return;
      }
    }
    try {
      step();
    } catch (const std::exception& e) {
      // A failed forward pass fails the requests in it, not the server;
      // what their caches hold is not trusted again.
      for (auto& s : slots_) {
        if (s->state != SlotState::kIdle) {
          finish(*s, FinishReason::kStop, e.what(), false);
          s->cached.clear();
        }
      }
    }
    publish();
  }
}

void Scheduler::admit() {
  while (!queue_.empty()) {
    auto& req = queue_.front()->req;
    // The idle slot whose cache serves this prompt best: tokens reused,
    // less the cached tokens the request would overwrite (so a conversation
    // does not take the slot of a longer one that merely shares its system
    // prompt); then the least recently used.
    Slot* best = nullptr;
    int64_t best_score = 0;
    size_t best_prefix = 0;
    for (auto& s : slots_) {
      if (s->state != SlotState::kIdle) continue;
      size_t prefix = req.cache_prompt ? common_prefix(s->cached, req.prompt) : 0;
      int64_t score = 2 * static_cast<int64_t>(prefix) - static_cast<int64_t>(s->cached.size());
      if (!best || score > best_score || (score == best_score && s->last_used < best->last_used)) {
        best = s.get();
        best_score = score;
        best_prefix = prefix;
      }
    }
    if (!best) return;
    Slot& s = *best;
    s.p = std::move(queue_.front());
    queue_.pop_front();
    s.state = SlotState::kPrompt;
    s.last_used = ++admissions_;
    s.admitted = Clock::now();
    s.stats = {};
    s.stats.n_prompt = static_cast<int>(s.p->req.prompt.size());
    s.stats.queue_ms = ms_between(s.p->submitted, s.admitted);
    s.history = s.p->req.prompt;
    // The last prompt token is read again even when cached: its logits give
    // the first generated token.
    s.n_past = static_cast<int>(std::min(best_prefix, s.history.size() - 1));
    s.stats.n_cached = s.n_past;
    s.cached.clear();
    s.n_generated = 0;
    s.sampler = std::make_unique<Sampler>(s.p->req.options.sampling);
    if (s.p->req.options.sampling.infill) {
      const Tokenizer& tok = model_.tokenizer();
      const Vocab& v = tok.vocab();
      s.sampler->set_infill_tokens({[&tok](int32_t id) { return tok.is_end_of_generation(id); },
                                    [&tok](int32_t id) -> const std::string& { return tok.pieces()[id]; },
                                    v.eot != kTokenNone ? v.eot : v.eos});
    }
    if (auto c = make_constraint(s.p->req.options, model_.tokenizer())) s.sampler->set_constraint(std::move(c));
    s.stop = std::make_unique<StopMatcher>(s.p->req.options.stop);
    s.decoder = std::make_unique<TokenStreamDecoder>(model_.tokenizer(), /*at_start=*/false);
    ++stats_.slots_busy;
    publish_slot(s);  // busy from now on, before its first token reaches anyone
    stats_.tokens_in += s.stats.n_prompt;
    stats_.tokens_cached += s.stats.n_cached;
  }
}

bool Scheduler::step() {
  // Admit waiting requests into free slots.
  {
    std::lock_guard<std::mutex> lock(mu_);
    admit();
    stats_.queued = static_cast<int>(queue_.size());
  }

  // Cancelled requests leave before the step.
  for (auto& s : slots_) {
    if (s->state != SlotState::kIdle && s->p->handle->cancelled()) {
      finish(*s, FinishReason::kStop, "cancelled", false);
    }
  }

  // Build the batch: generating slots first (one token each), then prompt
  // chunks in the space that is left.
  Batch batch;
  std::vector<Slot*> logit_rows;  // slot of each logits row, in batch order
  for (auto& s : slots_) {
    if (s->state == SlotState::kGenerating) {
      batch.add(s->last, s->n_past, s->index, true);
      logit_rows.push_back(s.get());
    }
  }
  int budget = std::max(0, opt_.step_tokens - batch.size());
  for (auto& s : slots_) {
    if (s->state != SlotState::kPrompt || budget == 0) continue;
    int n_prompt = static_cast<int>(s->history.size());
    int chunk = std::min(budget, n_prompt - s->n_past);
    for (int i = 0; i < chunk; ++i) {
      int pos = s->n_past + i;
      bool last = pos == n_prompt - 1;
      batch.add(s->history[pos], pos, s->index, last);
      if (last) logit_rows.push_back(s.get());
    }
    budget -= chunk;
  }
  if (batch.size() == 0) return false;

  std::vector<int> seqs;
  for (int i = 0; i < batch.size(); ++i) {
    if (std::find(seqs.begin(), seqs.end(), batch.seq[i]) == seqs.end()) seqs.push_back(batch.seq[i]);
  }
  std::vector<float> logits;
  model_.forward(batch, logits);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.steps;
    stats_.step_sequences += seqs.size();
    stats_.max_step_sequences = std::max<uint64_t>(stats_.max_step_sequences, seqs.size());
  }

  // Advance the KV positions of every slot in the batch.
  for (int i = 0; i < batch.size(); ++i) ++slots_[batch.seq[i]]->n_past;

  const int n_vocab = model_.hparams().n_vocab;
  const int n_ctx = model_.options().n_ctx;
  for (size_t r = 0; r < logit_rows.size(); ++r) {
    Slot& s = *logit_rows[r];
    std::span<const float> row(logits.data() + r * n_vocab, n_vocab);
    const GenRequest& req = s.p->req;
    auto now = Clock::now();
    if (s.state == SlotState::kPrompt) {
      s.state = SlotState::kGenerating;
      s.stats.prompt_ms = ms_between(s.admitted, now);
      {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.prompt_seconds += s.stats.prompt_ms / 1000.0;
      }
      // max_tokens 0: the prompt is read into the slot's cache (for the
      // requests that will share its prefix), and nothing is generated.
      if (req.options.max_tokens == 0) {
        finish(s, FinishReason::kLength, "", false);
        continue;
      }
    }
    const int32_t id = s.sampler->sample(row, s.history);
    if (!req.options.ignore_eos && model_.tokenizer().is_end_of_generation(id)) {
      finish(s, FinishReason::kStop, "", true);
      continue;
    }
    if (s.n_generated == 0) {
      s.first_token = now;
      s.stats.ttft_ms = ms_between(s.p->submitted, now);
      std::lock_guard<std::mutex> lock(mu_);
      stats_.last_ttft_ms = s.stats.ttft_ms;
      stats_.ttft.observe(s.stats.ttft_ms / 1000.0);
    }
    ++s.n_generated;
    s.history.push_back(id);
    s.last = id;
    TokenEvent e;
    e.id = id;
    bool stopped = false;
    e.text = s.stop->push(s.decoder->push(id), stopped);
    auto lp = log_softmax(row);
    e.logprob = lp[id];
    if (req.top_logprobs > 0) {
      for (int32_t t : top_k_ids(row, req.top_logprobs)) e.top.push_back({t, lp[t]});
    }
    if (req.on_token) req.on_token(e);
    if (stopped) {
      finish(s, FinishReason::kStop, "", false);
    } else if (s.n_generated >= req.options.max_tokens || s.n_past >= n_ctx) {
      finish(s, FinishReason::kLength, "", true);
    }
  }
  return true;
}

}  // namespace tars::engine
