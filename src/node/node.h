#pragma once
// One node: its configuration, identity, devices and models, and the serve
// loop that runs the HTTP API until SIGINT/SIGTERM.

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "node/config.h"

namespace tars::node {

class DeviceDetector;
class ModelHost;

class Node {
 public:
  // Creates the data directory and identity, starts logging to the node's
  // log file and detects devices. Throws tars::Error on failure.
  explicit Node(NodeConfig config);
  ~Node();

  const NodeConfig& config() const { return config_; }
  const std::string& id() const { return id_; }

  nlohmann::json health() const;
  nlohmann::json status(int requests_in_flight) const;
  nlohmann::json models() const;
  nlohmann::json config_json() const;
  ModelHost& host() { return *host_; }

 private:
  NodeConfig config_;
  std::string id_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<DeviceDetector> devices_;
  nlohmann::json model_files_;  // model_file_info of each configured model
  std::unique_ptr<ModelHost> host_;  // the loaded models
};

// Runs a node: binds, serves until SIGINT or SIGTERM, then stops accepting,
// gives in-flight requests config.shutdown_grace_ms to finish and returns 0.
// A busy port or bad configuration throws tars::Error before serving.
int node_serve(const NodeConfig& config);

}  // namespace tars::node
