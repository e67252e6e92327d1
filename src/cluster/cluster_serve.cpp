#include "cluster/cluster_serve.h"

#include <spdlog/spdlog.h>

#include "cluster/cluster_metrics.h"
#include "cluster/coordinator.h"
#include "cluster/hosting.h"
#include "cluster/protocol.h"
#include "cluster/router.h"
#include "cluster/worker.h"
#include "common/error.h"
#include "cluster/rpc_route.h"
#include "common/version.h"
#include "node/files_api.h"
#include "node/http_server.h"
#include "node/model_host.h"
#include "node/model_info.h"
#include "node/node.h"

namespace tars::cluster {

std::shared_ptr<RpcMethodTable> cluster_methods(node::Node& node, const node::HttpServer& server) {
  auto table = std::make_shared<RpcMethodTable>();
  auto no_params = [](const json& params) {
    if (!params.is_null() && !params.empty()) {
      throw RpcError(kRpcInvalidParams, "this method takes no params, got " + params.dump());
    }
  };
  // name           idempotent  handler                                         help
  table->add(rpc_methods_method(*table));
  table->add({"node.info", true,
              [&node, &server, no_params](const json& params, const RpcCall&) {
                no_params(params);
                json status = node.status(server.in_flight());
                return json{{"node_id", node.id()},
                            {"node_name", node.config().node_name},
                            {"version", kVersion},
                            {"protocol", kProtocolVersion},
                            {"devices", status["devices"]}};
              },
              "who this node is: {node_id, node_name, version, protocol, devices}; no params"});
  table->add({"node.status", true,
              [&node, &server, no_params](const json& params, const RpcCall&) {
                no_params(params);
                return node.status(server.in_flight());
              },
              "what GET /status returns (devices, models, requests in flight); no params"});
  table->set_error_log([](const std::string& method, const RpcError& e, bool notification) {
    auto level = e.rpc_code() == kRpcInternalError ? spdlog::level::err : spdlog::level::debug;
    spdlog::log(level, "rpc {}{}: {} ({})", method.empty() ? "request" : method,
                notification ? " (notification)" : "", e.what(), e.rpc_code());
  });
  return table;
}

namespace {

// How the other nodes reach this one.
std::string self_url(const node::NodeConfig& config, int port) {
  if (!config.advertise.empty()) return config.advertise;
  std::string host = config.host;
  if (host == "0.0.0.0" || host == "::" || host.empty()) host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port);
}

// tars_forwarded_requests_total: each replica a request was forwarded to,
// by the node's name and what came of it (forward.h).
std::function<void(const Replica&, const char*)> forward_counter(node::Node& node) {
  return [&node](const Replica& r, const char* outcome) {
    node.metrics().increment("tars_forwarded_requests_total",
                             "Requests this node forwarded to another, by the node (to) and outcome: "
                             "answered, skipped (failed before its answer: the next node was tried), "
                             "broken (a stream broke off), cancelled (the client left a stream)",
                             {{"to", r.node_name.empty() ? r.node_id : r.node_name}, {"outcome", outcome}});
  };
}

// GET /status with the cluster's view added under "cluster".
void add_cluster_status(std::vector<node::Route>& routes, std::function<json()> cluster) {
  for (auto& r : routes) {
    if (r.method != "GET" || r.path != "/status") continue;
    r.handler = [local = std::move(r.handler), cluster](const httplib::Request& req, httplib::Response& res) {
      local(req, res);
      json body = json::parse(res.body, nullptr, false);
      if (res.status != 200 || !body.is_object()) return;
      body["cluster"] = cluster();
      res.set_content(body.dump(), "application/json");
    };
  }
}

}  // namespace

int cluster_serve(const node::NodeConfig& config) {
  // The coordinator places the declared models (its own node included); the
  // node itself starts with none.
  node::NodeConfig node_config = config;
  node_config.models.clear();
  std::unique_ptr<Coordinator> coordinator;
  node::ServeHooks hooks;
  hooks.routes = [&](node::Node& node, const node::HttpServer& server, std::vector<node::Route> routes) {
    CoordinatorOptions o;
    o.self_url = self_url(config, config.port);
    o.token = config.join_token;
    o.heartbeat = std::chrono::milliseconds(config.heartbeat_ms);
    o.failure_deadline = std::chrono::milliseconds(config.failure_deadline_ms);
    node.host().set_estimator(hosting_estimator(node.config()));
    coordinator = std::make_unique<Coordinator>(node, config.models, o);
    auto table = cluster_methods(node, server);
    coordinator->add_methods(*table);
    add_model_methods(*table, node, config.join_token);
    RouterOptions ro;
    ro.self_id = node.id();
    ro.forward.on_unreachable = [c = coordinator.get()](const std::string& id) { c->suspect(id); };
    ro.forward.on_outcome = forward_counter(node);
    routes = router_wrap(std::move(routes), node.host(), coordinator->routes(), ro);
    add_cluster_status(routes, [c = coordinator.get()] { return c->status_json(); });
    node.metrics().add_collector([c = coordinator.get()](node::MetricsWriter& w) {
      write_cluster_metrics(w, c->membership().members(), c->routes().entries(),
                            c->routes().version(), Clock::now());
    });
    routes.push_back({"GET", "/metrics/targets",
                      [c = coordinator.get()](const httplib::Request&, httplib::Response& res) {
                        node::reply_json(res, 200, prometheus_targets(c->membership().members()));
                      }});
    // The coordinator shares the file of every declared model, wherever the
    // plan runs it, so a worker can fetch a model that moves to it.
    std::erase_if(routes, [](const node::Route& r) { return r.path.rfind("/files/", 0) == 0; });
    for (auto& r : node::files_routes(node.host(), node.config(), [&config](const std::string& id) {
           for (const auto& d : config.models) {
             if (node::model_id(d) == id) return std::optional<std::string>(d.path);
           }
           return std::optional<std::string>();
         })) {
      routes.push_back(std::move(r));
    }
    routes.push_back(rpc_route(table, config.join_token));
    return routes;
  };
  // Plans and loads before serving: a single node answers its first request
  // with its models loaded, as before there was a cluster.
  hooks.started = [&](node::Node&, int) { coordinator->start(); };
  hooks.stopping = [&] { coordinator->stop(); };
  int rc = node::node_serve(node_config, hooks);
  coordinator.reset();
  return rc;
}

int cluster_worker(const node::NodeConfig& config) {
  if (config.join.empty()) {
    throw Error(ErrorCode::kConfig, "a worker needs the coordinator's URL: --join http://HOST:PORT");
  }
  node::NodeConfig node_config = config;
  if (!node_config.models.empty()) {
    spdlog::warn("a worker hosts what the coordinator places on it; its own model list ({} models) "
                 "is ignored", node_config.models.size());
    node_config.models.clear();
  }
  std::unique_ptr<WorkerAgent> agent;
  node::ServeHooks hooks;
  hooks.routes = [&](node::Node& node, const node::HttpServer& server, std::vector<node::Route> routes) {
    WorkerOptions o;
    o.join_url = config.join;
    o.self_url = self_url(config, config.port);
    o.token = config.join_token;
    node.host().set_estimator(hosting_estimator(node.config()));
    agent = std::make_unique<WorkerAgent>(node, o);
    auto table = cluster_methods(node, server);
    add_model_methods(*table, node, config.join_token);
    RouterOptions ro;
    ro.self_id = node.id();
    ro.forward.on_outcome = forward_counter(node);
    routes = router_wrap(std::move(routes), node.host(), agent->routes(), ro);
    add_cluster_status(routes, [a = agent.get()] { return a->status_json(); });
    routes.push_back(rpc_route(table, config.join_token));
    return routes;
  };
  hooks.started = [&](node::Node&, int) { agent->start(); };
  hooks.stopping = [&] { agent->stop(); };
  int rc = node::node_serve(node_config, hooks);
  agent.reset();
  return rc;
}

}  // namespace tars::cluster
