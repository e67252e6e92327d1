// `tars serve`: the coordinator with its own node, the HTTP API and /rpc
// (the "PC1" role of DESIGN.md).
#include "cli/commands.h"
#include "cli/options.h"
#include "cluster/cluster_serve.h"

namespace tars::cli {

void add_serve_command(CLI::App& app, CommandResult& result) {
  add_node_role_command(app, result, "serve", "Run a node: the HTTP API on --host:--port",
                        cluster::cluster_serve);
}

}  // namespace tars::cli
