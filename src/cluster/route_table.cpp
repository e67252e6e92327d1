#include "cluster/route_table.h"

#include <algorithm>

#include "common/error.h"
#include "node/json_int.h"

namespace tars::cluster {

void RouteTable::set(std::vector<RouteEntry> entries, uint64_t version) {
  std::lock_guard lock(mu_);
  entries_ = std::move(entries);
  version_ = version;
}

uint64_t RouteTable::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

std::vector<RouteEntry> RouteTable::entries() const {
  std::lock_guard lock(mu_);
  return entries_;
}

std::optional<RouteEntry> RouteTable::find(const std::string& model, const std::string& role) const {
  std::lock_guard lock(mu_);
  for (const auto& e : entries_) {
    if (model.empty() ? e.role == role : e.model == model) return e;
  }
  return std::nullopt;
}

std::vector<std::string> RouteTable::ids(const std::string& role) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& e : entries_) {
    if (e.role == role) out.push_back(e.model);
  }
  return out;
}

nlohmann::json RouteTable::to_json() const {
  std::lock_guard lock(mu_);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : entries_) {
    nlohmann::json reps = nlohmann::json::array();
    for (const auto& r : e.replicas) {
      reps.push_back({{"node_id", r.node_id}, {"node_name", r.node_name}, {"url", r.url},
                      {"load", r.load}, {"loaded", r.loaded}});
    }
    list.push_back({{"model", e.model}, {"role", e.role}, {"replicas", reps}});
  }
  return {{"version", version_}, {"routes", list}};
}

std::vector<RouteEntry> RouteTable::entries_from_json(const nlohmann::json& j, uint64_t* version) {
  auto bad = [](const std::string& what) {
    return Error(ErrorCode::kInvalidArgument, "route table: " + what);
  };
  if (!j.is_object() || !j.contains("routes") || !j["routes"].is_array()) throw bad("expected {\"routes\": [...]}");
  if (version) {
    *version = 0;
    if (j.contains("version")) {
      const nlohmann::json& v = j["version"];
      // Not get<uint64_t>(): a float would be cast (1e300 is undefined) and -1 would wrap.
      if (!v.is_number_unsigned()) throw bad("'version' must be a non-negative integer, got " + v.dump());
      *version = v.get<uint64_t>();
    }
  }
  std::vector<RouteEntry> out;
  try {
    for (const auto& e : j["routes"]) {
      RouteEntry r;
      r.model = e.at("model").get<std::string>();
      r.role = e.at("role").get<std::string>();
      for (const auto& x : e.at("replicas")) {
        Replica rep;
        rep.node_id = x.at("node_id").get<std::string>();
        rep.node_name = x.value("node_name", "");
        rep.url = x.at("url").get<std::string>();
        if (x.contains("load")) {  // a count
          const auto load = node::json_int_in(x["load"], 0, INT32_MAX);
          if (!load) {
            throw bad("replica '" + rep.node_id + "': 'load' must be a count (0 to 2147483647), got " +
                      x["load"].dump());
          }
          rep.load = static_cast<int>(*load);
        }
        rep.loaded = x.value("loaded", false);
        r.replicas.push_back(std::move(rep));
      }
      out.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    throw bad(e.what());
  }
  return out;
}

std::vector<Replica> route_order(const RouteEntry& entry, const std::string& exclude) {
  std::vector<Replica> out;
  for (const auto& r : entry.replicas) {
    if (r.node_id != exclude) out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(), [](const Replica& a, const Replica& b) {
    if (a.loaded != b.loaded) return a.loaded;
    return a.load < b.load;
  });
  return out;
}

}  // namespace tars::cluster
