#include "cluster/cluster_metrics.h"

#include <map>
#include <string>

namespace tars::cluster {

void write_cluster_metrics(node::MetricsWriter& w, const std::vector<Member>& members,
                           const std::vector<RouteEntry>& routes, uint64_t route_version,
                           Clock::time_point now) {
  std::map<std::string, int> by_state = {{"alive", 0}, {"down", 0}, {"left", 0}};
  for (const Member& m : members) ++by_state[member_state_name(m.state)];
  for (const auto& [state, n] : by_state) {
    w.gauge("tars_cluster_members", "Nodes the coordinator knows, by state (alive, down, left)",
            {{"state", state}}, n);
  }
  for (const Member& m : members) {
    if (m.state == MemberState::kLeft) continue;
    // "member", not "node": Prometheus's service discovery labels every
    // series of a target with the target's node, which would rename a
    // series' own "node" label to "exported_node".
    const node::MetricLabels node = {{"member", m.name}, {"member_id", m.node_id}};
    w.gauge("tars_cluster_node_up",
            "1 while a node answers its heartbeats (the coordinator's own node always), 0 once it "
            "missed the failure deadline",
            node, m.state == MemberState::kAlive ? 1 : 0);
    w.gauge("tars_cluster_node_last_seen_seconds", "Seconds since the node's last heartbeat", node,
            m.local ? 0.0 : std::chrono::duration<double>(now - m.last_seen).count());
    w.counter("tars_cluster_node_joins_total", "Registrations of the node (1 + its rejoins)", node,
              m.joins);
    w.gauge("tars_cluster_node_queue_depth",
            "Requests running or waiting on the node, all models, as of its last heartbeat", node,
            m.queue_depth);
  }
  for (const RouteEntry& e : routes) {
    int loaded = 0;
    for (const Replica& r : e.replicas) loaded += r.loaded ? 1 : 0;
    const node::MetricLabels model = {{"model", e.model}, {"role", e.role}};
    w.gauge("tars_cluster_model_replicas",
            "Nodes the plan gives the model to (an on-demand model counts before it loads)", model,
            static_cast<double>(e.replicas.size()));
    w.gauge("tars_cluster_model_replicas_loaded", "Nodes where the model is loaded now", model, loaded);
  }
  w.gauge("tars_cluster_route_table_version", "Version of the route table the nodes forward by", {},
          static_cast<double>(route_version));
}

}  // namespace tars::cluster
