#pragma once
// `tars serve` with the cluster layer: a node (node::node_serve) plus
// POST /rpc answering from the cluster's method table.
//
// Methods now (README "JSON-RPC"; params and results as JSON):
//   rpc.methods  ()  -> {protocol, methods: [{name, idempotent, help}]}
//   node.info    ()  -> {node_id, node_name, version, protocol, devices}
//                       (devices as GET /status shows them)
//   node.status  ()  -> what GET /status returns
// Membership, heartbeats and model calls add their methods in
// cluster_methods (one function: the whole protocol on one screen).

#include <memory>

#include "cluster/jsonrpc.h"
#include "node/config.h"

namespace tars::node {
class Node;
class HttpServer;
}  // namespace tars::node

namespace tars::cluster {

// The method table of a node that serves `node` through `server` (both must
// outlive the table). rpc.methods lists the table itself.
std::shared_ptr<RpcMethodTable> cluster_methods(node::Node& node, const node::HttpServer& server);

// `tars serve`: the coordinator (coordinator.h) with its own node, /rpc and
// the request router, until SIGINT/SIGTERM (node::node_serve's contract).
int cluster_serve(const node::NodeConfig& config);
// `tars worker --join URL`: a node that joins config.join (worker.h).
int cluster_worker(const node::NodeConfig& config);

}  // namespace tars::cluster
