// `tars worker --join URL`: a node that joins a coordinator and hosts what
// the cluster's plan gives it (the "PC2" role of DESIGN.md).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "cluster/cluster_serve.h"

namespace tars::cli {

void add_worker_command(CLI::App& app, CommandResult& result) {
  auto flags = std::make_shared<NodeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "worker", "Run a worker node: join the coordinator given by --join and host what it places here");
  add_node_flags(*cmd, *flags);
  cmd->callback([flags, &result] {
    node::NodeConfig config = resolve_node_config(*flags);
    if (flags->print_config) {
      std::fputs(node::config_to_toml(config).c_str(), stdout);
      result.exit_code = 0;
      return;
    }
    result.exit_code = cluster::cluster_worker(config);
  });
}

}  // namespace tars::cli
