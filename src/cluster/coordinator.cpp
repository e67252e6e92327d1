#include "cluster/coordinator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <httplib.h>

#include <filesystem>
#include <future>

#include "cluster/heartbeat.h"
#include "cluster/hosting.h"
#include "cluster/jsonrpc.h"
#include "cluster/protocol.h"
#include "cluster/rpc_client.h"
#include "common/error.h"
#include "common/version.h"
#include "engine/gguf.h"
#include "node/file_sha256.h"
#include "node/model_host.h"
#include "node/model_info.h"
#include "node/node.h"

namespace tars::cluster {

using json = nlohmann::json;

node::ModelDecl coordinator_decl_for(const node::ModelDecl& declared, const PlanPlacement& p) {
  node::ModelDecl d = declared;
  d.alias = p.model;
  d.ctx_size = p.n_ctx;
  d.slots = p.slots;
  d.quant = {p.quant};
  // A split the configuration declares (gpu_layers, as llama.cpp's -ngl)
  // wins over the plan's; the plan splits only models no GPU holds whole.
  d.gpu_layers = declared.gpu_layers >= 0 ? declared.gpu_layers : p.gpu_layers;
  d.planned_device = p.kind == DeviceKind::kGpu ? "gpu" : "cpu";
  d.planned_gpu = p.kind == DeviceKind::kGpu ? p.device_uuid : "";
  return d;
}

namespace {

bool same_decl(const node::ModelDecl& a, const node::ModelDecl& b) {
  return a.path == b.path && a.alias == b.alias && a.role == b.role && a.ctx_size == b.ctx_size &&
         a.slots == b.slots && a.quant == b.quant && a.load == b.load && a.keep_alive_s == b.keep_alive_s &&
         a.gpu_layers == b.gpu_layers && a.planned_device == b.planned_device && a.planned_gpu == b.planned_gpu;
}

json decl_to_json(const node::ModelDecl& d) {
  return {{"id", d.alias},       {"role", d.role}, {"ctx_size", d.ctx_size}, {"slots", d.slots},
          {"quant", d.quant},    {"load", d.load}, {"keep_alive", d.keep_alive_s},
          {"gpu_layers", d.gpu_layers}, {"planned_device", d.planned_device}, {"planned_gpu", d.planned_gpu}};
}

}  // namespace

Coordinator::Coordinator(node::Node& node, std::vector<node::ModelDecl> models, CoordinatorOptions options)
    : node_(node),
      models_(std::move(models)),
      options_(std::move(options)),
      membership_(MembershipOptions{options_.failure_deadline}) {
  Member self;
  self.node_id = node_.id();
  self.name = node_.config().node_name;
  self.url = options_.self_url;
  self.version = kVersion;
  self.protocol = kProtocolVersion;
  self.local = true;
  self.devices = node_.devices();
  membership_.join(std::move(self), Clock::now());
}

Coordinator::~Coordinator() { stop(); }

void Coordinator::add_methods(RpcMethodTable& table) {
  table.add({"node.register", true,
             [this](const json& p, const RpcCall&) -> json {
               Member m;
               m.node_id = rpc_param<std::string>(p, "node_id");
               m.name = rpc_param<std::string>(p, "name");
               m.url = rpc_param<std::string>(p, "url");
               m.version = rpc_param<std::string>(p, "version");
               m.protocol = rpc_param<int>(p, "protocol");
               if (m.protocol != kProtocolVersion) {
                 throw RpcError(kRpcVersionMismatch,
                                fmt::format("node '{}' speaks cluster protocol {} (tars {}), this "
                                            "coordinator speaks {} (tars {}): run the same tars "
                                            "version on every node",
                                            m.name, m.protocol, m.version, kProtocolVersion, kVersion));
               }
               if (m.node_id == node_.id()) {
                 throw RpcError(-32602, "node '" + m.name + "' has the coordinator's own node id " +
                                            m.node_id + " (a copied data directory?)");
               }
               try {
                 m.devices = node::devices_from_json(rpc_param<json>(p, "devices"));
               } catch (const Error& e) {
                 throw RpcError(-32602, std::string("devices: ") + e.what());
               }
               bool rejoin = membership_.join(m, Clock::now());
               {
                 // A restarted node hosts nothing: tell it again.
                 std::lock_guard lock(mu_);
                 assigned_.erase(m.node_id);
               }
               spdlog::info("node '{}' ({}) {} the cluster at {}", m.name, m.node_id,
                            rejoin ? "rejoined" : "joined", m.url);
               wake_.notify_all();
               return {{"coordinator_id", node_.id()},
                       {"heartbeat_ms", options_.heartbeat.count()},
                       {"failure_deadline_ms", options_.failure_deadline.count()},
                       {"rejoin", rejoin}};
             },
             "join the cluster: {node_id, name, url, version, protocol, devices}"});
  table.add({"node.heartbeat", true,
             [this](const json& p, const RpcCall&) -> json {
               std::string id = rpc_param<std::string>(p, "node_id");
               Heartbeat hb;
               try {
                 hb = heartbeat_from_json(p);
               } catch (const Error& e) {
                 throw RpcError(-32602, e.what());
               }
               bool known = membership_.heartbeat(id, hb, Clock::now());
               if (known) rebuild_routes();
               return {{"known", known}, {"routes", routes_.to_json()}};
             },
             "live figures: {node_id, devices, models, queue_depth} -> {known, routes}"});
  table.add({"node.leave", false,
             [this](const json& p, const RpcCall&) -> json {
               std::string id = rpc_param<std::string>(p, "node_id");
               auto m = membership_.find(id);
               membership_.leave(id);
               if (m) spdlog::info("node '{}' ({}) left the cluster", m->name, id);
               wake_.notify_all();
               return json::object();
             },
             "leave the cluster now: {node_id}"});
  table.add({"cluster.status", true, [this](const json&, const RpcCall&) { return status_json(); },
             "members, plan and routes"});
  table.add({"cluster.plan", true,
             [this](const json&, const RpcCall&) {
               std::lock_guard lock(mu_);
               return plan_to_json(plan_);
             },
             "the current placement plan"});
}

std::vector<PlanModel> Coordinator::plan_models() const {
  const node::NodeConfig& c = node_.config();
  PlanModelOptions o;
  o.default_ctx = c.ctx_size;
  o.default_slots = c.slots;
  o.max_batch = c.batch;
  o.kv_type = c.kv_type == "f32" ? engine::TensorType::kF32 : engine::TensorType::kF16;
  std::vector<PlanModel> out;
  for (const auto& d : models_) {
    try {
      auto file = engine::GgufFile::open(d.path);
      out.push_back(plan_model_from_gguf(d, *file, o));
    } catch (const Error& e) {
      PlanModel m;
      m.decl = d;
      m.name = node::model_id(d);
      m.error = e.what();
      out.push_back(std::move(m));
    }
  }
  return out;
}

void Coordinator::start() {
  replan_and_apply();
  {
    // A model the local node failed to load fails the start, as on a
    // single node.
    std::lock_guard lock(mu_);
    if (!plan_errors_.empty()) throw Error(ErrorCode::kConfig, plan_errors_.front());
  }
  thread_ = std::thread([this] { loop(); });
}

void Coordinator::suspect(const std::string& node_id) {
  auto m = membership_.find(node_id);
  if (!m || m->local || m->state != MemberState::kAlive) return;
  httplib::Client cli(m->url);
  cli.set_connection_timeout(0, 300000);
  cli.set_read_timeout(1, 0);
  if (auto r = cli.Get("/health"); r && r->status == 200) return;
  if (membership_.mark_down(node_id)) {
    spdlog::warn("node '{}' ({}) refused a forwarded request and does not answer /health: marked "
                 "down, placing its models again", m->name, node_id);
    wake_.notify_all();
  }
}

void Coordinator::stop() {
  stop_ = true;
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Coordinator::loop() {
  while (!stop_) {
    {
      std::unique_lock lock(wake_mu_);
      wake_.wait_for(lock, options_.tick);
    }
    if (stop_) break;
    membership_.heartbeat(node_.id(), heartbeat_of(node_), Clock::now());
    for (const auto& id : membership_.sweep(Clock::now())) {
      auto m = membership_.find(id);
      spdlog::warn("node '{}' ({}) missed its heartbeats for {} ms: marked down, placing its models "
                   "again", m ? m->name : id, id, options_.failure_deadline.count());
    }
    bool changed;
    {
      std::lock_guard lock(mu_);
      changed = membership_.generation() != planned_generation_;
    }
    try {
      if (changed) replan_and_apply();
      else rebuild_routes();
    } catch (const std::exception& e) {
      spdlog::error("placement failed: {}", e.what());
    }
  }
}

void Coordinator::replan_and_apply() {
  uint64_t generation = membership_.generation();
  std::vector<Member> alive = membership_.alive();
  std::vector<PlanNode> nodes;
  for (const auto& m : alive) nodes.push_back(plan_node_from_inventory(m.name, m.devices));
  Plan plan = plan_placement(nodes, plan_models());
  for (const auto& p : plan.placements) {
    if (p.placed) {
      spdlog::info("plan: {} -> {}/{} ({}) {} x{} slots, {}{}", p.model, p.node, p.device,
                   p.device_name, p.quant, p.slots, p.resident ? "resident" : "on demand",
                   p.gpu_layers >= 0 ? fmt::format(", {} of {} layers on {} and the rest in RAM",
                                                   p.gpu_layers, p.n_layer, p.device)
                                     : "");
    } else {
      spdlog::error("plan: {} cannot be placed: {}", p.model, p.reason);
    }
  }
  {
    std::lock_guard lock(mu_);
    plan_ = plan;
    planned_generation_ = generation;
  }
  apply(plan, alive);
}

bool Coordinator::load_on(const Member& m, const node::ModelDecl& decl, const std::string& source_quant,
                          uint64_t budget) {
  try {
    if (m.local) {
      hosting_apply(node_, decl, std::nullopt, budget);
      return true;
    }
    // The worker fetches the coordinator's file if it lacks it.
    node::Sha256Cache cache(node_.config().data_dir + "/state/file_sha256.json");
    json source = {{"url", options_.self_url},
                   {"file", std::filesystem::path(decl.path).filename().string()},
                   {"size", std::filesystem::file_size(decl.path)},
                   {"sha256", cache.get(decl.path)}};
    RpcClientOptions o;
    o.read_timeout = options_.load_timeout;
    RpcClient client(m.url, options_.token, o);
    client.call("model.load", {{"model", decl_to_json(decl)}, {"source", source},
                               {"source_quant", source_quant}, {"memory_budget", budget}},
                /*idempotent=*/true);
    return true;
  } catch (const std::exception& e) {
    std::string msg = fmt::format("loading model {} on node '{}' failed: {}", decl.alias, m.name, e.what());
    spdlog::error("{}", msg);
    std::lock_guard lock(mu_);
    plan_errors_.push_back(msg);
    return false;
  }
}

void Coordinator::unload_on(const Member& m, const std::string& id) {
  try {
    if (m.local) {
      node_.host().remove(id);
      return;
    }
    RpcClient client(m.url, options_.token, RpcClientOptions{});
    client.call("model.unload", {{"id", id}}, /*idempotent=*/true);
  } catch (const std::exception& e) {
    spdlog::warn("unloading model {} on node '{}' failed: {}", id, m.name, e.what());
  }
}

void Coordinator::apply(const Plan& plan, const std::vector<Member>& alive) {
  {
    std::lock_guard lock(mu_);
    plan_errors_.clear();
  }
  // What each alive node should host.
  std::map<std::string, std::map<std::string, node::ModelDecl>> want;  // node id -> id -> decl
  std::map<std::string, std::string> source_quant;
  // A node whose models share one device that swaps on-demand models gets
  // that device's room as its memory budget (0: no budget).
  std::map<std::string, uint64_t> budget;  // node name -> bytes
  std::map<std::string, std::set<std::string>> devices_used;  // node name -> devices
  for (const auto& p : plan.placements) {
    if (!p.placed) continue;
    devices_used[p.node].insert(p.device);
    // A split also uses the node's RAM: two devices, so no single budget.
    if (p.gpu_layers >= 0) devices_used[p.node].insert(p.cpu_part.device);
  }
  for (const auto& d : plan.devices) {
    if (d.on_demand.empty() || devices_used[d.node].size() != 1 || !devices_used[d.node].count(d.device)) continue;
    uint64_t reserved = d.margin_bytes + d.overhead_bytes;
    budget[d.node] = d.free_bytes > reserved ? d.free_bytes - reserved : 0;
  }
  for (const auto& p : plan.placements) {
    if (!p.placed) continue;
    for (const auto& m : alive) {
      if (m.name != p.node) continue;
      for (const auto& d : models_) {
        if (node::model_id(d) == p.model) want[m.node_id][p.model] = coordinator_decl_for(d, p);
      }
      source_quant[p.model] = p.source_quant;
      break;
    }
  }
  // Loads first (make before break), one thread per node.
  std::vector<std::future<void>> jobs;
  for (const auto& m : alive) {
    std::vector<node::ModelDecl> todo;
    {
      std::lock_guard lock(mu_);
      auto& have = assigned_[m.node_id].models;
      for (const auto& [id, decl] : want[m.node_id]) {
        auto it = have.find(id);
        if (it == have.end() || !same_decl(it->second, decl)) todo.push_back(decl);
      }
    }
    if (todo.empty()) continue;
    uint64_t node_budget = budget.count(m.name) ? budget[m.name] : 0;
    jobs.push_back(std::async(std::launch::async, [this, m, todo, &source_quant, node_budget] {
      for (const auto& decl : todo) {
        spdlog::info("placing model {} on node '{}'", decl.alias, m.name);
        if (load_on(m, decl, source_quant.at(decl.alias), node_budget)) {
          std::lock_guard lock(mu_);
          assigned_[m.node_id].models[decl.alias] = decl;
        }
      }
    }));
  }
  for (auto& j : jobs) j.get();
  rebuild_routes();
  // Then drop what moved away.
  for (const auto& m : alive) {
    std::vector<std::string> drop;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, decl] : assigned_[m.node_id].models) {
        if (!want[m.node_id].count(id)) drop.push_back(id);
      }
      for (const auto& id : drop) assigned_[m.node_id].models.erase(id);
    }
    for (const auto& id : drop) {
      spdlog::info("model {} moved away from node '{}': unloading it there", id, m.name);
      unload_on(m, id);
    }
  }
  {
    std::lock_guard lock(mu_);
    for (auto it = assigned_.begin(); it != assigned_.end();) {
      bool is_alive = false;
      for (const auto& m : alive) is_alive = is_alive || m.node_id == it->first;
      it = is_alive ? std::next(it) : assigned_.erase(it);
    }
  }
  rebuild_routes();
}

void Coordinator::rebuild_routes() {
  std::vector<Member> alive = membership_.alive();
  std::lock_guard lock(mu_);
  std::vector<RouteEntry> entries;
  for (const auto& p : plan_.placements) {
    // One entry per model, whatever its number of copies (replicas).
    bool seen = false;
    for (const auto& e : entries) seen = seen || e.model == p.model;
    if (seen) continue;
    RouteEntry e;
    e.model = p.model;
    e.role = p.role;
    for (const auto& m : alive) {
      auto a = assigned_.find(m.node_id);
      if (a == assigned_.end() || !a->second.models.count(p.model)) continue;
      Replica r;
      r.node_id = m.node_id;
      r.node_name = m.name;
      r.url = m.url;
      for (const auto& mm : m.models) {
        if (mm.id != p.model) continue;
        r.load = mm.busy + mm.queued;
        r.loaded = mm.state == "loaded";
      }
      e.replicas.push_back(std::move(r));
    }
    entries.push_back(std::move(e));
  }
  routes_.set(std::move(entries), ++route_version_);
}

json Coordinator::status_json() const {
  json plan;
  json errors;
  {
    std::lock_guard lock(mu_);
    plan = plan_to_json(plan_);
    errors = plan_errors_;
  }
  return {{"role", "coordinator"},
          {"members", membership_.to_json(Clock::now())},
          {"plan", plan},
          {"errors", errors},
          {"routes", routes_.to_json()}};
}

}  // namespace tars::cluster
