// Continuous batching on the real stories260K model: concurrent requests
// give exactly what each gives alone, steps really batch several sequences,
// cancellation frees the slot, a full queue refuses.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  std::shared_ptr<const GgufFile> file;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  Fixture(int slots, int max_batch = 512) {
    file = GgufFile::open(test::fixture("stories260K/stories260K.gguf"));
    backend = backend_cpu_create({2});
    ModelOptions mo;
    mo.n_slots = slots;
    mo.kv_type = TensorType::kF32;
    mo.max_batch = max_batch;
    model = Model::load(file, *backend, mo);
  }
};

struct Outcome {
  std::string text;
  std::vector<int32_t> ids;
  FinishReason reason = FinishReason::kStop;
  std::string error;
  RequestStats stats;
};

// Submits and returns a future for the outcome.
std::future<Outcome> submit(Scheduler& sched, const std::vector<int32_t>& prompt, int max_tokens,
                            std::shared_ptr<RequestHandle>* handle = nullptr,
                            std::vector<std::string> stop = {},
                            std::function<void()> at_first_token = {}, bool cache_prompt = true) {
  auto out = std::make_shared<Outcome>();
  auto promise = std::make_shared<std::promise<Outcome>>();
  GenRequest r;
  r.prompt = prompt;
  r.options.max_tokens = max_tokens;
  r.options.sampling.temperature = 0;
  r.options.stop = std::move(stop);
  r.cache_prompt = cache_prompt;
  r.on_token = [out, at_first_token](const TokenEvent& e) {
    // Runs on the scheduler's thread, inside the first token's callback: a
    // test can act at a known point of the generation (stories260K makes
    // 100 tokens in a few milliseconds, so acting from outside races it).
    if (out->ids.empty() && at_first_token) at_first_token();
    out->text += e.text;
    if (e.id >= 0) out->ids.push_back(e.id);
  };
  r.on_done = [out, promise](FinishReason f, const RequestStats& st, const std::string& err) {
    out->reason = f;
    out->stats = st;
    out->error = err;
    promise->set_value(*out);
  };
  auto h = sched.submit(std::move(r));
  if (handle) *handle = h;
  return promise->get_future();
}

TEST(Scheduler, ConcurrentRequestsEqualTheirSoloOutput) {
  const std::vector<std::string> prompts = {
      "Once upon a time", "The cat sat", "Lily and Ben went to the park", "One day",
      "There was a big dog", "Tom liked to play with his ball", "The sun", "A little bird"};
  // Alone: one slot, one request at a time.
  std::vector<std::string> solo;
  {
    Fixture f(1);
    for (const auto& p : prompts) {
      GenerateOptions go;
      go.max_tokens = 24;
      go.sampling.temperature = 0;
      solo.push_back(generate(*f.model, f.model->tokenizer().encode(p, true, false), go).text);
    }
  }
  // Together: 16 requests (each prompt twice) on 4 slots, with a small step
  // budget so prompt chunks and generation share steps.
  Fixture f(4, 512);
  SchedulerOptions so;
  so.step_tokens = 8;
  Scheduler sched(*f.model, so);
  std::vector<std::future<Outcome>> futures;
  for (int rep = 0; rep < 2; ++rep) {
    for (const auto& p : prompts) {
      futures.push_back(submit(sched, f.model->tokenizer().encode(p, true, false), 24));
    }
  }
  // The requests' own timings, summed, for the scheduler's totals.
  double ttft_s = 0, prompt_s = 0, generate_s = 0;
  uint64_t timed = 0;
  for (size_t i = 0; i < futures.size(); ++i) {
    ASSERT_EQ(futures[i].wait_for(60s), std::future_status::ready);
    Outcome o = futures[i].get();
    EXPECT_EQ(o.error, "");
    EXPECT_EQ(o.text, solo[i % prompts.size()]) << "request " << i;
    if (!o.ids.empty()) {
      ++timed;
      ttft_s += o.stats.ttft_ms / 1000.0;
    }
    prompt_s += o.stats.prompt_ms / 1000.0;
    generate_s += o.stats.generate_ms / 1000.0;
  }
  SchedulerStats st = sched.stats();
  EXPECT_EQ(st.requests_done, 16u);
  EXPECT_GE(st.max_step_sequences, 4u);  // steps really ran several sequences
  EXPECT_GT(st.step_sequences, st.steps);
  // The metrics' figures: one time-to-first-token observation per request
  // that made a token, the buckets adding up to the count, and the sums
  // equal to the requests' own (to rounding).
  EXPECT_EQ(timed, 16u);
  EXPECT_EQ(st.ttft.count, timed);
  uint64_t in_buckets = 0;
  for (uint64_t c : st.ttft.counts) in_buckets += c;
  EXPECT_EQ(in_buckets, st.ttft.count);
  EXPECT_NEAR(st.ttft.sum, ttft_s, 1e-9 * 16);
  EXPECT_GT(st.prompt_seconds, 0.0);
  EXPECT_NEAR(st.prompt_seconds, prompt_s, 1e-9 * 16);
  EXPECT_NEAR(st.generation_seconds, generate_s, 1e-9 * 16);
}

TEST(Scheduler, SecondsHistogramBucketsByUpperBound) {
  SecondsHistogram h;
  h.observe(0.005);   // on a bound: that bucket (le = 0.005)
  h.observe(0.0051);  // just above: the next
  h.observe(0);
  h.observe(30);
  h.observe(31);      // above every bound
  EXPECT_EQ(h.counts[0], 2u);
  EXPECT_EQ(h.counts[1], 1u);
  EXPECT_EQ(h.counts[SecondsHistogram::kBounds.size() - 1], 1u);
  EXPECT_EQ(h.counts[SecondsHistogram::kBounds.size()], 1u);
  EXPECT_EQ(h.count, 5u);
  EXPECT_DOUBLE_EQ(h.sum, 0.005 + 0.0051 + 30 + 31);
}

TEST(Scheduler, CancelFreesTheSlot) {
  Fixture f(1);
  Scheduler sched(*f.model, {});
  std::shared_ptr<RequestHandle> h;
  auto prompt = f.model->tokenizer().encode("Once upon a time", true, false);
  // The first request is held in its first token until it is cancelled: it
  // is then mid-generation, with the only slot, and the second is queued.
  std::promise<void> reached, release;
  auto first = submit(sched, prompt, 100, &h, {}, [&] {
    reached.set_value();
    release.get_future().wait();
  });
  auto second = submit(sched, prompt, 5);
  ASSERT_EQ(reached.get_future().wait_for(30s), std::future_status::ready);
  h->cancel();
  release.set_value();
  ASSERT_EQ(first.wait_for(30s), std::future_status::ready);
  Outcome cancelled = first.get();
  EXPECT_EQ(cancelled.error, "cancelled");
  EXPECT_EQ(cancelled.ids.size(), 1u);  // nothing after the cancel
  ASSERT_EQ(second.wait_for(30s), std::future_status::ready);
  Outcome o = second.get();
  EXPECT_EQ(o.error, "");
  EXPECT_EQ(o.ids.size(), 5u);
  EXPECT_EQ(o.reason, FinishReason::kLength);
  EXPECT_EQ(sched.stats().requests_cancelled, 1u);
}

TEST(Scheduler, StopStringEndsGenerationBeforeIt) {
  Fixture f(1);
  Scheduler sched(*f.model, {});
  auto prompt = f.model->tokenizer().encode("Once upon a time", true, false);
  Outcome o = submit(sched, prompt, 60, nullptr, {"Lily"}).get();
  EXPECT_EQ(o.reason, FinishReason::kStop);
  EXPECT_EQ(o.text, ", there was a little girl named ");
}

TEST(Scheduler, FullQueueRefusesAtOnce) {
  Fixture f(1);
  SchedulerOptions so;
  so.queue_limit = 2;
  Scheduler sched(*f.model, so);
  auto prompt = f.model->tokenizer().encode("Once upon a time", true, false);
  std::vector<std::shared_ptr<RequestHandle>> handles(3);
  std::vector<std::future<Outcome>> fs;
  int refused = 0;
  for (int i = 0; i < 8; ++i) {
    std::shared_ptr<RequestHandle> h;
    try {
      fs.push_back(submit(sched, prompt, 100, &h));
      handles.push_back(h);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
      ++refused;
    }
  }
  // 1 running + 2 queued at most; a request that already finished (the
  // model is tiny, and a busy machine may run the scheduler in between)
  // made room for one more.
  int finished = 0;
  for (auto& fut : fs) finished += fut.wait_for(0s) == std::future_status::ready;
  EXPECT_GE(refused, 1);
  EXPECT_LE(8 - refused, 3 + finished) << "accepted beyond the queue limit";
  for (auto& h : handles) if (h) h->cancel();
  for (auto& fut : fs) EXPECT_EQ(fut.wait_for(30s), std::future_status::ready);
}

TEST(Scheduler, PromptTooLongForTheContextIsRefused) {
  Fixture f(1);
  Scheduler sched(*f.model, {});
  auto prompt = f.model->tokenizer().encode("Once upon a time", true, false);
  try {
    submit(sched, prompt, 500);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

// Greedy text of `prompt` from a fresh model, read whole (no cache).
std::string solo_text(const std::vector<int32_t>& prompt, int max_tokens) {
  Fixture f(1);
  GenerateOptions go;
  go.max_tokens = max_tokens;
  go.sampling.temperature = 0;
  return generate(*f.model, prompt, go).text;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Scheduler, PromptCacheReadsOnlyTheNewTokens) {
  Fixture f(1);
  SchedulerOptions so;
  so.step_tokens = 4;  // prompt tokens read per step: the step count shows how many were read
  Scheduler sched(*f.model, so);
  const Tokenizer& tok = f.model->tokenizer();
  auto first = tok.encode("Once upon a time, there was a little girl named Lily. She liked to play", true, false);
  Outcome a = submit(sched, first, 12).get();
  ASSERT_EQ(a.error, "");
  ASSERT_EQ(a.ids.size(), 12u);
  EXPECT_EQ(a.stats.n_cached, 0);

  // The next turn: the first prompt, the answer, and more. The cache holds
  // the prompt and 11 of the 12 answer tokens (the last was sampled, not read).
  auto next = concat(concat(first, a.ids), tok.encode(" One day, her mom said", false, false));
  const uint64_t steps_before = sched.stats().steps;
  Outcome b = submit(sched, next, 8).get();
  ASSERT_EQ(b.error, "");
  const int cached = static_cast<int>(first.size()) + 11;
  EXPECT_EQ(b.stats.n_cached, cached);
  EXPECT_EQ(b.stats.n_prompt, static_cast<int>(next.size()));
  // Steps: the unread prompt in chunks of 4 (the last one gives the first
  // token), then one per further token.
  const int unread = static_cast<int>(next.size()) - cached;
  EXPECT_EQ(sched.stats().steps - steps_before, static_cast<uint64_t>((unread + 3) / 4 + 7));
  const std::string expected = solo_text(next, 8);
  EXPECT_EQ(b.text, expected);

  // The same prompt again: all of it cached but its last token.
  Outcome c = submit(sched, next, 8).get();
  EXPECT_EQ(c.stats.n_cached, static_cast<int>(next.size()) - 1);
  EXPECT_EQ(c.text, expected);
  // cache_prompt off: read whole, same text.
  Outcome d = submit(sched, next, 8, nullptr, {}, {}, /*cache_prompt=*/false).get();
  EXPECT_EQ(d.stats.n_cached, 0);
  EXPECT_EQ(d.text, expected);

  SchedulerStats st = sched.stats();
  EXPECT_EQ(st.tokens_cached, static_cast<uint64_t>(cached + static_cast<int>(next.size()) - 1));
  EXPECT_EQ(st.tokens_in, first.size() + 3 * next.size());
}

TEST(Scheduler, MaxTokensZeroReadsThePromptIntoTheCacheOnly) {
  Fixture f(1);
  SchedulerOptions so;
  so.step_tokens = 4;
  Scheduler sched(*f.model, so);
  const Tokenizer& tok = f.model->tokenizer();
  auto prompt = tok.encode("Once upon a time, there was a little girl named Lily. She liked to play", true, false);
  // llama-server's n_predict 0 (editors warm the cache this way): no token,
  // no text, the prompt read in chunks of 4.
  Outcome warm = submit(sched, prompt, 0).get();
  ASSERT_EQ(warm.error, "");
  EXPECT_TRUE(warm.ids.empty());
  EXPECT_EQ(warm.text, "");
  EXPECT_EQ(warm.reason, FinishReason::kLength);
  EXPECT_EQ(warm.stats.n_generated, 0);
  EXPECT_EQ(warm.stats.n_prompt, static_cast<int>(prompt.size()));
  EXPECT_EQ(sched.stats().tokens_out, 0u);
  // The next request finds all of it cached but its last token, and
  // generates what a fresh model does.
  Outcome next = submit(sched, prompt, 8).get();
  ASSERT_EQ(next.error, "");
  EXPECT_EQ(next.stats.n_cached, static_cast<int>(prompt.size()) - 1);
  EXPECT_EQ(next.text, solo_text(prompt, 8));
}

TEST(Scheduler, SlotViewsShowWhatEachSlotDoes) {
  Fixture f(2);
  SchedulerOptions so;
  so.step_tokens = 4;  // the prompt takes several steps, each published
  Scheduler sched(*f.model, so);
  const Tokenizer& tok = f.model->tokenizer();
  auto prompt = tok.encode("Once upon a time, there was a little girl named Lily.", true, false);
  std::vector<SlotView> during;
  Outcome a = submit(sched, prompt, 10, nullptr, {}, [&] { during = sched.slots(); }).get();
  ASSERT_EQ(a.error, "");
  // At its first token, the views are those of the step before: the prompt's last chunk.
  ASSERT_EQ(during.size(), 2u);
  const SlotView& busy = during[0].busy ? during[0] : during[1];
  const SlotView& idle = during[0].busy ? during[1] : during[0];
  EXPECT_TRUE(busy.busy);
  EXPECT_FALSE(busy.generating);
  EXPECT_EQ(busy.task, 1u);
  EXPECT_EQ(busy.n_prompt, static_cast<int>(prompt.size()));
  EXPECT_EQ(busy.max_tokens, 10);
  EXPECT_GT(busy.n_cached, 0);
  EXPECT_LT(busy.n_cached, static_cast<int>(prompt.size()));
  EXPECT_FALSE(idle.busy);
  EXPECT_EQ(idle.task, 0u);
  EXPECT_EQ(idle.n_cached, 0);
  // Afterwards: idle, holding the prompt and 9 of the 10 tokens (the last was sampled, not read).
  const std::vector<SlotView> after = sched.slots();
  const SlotView& done = after[static_cast<size_t>(busy.id)];
  EXPECT_FALSE(done.busy);
  EXPECT_EQ(done.task, 1u);
  EXPECT_EQ(done.n_cached, static_cast<int>(prompt.size()) + 9);
  EXPECT_EQ(done.n_generated, 0);
}

TEST(Scheduler, PromptCacheKeepsEachConversationInItsSlot) {
  Fixture f(2);
  Scheduler sched(*f.model, {});
  const Tokenizer& tok = f.model->tokenizer();
  // Conversation A, long; conversation B shares only its opening words.
  auto a1 = tok.encode("Once upon a time, there was a big dog named Max. Max liked to run in the park with his friend", true, false);
  auto b1 = tok.encode("Once upon a time, a bird", true, false);
  Outcome a = submit(sched, a1, 10).get();
  ASSERT_EQ(a.error, "");
  // B would reuse a few tokens of A's slot but throw away many more: it
  // takes the empty slot.
  Outcome b = submit(sched, b1, 10).get();
  ASSERT_EQ(b.error, "");
  EXPECT_EQ(b.stats.n_cached, 0);
  // A's next turn finds its whole history, B's too.
  auto a2 = concat(concat(a1, a.ids), tok.encode(" Then", false, false));
  auto b2 = concat(concat(b1, b.ids), tok.encode(" The bird", false, false));
  Outcome a_next = submit(sched, a2, 10).get();
  Outcome b_next = submit(sched, b2, 10).get();
  EXPECT_EQ(a_next.stats.n_cached, static_cast<int>(a1.size()) + 9);
  EXPECT_EQ(b_next.stats.n_cached, static_cast<int>(b1.size()) + 9);
  EXPECT_EQ(a_next.text, solo_text(a2, 10));
  EXPECT_EQ(b_next.text, solo_text(b2, 10));
  // An unrelated prompt takes the slot with less to lose (B's, the shorter)
  // and A keeps its cache.
  Outcome other = submit(sched, tok.encode("The sun was hot", true, false), 5).get();
  EXPECT_LE(other.stats.n_cached, 1);  // at most the BOS token
  auto a3 = concat(concat(a2, a_next.ids), tok.encode(" They", false, false));
  Outcome a_third = submit(sched, a3, 6).get();
  EXPECT_EQ(a_third.stats.n_cached, static_cast<int>(a2.size()) + 9);
  EXPECT_EQ(a_third.text, solo_text(a3, 6));
}

}  // namespace
}  // namespace tars::engine
