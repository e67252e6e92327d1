#pragma once
// The worker side of the cluster (`tars worker --join URL`): joins the
// coordinator, sends heartbeats, and hosts what the coordinator tells it to.
//
// Join: node.register with this node's identity, advertised URL, devices,
// version and protocol version; refused joins (wrong token, other protocol
// version) are logged with the coordinator's message and retried with
// backoff, since a coordinator may be upgraded or restarted. Then
// node.heartbeat every interval; a reply of known = false (the coordinator
// restarted, or declared this node down) makes it register again. Each
// reply carries the route table, so this node forwards requests for models
// it does not host. On stop: node.leave as a notification.
//
// RPC methods every node serves (add_model_methods):
//   model.load   {model: {id, role, ctx_size, slots, quant, load, keep_alive},
//                 source: {url, file, size, sha256}} -> {id, state}
//                (fetches the file into <data_dir>/models when missing,
//                quantizes when quant differs from the file, loads or
//                declares it: hosting.h)
//   model.unload {id} -> {}          (-32004 for a model it does not host)

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cluster/route_table.h"

namespace tars::node {
class Node;
}

namespace tars::cluster {

class RpcMethodTable;

// model.load and model.unload on `node`'s host; `token` authorizes fetches
// from the source node.
void add_model_methods(RpcMethodTable& table, node::Node& node, std::string token);

// The heartbeat period a node.register answer asks for (heartbeat_ms; 1000
// when absent). Throws tars::Error(kCorruptData) for anything but an integer
// from 1 to 3600000.
std::chrono::milliseconds worker_heartbeat_period(const nlohmann::json& register_answer);

struct WorkerOptions {
  std::string join_url;  // the coordinator: "http://pc1:8000"
  std::string self_url;  // how the coordinator and the others reach this node
  std::string token;     // the join token
  std::chrono::milliseconds retry{1000};  // between failed registrations (doubles up to 8x)
};

class WorkerAgent {
 public:
  WorkerAgent(node::Node& node, WorkerOptions options);
  ~WorkerAgent();
  void start();
  // Sends node.leave (best effort) and stops.
  void stop();
  const RouteTable& routes() const { return routes_; }
  nlohmann::json status_json() const;

 private:
  void loop();
  bool register_once();
  bool heartbeat_once();

  node::Node& node_;
  WorkerOptions options_;
  RouteTable routes_;
  std::chrono::milliseconds heartbeat_{1000};
  mutable std::mutex mu_;
  bool joined_ = false;
  std::string coordinator_id_;
  std::string last_error_;
  int registrations_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace tars::cluster
