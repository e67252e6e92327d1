#pragma once
// Prometheus metrics: GET /metrics in the text exposition format (0.0.4),
// serialized by prometheus-cpp.
//
// Two kinds of figures:
// - the HTTP layer's, counted as each request ends (requests by route,
//   method and status; their durations), kept in a prometheus-cpp registry;
// - everything else, read at scrape time from the sources /status reads
//   (devices, models, the process; the cluster layer adds its own through
//   add_collector), so the two never disagree and nothing is polled between
//   scrapes.
//
// Names follow Prometheus's conventions: a tars_ prefix, base units in the
// name (_bytes, _seconds, _celsius, _ratio), _total on counters. The
// process_* families are the standard ones every Prometheus client exports,
// so the usual dashboards find them.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <prometheus/metric_family.h>
#include <string>
#include <utility>
#include <vector>

#include "engine/scheduler.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace tars::node {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Builds metric families at scrape time. A family is created by its first
// sample (with that call's help and type); later samples of the same name
// join it.
class MetricsWriter {
 public:
  explicit MetricsWriter(std::vector<prometheus::MetricFamily>& out) : out_(out) {}

  void gauge(const std::string& name, const std::string& help, const MetricLabels& labels,
             double value);
  void counter(const std::string& name, const std::string& help, const MetricLabels& labels,
               double value);
  // Buckets of the engine's histogram, made cumulative as Prometheus wants.
  void histogram(const std::string& name, const std::string& help, const MetricLabels& labels,
                 const engine::SecondsHistogram& h);

 private:
  prometheus::MetricFamily& family(const std::string& name, const std::string& help,
                                   prometheus::MetricType type);
  std::vector<prometheus::MetricFamily>& out_;
};

using MetricsCollector = std::function<void(MetricsWriter&)>;

// The content type of the text exposition format.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One HTTP request ended. `route` is the route's path pattern ("" when no
  // route matched: counted under "unmatched", so a scan of random paths
  // cannot add series); `seconds` < 0 when its start was not seen (not
  // added to the durations).
  void observe_request(const std::string& method, const std::string& route, int status,
                       double seconds);
  // Adds 1 to the counter `name` with `labels`; the family is made with
  // `help` on first use. Thread-safe. For the layers above the node
  // (forwarding between nodes).
  void increment(const std::string& name, const std::string& help, const MetricLabels& labels);
  // Adds figures read at every scrape. Thread-safe.
  void add_collector(MetricsCollector collector);
  // Every family in the text format: the registry's, then `first`'s (the
  // node's own figures), then each added collector's.
  std::string render(const MetricsCollector& first = {}) const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* durations_ = nullptr;
  mutable std::mutex mu_;
  std::vector<MetricsCollector> collectors_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters_;
};

// The process_* families (CPU seconds, resident and virtual memory, open and
// maximum file descriptors, start time) from /proc/self; those that cannot
// be read are left out.
void write_process_metrics(MetricsWriter& w);

}  // namespace tars::node
