// Black-box: a coordinator and two workers as real `tars` processes on
// loopback, with simulated GPUs (the user's RTX 3060 on the coordinator, a
// GTX 1660 SUPER on each worker) and the CPU engine. The workers start
// without model files: they fetch what the plan gives them. Requests to
// every node's API are served by the node the plan chose; a worker killed
// with SIGKILL under a steady stream of requests loses no request, its
// models move, and its restart restores the plan (issue 6, acceptance 2-3).
#include <gtest/gtest.h>

#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <tuple>

#include "support/bert_builder.h"
#include "support/test_support.h"

namespace tars::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const char* kToken = "cluster-test-token";

struct NodeProc {
  std::string name;
  int port = 0;
  std::string data_dir;
  std::unique_ptr<Process> proc;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bert_ = dir_.file("bert-small.gguf");
    write_random_bert(small_random_bert(), bert_);
    write_file(dir_.file("tars.toml"),
               "[[model]]\npath = \"" + fixture("stories260K/stories260K.gguf") +
                   "\"\nalias = \"story\"\n[[model]]\npath = \"" + bert_ +
                   "\"\nalias = \"embed\"\nrole = \"embedding\"\n");
  }

  std::vector<std::string> common(NodeProc& n, const std::string& inventory) {
    return {"--port",       std::to_string(n.port), "--data-dir",     n.data_dir,
            "--node-name",  n.name,                 "--join-token",   kToken,
            "--simulate-devices", examples(inventory), "--threads",  "1",
            "--heartbeat-ms", "200",                "--failure-deadline-ms", "1500",
            "--log-level",  "info"};
  }
  static std::string examples(const std::string& f) {
    return (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "examples" /
            "inventories" / f)
        .string();
  }

  void start_coordinator(const std::string& config = "tars.toml") {
    coord_.name = "pc1";
    coord_.port = free_port();
    coord_.data_dir = dir_.file("pc1");
    auto argv = common(coord_, "pc1-rtx3060.json");
    argv.insert(argv.begin(), {tars_binary(), "serve", "--config", dir_.file(config)});
    coord_.proc = std::make_unique<Process>(argv);
    ASSERT_TRUE(wait_http_ready(coord_.port, 30s)) << coord_.proc->err();
  }
  void start_worker(NodeProc& w) {
    if (w.port == 0) w.port = free_port();
    auto argv = common(w, "pc2-gtx1660super.json");
    argv.insert(argv.begin(), {tars_binary(), "worker", "--join",
                               "http://127.0.0.1:" + std::to_string(coord_.port)});
    w.proc = std::make_unique<Process>(argv);
    ASSERT_TRUE(wait_http_ready(w.port, 30s)) << w.proc->err();
  }

  static httplib::Client client(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(2, 0);
    c.set_read_timeout(30, 0);
    return c;
  }
  json status(int port) {
    auto r = client(port).Get("/status");
    if (!r || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }
  // The coordinator's view: model -> node id of the plan's node, with every
  // planned model loaded there. Empty until the cluster has settled.
  std::map<std::string, std::string> settled(size_t members) {
    json s = status(coord_.port);
    if (!s.is_object() || !s.contains("cluster")) return {};
    const json& c = s["cluster"];
    std::map<std::string, std::string> id_of;
    size_t alive = 0;
    for (const auto& m : c["members"]) {
      if (m["state"] == "alive") {
        ++alive;
        id_of[m["name"]] = m["node_id"];
      }
    }
    if (alive != members) return {};
    std::map<std::string, std::string> where;
    for (const auto& p : c["plan"]["models"]) {
      if (!p["placed"].get<bool>()) return {};
      where[p["model"]] = id_of[p["node"]];
    }
    for (const auto& r : c["routes"]["routes"]) {
      if (r["replicas"].size() != 1 || r["replicas"][0]["node_id"] != where[r["model"]] ||
          !r["replicas"][0]["loaded"].get<bool>()) {
        return {};
      }
    }
    return where;
  }
  std::map<std::string, std::string> wait_settled(size_t members, std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto w = settled(members);
      if (!w.empty()) return w;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "the cluster did not settle with " << members << " members; coordinator:\n"
                  << status(coord_.port).dump(1) << "\nlog:\n" << coord_.proc->err();
    return {};
  }

  // One request; returns status and the node that served it.
  std::pair<int, std::string> complete(int port) {
    json body = {{"model", "story"}, {"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0}};
    auto r = client(port).Post("/v1/completions", body.dump(), "application/json");
    if (!r) return {-1, httplib::to_string(r.error())};
    if (r->status == 200) {
      EXPECT_FALSE(json::parse(r->body)["choices"][0]["text"].get<std::string>().empty());
    } else {
      // A clear error: a JSON body with a message.
      json e = json::parse(r->body, nullptr, false);
      EXPECT_TRUE(e.is_object() && !e["error"]["message"].get<std::string>().empty()) << r->body;
      if (r->status != 503) ADD_FAILURE() << "port " << port << ": " << r->status << " " << r->body;
    }
    return {r->status, r->get_header_value("X-Tars-Served-By")};
  }
  std::pair<int, std::string> embed(int port) {
    json body = {{"model", "embed"}, {"input", {"hello world", "a second input"}}};
    auto r = client(port).Post("/v1/embeddings", body.dump(), "application/json");
    if (!r) return {-1, httplib::to_string(r.error())};
    if (r->status == 200) {
      json j = json::parse(r->body);
      EXPECT_EQ(j["data"].size(), 2u);
      EXPECT_EQ(j["data"][0]["embedding"].size(), 64u);
    }
    return {r->status, r->get_header_value("X-Tars-Served-By")};
  }

  TempDir dir_;
  std::string bert_;
  NodeProc coord_;
};

TEST_F(ClusterTest, EveryNodeServesEveryModelFromThePlannedNodeAndFailoverLosesNothing) {
  start_coordinator();
  NodeProc w1{"pc2", 0, dir_.file("pc2"), nullptr}, w2{"pc3", 0, dir_.file("pc3"), nullptr};
  start_worker(w1);
  start_worker(w2);
  auto where = wait_settled(3, 60s);
  ASSERT_EQ(where.size(), 2u);
  // The embedding model stays off the chat model's device.
  EXPECT_NE(where["story"], where["embed"]);

  // Acceptance 2: every node answers for every model, served where planned.
  for (int port : {coord_.port, w1.port, w2.port}) {
    auto r = client(port).Get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    auto [cs, cby] = complete(port);
    EXPECT_EQ(cs, 200) << "port " << port;
    EXPECT_EQ(cby, where["story"]) << "port " << port;
    // Streaming passes through the forwarding node whole.
    json sbody = {{"model", "story"}, {"prompt", "Once upon a time"}, {"max_tokens", 6}, {"stream", true}};
    auto sr = client(port).Post("/v1/completions", sbody.dump(), "application/json");
    ASSERT_TRUE(sr);
    EXPECT_EQ(sr->status, 200);
    EXPECT_EQ(sr->get_header_value("Content-Type").rfind("text/event-stream", 0), 0u);
    EXPECT_GE(std::count(sr->body.begin(), sr->body.end(), '\n'), 12) << sr->body;
    EXPECT_NE(sr->body.find("data: [DONE]"), std::string::npos) << sr->body;
    // The other APIs' streams end with their own closing events, relayed as they are.
    const std::vector<std::tuple<std::string, json, std::string>> streams = {
        {"/v1/messages", {{"model", "story"}, {"max_tokens", 6}, {"stream", true},
                          {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}}, "event: message_stop"},
        {"/v1/responses", {{"model", "story"}, {"max_output_tokens", 6}, {"stream", true}, {"store", false},
                           {"input", "Once upon a time"}}, "event: response.incomplete"},
        {"/completion", {{"model", "story"}, {"prompt", "Once upon a time"}, {"n_predict", 6}, {"stream", true}},
         "data: {\"stop\":true"}};
    for (const auto& [path, body, end] : streams) {
      auto r = client(port).Post(path, body.dump(), "application/json");
      ASSERT_TRUE(r) << path;
      EXPECT_EQ(r->status, 200) << path << ": " << r->body;
      EXPECT_NE(r->body.find(end), std::string::npos) << path << ": " << r->body;
      EXPECT_EQ(r->body.find("failed mid-stream"), std::string::npos) << path << " on port " << port << ": " << r->body;
      EXPECT_EQ(r->get_header_value("X-Tars-Served-By"), where["story"]) << path << " on port " << port;
    }
    auto [es, eby] = embed(port);
    EXPECT_EQ(es, 200) << "port " << port;
    EXPECT_EQ(eby, where["embed"]) << "port " << port;
    // /tokenize goes where the chat model is, like generation.
    auto tr = client(port).Post("/tokenize", R"({"model": "story", "content": "Once upon a time"})", "application/json");
    ASSERT_TRUE(tr);
    EXPECT_EQ(tr->status, 200) << tr->body;
    EXPECT_EQ(json::parse(tr->body)["tokens"].size(), 4u) << tr->body;
    EXPECT_EQ(tr->get_header_value("X-Tars-Served-By"), where["story"]) << "port " << port;
    // Ollama's API too: a streamed chat in JSON lines, embeddings, the list.
    json ochat = {{"model", "story"}, {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}},
                  {"options", {{"num_predict", 6}}}};
    auto oc = client(port).Post("/api/chat", ochat.dump(), "application/json");
    ASSERT_TRUE(oc);
    EXPECT_EQ(oc->status, 200) << oc->body;
    EXPECT_EQ(oc->get_header_value("Content-Type"), "application/x-ndjson");
    EXPECT_EQ(oc->get_header_value("X-Tars-Served-By"), where["story"]) << "port " << port;
    ASSERT_FALSE(oc->body.empty());
    const std::string last_line = oc->body.substr(oc->body.rfind('\n', oc->body.size() - 2) + 1);
    EXPECT_EQ(json::parse(last_line)["done"], true) << oc->body;
    EXPECT_EQ(json::parse(last_line)["eval_count"], 6) << oc->body;
    auto oe = client(port).Post("/api/embed", R"({"model": "embed", "input": ["a", "b"]})", "application/json");
    ASSERT_TRUE(oe);
    EXPECT_EQ(oe->status, 200) << oe->body;
    EXPECT_EQ(json::parse(oe->body)["embeddings"].size(), 2u);
    EXPECT_EQ(oe->get_header_value("X-Tars-Served-By"), where["embed"]) << "port " << port;
    auto os = client(port).Post("/api/show", R"({"model": "embed"})", "application/json");
    ASSERT_TRUE(os);
    EXPECT_EQ(os->status, 200) << os->body;
    EXPECT_EQ(json::parse(os->body)["capabilities"], json::array({"embedding"}));
    auto ot = client(port).Get("/api/tags");
    ASSERT_TRUE(ot);
    std::set<std::string> names;
    const json tags = json::parse(ot->body);
    for (const auto& m : tags["models"]) {
      names.insert(m["name"].get<std::string>());
      // Each entry from the node that has the file: its details, not only its name.
      EXPECT_GT(m["size"].get<int64_t>(), 0) << m.dump();
      EXPECT_EQ(m["details"]["family"], m["name"] == "story" ? "llama" : "bert") << m.dump();
    }
    EXPECT_EQ(names, (std::set<std::string>{"story", "embed"})) << ot->status << " " << ot->body;
    // /api/ps: the models loaded anywhere in the cluster, each with its size and
    // the node it runs on.
    auto ops = client(port).Get("/api/ps");
    ASSERT_TRUE(ops);
    std::map<std::string, json> running;
    const json ps = json::parse(ops->body);
    for (const auto& m : ps["models"]) running[m["name"].get<std::string>()] = m;
    ASSERT_EQ(running.size(), 2u) << ops->body;
    std::map<std::string, std::string> name_of;  // node id -> name
    const json coordinator_status = status(coord_.port);
    for (const auto& m : coordinator_status["cluster"]["members"]) name_of[m["node_id"]] = m["name"];
    const json here = status(port)["node_id"];
    for (const char* model : {"story", "embed"}) {
      const json& m = running[model];
      EXPECT_GT(m["size"].get<int64_t>(), 0) << ops->body;
      // This node's own entries as they are; the others say where they run.
      if (where[model] == here) EXPECT_FALSE(m.contains("served_by")) << ops->body;
      else EXPECT_EQ(m.value("served_by", ""), name_of[where[model]]) << ops->body;
    }
    auto missing = client(port).Post("/api/chat", R"({"model": "nope", "messages": []})", "application/json");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_TRUE(json::parse(missing->body)["error"].is_string()) << missing->body;  // Ollama's shape
  }
  // The worker that hosts a model fetched its file from the coordinator.
  for (NodeProc* w : {&w1, &w2}) {
    json s = status(w->port);
    for (const auto& m : s["models_loaded"]) {
      EXPECT_NE(m["path"].get<std::string>().find(w->data_dir + "/models/"), std::string::npos)
          << m.dump();
    }
  }

  // Acceptance 3: kill the chat model's worker under a steady stream.
  NodeProc* victim = where["story"] == status(w1.port)["node_id"] ? &w1
                     : where["story"] == status(w2.port)["node_id"] ? &w2 : nullptr;
  ASSERT_NE(victim, nullptr) << "the chat model is expected on a worker (the embedding model "
                                "takes the coordinator's GPU)";
  const std::string victim_id = where["story"];
  std::vector<std::pair<int, std::string>> answers;
  auto t_kill = Clock::now();
  bool killed = false;
  Clock::time_point first_ok_after_kill{};
  for (int i = 0; i < 400 && Clock::now() - t_kill < 40s; ++i) {
    if (i == 5) {
      victim->proc->signal(SIGKILL);
      victim->proc->wait(5s);
      killed = true;
      t_kill = Clock::now();
    }
    auto a = complete(coord_.port);
    answers.push_back(a);
    if (killed && a.first == 200 && first_ok_after_kill == Clock::time_point{}) {
      first_ok_after_kill = Clock::now();
    }
    if (killed && first_ok_after_kill != Clock::time_point{} && Clock::now() - first_ok_after_kill > 1s) break;
    std::this_thread::sleep_for(50ms);
  }
  // Every request got an answer: a success or a clear 503; none vanished.
  int ok = 0, unavailable = 0;
  for (const auto& [code, by] : answers) {
    EXPECT_TRUE(code == 200 || code == 503) << "status " << code << " (" << by << ")";
    ok += code == 200;
    unavailable += code == 503;
  }
  ASSERT_NE(first_ok_after_kill, Clock::time_point{}) << "no request succeeded after the kill; "
                                                       << "coordinator log:\n" << coord_.proc->err();
  double recovery = std::chrono::duration<double>(first_ok_after_kill - t_kill).count();
  // Detection (1.5 s deadline) plus the load of a 1 MB model, with room.
  EXPECT_LT(recovery, 20.0);
  std::printf("failover: %zu requests, %d ok, %d answered 503 while the model moved, first success "
              "%.2f s after the kill\n", answers.size(), ok, unavailable, recovery);
  // The model now lives elsewhere, and the others still answer for it.
  auto moved = wait_settled(2, 30s);
  EXPECT_NE(moved["story"], victim_id);
  EXPECT_EQ(complete(coord_.port).first, 200);

  // The restarted worker (same data directory, same identity) gets its model back.
  start_worker(*victim);
  // Settled with three members may still show the plan of two for a moment
  // (the rejoin is planned on the coordinator's next tick): wait for the move.
  std::map<std::string, std::string> back;
  for (auto deadline = Clock::now() + 60s; Clock::now() < deadline;) {
    back = wait_settled(3, 60s);
    if (back["story"] == victim_id) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(back["story"], victim_id) << "the plan did not return to the preferred layout; log:\n"
                                      << coord_.proc->err();
  auto [s, by] = complete(coord_.port);
  EXPECT_EQ(s, 200);
  EXPECT_EQ(by, victim_id);
}

TEST_F(ClusterTest, AWrongTokenOrProtocolIsRefusedWithTheReason) {
  start_coordinator();
  NodeProc w{"pc2", 0, dir_.file("pc2"), nullptr};
  w.port = free_port();
  std::vector<std::string> argv = {tars_binary(), "worker", "--join",
                                   "http://127.0.0.1:" + std::to_string(coord_.port),
                                   "--port", std::to_string(w.port), "--data-dir", w.data_dir,
                                   "--node-name", "pc2", "--join-token", "not-the-token",
                                   "--log-level", "info"};
  Process p(argv);
  ASSERT_TRUE(wait_http_ready(w.port, 30s)) << p.err();
  auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline && p.err().find("wrong join token") == std::string::npos) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(p.err().find("wrong join token"), std::string::npos) << p.err();
  EXPECT_EQ(status(coord_.port)["cluster"]["members"].size(), 1u);

  // A protocol version from the future is refused naming both versions.
  httplib::Client c = client(coord_.port);
  json reg = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "node.register"},
              {"params", {{"node_id", "x"}, {"name", "future"}, {"url", "http://127.0.0.1:1"},
                          {"version", "9.9.9"}, {"protocol", 99}, {"devices", json::object()}}}};
  auto r = c.Post("/rpc", {{"Authorization", std::string("Bearer ") + kToken}}, reg.dump(),
                  "application/json");
  ASSERT_TRUE(r);
  json j = json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], -32002) << r->body;
  std::string msg = j["error"]["message"];
  EXPECT_NE(msg.find("99"), std::string::npos) << msg;
  EXPECT_NE(msg.find("speaks 1 "), std::string::npos) << msg;
}


TEST_F(ClusterTest, ReplicasServeOnEveryNodeAndSurviveALostCopy) {
  write_file(dir_.file("replicas.toml"), "[[model]]\npath = \"" + fixture("stories260K/stories260K.gguf") +
                                             "\"\nalias = \"story\"\nreplicas = 2\n");
  start_coordinator("replicas.toml");
  NodeProc w{"pc2", 0, dir_.file("pc2"), nullptr};
  start_worker(w);
  // Both copies loaded, one per node.
  json routes;
  for (auto deadline = Clock::now() + 60s; Clock::now() < deadline;) {
    json s = status(coord_.port);
    if (s.contains("cluster")) routes = s["cluster"]["routes"]["routes"];
    if (routes.size() == 1 && routes[0]["replicas"].size() == 2 && routes[0]["replicas"][0]["loaded"] == true &&
        routes[0]["replicas"][1]["loaded"] == true) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(routes.size(), 1u) << routes.dump();
  ASSERT_EQ(routes[0]["replicas"].size(), 2u) << routes.dump();
  const std::string coord_id = status(coord_.port)["node_id"], worker_id = status(w.port)["node_id"];
  // An idle node serves its own copy.
  EXPECT_EQ(complete(coord_.port), std::make_pair(200, coord_id));
  EXPECT_EQ(complete(w.port), std::make_pair(200, worker_id));
  // Losing one copy costs nothing: the coordinator's copy answers every request.
  w.proc->signal(SIGKILL);
  w.proc->wait(5s);
  for (int i = 0; i < 20; ++i) {
    auto [code, by] = complete(coord_.port);
    EXPECT_EQ(code, 200);
    EXPECT_EQ(by, coord_id);
  }
}

TEST_F(ClusterTest, ARerankerIsPlacedAndEveryNodeForwardsRerankRequestsToIt) {
  const std::string reranker = dir_.file("cross.gguf");
  write_random_bert(small_random_bert(4), reranker);
  write_file(dir_.file("rerank.toml"), "[[model]]\npath = \"" + fixture("stories260K/stories260K.gguf") +
                                           "\"\nalias = \"story\"\n[[model]]\npath = \"" + reranker +
                                           "\"\nalias = \"rank\"\nrole = \"rerank\"\n");
  start_coordinator("rerank.toml");
  NodeProc w{"pc2", 0, dir_.file("pc2"), nullptr};
  start_worker(w);
  auto where = wait_settled(2, 60s);
  ASSERT_EQ(where.size(), 2u);
  // An encoder, like the embedding model: kept off the main chat model's device.
  EXPECT_NE(where["story"], where["rank"]);
  std::optional<double> first_score;
  for (int port : {coord_.port, w.port}) {
    // No model named: the cluster's reranker, wherever it is.
    const json body = {{"query", "which card"}, {"documents", {"the big card", "the small card", "bananas"}}};
    auto r = client(port).Post("/v1/rerank", body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("X-Tars-Served-By"), where["rank"]) << "port " << port;
    const json j = json::parse(r->body);
    EXPECT_EQ(j["model"], "rank");
    ASSERT_EQ(j["results"].size(), 3u);
    const double top = j["results"][0]["relevance_score"].get<double>();
    if (first_score) {
      EXPECT_EQ(top, *first_score);  // one model, the same answer through either node
    }
    first_score = top;
    auto tei = client(port).Post("/rerank", R"({"query": "q", "texts": ["a", "b"]})", "application/json");
    ASSERT_TRUE(tei);
    EXPECT_EQ(tei->status, 200) << tei->body;
    EXPECT_TRUE(json::parse(tei->body).is_array()) << tei->body;
    auto os = client(port).Post("/api/show", R"({"model": "rank"})", "application/json");
    ASSERT_TRUE(os);
    EXPECT_EQ(os->status, 200) << os->body;
    EXPECT_EQ(json::parse(os->body)["capabilities"], json::array({"rerank"}));
  }
}

}  // namespace
}  // namespace tars::test
