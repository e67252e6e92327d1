#include "node/model_host.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/error.h"
#include "common/units.h"
#include "engine/backend.h"
#include "engine/chat_template.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "node/embed_cache.h"
#include "node/http_server.h"
#include "node/model_info.h"
#include "node/model_load.h"
#include "node/usage_log.h"

namespace tars::node {

using Clock = std::chrono::steady_clock;

HostedModel::~HostedModel() {
  // The scheduler's thread uses the model; the model uses the backend.
  scheduler.reset();
  model.reset();
  encoder.reset();
  cpu_backend.reset();
  backend.reset();
}

namespace {
uint64_t backend_bytes(const engine::Backend* b) {
  if (!b) return 0;
  return b->allocated(engine::MemoryKind::kWeights) + b->allocated(engine::MemoryKind::kKvCache) +
         b->allocated(engine::MemoryKind::kCompute);
}
}  // namespace

uint64_t HostedModel::memory_bytes() const {
  return backend_bytes(backend.get()) + backend_bytes(cpu_backend.get());
}

void HostedModel::record_embedding(uint64_t inputs, uint64_t tokens, uint64_t truncated, double seconds) {
  std::lock_guard<std::mutex> lock(embed_mu_);
  ++embed_.requests;
  embed_.inputs += inputs;
  embed_.tokens += tokens;
  embed_.truncated += truncated;
  embed_.seconds += seconds;
  embed_.duration.observe(seconds);
}

EmbedStats HostedModel::embed_stats() const {
  std::lock_guard<std::mutex> lock(embed_mu_);
  return embed_;
}

const char* model_state_name(ModelState s) {
  switch (s) {
    case ModelState::kUnloaded: return "unloaded";
    case ModelState::kLoading: return "loading";
    case ModelState::kLoaded: return "loaded";
    case ModelState::kFailed: return "failed";
  }
  return "unknown";
}

uint64_t model_estimate_file_size(const ModelDecl& decl) {
  struct stat st {};
  if (::stat(decl.path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

namespace {

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One declared model and its state machine (see model_host.h). Every field
// is guarded by Core::mu.
struct Slot {
  std::string id;
  ModelDecl decl;
  ModelState state = ModelState::kUnloaded;
  std::shared_ptr<HostedModel> model;   // when loaded
  std::weak_ptr<HostedModel> draining;  // unloaded while requests still held it
  std::string error;                    // why the last load failed
  uint64_t reserved = 0;    // estimator's bytes, counted against the budget while loading/loaded
  uint64_t load_seq = 0;    // completed load attempts: a waiter sees its load end
  Clock::time_point last_used{};  // last lease taken or released
  int64_t last_used_unix = 0;     // the same, unix seconds (0 = never)
  int64_t last_used_unix_ms = 0;  // and unix milliseconds
  bool removed = false;           // forgotten by remove(): waiters must not use it
  // A request's keep_alive (Ollama's), in ms, replacing decl.keep_alive_s
  // until the model is unloaded or another request sets or clears it.
  std::optional<int64_t> keep_alive_override_ms;
  // Counters.
  uint64_t loads = 0, load_failures = 0, unloads = 0, evictions = 0, expiries = 0;

  void touch() {
    last_used = Clock::now();
    last_used_unix_ms = unix_now_ms();
    last_used_unix = last_used_unix_ms / 1000;
  }
  bool on_demand() const { return decl.load == "on_demand"; }
  // How long the model may stay loaded idle, in ms (kKeepAliveForever:
  // always-loaded models, and an override of forever).
  int64_t keep_alive_ms() const {
    if (!on_demand()) return kKeepAliveForever;
    return keep_alive_override_ms ? *keep_alive_override_ms : int64_t{decl.keep_alive_s} * 1000;
  }
};

bool same_decl(const ModelDecl& a, const ModelDecl& b) {
  return a.path == b.path && a.role == b.role && a.ctx_size == b.ctx_size && a.slots == b.slots &&
         a.load == b.load && a.keep_alive_s == b.keep_alive_s && a.gpu_layers == b.gpu_layers &&
         a.planned_device == b.planned_device && a.planned_gpu == b.planned_gpu;
}

// The decl's model id, after checking its role.
std::string checked_id(const ModelDecl& decl) {
  std::string id = model_id(decl);
  if (!model_role_known(decl.role)) {
    throw Error(ErrorCode::kInvalidArgument,
                "model '" + id + "': role must be chat, embedding or rerank, got '" + decl.role + "'");
  }
  return id;
}

[[noreturn]] void unavailable(const std::string& code, const std::string& message) {
  throw HttpError(503, code, message);
}

}  // namespace

struct ModelHost::Core {
  NodeConfig config;
  ModelEstimator estimator;
  uint64_t budget = 0;
  int load_wait_ms = 0;
  int reaper_interval_ms = 0;

  mutable std::mutex mu;
  std::condition_variable loaded_cv;  // a load attempt ended (any slot)
  std::condition_variable reaper_cv;  // a lease was released, or stopping
  bool stopping = false;
  std::vector<std::shared_ptr<Slot>> slots;  // declaration order
  std::shared_ptr<EmbedCache> embed_cache;  // null without [cache] redis
  std::shared_ptr<UsageLog> usage_log;      // null without [state] postgres
  // Host-wide counters.
  uint64_t loads = 0, load_failures = 0, unloads = 0, evictions = 0, expiries = 0,
           budget_refusals = 0;

  std::shared_ptr<Slot> find_locked(const std::string& id) const {
    for (const auto& s : slots) {
      if (s->id == id) return s;
    }
    return nullptr;
  }

  // Bytes counted against the budget by models other than `except`.
  uint64_t used_locked(const Slot* except = nullptr) const {
    uint64_t used = 0;
    for (const auto& s : slots) {
      if (s.get() != except &&
          (s->state == ModelState::kLoaded || s->state == ModelState::kLoading)) {
        used += s->reserved;
      }
    }
    return used;
  }

  // Takes a loaded model out of its slot: no lease is handed out for it from
  // now on. The caller drops the returned pointer after unlocking (freeing a
  // model joins its scheduler thread: never under the lock).
  std::shared_ptr<HostedModel> take_locked(Slot& s) {
    std::shared_ptr<HostedModel> m = std::move(s.model);
    s.model.reset();
    s.state = ModelState::kUnloaded;
    s.reserved = 0;
    s.keep_alive_override_ms.reset();
    if (m && m->leases > 0) s.draining = m;
    return m;
  }
};

namespace {

using Core = ModelHost::Core;

// A lease on the slot's loaded model: a shared_ptr whose deleter counts the
// request as ended (and wakes the reaper for keep_alive 0).
std::shared_ptr<HostedModel> lease_locked(const std::shared_ptr<Core>& core,
                                          const std::shared_ptr<Slot>& s) {
  std::shared_ptr<HostedModel> m = s->model;
  ++m->leases;
  s->touch();
  std::weak_ptr<Core> wc = core;
  std::weak_ptr<Slot> ws = s;
  return std::shared_ptr<HostedModel>(m.get(), [m, wc, ws](HostedModel*) mutable {
    if (auto c = wc.lock()) {
      {
        std::lock_guard<std::mutex> lock(c->mu);
        --m->leases;
        if (auto sl = ws.lock(); sl && sl->model == m) sl->touch();
      }
      c->reaper_cv.notify_all();
    }
    m.reset();  // outside the lock: may free a model unloaded meanwhile
  });
}

// Makes room for `need` bytes for `s` within the budget by taking the least
// recently used idle on-demand models out (into `evicted`). Evicts nothing
// and returns the reason when even evicting all of them would not be enough.
std::string make_room_locked(Core& c, Slot& s, uint64_t need,
                             std::vector<std::shared_ptr<HostedModel>>& evicted) {
  if (c.budget == 0) return "";
  uint64_t used = c.used_locked(&s);
  if (used + need <= c.budget) return "";
  std::vector<Slot*> idle;
  uint64_t freeable = 0;
  for (const auto& o : c.slots) {
    if (o.get() != &s && o->state == ModelState::kLoaded && o->on_demand() &&
        o->model->leases == 0) {
      idle.push_back(o.get());
      freeable += o->reserved;
    }
  }
  if (used - freeable + need > c.budget) {
    ++c.budget_refusals;
    return fmt::format(
        "model '{}' needs {} ({} bytes) but the memory budget is {} ({} bytes, "
        "engine.memory_budget) and {} of it is held by models that cannot be unloaded now "
        "(always-loaded, busy or loading); free some or raise the budget",
        s.id, format_bytes(need), need, format_bytes(c.budget), c.budget,
        format_bytes(used - freeable));
  }
  std::sort(idle.begin(), idle.end(),
            [](const Slot* a, const Slot* b) { return a->last_used < b->last_used; });
  for (Slot* o : idle) {
    if (used + need <= c.budget) break;
    spdlog::info("unloading model {} (least recently used, {}) to make room for {} ({}) within "
                 "the memory budget of {}",
                 o->id, format_bytes(o->reserved), s.id, format_bytes(need),
                 format_bytes(c.budget));
    used -= o->reserved;
    evicted.push_back(c.take_locked(*o));
    ++o->evictions;
    ++c.evictions;
  }
  return "";
}

// Loads the slot's model (state unloaded or failed). Unlocks while the file
// loads; other requests for it wait on loaded_cv. Throws a 503 on failure.
void load_locked(const std::shared_ptr<Core>& core, std::unique_lock<std::mutex>& lk,
                 const std::shared_ptr<Slot>& s) {
  Core& c = *core;
  s->state = ModelState::kLoading;
  s->error.clear();
  ModelDecl decl = s->decl;
  ModelEstimator estimator = c.estimator;
  lk.unlock();
  uint64_t need = 0;
  try {
    need = estimator(decl);
  } catch (const std::exception& e) {
    // The load itself will say what is wrong with the file.
    spdlog::warn("model {}: memory estimate failed: {}", s->id, e.what());
  }
  lk.lock();
  std::vector<std::shared_ptr<HostedModel>> evicted;
  std::string refusal = make_room_locked(c, *s, need, evicted);
  auto fail = [&](const std::string& err) {
    s->state = ModelState::kFailed;
    s->error = err;
    s->reserved = 0;
    ++s->load_seq;
    ++s->load_failures;
    ++c.load_failures;
    c.loaded_cv.notify_all();
  };
  if (!refusal.empty()) {
    fail(refusal);
    spdlog::warn("{}", refusal);
    unavailable("memory_budget_exceeded", "cannot load " + refusal);
  }
  s->reserved = need;
  NodeConfig config = c.config;
  lk.unlock();
  evicted.clear();  // frees the evicted models (joins their schedulers) unlocked
  spdlog::info("loading model {} ({}) from {}", s->id, format_bytes(need), decl.path);
  std::unique_ptr<HostedModel> loaded;
  std::string err;
  try {
    loaded = hosted_model_load(decl, config, c.embed_cache);
    if (loaded) loaded->usage_log = c.usage_log;
  } catch (const std::exception& e) {
    err = e.what();
  }
  lk.lock();
  if (!loaded) {
    fail(err);
    spdlog::error("cannot load model {}: {}", s->id, err);
    unavailable("model_load_failed", "cannot load model '" + s->id + "': " + err);
  }
  s->model = std::move(loaded);
  s->state = ModelState::kLoaded;
  s->touch();
  ++s->load_seq;
  ++s->loads;
  ++c.loads;
  if (c.stopping && s->model->scheduler) s->model->scheduler->stop();
  c.loaded_cv.notify_all();
}

// Waits while the slot is loading (bounded); false on time-out.
bool wait_loading_locked(Core& c, std::unique_lock<std::mutex>& lk, const std::shared_ptr<Slot>& s,
                         Clock::time_point deadline) {
  while (s->state == ModelState::kLoading && !c.stopping) {
    if (c.loaded_cv.wait_until(lk, deadline) == std::cv_status::timeout &&
        s->state == ModelState::kLoading) {
      return false;
    }
  }
  return true;
}

// A lease on the slot's model, loading it first when `allow_load`.
std::shared_ptr<HostedModel> acquire_locked(const std::shared_ptr<Core>& core,
                                            std::unique_lock<std::mutex>& lk,
                                            const std::shared_ptr<Slot>& s, bool allow_load) {
  Core& c = *core;
  auto deadline = Clock::now() + std::chrono::milliseconds(c.load_wait_ms);
  for (;;) {
    if (c.stopping) unavailable("shutting_down", "this node is shutting down");
    if (s->removed) throw Error(ErrorCode::kNotFound, "model '" + s->id + "' was removed from this node");
    switch (s->state) {
      case ModelState::kLoaded:
        return lease_locked(core, s);
      case ModelState::kLoading: {
        uint64_t seq = s->load_seq;
        if (!wait_loading_locked(c, lk, s, deadline)) {
          unavailable("model_loading", fmt::format("model '{}' is still loading after {} s; try "
                                                   "again later",
                                                   s->id, c.load_wait_ms / 1000.0));
        }
        // The load this request waited for failed: report it (no retry storm).
        if (s->state == ModelState::kFailed && s->load_seq != seq) {
          unavailable("model_load_failed", "cannot load model '" + s->id + "': " + s->error);
        }
        continue;
      }
      case ModelState::kUnloaded:
      case ModelState::kFailed:
        if (!allow_load) {
          unavailable("model_not_loaded",
                      "model '" + s->id + "' is not loaded on this node (it was unloaded; it is "
                      "not an on-demand model)" +
                          (s->error.empty() ? "" : "; last load error: " + s->error));
        }
        load_locked(core, lk, s);
        continue;
    }
  }
}

void reaper_loop(const std::shared_ptr<Core>& core) {
  Core& c = *core;
  std::unique_lock<std::mutex> lk(c.mu);
  while (!c.stopping) {
    c.reaper_cv.wait_for(lk, std::chrono::milliseconds(c.reaper_interval_ms));
    if (c.stopping) break;
    auto now = Clock::now();
    std::vector<std::shared_ptr<HostedModel>> expired;
    for (const auto& s : c.slots) {
      const int64_t keep_alive = s->keep_alive_ms();
      if (s->state == ModelState::kLoaded && keep_alive != kKeepAliveForever && s->model->leases == 0 &&
          now - s->last_used >= std::chrono::milliseconds(keep_alive)) {
        spdlog::info("unloading model {}: idle for its keep-alive of {} s", s->id, keep_alive / 1000.0);
        expired.push_back(c.take_locked(*s));
        ++s->expiries;
        ++c.expiries;
      }
    }
    if (!expired.empty()) {
      lk.unlock();
      expired.clear();
      lk.lock();
    }
  }
}

}  // namespace

ModelHost::ModelHost(const NodeConfig& config, ModelHostOptions options)
    : core_(std::make_shared<Core>()) {
  Core& c = *core_;
  c.config = config;
  c.estimator = options.estimator ? options.estimator : model_estimate_file_size;
  c.usage_log = options.usage_log;
  if (!c.usage_log && !config.state_postgres.empty()) {
    c.usage_log = std::make_shared<UsageLog>(config.state_postgres, config.node_name);
  }
  c.embed_cache = options.embed_cache;
  if (!c.embed_cache && !config.cache_redis.empty()) {
    c.embed_cache = std::make_shared<EmbedCache>(EmbedCacheOptions{config.cache_redis, config.cache_embed_ttl_s});
  }
  c.budget = options.memory_budget.value_or(config.memory_budget);
  c.load_wait_ms = options.load_wait_ms;
  c.reaper_interval_ms = std::max(10, options.reaper_interval_ms);
  for (const auto& decl : config.models) {
    auto s = std::make_shared<Slot>();
    s->id = model_id(decl);
    s->decl = decl;
    if (c.find_locked(s->id)) {
      throw Error(ErrorCode::kConfig, "two models have the id '" + s->id + "'; name one with --alias");
    }
    c.slots.push_back(s);
  }
  // Always-loaded models, in declaration order; a failure stops the node.
  for (const auto& s : c.slots) {
    if (s->on_demand()) continue;
    try {
      s->model = hosted_model_load(s->decl, c.config, c.embed_cache);
      s->model->usage_log = c.usage_log;
    } catch (const Error& e) {
      throw Error(e.code(), "cannot load model '" + s->id + "': " + e.what());
    }
    try {
      s->reserved = c.estimator(s->decl);
    } catch (const std::exception& e) {
      spdlog::warn("model {}: memory estimate failed: {}", s->id, e.what());
    }
    s->state = ModelState::kLoaded;
    s->touch();
    ++s->loads;
    ++c.loads;
  }
  if (c.budget > 0 && c.used_locked() > c.budget) {
    spdlog::warn("the always-loaded models need {} but the memory budget is {}: on-demand models "
                 "cannot load until the budget is raised",
                 format_bytes(c.used_locked()), format_bytes(c.budget));
  }
  std::shared_ptr<Core> core = core_;
  reaper_ = std::thread([core] { reaper_loop(core); });
}

ModelHost::~ModelHost() {
  stop();
  if (reaper_.joinable()) reaper_.join();
  // Free the models here, not in whichever lease happens to be last.
  std::vector<std::shared_ptr<HostedModel>> models;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    for (auto& s : core_->slots) models.push_back(core_->take_locked(*s));
  }
}

void ModelHost::stop() {
  std::vector<std::shared_ptr<HostedModel>> running;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->stopping = true;
    for (auto& s : core_->slots) {
      if (s->model) running.push_back(s->model);
      if (auto d = s->draining.lock()) running.push_back(std::move(d));
    }
  }
  core_->loaded_cv.notify_all();
  core_->reaper_cv.notify_all();
  for (auto& m : running) {
    if (m->scheduler) m->scheduler->stop();
  }
}

std::shared_ptr<HostedModel> ModelHost::get(const std::string& id, const std::string& role) {
  Core& c = *core_;
  std::unique_lock<std::mutex> lk(c.mu);
  std::shared_ptr<Slot> s;
  if (id.empty()) {
    // The default: the first loaded model of the role, else the first declared.
    for (const auto& o : c.slots) {
      if (o->decl.role == role && o->state == ModelState::kLoaded) { s = o; break; }
    }
    for (const auto& o : c.slots) {
      if (!s && o->decl.role == role) s = o;
    }
  } else {
    s = c.find_locked(id);
  }
  if (s && s->decl.role != role) {
    throw Error(ErrorCode::kInvalidArgument, "model '" + id + "' is a " + s->decl.role +
                                                 " model; this endpoint needs a " + role + " model");
  }
  if (!s) {
    std::string known;
    for (const auto& o : c.slots) {
      if (o->decl.role == role) known += (known.empty() ? "" : ", ") + o->id;
    }
    if (id.empty() || known.empty()) {
      throw HttpError(503, "no_model_loaded",
                      "no model loaded: this node serves no " + role + " model" +
                          (known.empty() ? std::string(" (start it with ") +
                                               (role == "embedding" ? "--embedding-model"
                                                : role == "rerank"  ? "--rerank-model"
                                                                    : "--model") +
                                               " FILE)"
                                         : " (models: " + known + ")"));
    }
    throw Error(ErrorCode::kNotFound, "model '" + id + "' is not served here (models: " + known + ")");
  }
  return acquire_locked(core_, lk, s, s->on_demand());
}

void ModelHost::load(const ModelDecl& decl) {
  Core& c = *core_;
  std::string id = checked_id(decl);
  std::shared_ptr<HostedModel> old, lease;
  {
    std::unique_lock<std::mutex> lk(c.mu);
    auto deadline = Clock::now() + std::chrono::milliseconds(c.load_wait_ms);
    std::shared_ptr<Slot> s = c.find_locked(id);
    if (!s) {
      s = std::make_shared<Slot>();
      s->id = id;
      s->decl = decl;
      c.slots.push_back(s);
    }
    if (!wait_loading_locked(c, lk, s, deadline)) {
      unavailable("model_loading", "model '" + id + "' is still loading; try again later");
    }
    if (s->state == ModelState::kLoaded && same_decl(s->decl, decl)) return;
    if (s->state == ModelState::kLoaded) {
      spdlog::info("model {}: declaration changed; unloading it to load it again", id);
      old = c.take_locked(*s);
      ++s->unloads;
      ++c.unloads;
    }
    s->decl = decl;
    // Lease and release: the model counts as just used.
    lease = acquire_locked(core_, lk, s, /*allow_load=*/true);
  }
}

void ModelHost::declare(const ModelDecl& decl) {
  Core& c = *core_;
  std::string id = checked_id(decl);
  std::shared_ptr<HostedModel> old;  // freed outside the lock
  std::unique_lock<std::mutex> lk(c.mu);
  std::shared_ptr<Slot> s = c.find_locked(id);
  if (!s) {
    s = std::make_shared<Slot>();
    s->id = id;
    s->decl = decl;
    c.slots.push_back(s);
    return;
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(c.load_wait_ms);
  if (!wait_loading_locked(c, lk, s, deadline)) {
    unavailable("model_loading", "model '" + id + "' is still loading; try again later");
  }
  if (same_decl(s->decl, decl)) return;
  if (s->state == ModelState::kLoaded) {
    spdlog::info("model {}: declaration changed; unloading it", id);
    old = c.take_locked(*s);
    ++s->unloads;
    ++c.unloads;
  }
  s->decl = decl;
  s->state = ModelState::kUnloaded;
}

void ModelHost::unload(const std::string& id) {
  Core& c = *core_;
  std::shared_ptr<HostedModel> m;
  {
    std::unique_lock<std::mutex> lk(c.mu);
    std::shared_ptr<Slot> s = c.find_locked(id);
    if (!s) throw Error(ErrorCode::kNotFound, "model '" + id + "' is not declared on this node");
    auto deadline = Clock::now() + std::chrono::milliseconds(c.load_wait_ms);
    if (!wait_loading_locked(c, lk, s, deadline)) {
      unavailable("model_loading", "model '" + id + "' is still loading; unload it later");
    }
    if (s->state != ModelState::kLoaded) {
      s->state = ModelState::kUnloaded;
      return;
    }
    m = c.take_locked(*s);
    ++s->unloads;
    ++c.unloads;
    spdlog::info("unloading model {}{}", id,
                 m->leases > 0 ? fmt::format(" ({} requests still running finish first)", m->leases)
                               : "");
  }
}

bool ModelHost::set_keep_alive(const std::string& id, std::optional<int64_t> ms) {
  Core& c = *core_;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    std::shared_ptr<Slot> s = c.find_locked(id);
    if (!s) throw Error(ErrorCode::kNotFound, "model '" + id + "' is not declared on this node");
    if (!s->on_demand()) return false;
    // A model not loaded now starts from its configured keep_alive when it is.
    if (s->state != ModelState::kLoaded && s->state != ModelState::kLoading) return true;
    s->keep_alive_override_ms = ms;
  }
  c.reaper_cv.notify_all();  // a shorter keep-alive may have run out already
  return true;
}

void ModelHost::remove(const std::string& id) {
  unload(id);
  std::lock_guard<std::mutex> lock(core_->mu);
  auto& slots = core_->slots;
  for (auto it = slots.begin(); it != slots.end(); ++it) {
    if ((*it)->id == id && (*it)->state != ModelState::kLoaded &&
        (*it)->state != ModelState::kLoading) {
      (*it)->removed = true;
      slots.erase(it);
      break;
    }
  }
}

void ModelHost::set_estimator(ModelEstimator estimator) {
  if (!estimator) estimator = model_estimate_file_size;
  std::vector<std::pair<std::string, ModelDecl>> loaded;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->estimator = estimator;
    for (const auto& s : core_->slots) {
      if (s->state == ModelState::kLoaded) loaded.emplace_back(s->id, s->decl);
    }
  }
  // Re-estimate what is loaded, so the budget compares like with like.
  for (auto& [id, decl] : loaded) {
    uint64_t need = 0;
    try {
      need = estimator(decl);
    } catch (const std::exception& e) {
      spdlog::warn("model {}: memory estimate failed: {}", id, e.what());
      continue;
    }
    std::lock_guard<std::mutex> lock(core_->mu);
    if (auto s = core_->find_locked(id); s && s->state == ModelState::kLoaded) s->reserved = need;
  }
}

void ModelHost::set_memory_budget(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->budget = bytes;
}

uint64_t ModelHost::memory_budget() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->budget;
}

std::vector<ModelListing> ModelHost::list() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  std::vector<ModelListing> out;
  for (const auto& s : core_->slots) {
    out.push_back({s->id, s->decl, s->state, s->model ? s->model->created : 0, s->last_used_unix_ms,
                   s->keep_alive_ms(), s->model ? s->model->leases : 0});
  }
  return out;
}

std::vector<std::shared_ptr<HostedModel>> ModelHost::models() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  std::vector<std::shared_ptr<HostedModel>> out;
  for (const auto& s : core_->slots) {
    if (s->model) out.push_back(s->model);
  }
  return out;
}

std::shared_ptr<EmbedCache> ModelHost::embed_cache() const { return core_->embed_cache; }

std::shared_ptr<UsageLog> ModelHost::usage_log() const { return core_->usage_log; }

std::optional<ModelDecl> ModelHost::find_decl(const std::string& id) const {
  std::lock_guard<std::mutex> lock(core_->mu);
  if (auto s = core_->find_locked(id)) return s->decl;
  return std::nullopt;
}

namespace {

// The engine's figures for a loaded model (read without the host's lock).
void add_engine_status(nlohmann::json& j, const HostedModel& m) {
  j["backend"] = m.backend->name();
  if (m.encoder) {
    j["architecture"] = m.encoder->hparams().arch;
    j["dimension"] = m.encoder->n_embd();
    j["memory"] = {{"weights", m.backend->allocated(engine::MemoryKind::kWeights)},
                   {"compute", m.backend->allocated(engine::MemoryKind::kCompute)},
                   {"total", m.memory_bytes()}};
    const EmbedStats e = m.embed_stats();
    j["counters"] = {{"requests_done", e.requests}, {"inputs", e.inputs}, {"tokens_in", e.tokens},
                     {"inputs_truncated", e.truncated}, {"embed_seconds", e.seconds}};
  }
  if (m.model) {
    j["architecture"] = m.model->hparams().arch;
    j["context"] = m.model->options().n_ctx;
    j["layers"] = m.model->hparams().n_layer;
    // Summed over the parts; "parts" says what each device holds (one part
    // unless the model is split with gpu_layers).
    nlohmann::json parts = nlohmann::json::array();
    uint64_t w = 0, kv = 0, c = 0;
    for (const engine::ModelPartMemory& p : m.model->memory()) {
      parts.push_back({{"backend", p.backend}, {"first_layer", p.first_layer},
                       {"layers", p.n_layers}, {"weights", p.weights},
                       {"kv_cache", p.kv_cache}, {"compute", p.compute},
                       {"total", p.weights + p.kv_cache + p.compute}});
      w += p.weights;
      kv += p.kv_cache;
      c += p.compute;
    }
    j["memory"] = {{"weights", w}, {"kv_cache", kv}, {"compute", c}, {"total", m.memory_bytes()},
                   {"parts", parts}};
  }
  if (m.scheduler) {
    engine::SchedulerStats s = m.scheduler->stats();
    j["slots"] = {{"total", s.slots}, {"busy", s.slots_busy}, {"queued", s.queued}};
    j["counters"] = {{"steps", s.steps},
                     {"step_sequences", s.step_sequences},
                     {"max_sequences_per_step", s.max_step_sequences},
                     {"mean_sequences_per_step",
                      s.steps ? static_cast<double>(s.step_sequences) / s.steps : 0.0},
                     {"requests_done", s.requests_done},
                     {"requests_cancelled", s.requests_cancelled},
                     {"requests_rejected", s.requests_rejected},
                     {"tokens_in", s.tokens_in},
                     {"tokens_cached", s.tokens_cached},
                     {"tokens_out", s.tokens_out},
                     {"last_ttft_ms", s.last_ttft_ms},
                     {"last_tokens_per_s", s.last_tokens_per_s}};
  }
}

}  // namespace

nlohmann::json ModelHost::status_json() const {
  std::vector<std::pair<nlohmann::json, std::shared_ptr<HostedModel>>> rows;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    auto now = Clock::now();
    for (const auto& s : core_->slots) {
      nlohmann::json j = {{"id", s->id},
                          {"path", s->decl.path},
                          {"role", s->decl.role},
                          {"load", s->decl.load},
                          {"state", model_state_name(s->state)},
                          {"estimate_bytes", s->reserved},
                          {"requests_active", s->model ? s->model->leases : 0},
                          {"loads", s->loads},
                          {"load_failures", s->load_failures},
                          {"unloads", s->unloads},
                          {"evictions", s->evictions},
                          {"keep_alive_unloads", s->expiries}};
      if (s->on_demand()) j["keep_alive_s"] = s->decl.keep_alive_s;
      if (s->decl.gpu_layers >= 0) j["gpu_layers"] = s->decl.gpu_layers;
      if (!s->decl.planned_device.empty()) j["planned_device"] = s->decl.planned_device;
      if (!s->decl.planned_gpu.empty()) j["planned_gpu"] = s->decl.planned_gpu;
      if (!s->error.empty()) j["error"] = s->error;
      if (s->last_used_unix > 0) {
        j["last_used"] = s->last_used_unix;
        j["idle_s"] = std::chrono::duration<double>(now - s->last_used).count();
      } else {
        j["last_used"] = nullptr;
      }
      if (auto d = s->draining.lock(); d && d->leases > 0) j["draining_requests"] = d->leases;
      rows.emplace_back(std::move(j), s->model);
    }
  }
  nlohmann::json list = nlohmann::json::array();
  for (auto& [j, m] : rows) {
    if (m) add_engine_status(j, *m);
    list.push_back(std::move(j));
  }
  return list;
}

nlohmann::json ModelHost::summary_json() const {
  nlohmann::json j;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    const Core& c = *core_;
    j = {{"memory_budget", c.budget},
         {"memory_used", c.used_locked()},
         {"loads", c.loads},
         {"load_failures", c.load_failures},
         {"unloads", c.unloads},
         {"evictions", c.evictions},
         {"keep_alive_unloads", c.expiries},
         {"budget_refusals", c.budget_refusals}};
  }
  j["fetches"] = fetches_.to_json();
  if (core_->usage_log) {
    const UsageStats st = core_->usage_log->stats();
    j["usage_log"] = {{"connected", st.connected}, {"written", st.written}, {"queued", st.queued},
                      {"dropped", st.dropped}, {"errors", st.errors}};
  }
  if (core_->embed_cache) {
    const EmbedCacheStats st = core_->embed_cache->stats();
    j["embed_cache"] = {{"url", core_->embed_cache->redacted_url()}, {"connected", st.connected},
                        {"hits", st.hits}, {"misses", st.misses}, {"stores", st.stores},
                        {"errors", st.errors}};
  }
  return j;
}

}  // namespace tars::node
