#include "cluster/heartbeat.h"

#include "node/model_host.h"
#include "node/node.h"

namespace tars::cluster {

Heartbeat heartbeat_of(node::Node& node) {
  Heartbeat hb;
  hb.devices = node.devices();
  // status_json: one entry per declared model with its state and, when
  // loaded, the scheduler's slots.
  for (const auto& j : node.host().status_json()) {
    MemberModel m;
    m.id = j.value("id", "");
    m.role = j.value("role", "");
    m.state = j.value("state", "loaded");
    if (j.contains("slots")) {
      m.busy = j["slots"].value("busy", 0);
      m.queued = j["slots"].value("queued", 0);
    }
    hb.queue_depth += m.busy + m.queued;
    hb.models.push_back(std::move(m));
  }
  return hb;
}

}  // namespace tars::cluster
