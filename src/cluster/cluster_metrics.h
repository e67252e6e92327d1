#pragma once
// The coordinator's metrics and Prometheus service discovery.
//
// write_cluster_metrics adds the cluster's figures to the coordinator's
// GET /metrics: members by state, each node's liveness and heartbeat age,
// and how many replicas of each model are loaded. Each node's own figures
// (GPU temperature and memory, models, requests) stay on that node's
// /metrics: Prometheus scrapes every node, and finds them through
// GET /metrics/targets.
//
// GET /metrics/targets answers Prometheus's HTTP service discovery
// (http_sd_configs): one target group per member, alive or down (a down
// node's scrape fails, so its `up` is 0 and its alerts fire), with the
// labels node (its name) and tars_role (coordinator or worker). Members
// that left the cluster are not listed. The cluster's own series name a
// node by the labels member and member_id, which the target's node label
// cannot clash with.

#include <nlohmann/json.hpp>
#include <vector>

#include "cluster/membership.h"
#include "cluster/route_table.h"
#include "node/metrics.h"

namespace tars::cluster {

void write_cluster_metrics(node::MetricsWriter& w, const std::vector<Member>& members,
                           const std::vector<RouteEntry>& routes, uint64_t route_version,
                           Clock::time_point now);

// The http_sd_configs answer for `members`: a JSON array of
// {"targets": ["host:port"], "labels": {...}}.
nlohmann::json prometheus_targets(const std::vector<Member>& members);

}  // namespace tars::cluster
