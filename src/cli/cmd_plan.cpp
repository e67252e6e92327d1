// `tars plan`: the placement the cluster would choose for the configured
// models, with the memory arithmetic behind every decision.
//
//   tars plan [--config FILE] [--inventory NODE=FILE ...] [--json]
//
// Without --inventory the plan is for this machine alone (its detected
// devices, or [devices] simulate). With one --inventory per node (simulated
// inventory files, the format of node/devices.h, or the JSON `tars gpus
// --json` prints on each machine) it plans a whole cluster offline.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "cluster/planner.h"
#include "common/error.h"
#include "engine/gguf.h"
#include "node/devices.h"

namespace tars::cli {
namespace {

struct PlanCliOptions {
  NodeFlags node;                       // --config and the node's flags ([[model]], [engine])
  std::vector<std::string> inventories; // NODE=FILE, one per node
  bool json = false;                    // --json: the plan as JSON
};

std::vector<cluster::PlanNode> plan_nodes(const PlanCliOptions& o, const node::NodeConfig& cfg) {
  std::vector<cluster::PlanNode> nodes;
  if (o.inventories.empty()) {
    node::DeviceOptions d;
    d.simulate_file = cfg.simulate_devices;
    node::DeviceDetector detector(d);
    nodes.push_back(cluster::plan_node_from_inventory(cfg.node_name, detector.inventory()));
    return nodes;
  }
  for (const auto& spec : o.inventories) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--inventory " + spec + ": expected NODE=FILE (a node name and its inventory file)");
    }
    const std::string name = spec.substr(0, eq);
    for (const auto& n : nodes) {
      if (n.name == name) throw Error(ErrorCode::kInvalidArgument, "--inventory: node " + name + " given twice");
    }
    node::DeviceOptions d;
    d.simulate_file = spec.substr(eq + 1);
    node::DeviceDetector detector(d);
    nodes.push_back(cluster::plan_node_from_inventory(name, detector.inventory()));
  }
  return nodes;
}

std::vector<cluster::PlanModel> plan_models(const node::NodeConfig& cfg) {
  cluster::PlanModelOptions mo;
  mo.default_ctx = cfg.ctx_size;
  mo.default_slots = cfg.slots;
  mo.max_batch = cfg.batch;
  mo.kv_type = cfg.kv_type == "f32" ? engine::TensorType::kF32 : engine::TensorType::kF16;
  std::vector<cluster::PlanModel> models;
  for (const auto& decl : cfg.models) {
    try {
      auto file = engine::GgufFile::open(decl.path);
      models.push_back(cluster::plan_model_from_gguf(decl, *file, mo));
    } catch (const Error& e) {
      // The model stays in the plan, unplaced, with the reason.
      cluster::PlanModel m;
      m.decl = decl;
      m.name = decl.alias.empty() ? decl.path : decl.alias;
      m.error = e.what();
      models.push_back(m);
    }
  }
  return models;
}

int run_plan(const PlanCliOptions& o) {
  const node::NodeConfig cfg = resolve_node_config(o.node);
  if (cfg.models.empty()) {
    throw Error(ErrorCode::kConfig, "no models to place: declare [[model]] tables in the config "
                                    "(--config FILE) or give --model FILE");
  }
  const auto nodes = plan_nodes(o, cfg);
  const auto models = plan_models(cfg);
  const cluster::Plan plan = cluster::plan_placement(nodes, models);
  if (o.json) {
    std::printf("%s\n", cluster::plan_to_json(plan).dump(2).c_str());
  } else {
    std::printf("%s", cluster::plan_to_table(plan).c_str());
  }
  return 0;
}

}  // namespace

void add_plan_command(CLI::App& app, CommandResult& result) {
  auto options = std::make_shared<PlanCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Print the placement the cluster would choose for the configured models, with the "
              "memory arithmetic behind each decision");
  add_node_flags(*cmd, options->node);
  cmd->add_option("--inventory", options->inventories,
                  "NODE=FILE: plan for a cluster whose node NODE has the devices of the simulated "
                  "inventory FILE (repeatable, one per node); default: this machine alone");
  cmd->add_flag("--json", options->json, "Print the plan as JSON");
  cmd->callback([options, &result] { result.exit_code = run_plan(*options); });
}

}  // namespace tars::cli
