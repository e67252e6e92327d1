#include "cluster/membership.h"

#include <algorithm>

#include "common/error.h"
#include "node/json_int.h"

namespace tars::cluster {

const char* member_state_name(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "alive";
    case MemberState::kDown: return "down";
    case MemberState::kLeft: return "left";
  }
  return "?";
}

Membership::Membership(MembershipOptions options) : options_(options) {}

bool Membership::join(Member member, Clock::time_point now) {
  std::lock_guard lock(mu_);
  member.state = MemberState::kAlive;
  member.last_seen = now;
  const std::string id = member.node_id, url = member.url;
  auto same = [&](const Member& m) { return m.node_id == id || (!url.empty() && m.url == url); };
  auto it = std::find_if(members_.begin(), members_.end(), same);
  bool known = it != members_.end();
  if (known) {
    member.joins = it->joins + 1;
    *it = std::move(member);
    // Another entry may have matched the other way (same id, other URL).
    members_.erase(std::remove_if(std::next(it), members_.end(), same), members_.end());
  } else {
    member.joins = 1;
    members_.push_back(std::move(member));
  }
  ++generation_;
  return known;
}

bool Membership::heartbeat(const std::string& node_id, const Heartbeat& hb, Clock::time_point now) {
  std::lock_guard lock(mu_);
  for (auto& m : members_) {
    if (m.node_id != node_id) continue;
    if (m.state != MemberState::kAlive) return false;
    m.last_seen = now;
    m.devices = hb.devices;
    m.models = hb.models;
    m.queue_depth = hb.queue_depth;
    return true;
  }
  return false;
}

void Membership::leave(const std::string& node_id) {
  std::lock_guard lock(mu_);
  for (auto& m : members_) {
    if (m.node_id == node_id && m.state == MemberState::kAlive) {
      m.state = MemberState::kLeft;
      ++generation_;
    }
  }
}

bool Membership::mark_down(const std::string& node_id) {
  std::lock_guard lock(mu_);
  for (auto& m : members_) {
    if (m.node_id == node_id && !m.local && m.state == MemberState::kAlive) {
      m.state = MemberState::kDown;
      ++generation_;
      return true;
    }
  }
  return false;
}

std::vector<std::string> Membership::sweep(Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::vector<std::string> down;
  for (auto& m : members_) {
    if (m.local || m.state != MemberState::kAlive) continue;
    if (now - m.last_seen > options_.failure_deadline) {
      m.state = MemberState::kDown;
      down.push_back(m.node_id);
    }
  }
  if (!down.empty()) ++generation_;
  return down;
}

std::vector<Member> Membership::members() const {
  std::lock_guard lock(mu_);
  return members_;
}

std::vector<Member> Membership::alive() const {
  std::lock_guard lock(mu_);
  std::vector<Member> out;
  for (const auto& m : members_) {
    if (m.state == MemberState::kAlive) out.push_back(m);
  }
  return out;
}

std::optional<Member> Membership::find(const std::string& node_id) const {
  std::lock_guard lock(mu_);
  for (const auto& m : members_) {
    if (m.node_id == node_id) return m;
  }
  return std::nullopt;
}

uint64_t Membership::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

nlohmann::json member_model_to_json(const MemberModel& m) {
  return {{"id", m.id}, {"role", m.role}, {"state", m.state}, {"busy", m.busy}, {"queued", m.queued}};
}

namespace {

template <typename T>
T field(const nlohmann::json& j, const char* key, const char* what) {
  if (!j.is_object() || !j.contains(key)) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": missing field '" + key + "'");
  }
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": field '" + key + "' has the wrong type");
  }
}

// A count (busy, queued, queue depth): an integer from 0 to INT32_MAX.
int count_field(const nlohmann::json& j, const char* key, const char* what) {
  const auto v = field<nlohmann::json>(j, key, what);
  const auto n = node::json_int_in(v, 0, INT32_MAX);
  if (!n) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + ": field '" + key + "' must be a count (0 to 2147483647), got " + v.dump());
  }
  return static_cast<int>(*n);
}

}  // namespace

MemberModel member_model_from_json(const nlohmann::json& j) {
  MemberModel m;
  m.id = field<std::string>(j, "id", "model");
  m.role = field<std::string>(j, "role", "model");
  m.state = field<std::string>(j, "state", "model");
  m.busy = count_field(j, "busy", "model");
  m.queued = count_field(j, "queued", "model");
  return m;
}

nlohmann::json heartbeat_to_json(const Heartbeat& hb) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& m : hb.models) models.push_back(member_model_to_json(m));
  return {{"devices", node::devices_to_json(hb.devices)}, {"models", models},
          {"queue_depth", hb.queue_depth}};
}

Heartbeat heartbeat_from_json(const nlohmann::json& j) {
  Heartbeat hb;
  hb.devices = node::devices_from_json(field<nlohmann::json>(j, "devices", "heartbeat"));
  auto models = field<nlohmann::json>(j, "models", "heartbeat");
  if (!models.is_array()) throw Error(ErrorCode::kInvalidArgument, "heartbeat: 'models' must be an array");
  for (const auto& m : models) hb.models.push_back(member_model_from_json(m));
  hb.queue_depth = count_field(j, "queue_depth", "heartbeat");
  return hb;
}

nlohmann::json Membership::to_json(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : members_) {
    nlohmann::json models = nlohmann::json::array();
    for (const auto& x : m.models) models.push_back(member_model_to_json(x));
    list.push_back({{"node_id", m.node_id},
                    {"name", m.name},
                    {"url", m.url},
                    {"version", m.version},
                    {"protocol", m.protocol},
                    {"local", m.local},
                    {"state", member_state_name(m.state)},
                    {"last_seen_ms_ago",
                     std::chrono::duration_cast<std::chrono::milliseconds>(now - m.last_seen).count()},
                    {"joins", m.joins},
                    {"queue_depth", m.queue_depth},
                    {"models", models},
                    {"devices", node::devices_to_json(m.devices)}});
  }
  return list;
}

}  // namespace tars::cluster
