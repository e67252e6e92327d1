#include "cluster/worker.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cluster/heartbeat.h"
#include "cluster/hosting.h"
#include "cluster/jsonrpc.h"
#include "cluster/protocol.h"
#include "cluster/rpc_client.h"
#include "common/error.h"
#include "common/version.h"
#include "node/devices.h"
#include "node/json_int.h"
#include "node/model_host.h"
#include "node/node.h"

namespace tars::cluster {

using json = nlohmann::json;

void add_model_methods(RpcMethodTable& table, node::Node& node, std::string token) {
  table.add({"model.load", true,
             [&node, token](const json& p, const RpcCall&) -> json {
               json m = rpc_param<json>(p, "model");
               json s = rpc_param<json>(p, "source");
               node::ModelDecl d;
               d.alias = rpc_param<std::string>(m, "id");
               d.role = rpc_param<std::string>(m, "role");
               d.ctx_size = rpc_param<int>(m, "ctx_size");
               d.slots = rpc_param<int>(m, "slots");
               d.quant = rpc_param<std::vector<std::string>>(m, "quant");
               d.load = rpc_param<std::string>(m, "load");
               d.keep_alive_s = rpc_param<int>(m, "keep_alive");
               d.gpu_layers = rpc_param_or<int>(m, "gpu_layers", -1);
               d.planned_device = rpc_param_or<std::string>(m, "planned_device", "");
               d.planned_gpu = rpc_param_or<std::string>(m, "planned_gpu", "");
               ModelSource src;
               src.url = rpc_param<std::string>(s, "url");
               src.token = token;
               try {
                 src.file = hosting_file_name(rpc_param<std::string>(s, "file"));
               } catch (const Error& e) {
                 throw RpcError(kRpcForbiddenPath, e.what());
               }
               src.size = rpc_param<uint64_t>(s, "size");
               src.sha256 = rpc_param<std::string>(s, "sha256");
               d.path = node.config().data_dir + "/models/" + src.file;
               hosting_apply(node, d, src, rpc_param_or<uint64_t>(p, "memory_budget", 0));
               std::string state = "declared";
               for (const auto& l : node.host().list()) {
                 if (l.id == d.alias) state = node::model_state_name(l.state);
               }
               return {{"id", d.alias}, {"state", state}};
             },
             "host a model: {model: {id, role, ctx_size, slots, quant, load, keep_alive, gpu_layers, planned_device, "
             "planned_gpu}, "
             "source: {url, file, size, sha256}}"});
  table.add({"model.unload", true,
             [&node](const json& p, const RpcCall&) -> json {
               std::string id = rpc_param<std::string>(p, "id");
               if (!node.host().find_decl(id)) {
                 throw RpcError(kRpcNotFound, "model '" + id + "' is not hosted on this node");
               }
               node.host().remove(id);
               return json::object();
             },
             "stop hosting a model: {id}"});
}

std::chrono::milliseconds worker_heartbeat_period(const json& register_answer) {
  const json hb = register_answer.is_object() ? register_answer.value("heartbeat_ms", json(1000)) : json(nullptr);
  const auto ms = node::json_int_in(hb, 1, 3600000);
  if (!ms) {
    throw Error(ErrorCode::kCorruptData,
                "the coordinator answered node.register with heartbeat_ms " + hb.dump() + " (1 to 3600000 expected)");
  }
  return std::chrono::milliseconds(*ms);
}

WorkerAgent::WorkerAgent(node::Node& node, WorkerOptions options)
    : node_(node), options_(std::move(options)) {}

WorkerAgent::~WorkerAgent() { stop(); }

void WorkerAgent::start() {
  thread_ = std::thread([this] { loop(); });
}

void WorkerAgent::stop() {
  if (stop_.exchange(true)) return;
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  bool joined;
  {
    std::lock_guard lock(mu_);
    joined = joined_;
  }
  if (!joined) return;
  try {
    RpcClientOptions o;
    o.connect_timeout = std::chrono::milliseconds(1000);
    o.read_timeout = std::chrono::milliseconds(1000);
    RpcClient(options_.join_url, options_.token, o).notify("node.leave", {{"node_id", node_.id()}});
    spdlog::info("left the cluster of {}", options_.join_url);
  } catch (const std::exception& e) {
    spdlog::warn("could not tell the coordinator this node is leaving: {}", e.what());
  }
}

bool WorkerAgent::register_once() {
  json params = {{"node_id", node_.id()},
                 {"name", node_.config().node_name},
                 {"url", options_.self_url},
                 {"version", kVersion},
                 {"protocol", kProtocolVersion},
                 {"devices", node::devices_to_json(node_.devices())}};
  try {
    RpcClient client(options_.join_url, options_.token, RpcClientOptions{});
    json r = client.call("node.register", params, /*idempotent=*/true);
    std::lock_guard lock(mu_);
    joined_ = true;
    coordinator_id_ = r.value("coordinator_id", "");
    heartbeat_ = worker_heartbeat_period(r);
    ++registrations_;
    last_error_.clear();
    spdlog::info("{} the cluster of {} (coordinator {}) as '{}' at {}",
                 r.value("rejoin", false) ? "rejoined" : "joined", options_.join_url, coordinator_id_,
                 node_.config().node_name, options_.self_url);
    return true;
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    if (last_error_ != e.what()) spdlog::warn("cannot join {}: {}", options_.join_url, e.what());
    last_error_ = e.what();
    return false;
  }
}

bool WorkerAgent::heartbeat_once() {
  json params = heartbeat_to_json(heartbeat_of(node_));
  params["node_id"] = node_.id();
  try {
    RpcClientOptions o;
    o.read_timeout = std::chrono::milliseconds(5000);
    RpcClient client(options_.join_url, options_.token, o);
    json r = client.call("node.heartbeat", params, /*idempotent=*/true);
    if (!r.value("known", false)) {
      spdlog::warn("the coordinator does not know this node (it restarted, or marked this node "
                   "down): joining again");
      std::lock_guard lock(mu_);
      joined_ = false;
      return false;
    }
    if (r.contains("routes")) {
      uint64_t version = 0;
      std::vector<RouteEntry> entries = RouteTable::entries_from_json(r["routes"], &version);
      routes_.set(std::move(entries), version);
    }
    std::lock_guard lock(mu_);
    last_error_.clear();
    return true;
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    if (last_error_ != e.what()) spdlog::warn("heartbeat to {} failed: {}", options_.join_url, e.what());
    last_error_ = e.what();
    return false;
  }
}

void WorkerAgent::loop() {
  auto backoff = options_.retry;
  while (!stop_) {
    bool joined;
    {
      std::lock_guard lock(mu_);
      joined = joined_;
    }
    std::chrono::milliseconds wait;
    if (!joined) {
      if (register_once()) {
        backoff = options_.retry;
        heartbeat_once();
        std::lock_guard lock(mu_);
        wait = heartbeat_;
      } else {
        wait = backoff;
        backoff = std::min(backoff * 2, options_.retry * 8);
      }
    } else {
      heartbeat_once();
      std::lock_guard lock(mu_);
      wait = heartbeat_;
    }
    std::unique_lock lock(wake_mu_);
    wake_.wait_for(lock, wait, [this] { return stop_.load(); });
  }
}

json WorkerAgent::status_json() const {
  std::lock_guard lock(mu_);
  return {{"role", "worker"},
          {"coordinator", options_.join_url},
          {"coordinator_id", coordinator_id_},
          {"joined", joined_},
          {"registrations", registrations_},
          {"last_error", last_error_},
          {"routes", routes_.to_json()}};
}

}  // namespace tars::cluster
