#pragma once
// One node: its configuration, identity, devices and models, and the serve
// loop that runs the HTTP API until SIGINT/SIGTERM.

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "node/config.h"
#include "node/metrics.h"

namespace tars::node {

class DeviceDetector;
struct DeviceInventory;
struct NodeFigures;
class ModelHost;
class HttpServer;
struct Route;

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
  // The devices with their live figures refreshed (free memory, temperature).
  DeviceInventory devices() const;
  // GET /metrics: the HTTP layer's counters, the node's figures now
  // (node_metrics.h), the process's, and what the layers above added.
  Metrics& metrics() { return metrics_; }
  std::string metrics_text(int requests_in_flight) const;

 private:
  NodeConfig config_;
  std::string id_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<DeviceDetector> devices_;
  std::unique_ptr<ModelHost> host_;  // the loaded models
  Metrics metrics_;
};

// What a layer above the node (the cluster) adds to node_serve without the
// node knowing it. Every member is optional.
struct ServeHooks {
  // The route table to serve, given the node's own (node/api.h): the
  // cluster adds POST /rpc and wraps the model routes to forward requests.
  // Called once before binding; the references stay valid until node_serve
  // returns.
  std::function<std::vector<Route>(Node&, const HttpServer&, std::vector<Route> node_routes)> routes;
  // The server is bound to `port` and about to serve: start background work.
  // If it throws, node_serve throws that (and `stopping` is not called).
  std::function<void(Node&, int port)> started;
  // A stop signal came (or serving ended): stop background work. Called
  // once, before the server stops accepting.
  std::function<void()> stopping;
};

// Runs a node: binds, serves until SIGINT or SIGTERM, then stops accepting,
// gives in-flight requests config.shutdown_grace_ms to finish and returns 0.
// A busy port or bad configuration throws tars::Error before serving.
int node_serve(const NodeConfig& config, const ServeHooks& hooks = {});

}  // namespace tars::node
