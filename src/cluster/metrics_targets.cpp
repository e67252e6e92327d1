// prometheus_targets (cluster_metrics.h), in a file of its own so the
// requests fuzzer links it without the metrics library.
#include <string>

#include "cluster/cluster_metrics.h"

namespace tars::cluster {

nlohmann::json prometheus_targets(const std::vector<Member>& members) {
  nlohmann::json groups = nlohmann::json::array();
  for (const Member& m : members) {
    if (m.state == MemberState::kLeft) continue;
    std::string scheme = "http", rest = m.url;
    if (auto p = rest.find("://"); p != std::string::npos) {
      scheme = rest.substr(0, p);
      rest = rest.substr(p + 3);
    }
    std::string path;  // a node behind a path prefix: its /metrics is under it
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      path = rest.substr(slash);
      rest.resize(slash);
    }
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (rest.empty()) continue;
    nlohmann::json labels = {{"__scheme__", scheme},
                             {"node", m.name},
                             {"tars_role", m.local ? "coordinator" : "worker"}};
    if (!path.empty()) labels["__metrics_path__"] = path + "/metrics";
    groups.push_back({{"targets", {rest}}, {"labels", labels}});
  }
  return groups;
}

}  // namespace tars::cluster
