#include "node/metrics.h"

#include <dirent.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace tars::node {

prometheus::MetricFamily& MetricsWriter::family(const std::string& name, const std::string& help,
                                                prometheus::MetricType type) {
  for (auto& f : out_) {
    if (f.name == name) return f;
  }
  out_.push_back({name, help, type, {}});
  return out_.back();
}

namespace {

prometheus::ClientMetric with_labels(const MetricLabels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  return m;
}

}  // namespace

void MetricsWriter::gauge(const std::string& name, const std::string& help, const MetricLabels& labels,
                          double value) {
  prometheus::ClientMetric m = with_labels(labels);
  m.gauge.value = value;
  family(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(m));
}

void MetricsWriter::counter(const std::string& name, const std::string& help,
                            const MetricLabels& labels, double value) {
  prometheus::ClientMetric m = with_labels(labels);
  m.counter.value = value;
  family(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(m));
}

void MetricsWriter::histogram(const std::string& name, const std::string& help,
                              const MetricLabels& labels, const engine::SecondsHistogram& h) {
  prometheus::ClientMetric m = with_labels(labels);
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.kBounds.size(); ++i) {
    cumulative += h.counts[i];
    m.histogram.bucket.push_back({cumulative, h.kBounds[i]});
  }
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  family(name, help, prometheus::MetricType::Histogram).metric.push_back(std::move(m));
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("tars_http_requests_total")
                   .Help("HTTP requests answered, by route (the path pattern), method and status code")
                   .Register(*registry_);
  durations_ = &prometheus::BuildHistogram()
                    .Name("tars_http_request_duration_seconds")
                    .Help("Time from a request's arrival to the end of its answer (a stream's last "
                          "byte), by route")
                    .Register(*registry_);
}

Metrics::~Metrics() = default;

void Metrics::observe_request(const std::string& method, const std::string& route, int status,
                              double seconds) {
  const std::string& r = route.empty() ? std::string("unmatched") : route;
  requests_->Add({{"route", r}, {"method", method}, {"code", std::to_string(status)}}).Increment();
  if (seconds >= 0) {
    static const prometheus::Histogram::BucketBoundaries kBuckets = {
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
    durations_->Add({{"route", r}}, kBuckets).Observe(seconds);
  }
}

void Metrics::increment(const std::string& name, const std::string& help, const MetricLabels& labels) {
  prometheus::Family<prometheus::Counter>* family = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = counters_.find(name);
    if (it == counters_.end()) {
      it = counters_.emplace(name, &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_)).first;
    }
    family = it->second;
  }
  std::map<std::string, std::string> l(labels.begin(), labels.end());
  family->Add(l).Increment();
}

void Metrics::add_collector(MetricsCollector collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string Metrics::render(const MetricsCollector& first) const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<MetricsCollector> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    collectors = collectors_;
  }
  MetricsWriter w(families);
  if (first) first(w);
  for (const auto& c : collectors) c(w);
  return prometheus::TextSerializer().Serialize(families);
}

namespace {

// Fields of /proc/self/stat after the command name (which may hold spaces
// and parentheses: everything up to the last ')' is skipped).
std::vector<std::string> proc_stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;  // fields[0] is the state (field 3 of proc(5))
}

// Seconds since the epoch at which the machine booted (btime of /proc/stat).
double boot_time() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

}  // namespace

void write_process_metrics(MetricsWriter& w) {
  std::vector<std::string> f = proc_stat_fields();
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  // proc(5) numbering: utime 14, stime 15, starttime 22, vsize 23, rss 24;
  // fields[0] is field 3.
  if (f.size() > 21 && ticks > 0) {
    w.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", {},
              (std::stod(f[11]) + std::stod(f[12])) / ticks);
    if (double boot = boot_time(); boot > 0) {
      w.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
              {}, boot + std::stod(f[19]) / ticks);
    }
    w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", {}, std::stod(f[20]));
    w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", {},
            std::stod(f[21]) * page);
  }
  if (DIR* d = ::opendir("/proc/self/fd")) {
    int n = 0;
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    w.gauge("process_open_fds", "Number of open file descriptors.", {}, n - 1);  // less opendir's own
  }
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    w.gauge("process_max_fds", "Maximum number of open file descriptors.", {},
            static_cast<double>(lim.rlim_cur));
  }
}

}  // namespace tars::node
