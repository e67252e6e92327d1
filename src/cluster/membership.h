#pragma once
// Cluster membership as the coordinator sees it: which nodes are in the
// cluster, what they have, and whether they are alive.
//
// A worker joins with node.register (identity, address, devices, version),
// then sends node.heartbeat every heartbeat interval with its live figures.
// A node whose last sign of life is older than the failure deadline is
// marked down by sweep(); the coordinator then places its models again. A
// node that registers again with the same node_id (a restart: the id lives
// in its data directory) replaces its old entry: a clean rejoin, counted in
// `joins`. The coordinator's own node is a member like any other (local =
// true) and never goes down while the process runs.
//
// This class is pure bookkeeping (no I/O, no threads of its own, times
// passed in), so every rule is tested without sockets or sleeps.
// Thread-safe.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "node/devices.h"

namespace tars::cluster {

using Clock = std::chrono::steady_clock;

// A model as a member reports it in its heartbeat.
struct MemberModel {
  std::string id;     // API id
  std::string role;   // "chat" | "embedding"
  std::string state;  // "loaded" | "loading" | "unloaded" | "failed"
  int busy = 0;       // sequences running now
  int queued = 0;     // requests waiting
};

enum class MemberState { kAlive, kDown, kLeft };
const char* member_state_name(MemberState s);

struct Member {
  std::string node_id;   // stable identity (data_dir/node_id)
  std::string name;      // node name, for people
  std::string url;       // base URL the others reach it at: "http://192.168.1.20:8001"
  std::string version;   // tars build version
  int protocol = 0;      // cluster protocol version (protocol.h)
  bool local = false;    // the coordinator's own node
  node::DeviceInventory devices;     // as registered, live figures from heartbeats
  std::vector<MemberModel> models;   // as of the last heartbeat
  int queue_depth = 0;               // running + waiting requests, all models
  MemberState state = MemberState::kAlive;
  Clock::time_point last_seen{};     // last register or heartbeat
  int joins = 0;                     // registrations under this node_id
};

// The live part of a heartbeat.
struct Heartbeat {
  node::DeviceInventory devices;      // refreshed: free memory, temperature, utilisation
  std::vector<MemberModel> models;
  int queue_depth = 0;
};

struct MembershipOptions {
  // A node not heard from for this long is down. Default: 3 heartbeat
  // intervals of 1 s.
  std::chrono::milliseconds failure_deadline{3000};
};

class Membership {
 public:
  explicit Membership(MembershipOptions options = {});

  // Adds a node or replaces the entry with the same node_id (a rejoin). A
  // different node_id with the same URL replaces that entry too (the machine
  // was reinstalled). Returns true if the node was known before.
  bool join(Member member, Clock::time_point now);
  // Records a heartbeat. Returns false for a node that is not a member (or
  // that left, or was marked down): it must register again.
  bool heartbeat(const std::string& node_id, const Heartbeat& hb, Clock::time_point now);
  // A graceful leave: the node is gone at once, no deadline to wait for.
  void leave(const std::string& node_id);
  // Marks one alive, non-local node down now (it refused a connection and a
  // direct check failed). Returns true if it was alive.
  bool mark_down(const std::string& node_id);
  // Marks the nodes not heard from within the deadline as down and returns
  // their ids (only the ones newly marked).
  std::vector<std::string> sweep(Clock::time_point now);

  // Every member, alive or not, in join order.
  std::vector<Member> members() const;
  std::vector<Member> alive() const;
  std::optional<Member> find(const std::string& node_id) const;
  // Bumped whenever the set of alive members changes (join, rejoin, leave,
  // down): the coordinator replans when it moves.
  uint64_t generation() const;

  nlohmann::json to_json(Clock::time_point now) const;

 private:
  MembershipOptions options_;
  mutable std::mutex mu_;
  std::vector<Member> members_;
  uint64_t generation_ = 0;
};

// Heartbeat and MemberModel as JSON (the node.heartbeat params), and back.
// from_json throws tars::Error(kInvalidArgument) naming the field.
nlohmann::json heartbeat_to_json(const Heartbeat& hb);
Heartbeat heartbeat_from_json(const nlohmann::json& j);
nlohmann::json member_model_to_json(const MemberModel& m);
MemberModel member_model_from_json(const nlohmann::json& j);

}  // namespace tars::cluster
