#include "cluster/membership.h"
#include "cluster/worker.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace tars::cluster {
namespace {

using namespace std::chrono_literals;

Member make_member(const std::string& id, const std::string& url, bool local = false) {
  Member m;
  m.node_id = id;
  m.name = "n-" + id;
  m.url = url;
  m.local = local;
  node::GpuInfo g;
  g.name = "NVIDIA GeForce GTX 1660 SUPER";
  g.total_memory_bytes = 6ull << 30;
  g.free_memory_bytes = 5ull << 30;
  g.compute_major = 7;
  g.compute_minor = 5;
  m.devices.gpus.push_back(g);
  return m;
}

TEST(Membership, JoinHeartbeatAndFailureDeadline) {
  Membership ms({3000ms});
  Clock::time_point t0{};
  EXPECT_FALSE(ms.join(make_member("c", "http://127.0.0.1:8000", true), t0));
  EXPECT_FALSE(ms.join(make_member("w", "http://127.0.0.1:8001"), t0));
  uint64_t g = ms.generation();
  EXPECT_EQ(ms.alive().size(), 2u);

  Heartbeat hb;
  hb.devices = make_member("w", "").devices;
  hb.devices.gpus[0].free_memory_bytes = 1ull << 30;
  hb.models.push_back({"phi-2", "chat", "loaded", 1, 2});
  hb.queue_depth = 3;
  EXPECT_TRUE(ms.heartbeat("w", hb, t0 + 2s));
  auto w = ms.find("w");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->devices.gpus[0].free_memory_bytes, 1ull << 30);
  EXPECT_EQ(w->queue_depth, 3);
  ASSERT_EQ(w->models.size(), 1u);
  EXPECT_EQ(w->models[0].queued, 2);
  EXPECT_EQ(ms.generation(), g) << "a heartbeat does not change the alive set";

  // Within the deadline of the last heartbeat: still alive.
  EXPECT_TRUE(ms.sweep(t0 + 4s).empty());
  // Past it: down, once; the local node never goes down.
  auto down = ms.sweep(t0 + 5100ms);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0], "w");
  EXPECT_TRUE(ms.sweep(t0 + 10s).empty());
  EXPECT_GT(ms.generation(), g);
  EXPECT_EQ(ms.alive().size(), 1u);
  EXPECT_EQ(ms.find("w")->state, MemberState::kDown);
  // A down node's heartbeat is refused: it must register again.
  EXPECT_FALSE(ms.heartbeat("w", hb, t0 + 11s));
}

TEST(Membership, RejoinReplacesTheEntryAndCountsJoins) {
  Membership ms;
  Clock::time_point t0{};
  ms.join(make_member("w", "http://127.0.0.1:8001"), t0);
  ms.sweep(t0 + 10s);
  ASSERT_EQ(ms.find("w")->state, MemberState::kDown);
  // Restarted on another port, same identity.
  EXPECT_TRUE(ms.join(make_member("w", "http://127.0.0.1:9001"), t0 + 11s));
  auto members = ms.members();
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].url, "http://127.0.0.1:9001");
  EXPECT_EQ(members[0].joins, 2);
  EXPECT_EQ(members[0].state, MemberState::kAlive);
  // A new identity at a known URL (reinstalled machine) replaces it too.
  EXPECT_TRUE(ms.join(make_member("w2", "http://127.0.0.1:9001"), t0 + 12s));
  members = ms.members();
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].node_id, "w2");
}

TEST(Membership, MarkDownIsImmediateButNeverForTheLocalNode) {
  Membership ms;
  Clock::time_point t0{};
  ms.join(make_member("c", "http://127.0.0.1:8000", true), t0);
  ms.join(make_member("w", "http://127.0.0.1:8001"), t0);
  uint64_t g = ms.generation();
  EXPECT_FALSE(ms.mark_down("c"));
  EXPECT_TRUE(ms.mark_down("w"));
  EXPECT_FALSE(ms.mark_down("w")) << "only once";
  EXPECT_GT(ms.generation(), g);
  EXPECT_EQ(ms.find("w")->state, MemberState::kDown);
  EXPECT_TRUE(ms.sweep(t0 + 1h).empty());
  EXPECT_FALSE(ms.heartbeat("w", {}, t0 + 1s)) << "a node marked down registers again";
}

TEST(Membership, GracefulLeaveIsImmediate) {
  Membership ms;
  Clock::time_point t0{};
  ms.join(make_member("w", "http://127.0.0.1:8001"), t0);
  uint64_t g = ms.generation();
  ms.leave("w");
  EXPECT_GT(ms.generation(), g);
  EXPECT_TRUE(ms.alive().empty());
  EXPECT_EQ(ms.find("w")->state, MemberState::kLeft);
  EXPECT_TRUE(ms.sweep(t0 + 1h).empty()) << "a node that left is not also reported down";
  EXPECT_FALSE(ms.heartbeat("w", {}, t0 + 1s));
}

TEST(Membership, HeartbeatJsonRoundTripAndErrors) {
  Heartbeat hb;
  hb.devices = make_member("w", "").devices;
  hb.models.push_back({"minilm", "embedding", "loaded", 0, 0});
  hb.queue_depth = 7;
  Heartbeat back = heartbeat_from_json(heartbeat_to_json(hb));
  EXPECT_EQ(back.queue_depth, 7);
  ASSERT_EQ(back.models.size(), 1u);
  EXPECT_EQ(back.models[0].role, "embedding");
  ASSERT_EQ(back.devices.gpus.size(), 1u);
  EXPECT_EQ(back.devices.gpus[0].free_memory_bytes, 5ull << 30);

  nlohmann::json bad = heartbeat_to_json(hb);
  bad["queue_depth"] = "many";
  try {
    heartbeat_from_json(bad);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("queue_depth"), std::string::npos) << e.what();
  }
  bad = heartbeat_to_json(hb);
  bad["models"][0].erase("state");
  EXPECT_THROW(heartbeat_from_json(bad), Error);
  EXPECT_THROW(heartbeat_from_json(nlohmann::json::array()), Error);

  // Counts are integers from 0 to INT32_MAX: get<int>() cast 1e300 (undefined
  // behaviour, found by fuzz/targets/requests_fuzz.cpp) and wrapped 2^32 + 1.
  for (const nlohmann::json& v : {nlohmann::json(1e300), nlohmann::json(0.5), nlohmann::json(-1),
                                 nlohmann::json((int64_t{1} << 32) + 1), nlohmann::json(UINT64_MAX)}) {
    for (int where = 0; where < 2; ++where) {
      bad = heartbeat_to_json(hb);
      if (where == 0) bad["models"][0]["busy"] = v;
      else bad["queue_depth"] = v;
      try {
        heartbeat_from_json(bad);
        ADD_FAILURE() << v.dump() << " accepted";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(where == 0 ? "busy" : "queue_depth"), std::string::npos) << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace tars::cluster

namespace tars::cluster {
namespace {

// The period a worker takes from the coordinator's node.register answer.
TEST(Membership, HeartbeatPeriodFromTheRegisterAnswer) {
  EXPECT_EQ(worker_heartbeat_period(nlohmann::json{{"heartbeat_ms", 250}}), std::chrono::milliseconds(250));
  EXPECT_EQ(worker_heartbeat_period(nlohmann::json::object()), std::chrono::milliseconds(1000));
  for (const nlohmann::json& v : {nlohmann::json(1e300), nlohmann::json(0.5), nlohmann::json(0), nlohmann::json(-5),
                                 nlohmann::json(UINT64_MAX), nlohmann::json("1000")}) {
    EXPECT_THROW(worker_heartbeat_period(nlohmann::json{{"heartbeat_ms", v}}), Error) << v.dump();
  }
  EXPECT_THROW(worker_heartbeat_period(nlohmann::json::array()), Error);
}

}  // namespace
}  // namespace tars::cluster
