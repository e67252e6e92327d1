#pragma once
// The node's HTTP API: the route table. Handlers stay thin; the work is in
// Node (node.h).

#include <vector>

#include "node/http_server.h"

namespace tars::node {

class Node;

// Every route this node serves. `server` gives the live in-flight count.
std::vector<Route> api_routes(Node& node, const HttpServer& server);

}  // namespace tars::node
