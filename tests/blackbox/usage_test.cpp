// The usage ledger on real nodes: two `tars serve` processes writing to one
// real PostgreSQL; GET /usage on either says what both did, with the token
// counts their API answers gave.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "support/metrics_text.h"
#include "support/postgres_server.h"
#include "support/test_support.h"

namespace tars::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct Node {
  TempDir data;
  int port = free_port();
  std::unique_ptr<Process> proc;

  Node(const std::string& name, std::vector<std::string> args) {
    std::vector<std::string> argv = {tars_binary(), "serve",  "--port", std::to_string(port), "--data-dir",
                                     data.path(),   "--node-name", name, "--threads", "1"};
    argv.insert(argv.end(), args.begin(), args.end());
    proc = std::make_unique<Process>(argv);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    return c;
  }
  json post(const std::string& path, const json& body) {
    auto r = client().Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  }
  std::pair<int, json> get(const std::string& path) {
    auto r = client().Get(path.c_str());
    EXPECT_TRUE(r);
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
};

TEST(UsageNodes, TwoNodesOneLedgerWithTheTokensTheirAnswersGave) {
  PostgresServer pg;
  Node pc1("pc1", {"--model", fixture("stories260K/stories260K.gguf"), "--postgres", pg.url()});
  Node pc2("pc2", {"--embedding-model", fixture("reference/bert-tiny.gguf"), "--postgres", pg.url()});
  Node plain("plain", {"--model", fixture("stories260K/stories260K.gguf")});
  for (Node* n : {&pc1, &pc2, &plain}) ASSERT_TRUE(wait_http_ready(n->port, 30s)) << n->proc->err();

  json c1 = pc1.post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
  json c2 = pc1.post("/v1/chat/completions",
                     {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 5}, {"temperature", 0}});
  json e1 = pc2.post("/v1/embeddings", {{"input", {"one", "two words", "and three words"}}});

  // Written within a second or so; the answer is the same from either node.
  json by_model;
  for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;) {
    auto [status, j] = pc2.get("/usage");
    ASSERT_EQ(status, 200) << j.dump();
    if (j["totals"]["requests"] == 3) {
      by_model = j;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(by_model.is_null()) << "the three requests never all reached the ledger";
  const int64_t p1 = c1["usage"]["prompt_tokens"], p2 = c2["usage"]["prompt_tokens"];
  const int64_t g1 = c1["usage"]["completion_tokens"], g2 = c2["usage"]["completion_tokens"];
  ASSERT_EQ(by_model["rows"].size(), 2u) << by_model.dump();
  EXPECT_EQ(by_model["rows"][0]["model"], "bert-tiny");
  EXPECT_EQ(by_model["rows"][0]["node"], "pc2");
  EXPECT_EQ(by_model["rows"][0]["requests"], 1);
  EXPECT_EQ(by_model["rows"][0]["prompt_tokens"], e1["usage"]["prompt_tokens"]);
  EXPECT_EQ(by_model["rows"][0]["completion_tokens"], 0);
  EXPECT_EQ(by_model["rows"][1]["model"], "stories260K");
  EXPECT_EQ(by_model["rows"][1]["node"], "pc1");
  EXPECT_EQ(by_model["rows"][1]["requests"], 2);
  EXPECT_EQ(by_model["rows"][1]["prompt_tokens"], p1 + p2);
  EXPECT_EQ(by_model["rows"][1]["completion_tokens"], g1 + g2);
  EXPECT_GT(by_model["rows"][1]["duration_s"].get<double>(), 0);

  auto [s1, same] = pc1.get("/usage");
  EXPECT_EQ(same["rows"], by_model["rows"]);
  auto [s2, by_node] = pc1.get("/usage?group=node&since=2000-01-01");
  ASSERT_EQ(s2, 200);
  ASSERT_EQ(by_node["rows"].size(), 2u);
  EXPECT_EQ(by_node["rows"][0]["node"], "pc1");
  EXPECT_EQ(by_node["since"], "2000-01-01");
  auto [s3, future] = pc1.get("/usage?since=2999-01-01");
  ASSERT_EQ(s3, 200);
  EXPECT_EQ(future["rows"], json::array());

  // The kinds and finishes, as written.
  EXPECT_EQ(pg.query("SELECT string_agg(kind || ':' || finish, ',' ORDER BY kind) FROM tars_usage"),
            "chat:length,completion:length,embedding:");

  // Errors: a bad group or time is the client's; a node without a ledger says how to get one.
  auto [bad_group, bg] = pc1.get("/usage?group=week");
  EXPECT_EQ(bad_group, 400);
  EXPECT_NE(bg["error"]["message"].get<std::string>().find("model, day or node"), std::string::npos);
  auto [bad_time, bt] = pc1.get("/usage?since=tomorrow-ish");
  EXPECT_EQ(bad_time, 400) << bt.dump();
  auto [none, nb] = plain.get("/usage");
  EXPECT_EQ(none, 404);
  EXPECT_NE(nb["error"]["message"].get<std::string>().find("--postgres"), std::string::npos);
}

TEST(UsageNodes, MetricsAndStatusShowTheLedger) {
  PostgresServer pg;
  Node pc1("pc1", {"--model", fixture("stories260K/stories260K.gguf"), "--postgres", pg.url()});
  ASSERT_TRUE(wait_http_ready(pc1.port, 30s)) << pc1.proc->err();
  pc1.post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 3}});
  double written = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 20s;
       written < 1 && std::chrono::steady_clock::now() < deadline;) {
    auto r = pc1.client().Get("/metrics");
    ASSERT_TRUE(r);
    auto t = parse_metrics_text(r->body);
    written = t.has("tars_usage_log_written_total") ? t.at("tars_usage_log_written_total") : 0;
    if (written < 1) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(written, 1);
  auto [status, s] = pc1.get("/status");
  EXPECT_EQ(s["model_host"]["usage_log"]["written"], 1);
  EXPECT_EQ(s["model_host"]["usage_log"]["connected"], true);
}

TEST(UsageNodes, ABadPostgresStringStopsTheNodeWithTheReason) {
  TempDir data;
  Process p({tars_binary(), "serve", "--port", std::to_string(free_port()), "--data-dir", data.path(), "--postgres",
             "host=h nosuchkey=1"});
  EXPECT_NE(p.wait(30s), 0);
  EXPECT_NE(p.err().find("state.postgres"), std::string::npos) << p.err();
  EXPECT_NE(p.err().find("--postgres"), std::string::npos) << p.err();
}

}  // namespace
}  // namespace tars::test
