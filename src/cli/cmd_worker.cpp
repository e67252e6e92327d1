// `tars worker --join URL`: a node that joins a coordinator and hosts what
// the cluster's plan gives it (the "PC2" role of DESIGN.md).
#include "cli/commands.h"
#include "cli/options.h"
#include "cluster/cluster_serve.h"

namespace tars::cli {

void add_worker_command(CLI::App& app, CommandResult& result) {
  add_node_role_command(app, result, "worker",
                        "Run a worker node: join the coordinator given by --join and host what it "
                        "places here",
                        cluster::cluster_worker);
}

}  // namespace tars::cli
