#pragma once
// Routing an API request to the node that serves its model.
//
// router_wrap takes the node's own route table (node/api.h) and wraps the
// handlers that name a model (/v1/chat/completions, /v1/completions,
// /inference, /embed, /v1/embeddings): a request for a model this node
// declares is served here; one for a model another node serves is forwarded
// there (forward.h: the least loaded replica first, streaming passed
// through); an unknown model gets a 404 that lists the cluster's models.
// Every answer says which node served it (X-Tars-Served-By: node id).
// GET /v1/models lists the models of the whole cluster.
//
// A single node is the trivial case: its route table lists only itself, so
// every request is served locally, exactly as without a cluster.

#include <string>
#include <vector>

#include "cluster/forward.h"
#include "cluster/route_table.h"
#include "node/http_server.h"

namespace tars::node {
class ModelHost;
}

namespace tars::cluster {

struct RouterOptions {
  std::string self_id;     // this node's id
  ForwardOptions forward;  // self_id is copied in
};

// The role of the model a path needs: "chat", "embedding", "any" (a model of
// either role, by name: Ollama's /api/show), or "" for paths that name no
// model.
std::string router_role_for_path(const std::string& method, const std::string& path);

std::vector<node::Route> router_wrap(std::vector<node::Route> routes, node::ModelHost& host,
                                     const RouteTable& table, RouterOptions options);

}  // namespace tars::cluster
