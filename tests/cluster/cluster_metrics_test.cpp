// The coordinator's metrics and its Prometheus service-discovery answer.
#include "cluster/cluster_metrics.h"

#include <gtest/gtest.h>

#include "support/metrics_text.h"

namespace tars::cluster {
namespace {

using namespace std::chrono_literals;

Member member(const std::string& name, const std::string& url, MemberState state, bool local = false) {
  Member m;
  m.node_id = "id-" + name;
  m.name = name;
  m.url = url;
  m.state = state;
  m.local = local;
  return m;
}

TEST(ClusterMetrics, MembersLivenessHeartbeatAgeAndReplicas) {
  Clock::time_point now = Clock::time_point{} + 100s;
  std::vector<Member> members = {member("pc1", "http://192.168.1.10:8000", MemberState::kAlive, true),
                                 member("pc2", "http://192.168.1.20:8001", MemberState::kAlive),
                                 member("pc3", "http://192.168.1.30:8001", MemberState::kDown),
                                 member("old", "http://192.168.1.40:8001", MemberState::kLeft)};
  members[0].last_seen = now - 50s;  // the local node: never "late"
  members[1].last_seen = now - 1500ms;
  members[1].joins = 3;
  members[1].queue_depth = 5;
  members[2].last_seen = now - 20s;
  std::vector<RouteEntry> routes = {
      {"mistral", "chat", {{"id-pc1", "pc1", "u", 0, true}, {"id-pc2", "pc2", "u", 0, false}}},
      {"minilm", "embedding", {}}};
  node::Metrics m;  // only to serialize
  auto t = test::parse_metrics_text(m.render([&](node::MetricsWriter& out) {
    write_cluster_metrics(out, members, routes, 42, now);
  }));
  EXPECT_EQ(t.at(R"(tars_cluster_members{state="alive"})"), 2);
  EXPECT_EQ(t.at(R"(tars_cluster_members{state="down"})"), 1);
  EXPECT_EQ(t.at(R"(tars_cluster_members{state="left"})"), 1);
  EXPECT_EQ(t.at(R"(tars_cluster_node_up{member="pc1",member_id="id-pc1"})"), 1);
  EXPECT_EQ(t.at(R"(tars_cluster_node_up{member="pc2",member_id="id-pc2"})"), 1);
  EXPECT_EQ(t.at(R"(tars_cluster_node_up{member="pc3",member_id="id-pc3"})"), 0);
  EXPECT_FALSE(t.has(R"(tars_cluster_node_up{member="old",member_id="id-old"})"));
  EXPECT_EQ(t.at(R"(tars_cluster_node_last_seen_seconds{member="pc1",member_id="id-pc1"})"), 0);
  EXPECT_DOUBLE_EQ(t.at(R"(tars_cluster_node_last_seen_seconds{member="pc2",member_id="id-pc2"})"), 1.5);
  EXPECT_EQ(t.at(R"(tars_cluster_node_last_seen_seconds{member="pc3",member_id="id-pc3"})"), 20);
  EXPECT_EQ(t.at(R"(tars_cluster_node_joins_total{member="pc2",member_id="id-pc2"})"), 3);
  EXPECT_EQ(t.at(R"(tars_cluster_node_queue_depth{member="pc2",member_id="id-pc2"})"), 5);
  EXPECT_EQ(t.at(R"(tars_cluster_model_replicas{model="mistral",role="chat"})"), 2);
  EXPECT_EQ(t.at(R"(tars_cluster_model_replicas_loaded{model="mistral",role="chat"})"), 1);
  EXPECT_EQ(t.at(R"(tars_cluster_model_replicas{model="minilm",role="embedding"})"), 0);
  EXPECT_EQ(t.at(R"(tars_cluster_model_replicas_loaded{model="minilm",role="embedding"})"), 0);
  EXPECT_EQ(t.at("tars_cluster_route_table_version"), 42);
  EXPECT_EQ(t.types.at("tars_cluster_node_joins_total"), "counter");
}

TEST(ClusterMetrics, PrometheusTargetsOnePerMemberButThoseThatLeft) {
  std::vector<Member> members = {member("pc1", "http://192.168.1.10:8000/", MemberState::kAlive, true),
                                 member("pc2", "https://pc2.lan:8443/tars", MemberState::kAlive),
                                 member("pc3", "http://[fd00::3]:8001", MemberState::kDown),
                                 member("old", "http://192.168.1.40:8001", MemberState::kLeft)};
  nlohmann::json expected = nlohmann::json::parse(R"([
    {"targets": ["192.168.1.10:8000"], "labels": {"__scheme__": "http", "node": "pc1", "tars_role": "coordinator"}},
    {"targets": ["pc2.lan:8443"], "labels": {"__scheme__": "https", "node": "pc2", "tars_role": "worker",
                                               "__metrics_path__": "/tars/metrics"}},
    {"targets": ["[fd00::3]:8001"], "labels": {"__scheme__": "http", "node": "pc3", "tars_role": "worker"}}
  ])");
  EXPECT_EQ(prometheus_targets(members), expected);
  EXPECT_EQ(prometheus_targets({}), nlohmann::json::array());
}

}  // namespace
}  // namespace tars::cluster
