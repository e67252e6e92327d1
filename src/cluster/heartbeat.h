#pragma once
// What a node reports about itself in node.heartbeat (and the coordinator
// about its own node): live device figures, every declared model's state
// and load, the total queue depth.

#include "cluster/membership.h"

namespace tars::node {
class Node;
}

namespace tars::cluster {

Heartbeat heartbeat_of(node::Node& node);

}  // namespace tars::cluster
