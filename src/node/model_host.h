#pragma once
// The models a node serves: loaded at start from the configuration, each
// with its own backend, KV cache slots and continuous-batching scheduler.
// Lookups are by API id; the first chat model is the default.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "node/config.h"

namespace tars::engine {
class Backend;
class GgufFile;
class Model;
class Scheduler;
class ChatTemplate;
class Encoder;
}  // namespace tars::engine

namespace tars::node {

struct HostedModel {
  std::string id;        // API id (alias or file name without .gguf)
  ModelDecl decl;
  int64_t created = 0;   // unix seconds when loaded
  std::shared_ptr<const engine::GgufFile> file;
  std::unique_ptr<engine::Backend> backend;
  std::unique_ptr<engine::Model> model;          // role "chat"
  std::unique_ptr<engine::Scheduler> scheduler;  // role "chat"
  std::unique_ptr<engine::Encoder> encoder;      // role "embedding"
  std::unique_ptr<engine::ChatTemplate> chat;  // how messages become a prompt
  bool chat_fallback = false;                  // no template in the file: plain format
  ~HostedModel();
};

class ModelHost {
 public:
  // Loads every configured model. Throws tars::Error naming the model file
  // and the problem; a node with a broken model file does not start.
  explicit ModelHost(const NodeConfig& config);
  ~ModelHost();

  // The model with this id; with an empty id the first chat model. Throws
  // tars::Error(kNotFound) naming the id and the ids that exist.
  HostedModel& get(const std::string& id, const std::string& role = "chat");
  const std::vector<std::unique_ptr<HostedModel>>& models() const { return models_; }

  // Cancels queued and running requests and stops the schedulers.
  void stop();

  // Per-model state and counters for /status.
  nlohmann::json status_json() const;

 private:
  std::vector<std::unique_ptr<HostedModel>> models_;
};

}  // namespace tars::node
