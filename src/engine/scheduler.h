#pragma once
// Continuous batching: many sequences share one Model. A single scheduler
// thread runs steps; each step is ONE forward pass over every active
// sequence: generating slots contribute their last token, slots still
// reading their prompt contribute a chunk of it (so a long prompt does not
// stall the others). New requests are admitted between steps into free
// slots; a bounded queue holds the rest, and a full queue refuses at once.
//
// Slot states (llama.cpp's server has the same three):
//   kIdle -> kPrompt (prompt chunks) -> kGenerating (one token per step) -> kIdle
//
// Requests report through callbacks called on the scheduler thread; they
// must be quick (queue the event and return). A request can be cancelled at
// any time (client gone); its slot is freed at the next step.
//
// Prompt cache: a slot keeps the keys and values of its last request after
// it ends (prompt and generated tokens). A new request goes to the idle slot
// whose cached tokens it reuses best (longest common prefix, counted against
// the cached tokens it would throw away), and its prompt is read from the
// end of that prefix: the next turn of a chat reads only the new messages.
// The last prompt token is always read again, for its logits.

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/generate.h"
#include "engine/sampler.h"

namespace tars::engine {

class Model;

struct TokenLogprob {
  int32_t id;
  double logprob;
};

// One generated token as the client sees it. At the end of a request, text
// that was held back (an incomplete UTF-8 sequence, a possible stop-string
// prefix that turned out not to be one) comes as an event with id -1.
struct TokenEvent {
  int32_t id = 0;
  std::string text;            // text completed by this token (may be "", held back for UTF-8 or stop strings)
  double logprob = 0;          // log-probability of the chosen token (before sampling filters)
  std::vector<TokenLogprob> top;  // top alternatives, when asked for
};

struct RequestStats {
  int n_prompt = 0;
  int n_cached = 0;            // prompt tokens whose keys and values came from the slot's cache
  int n_generated = 0;
  double queue_ms = 0;         // submitted -> admitted to a slot
  double ttft_ms = 0;          // submitted -> first token
  double prompt_ms = 0;        // admitted -> prompt done
  double generate_ms = 0;      // first token -> last token
  std::string stop_sequence;   // the stop string that ended generation ("" for the end of text or a limit)
};

struct GenRequest {
  std::vector<int32_t> prompt;
  GenerateOptions options;     // max_tokens, sampling, stop, ignore_eos (slot is chosen here)
  int top_logprobs = 0;        // alternatives per token (0..20)
  // Reuse a slot's cached prefix (llama-server's cache_prompt). Off, the
  // whole prompt is read (the same arithmetic as a first request, for callers
  // who need bit-for-bit repeatable logits).
  bool cache_prompt = true;
  // Called for every generated token (on the scheduler thread).
  std::function<void(const TokenEvent&)> on_token;
  // Called once at the end (finished, cancelled or failed); `error` is empty
  // on success.
  std::function<void(FinishReason, const RequestStats&, const std::string& error)> on_done;
};

// Returned by submit(); cancel() is safe from any thread.
class RequestHandle {
 public:
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int queue_limit = 64;     // requests waiting for a busy slot; more get kUnavailable at once
  int step_tokens = 512;    // tokens per forward pass (prompt chunks fill what generation leaves)
};

// Observations of a duration in seconds in fixed buckets, for metrics:
// counts[i] is how many were at most kBounds[i] and above the bound before
// (not cumulative); the last count is the ones above every bound.
struct SecondsHistogram {
  static constexpr std::array<double, 12> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,   1,    2.5,   5,    10,  30};
  std::array<uint64_t, kBounds.size() + 1> counts{};
  uint64_t count = 0;
  double sum = 0;

  void observe(double seconds);
};

// Counters for /status and metrics.
struct SchedulerStats {
  int slots = 0;
  int slots_busy = 0;
  int queued = 0;
  uint64_t steps = 0;                // forward passes run
  uint64_t step_sequences = 0;       // sum over steps of sequences in the step
  uint64_t max_step_sequences = 0;   // most sequences in one step
  uint64_t requests_done = 0;
  uint64_t requests_cancelled = 0;
  uint64_t requests_rejected = 0;
  uint64_t tokens_in = 0;
  uint64_t tokens_cached = 0;        // of tokens_in, those the prompt cache saved reading
  uint64_t tokens_out = 0;
  double last_ttft_ms = 0;
  double last_tokens_per_s = 0;
  SecondsHistogram ttft;             // submitted -> first token, per request that had one
  double prompt_seconds = 0;         // sum over requests of admitted -> prompt done
  double generation_seconds = 0;     // sum over requests of first token -> last token
};

// What a slot is doing, as of the last step (llama-server's /slots).
struct SlotView {
  int id = 0;
  bool busy = false;        // serving a request
  bool generating = false;  // busy, and past its prompt
  uint64_t task = 0;        // the request it serves or served last (admission order; 0: none yet)
  int n_prompt = 0;         // busy: the request's prompt tokens
  int n_generated = 0;      // busy: tokens made so far
  int max_tokens = 0;       // busy: the request's limit
  int n_cached = 0;         // tokens whose keys and values the slot holds (idle: what a request can reuse)
};

class Scheduler {
 public:
  Scheduler(Model& model, const SchedulerOptions& options);
  ~Scheduler();  // cancels everything and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Throws tars::Error(kUnavailable) when the queue is
  // full or the scheduler is stopping, kInvalidArgument when the prompt plus
  // max_tokens cannot fit a slot's context (the message gives the figures).
  std::shared_ptr<RequestHandle> submit(GenRequest request);

  // Stops admitting; cancels waiting and running requests; joins.
  void stop();

  SchedulerStats stats() const;
  // Every slot, as of the last step.
  std::vector<SlotView> slots() const;
  Model& model() { return model_; }

 private:
  enum class SlotState { kIdle, kPrompt, kGenerating };
  struct Slot;
  struct Pending;

  void loop();
  bool step();  // one forward pass; false when there was nothing to do
  void admit();  // moves waiting requests into idle slots (holding mu_)
  // Ends a slot's request; `flush_text` delivers text still held back (not
  // after a stop string, a cancel or an error).
  void finish(Slot& s, FinishReason reason, const std::string& error, bool flush_text);
  void publish();  // the slots' state into views_ (on the scheduler's thread)
  void publish_slot(const Slot& s);  // one slot's (holding mu_)

  Model& model_;
  SchedulerOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Pending>> queue_;
  std::vector<std::unique_ptr<Slot>> slots_;
  bool stopping_ = false;
  uint64_t admissions_ = 0;  // clock for the slots' last use
  SchedulerStats stats_;
  std::vector<SlotView> views_;  // under mu_
  std::thread thread_;
};

}  // namespace tars::engine
