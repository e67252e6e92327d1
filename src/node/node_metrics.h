#pragma once
// The node's own metrics (GET /metrics): build and identity, devices with
// their live figures, the models this node hosts and their engines'
// counters. The cluster layer adds its figures on the coordinator.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/scheduler.h"
#include "node/devices.h"
#include "node/embed_cache.h"
#include "node/metrics.h"
#include "node/model_host.h"
#include "node/usage_log.h"

namespace tars::node {

// What one scrape reads, in one place so a test can give it directly.
struct NodeFigures {
  std::string version;
  std::string node_id;
  std::string node_name;
  double uptime_s = 0;
  int requests_in_flight = 0;
  DeviceInventory devices;   // refreshed: free memory, temperature, utilisation
  nlohmann::json models;     // ModelHost::status_json()
  nlohmann::json host;       // ModelHost::summary_json()
  // The chat models' schedulers and the embedding models' counters, by
  // model id.
  std::vector<std::pair<std::string, engine::SchedulerStats>> schedulers;
  std::vector<std::pair<std::string, EmbedStats>> embedders;
  std::optional<EmbedCacheStats> embed_cache;  // with [cache] redis
  std::optional<UsageStats> usage_log;          // with [state] postgres
};

void write_node_metrics(MetricsWriter& w, const NodeFigures& f);

}  // namespace tars::node
