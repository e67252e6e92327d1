#pragma once
// The models a node serves, loaded and unloaded while it serves.
//
// Every declared model (the config's [[model]] list, plus any the cluster
// adds with load()) has a slot with a state machine:
//
//   unloaded --first request / load()--> loading --ok--> loaded
//       ^                                   |              |
//       |                                   +--error--> failed (next request retries)
//       +--- unload(), LRU eviction, keep-alive expiry ----+
//
// load = "always" models are loaded by the constructor (a node with a broken
// always-loaded model does not start) and are never evicted. load =
// "on_demand" models are listed but loaded by the first request that names
// them; concurrent first requests wait for that one load (bounded by
// ModelHostOptions::load_wait_ms). Loading one that would exceed the memory
// budget first unloads the least recently used idle on-demand models; if it
// still cannot fit, the request gets a 503 naming the budget and the need.
// An on-demand model idle for its keep_alive_s is unloaded by a background
// reaper (keep_alive 0: as soon as its last request ends).
//
// Lookups hand out leases: a std::shared_ptr<HostedModel> whose release tells
// the host the request is over. A model that is unloaded while requests hold
// leases stops taking new requests at once and is freed when the last lease
// is released, so running generations finish normally.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "node/config.h"
#include "engine/scheduler.h"
#include "node/model_fetch.h"

namespace tars::engine {
class Backend;
class GgufFile;
class Model;
class Scheduler;
class ChatTemplate;
class Encoder;
}  // namespace tars::engine

namespace tars::node {

class EmbedCache;
class UsageLog;

// An embedding model's counters, for /status and /metrics.
struct EmbedStats {
  uint64_t requests = 0;   // requests embedded
  uint64_t inputs = 0;     // texts or token lists
  uint64_t tokens = 0;     // tokens read (after truncation)
  uint64_t truncated = 0;  // inputs cut to the model's context
  double seconds = 0;      // summed over requests: time in the encoder
  engine::SecondsHistogram duration;  // per request
};

struct HostedModel {
  std::string id;        // API id (alias or file name without .gguf)
  ModelDecl decl;
  int64_t created = 0;   // unix seconds when loaded
  std::shared_ptr<const engine::GgufFile> file;
  std::unique_ptr<engine::Backend> backend;      // the device (or the CPU)
  std::unique_ptr<engine::Backend> cpu_backend;  // partial offload: the CPU's layers; else null
  std::unique_ptr<engine::Model> model;          // role "chat"
  std::unique_ptr<engine::Scheduler> scheduler;  // role "chat"
  std::unique_ptr<engine::Encoder> encoder;      // role "embedding"
  std::unique_ptr<engine::ChatTemplate> chat;  // how messages become a prompt
  bool chat_fallback = false;                  // no template in the file: plain format
  // Role "embedding" with a cache: the cache, and the file's sha256 its keys
  // start from (the same model file has the same keys on every node).
  std::shared_ptr<EmbedCache> embed_cache;
  std::string file_sha256;
  // The usage ledger (usage_log.h) every answered request goes to; null
  // without [state] postgres.
  std::shared_ptr<UsageLog> usage_log;
  int leases = 0;        // requests holding it now (guarded by the host's mutex)
  // Bytes the backends allocated for weights + KV cache + compute buffers.
  uint64_t memory_bytes() const;
  // An embedding request ended (embeddings_api.h); thread-safe.
  void record_embedding(uint64_t inputs, uint64_t tokens, uint64_t truncated, double seconds);
  EmbedStats embed_stats() const;
  ~HostedModel();

 private:
  mutable std::mutex embed_mu_;
  EmbedStats embed_;
};

enum class ModelState { kUnloaded, kLoading, kLoaded, kFailed };
// "unloaded" | "loading" | "loaded" | "failed"
const char* model_state_name(ModelState s);

// Bytes a model will need once loaded. The cluster layer injects its memory
// estimator (weights + KV cache + compute + overhead); the default is
// model_estimate_file_size.
using ModelEstimator = std::function<uint64_t(const ModelDecl&)>;
// The default estimator: the file's size (weights dominate; the KV cache and
// compute buffers of the CPU engine are small next to them). 0 when the
// file cannot be read (its load fails with the real reason).
uint64_t model_estimate_file_size(const ModelDecl& decl);

struct ModelHostOptions {
  // Default: model_estimate_file_size.
  ModelEstimator estimator;
  // Bytes all loaded models may need together, by the estimator; 0 = no
  // limit. Default: NodeConfig::memory_budget.
  std::optional<uint64_t> memory_budget;
  // How long a request waits for a load that another request started before
  // it gets a 503. Default: 10 minutes (a large file from a slow disk).
  int load_wait_ms = 600000;
  // How often the reaper looks for on-demand models past their keep-alive.
  int reaper_interval_ms = 200;
  // The shared embedding cache the embedding models use. Default: one on
  // NodeConfig::cache_redis when that is set, else none.
  std::shared_ptr<EmbedCache> embed_cache;
  // Where answered requests are recorded. Default: a ledger on
  // NodeConfig::state_postgres when that is set, else none.
  std::shared_ptr<UsageLog> usage_log;
};

// One row of list(): what the host knows about a declared model.
struct ModelListing {
  std::string id;
  ModelDecl decl;
  ModelState state = ModelState::kUnloaded;
  int64_t created = 0;  // unix seconds when loaded (0 = not loaded)
  int64_t last_used_unix_ms = 0;  // last request's start or end (0 = never)
  // How long it may stay loaded idle (the configuration's keep_alive or a
  // request's); kKeepAliveForever for always-loaded models.
  int64_t keep_alive_ms = 0;
  int leases = 0;  // requests using it now
};

class ModelHost {
 public:
  // Loads every load = "always" model and starts the keep-alive reaper.
  // Throws tars::Error naming the model file and the problem (a node with a
  // broken always-loaded model does not start) or two models with one id.
  explicit ModelHost(const NodeConfig& config, ModelHostOptions options = {});
  ~ModelHost();  // stops the reaper and the schedulers
  ModelHost(const ModelHost&) = delete;
  ModelHost& operator=(const ModelHost&) = delete;

  // A lease on the model with this id (with an empty id, the first loaded
  // model of `role`, else the first declared one), loading an on-demand
  // model first. Hold it for the whole request. Throws tars::Error
  // (kNotFound: unknown id; kInvalidArgument: wrong role) or HttpError 503
  // (nothing of that role, load failed, budget cannot fit it, load wait over,
  // model unloaded and not on-demand).
  std::shared_ptr<HostedModel> get(const std::string& id, const std::string& role = "chat");

  // Declares the model if its id is new (or replaces an unloaded/changed
  // declaration) and loads it now, whatever its `load` mode, within the
  // budget (evicting idle on-demand models as needed). Blocks until loaded;
  // a no-op when the same declaration is already loaded. Throws like get().
  void load(const ModelDecl& decl);
  // Declares the model without loading it (an on-demand model the cluster
  // placed here: its first request loads it). A declaration that differs
  // from a loaded one unloads that first; the same one is a no-op.
  void declare(const ModelDecl& decl);
  // Unloads the model: no new requests get it from now on; requests holding
  // leases finish and the memory is freed when the last one ends. The model
  // stays declared (an on-demand one loads again on its next request).
  // Waits for a load in progress first. Unknown id: tars::Error(kNotFound).
  void unload(const std::string& id);
  // A request's keep_alive (Ollama's) for an on-demand model: from now on it
  // is unloaded after `ms` idle (0: when its last request ends;
  // kKeepAliveForever: never by idleness), until it is unloaded or the next
  // call; nullopt returns to the configured keep_alive. Applies only while
  // the model is loaded or loading. Returns false, changing nothing, for an
  // always-loaded model. Unknown id: tars::Error(kNotFound).
  bool set_keep_alive(const std::string& id, std::optional<int64_t> ms);
  // unload() and forget the declaration (the cluster moved the model away).
  void remove(const std::string& id);

  // Injected by the cluster layer; they apply to the next load.
  void set_estimator(ModelEstimator estimator);
  void set_memory_budget(uint64_t bytes);  // 0 = unlimited
  uint64_t memory_budget() const;

  // Every declared model, in declaration order.
  std::vector<ModelListing> list() const;
  // The models loaded now (a snapshot; these are not leases).
  std::vector<std::shared_ptr<HostedModel>> models() const;
  // The embedding cache (null without one).
  std::shared_ptr<EmbedCache> embed_cache() const;
  // The usage ledger (null without one).
  std::shared_ptr<UsageLog> usage_log() const;
  // The declaration of a model id, if declared.
  std::optional<ModelDecl> find_decl(const std::string& id) const;

  // Cancels queued and running requests and stops the schedulers (shutdown).
  void stop();

  // /status "models_loaded": one entry per declared model with its state,
  // error, last use, memory (estimate and actual) and counters.
  nlohmann::json status_json() const;
  // /status "model_host": budget, memory in use, load/eviction counters and
  // model file transfers in progress.
  nlohmann::json summary_json() const;

  // Model file downloads in progress on this node (fetch_model reports here).
  FetchRegistry& fetches() { return fetches_; }

  struct Core;  // shared with the leases (which may outlive the host)

 private:
  std::shared_ptr<Core> core_;
  std::thread reaper_;
  FetchRegistry fetches_;
};

}  // namespace tars::node
