#include "cluster/cluster_serve.h"

#include <spdlog/spdlog.h>

#include "cluster/protocol.h"
#include "cluster/rpc_route.h"
#include "common/version.h"
#include "node/http_server.h"
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

int cluster_serve(const node::NodeConfig& config) {
  node::ServeHooks hooks;
  hooks.routes = [&config](node::Node& node, const node::HttpServer& server) {
    return std::vector<node::Route>{rpc_route(cluster_methods(node, server), config.join_token)};
  };
  return node::node_serve(config, hooks);
}

}  // namespace tars::cluster
