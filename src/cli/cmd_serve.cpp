// `tars serve`: a node with its HTTP API and /rpc (the coordinator role of DESIGN.md).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "cluster/cluster_serve.h"

namespace tars::cli {

void add_serve_command(CLI::App& app, CommandResult& result) {
  auto flags = std::make_shared<NodeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "Run a node: the HTTP API on --host:--port");
  add_node_flags(*cmd, *flags);
  cmd->callback([flags, &result] {
    node::NodeConfig config = resolve_node_config(*flags);
    if (flags->print_config) {
      std::fputs(node::config_to_toml(config).c_str(), stdout);
      result.exit_code = 0;
      return;
    }
    result.exit_code = cluster::cluster_serve(config);
  });
}

}  // namespace tars::cli
