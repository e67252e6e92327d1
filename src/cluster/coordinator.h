#pragma once
// The coordinator: the cluster's one decision maker, inside `tars serve`.
//
// It keeps the membership (membership.h), plans where every declared model
// runs (planner.h) whenever the set of live nodes changes, tells each node
// what to host (model.load / model.unload; its own node directly), and
// builds the route table every node forwards requests by (route_table.h),
// which the workers receive in each heartbeat reply.
//
// Moves are make-before-break: a model placed on a new node is loaded there
// before the old node drops it, so a request always has somewhere to go
// while a worker joins. When a worker disappears, its models are planned
// again over the nodes that are left (possibly at a lower quantization or on
// the CPU) and loaded there; when it comes back the plan returns to the
// preferred layout.
//
// With no workers the coordinator is the whole cluster: the plan puts every
// model on its own node, loaded before the API starts (start()), which is
// exactly a single node.
//
// RPC methods it adds (params -> result):
//   node.register  {node_id, name, url, version, protocol, devices}
//                  -> {coordinator_id, heartbeat_ms, failure_deadline_ms, rejoin}
//                  (version must equal the coordinator's protocol version:
//                  -32002 otherwise, naming both)
//   node.heartbeat {node_id, devices, models[], queue_depth}
//                  -> {known, routes}   (known = false: register again)
//   node.leave     {node_id} -> {}      (usually sent as a notification)
//   cluster.status {} -> members, plan, routes
//   cluster.plan   {} -> the current plan as JSON (plan_to_json)

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/membership.h"
#include "cluster/planner.h"
#include "cluster/route_table.h"
#include "node/config.h"

namespace tars::node {
class Node;
}

namespace tars::cluster {

class RpcMethodTable;

struct CoordinatorOptions {
  std::string self_url;  // how the other nodes reach this one: "http://192.168.1.10:8000"
  std::string token;     // the join token, sent on calls to workers
  std::chrono::milliseconds heartbeat{1000};         // workers' heartbeat interval
  std::chrono::milliseconds failure_deadline{3000};  // silent this long: down
  std::chrono::milliseconds tick{200};               // how often membership is swept
  std::chrono::milliseconds load_timeout{600000};    // one model.load (fetch + quantize + load)
};

class Coordinator {
 public:
  // `models` are the declared models (the config's [[model]] list); the
  // node's own ModelHost starts empty and is filled by the plan.
  Coordinator(node::Node& node, std::vector<node::ModelDecl> models, CoordinatorOptions options);
  ~Coordinator();

  void add_methods(RpcMethodTable& table);
  // Plans with the local node alone and loads its models (a broken model
  // file throws, as a single node does), then starts the control thread.
  void start();
  void stop();

  const RouteTable& routes() const { return routes_; }
  // A request could not reach this node: check it now (GET /health, short
  // time-out) and, if it does not answer, mark it down and place its models
  // again without waiting for the failure deadline.
  void suspect(const std::string& node_id);
  Membership& membership() { return membership_; }
  nlohmann::json status_json() const;

 private:
  struct Assigned {  // what a node was told to host: model id -> decl sent
    std::map<std::string, node::ModelDecl> models;
  };

  void loop();
  // Plans over the alive members and applies the result: loads first, then
  // unloads what moved away. Runs on the control thread (and once in start).
  void replan_and_apply();
  std::vector<PlanModel> plan_models() const;
  void apply(const Plan& plan, const std::vector<Member>& alive);
  // Loads `decl` on member `m` (locally or by model.load); false on failure
  // (logged).
  bool load_on(const Member& m, const node::ModelDecl& decl, const std::string& source_quant,
               uint64_t budget);
  void unload_on(const Member& m, const std::string& id);
  void rebuild_routes();

  node::Node& node_;
  std::vector<node::ModelDecl> models_;
  CoordinatorOptions options_;
  Membership membership_;
  RouteTable routes_;

  mutable std::mutex mu_;  // guards everything below
  Plan plan_;
  std::map<std::string, Assigned> assigned_;  // node id -> what it was told
  uint64_t planned_generation_ = ~uint64_t{0};
  uint64_t route_version_ = 0;
  std::vector<std::string> plan_errors_;

  std::atomic<bool> stop_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_;
  std::thread thread_;
};

// The decl a node is told to host for a placement: the id as alias, the
// plan's context, slots and quantization.
node::ModelDecl coordinator_decl_for(const node::ModelDecl& declared, const PlanPlacement& p);

}  // namespace tars::cluster
