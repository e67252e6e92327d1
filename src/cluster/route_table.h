#pragma once
// Which node serves which model: the table every node routes requests by.
// The coordinator builds it from the plan and the members' heartbeats and
// hands it to the workers in every heartbeat reply, so any node can forward
// a request for a model it does not host to a node that does.

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tars::cluster {

// One node that serves a model.
struct Replica {
  std::string node_id;
  std::string node_name;
  std::string url;     // base URL, "http://127.0.0.1:8001"
  int load = 0;        // running + queued requests for this model there (last heartbeat)
  bool loaded = false; // loaded now (false: on-demand, loads on first request)
};

struct RouteEntry {
  std::string model;   // API id
  std::string role;    // "chat" | "embedding"
  std::vector<Replica> replicas;
};

class RouteTable {
 public:
  // Replaces the whole table (entries in plan order: the first chat entry is
  // the cluster's default chat model).
  void set(std::vector<RouteEntry> entries, uint64_t version);
  uint64_t version() const;
  std::vector<RouteEntry> entries() const;
  // The entry for `model`; an empty id picks the first entry of `role`.
  std::optional<RouteEntry> find(const std::string& model, const std::string& role) const;
  // The ids of every model of `role` in the cluster, for error messages.
  std::vector<std::string> ids(const std::string& role) const;

  nlohmann::json to_json() const;
  // The entries of to_json's output, and its version (0 when absent) in
  // *version. Throws tars::Error(kInvalidArgument) naming the bad field.
  static std::vector<RouteEntry> entries_from_json(const nlohmann::json& j, uint64_t* version = nullptr);

 private:
  mutable std::mutex mu_;
  std::vector<RouteEntry> entries_;
  uint64_t version_ = 0;
};

// The replicas to try, in order: loaded before not loaded, then least
// loaded first, ties in the given order. `exclude` (a node id) is left out.
std::vector<Replica> route_order(const RouteEntry& entry, const std::string& exclude = "");

}  // namespace tars::cluster
