// ModelHost at run time: on-demand loading, the memory budget with LRU
// eviction, keep-alive, leases that outlive an unload. Real loads of the
// stories260K fixture (1.2 MB: fast); memory figures come from an injected
// estimator so the budget arithmetic is exact.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "node/generation.h"
#include "node/http_server.h"
#include "node/model_host.h"
#include "support/test_support.h"

namespace tars::node {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

ModelDecl decl(const std::string& alias, const std::string& load = "on_demand", int keep_alive = 300) {
  ModelDecl d;
  d.path = test::fixture("stories260K/stories260K.gguf");
  d.alias = alias;
  d.load = load;
  d.keep_alive_s = keep_alive;
  d.slots = 1;
  return d;
}

NodeConfig config_with(std::vector<ModelDecl> models) {
  NodeConfig c;
  c.threads = 1;
  c.slots = 2;
  c.models = std::move(models);
  return c;
}

// Every model "needs" 100 bytes: the budget decides how many fit.
ModelHostOptions hundred_each(uint64_t budget) {
  ModelHostOptions o;
  o.estimator = [](const ModelDecl&) { return uint64_t{100}; };
  o.memory_budget = budget;
  o.reaper_interval_ms = 20;
  return o;
}

json entry(const ModelHost& h, const std::string& id) {
  for (const auto& e : h.status_json()) {
    if (e["id"] == id) return e;
  }
  ADD_FAILURE() << "no status entry for " << id;
  return json();
}

std::string state(const ModelHost& h, const std::string& id) {
  return entry(h, id).value("state", "?");
}

// Waits up to `limit` for the model to reach `want`.
bool wait_state(const ModelHost& h, const std::string& id, const std::string& want,
                std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (state(h, id) == want) return true;
    std::this_thread::sleep_for(10ms);
  }
  return state(h, id) == want;
}

// The HTTP status a call fails with (0 = it did not fail).
template <typename F>
int http_status_of(F&& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const HttpError& e) {
    if (message) *message = e.what();
    return e.status();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code() == ErrorCode::kNotFound ? 404 : 400;
  }
  return 0;
}

TEST(ModelHost, OnDemandModelLoadsOnFirstUseAndShowsInStatus) {
  ModelHost host(config_with({decl("a")}), hundred_each(0));
  EXPECT_EQ(state(host, "a"), "unloaded");
  EXPECT_TRUE(entry(host, "a")["last_used"].is_null());
  EXPECT_TRUE(host.models().empty());
  ASSERT_EQ(host.list().size(), 1u);
  EXPECT_EQ(host.list()[0].state, ModelState::kUnloaded);

  auto lease = host.get("a");
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->id, "a");
  json e = entry(host, "a");
  EXPECT_EQ(e["state"], "loaded");
  EXPECT_EQ(e["loads"], 1);
  EXPECT_EQ(e["requests_active"], 1);
  EXPECT_TRUE(e["last_used"].is_number());
  EXPECT_GT(e["memory"]["weights"].get<uint64_t>(), 0u);
  // One part (no offload split) holding every layer, and the totals are its.
  ASSERT_EQ(e["memory"]["parts"].size(), 1u);
  EXPECT_EQ(e["memory"]["parts"][0]["backend"], "cpu");
  EXPECT_EQ(e["memory"]["parts"][0]["layers"], e["layers"]);
  EXPECT_EQ(e["memory"]["parts"][0]["total"], e["memory"]["total"]);
  EXPECT_EQ(e["estimate_bytes"], 100);
  lease.reset();
  EXPECT_EQ(entry(host, "a")["requests_active"], 0);
  EXPECT_EQ(host.summary_json()["loads"], 1);
  EXPECT_EQ(host.summary_json()["memory_used"], 100);
  // The default chat model (empty id) is the loaded one.
  EXPECT_EQ(host.get("")->id, "a");
}

TEST(ModelHost, ConcurrentFirstRequestsLoadOnce) {
  std::atomic<int> estimates{0};
  ModelHostOptions o;
  o.estimator = [&](const ModelDecl&) {
    ++estimates;
    std::this_thread::sleep_for(200ms);  // widen the window in which others arrive
    return uint64_t{100};
  };
  ModelHost host(config_with({decl("a")}), o);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::vector<HostedModel*> seen(8, nullptr);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto lease = host.get("a");
      seen[i] = lease.get();
      ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(estimates, 1);
  EXPECT_EQ(entry(host, "a")["loads"], 1);
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);  // one model instance for all
}

TEST(ModelHost, BudgetForOneEvictsTheOtherOnDemandModel) {
  ModelHost host(config_with({decl("a"), decl("b")}), hundred_each(150));
  host.get("a");
  EXPECT_EQ(state(host, "a"), "loaded");
  host.get("b");
  EXPECT_EQ(state(host, "b"), "loaded");
  EXPECT_EQ(state(host, "a"), "unloaded");
  EXPECT_EQ(entry(host, "a")["evictions"], 1);
  EXPECT_EQ(host.summary_json()["evictions"], 1);
  EXPECT_EQ(host.summary_json()["memory_used"], 100);
  // And back again.
  host.get("a");
  EXPECT_EQ(state(host, "b"), "unloaded");
  EXPECT_EQ(entry(host, "a")["loads"], 2);
}

TEST(ModelHost, EvictsTheLeastRecentlyUsed) {
  ModelHost host(config_with({decl("a"), decl("b"), decl("c")}), hundred_each(250));
  host.get("a");
  std::this_thread::sleep_for(5ms);
  host.get("b");
  std::this_thread::sleep_for(5ms);
  host.get("a");  // now b is the least recently used
  std::this_thread::sleep_for(5ms);
  host.get("c");
  EXPECT_EQ(state(host, "a"), "loaded");
  EXPECT_EQ(state(host, "b"), "unloaded");
  EXPECT_EQ(state(host, "c"), "loaded");
}

TEST(ModelHost, AlwaysLoadedModelsAreNeverEvicted) {
  ModelHost host(config_with({decl("x", "always"), decl("a")}), hundred_each(150));
  EXPECT_EQ(state(host, "x"), "loaded");
  std::string msg;
  EXPECT_EQ(http_status_of([&] { host.get("a"); }, &msg), 503);
  EXPECT_NE(msg.find("memory budget"), std::string::npos) << msg;
  EXPECT_NE(msg.find("150"), std::string::npos) << msg;  // the budget
  EXPECT_NE(msg.find("100"), std::string::npos) << msg;  // the need
  EXPECT_EQ(state(host, "x"), "loaded");
  json a = entry(host, "a");
  EXPECT_EQ(a["state"], "failed");
  EXPECT_NE(a["error"].get<std::string>().find("memory budget"), std::string::npos);
  EXPECT_EQ(host.summary_json()["budget_refusals"], 1);
  // Raising the budget lets the next request load it (failed is retried).
  host.set_memory_budget(200);
  EXPECT_EQ(host.get("a")->id, "a");
  EXPECT_EQ(state(host, "x"), "loaded");
}

TEST(ModelHost, BusyModelIsNotEvicted) {
  ModelHost host(config_with({decl("a"), decl("b")}), hundred_each(150));
  auto busy = host.get("a");
  EXPECT_EQ(http_status_of([&] { host.get("b"); }), 503);
  EXPECT_EQ(state(host, "a"), "loaded");
  busy.reset();
  EXPECT_EQ(host.get("b")->id, "b");
  EXPECT_EQ(state(host, "a"), "unloaded");
}

TEST(ModelHost, KeepAliveUnloadsAnIdleModel) {
  ModelHost host(config_with({decl("a", "on_demand", 1), decl("z", "on_demand", 0)}),
                 hundred_each(0));
  host.get("a");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(state(host, "a"), "loaded");
  ASSERT_TRUE(wait_state(host, "a", "unloaded", 3s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);  // not before its keep-alive
  EXPECT_EQ(entry(host, "a")["keep_alive_unloads"], 1);

  // keep_alive 0: unloaded as soon as the request ends, not while it runs.
  auto lease = host.get("z");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(state(host, "z"), "loaded");
  lease.reset();
  EXPECT_TRUE(wait_state(host, "z", "unloaded", 1s));
  // A later request loads it again.
  EXPECT_EQ(host.get("z")->id, "z");
  EXPECT_EQ(entry(host, "z")["loads"], 2);
}

// Ollama's per-request keep_alive (set_keep_alive).
TEST(ModelHost, RequestKeepAliveReplacesTheConfiguredOneUntilUnloaded) {
  ModelHost host(config_with({decl("a", "on_demand", 300), decl("r", "always")}), hundred_each(0));
  auto listing = [&](const std::string& id) {
    for (const auto& l : host.list()) {
      if (l.id == id) return l;
    }
    ADD_FAILURE() << "not listed: " << id;
    return ModelListing{};
  };
  // Not loaded: nothing to change (it starts from its configuration when loaded).
  EXPECT_TRUE(host.set_keep_alive("a", 0));
  EXPECT_EQ(listing("a").keep_alive_ms, 300'000);
  auto lease = host.get("a");
  EXPECT_EQ(listing("a").leases, 1);
  EXPECT_GT(listing("a").last_used_unix_ms, 0);

  // Forever: not unloaded by idleness.
  EXPECT_TRUE(host.set_keep_alive("a", kKeepAliveForever));
  EXPECT_EQ(listing("a").keep_alive_ms, kKeepAliveForever);
  // Back to the configured one.
  EXPECT_TRUE(host.set_keep_alive("a", std::nullopt));
  EXPECT_EQ(listing("a").keep_alive_ms, 300'000);
  // 0 while a request holds it: unloaded when the request ends, not before.
  EXPECT_TRUE(host.set_keep_alive("a", 0));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(state(host, "a"), "loaded");
  lease.reset();
  EXPECT_TRUE(wait_state(host, "a", "unloaded", 2s));
  EXPECT_EQ(entry(host, "a")["keep_alive_unloads"], 1);
  // The override went with the unload: loaded again, it keeps its 300 s.
  host.get("a");
  EXPECT_EQ(listing("a").keep_alive_ms, 300'000);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(state(host, "a"), "loaded");
  // A short one on an idle model runs out from its last use.
  EXPECT_TRUE(host.set_keep_alive("a", 200));
  EXPECT_TRUE(wait_state(host, "a", "unloaded", 2s));

  // Always-loaded models keep theirs: forever.
  EXPECT_FALSE(host.set_keep_alive("r", 0));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(state(host, "r"), "loaded");
  EXPECT_EQ(listing("r").keep_alive_ms, kKeepAliveForever);
  EXPECT_THROW(host.set_keep_alive("nope", 0), Error);
}

TEST(ModelHost, UnloadWhileGeneratingLetsTheGenerationFinish) {
  auto d = decl("x", "always");
  d.ctx_size = 512;
  ModelHost host(config_with({d}), hundred_each(0));
  GenerationParams p;
  p.prompt = "Once upon a time";
  p.max_tokens = 300;
  p.ignore_eos = true;
  p.sampling.temperature = 0;
  auto g = std::make_unique<Generation>(host.get("x"), p);
  // Let it start, then unload under it.
  auto first = g->wait(5000);
  ASSERT_FALSE(first.empty());
  host.unload("x");
  EXPECT_EQ(state(host, "x"), "unloaded");
  EXPECT_EQ(entry(host, "x")["draining_requests"], 1);
  // No new requests for it: it is not on-demand, so it stays unloaded.
  std::string msg;
  EXPECT_EQ(http_status_of([&] { host.get("x"); }, &msg), 503);
  EXPECT_NE(msg.find("not loaded"), std::string::npos) << msg;

  int tokens = static_cast<int>(first.size());
  bool done = false;
  std::string error;
  for (int i = 0; i < 600 && !done; ++i) {
    for (auto& e : g->wait(100)) {
      if (e.done) {
        done = true;
        error = e.error;
      } else {
        ++tokens;
      }
    }
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(error, "");
  EXPECT_EQ(tokens, 300);
  g.reset();  // the last lease: the unloaded model is freed here
  EXPECT_FALSE(entry(host, "x").contains("draining_requests"));
  // load() brings it back.
  host.load(d);
  EXPECT_EQ(state(host, "x"), "loaded");
}

TEST(ModelHost, LoadFailureIsA503NamingTheFileAndIsRetried) {
  auto bad = decl("broken");
  bad.path = "/nonexistent/broken.gguf";
  ModelHost host(config_with({bad}), {});
  std::string msg;
  EXPECT_EQ(http_status_of([&] { host.get("broken"); }, &msg), 503);
  EXPECT_NE(msg.find("/nonexistent/broken.gguf"), std::string::npos) << msg;
  json e = entry(host, "broken");
  EXPECT_EQ(e["state"], "failed");
  EXPECT_NE(e["error"].get<std::string>().find("broken.gguf"), std::string::npos);
  EXPECT_EQ(http_status_of([&] { host.get("broken"); }), 503);
  EXPECT_EQ(entry(host, "broken")["load_failures"], 2);
}

TEST(ModelHost, LoadUnloadRemoveAtRunTime) {
  ModelHost host(config_with({}), hundred_each(0));
  EXPECT_EQ(http_status_of([&] { host.get(""); }), 503);  // nothing declared
  host.load(decl("late", "always"));
  EXPECT_EQ(state(host, "late"), "loaded");
  host.load(decl("late", "always"));  // same declaration: no-op
  EXPECT_EQ(entry(host, "late")["loads"], 1);
  EXPECT_EQ(host.get("late")->id, "late");
  host.unload("late");
  EXPECT_EQ(state(host, "late"), "unloaded");
  host.remove("late");
  EXPECT_TRUE(host.list().empty());
  EXPECT_EQ(http_status_of([&] { host.get("late"); }), 503);  // no chat model at all
  EXPECT_EQ(http_status_of([&] { host.unload("late"); }), 404);
}

TEST(ModelHost, WrongRoleAndUnknownId) {
  ModelHost host(config_with({decl("a")}), hundred_each(0));
  EXPECT_EQ(http_status_of([&] { host.get("nope"); }), 404);
  EXPECT_EQ(http_status_of([&] { host.get("a", "embedding"); }), 400);
  EXPECT_EQ(state(host, "a"), "unloaded");  // neither loaded it
}

}  // namespace
}  // namespace tars::node
