#include "node/node.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <future>
#include <thread>

#include "common/error.h"
#include "common/version.h"
#include "node/api.h"
#include "node/devices.h"
#include "node/embed_cache.h"
#include "node/http_server.h"
#include "node/identity.h"
#include "node/logging.h"
#include "node/model_host.h"
#include "node/model_info.h"
#include "node/node_metrics.h"
#include "node/usage_log.h"

namespace tars::node {

Node::Node(NodeConfig config) : config_(std::move(config)), started_(std::chrono::steady_clock::now()) {
  id_ = identity_load_or_create(config_.data_dir);
  logging_init({config_.log_level, config_.data_dir + "/logs/" + config_.node_name + ".log",
                config_.log_max_bytes, config_.log_max_files});
  DeviceOptions dev;
  dev.simulate_file = config_.simulate_devices;
  devices_ = std::make_unique<DeviceDetector>(dev);
  for (const auto& w : devices_->inventory().warnings) spdlog::warn("{}", w);
  for (const auto& m : config_.models) {
    nlohmann::json info = model_file_info(m);
    if (info.contains("error")) spdlog::warn("model {}: {}", m.path, info["error"].get<std::string>());
  }
  host_ = std::make_unique<ModelHost>(config_);
}

Node::~Node() = default;

nlohmann::json Node::health() const {
  double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return {{"status", "ok"},       {"version", kVersion}, {"node_id", id_},
          {"node_name", config_.node_name}, {"uptime_s", uptime}};
}

nlohmann::json Node::status(int requests_in_flight) const {
  nlohmann::json j = health();
  j["devices"] = devices_to_json(devices_->refresh());
  j["models_loaded"] = host_->status_json();
  j["model_host"] = host_->summary_json();
  j["requests_in_flight"] = requests_in_flight;
  return j;
}

DeviceInventory Node::devices() const { return devices_->refresh(); }

std::string Node::metrics_text(int requests_in_flight) const {
  return metrics_.render([&](MetricsWriter& w) {
    NodeFigures f;
    f.version = kVersion;
    f.node_id = id_;
    f.node_name = config_.node_name;
    f.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    f.requests_in_flight = requests_in_flight;
    f.devices = devices_->refresh();
    f.models = host_->status_json();
    f.host = host_->summary_json();
    for (const auto& m : host_->models()) {
      if (m->scheduler) f.schedulers.emplace_back(m->id, m->scheduler->stats());
      if (m->encoder) f.embedders.emplace_back(m->id, m->embed_stats());
    }
    if (auto cache = host_->embed_cache()) f.embed_cache = cache->stats();
    if (auto log = host_->usage_log()) f.usage_log = log->stats();
    write_node_metrics(w, f);
    write_process_metrics(w);
  });
}

nlohmann::json Node::models() const {
  nlohmann::json list = nlohmann::json::array();
  // Every model declared on this node (from the config, or placed here by
  // the cluster), with what its file says and whether it is loaded now.
  for (const auto& l : host_->list()) {
    ModelDecl d = l.decl;
    d.alias = l.id;
    nlohmann::json m = model_file_info(d);
    m["loaded"] = l.state == ModelState::kLoaded;
    m["state"] = model_state_name(l.state);
    m["load"] = d.load;
    list.push_back(std::move(m));
  }
  return {{"models", list}};
}

nlohmann::json Node::config_json() const { return config_to_json(config_); }

int node_serve(const NodeConfig& config, const ServeHooks& hooks) {
  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Node node(config);
  HttpServer server({config.host, config.port, config.max_body_bytes, config.http_threads});
  server.set_request_observer([&node](const std::string& method, const std::string& route, int status,
                                      double seconds) {
    node.metrics().observe_request(method, route, status, seconds);
  });
  std::vector<Route> routes = api_routes(node, server);
  if (hooks.routes) routes = hooks.routes(node, server, std::move(routes));
  server.add_routes(routes);
  server.bind();
  spdlog::info("tars {} node '{}' ({}) listening on http://{}:{}", kVersion, config.node_name,
               node.id(), config.host, server.port());

  // Before the signal thread exists: a hook that throws leaves nothing to join.
  if (hooks.started) hooks.started(node, server.port());

  std::promise<void> finished;
  auto finished_future = finished.get_future();
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("received {}, stopping (in-flight requests get {} ms)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", config.shutdown_grace_ms);
    if (hooks.stopping) hooks.stopping();
    server.stop();
    if (finished_future.wait_for(std::chrono::milliseconds(config.shutdown_grace_ms)) !=
        std::future_status::ready) {
      // Out of patience: cancel the generations still running (streams end
      // with an error event), give the handlers a moment to answer, go.
      spdlog::warn("{} requests still in flight after the grace period; cancelling them",
                   server.in_flight());
      node.host().stop();
      if (finished_future.wait_for(std::chrono::seconds(1)) != std::future_status::ready) {
        spdlog::shutdown();
        std::_Exit(0);
      }
    }
  });
  server.run();
  node.host().stop();
  finished.set_value();
  // run() also returns if the listening socket fails; wake the signal thread.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace tars::node
