// Black-box tests of `tars serve`: the real binary on a free loopback port.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace tars::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// A node started on a free port with its data in a temporary folder.
class ServeTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {}) {
    port_ = free_port();
    std::vector<std::string> argv = {tars_binary(), "serve", "--port", std::to_string(port_),
                                     "--data-dir", data_.path(), "--node-name", "bb-node"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<Process>(argv, env);
    ASSERT_TRUE(wait_http_ready(port_, 20s)) << "node did not come up; stderr:\n" << proc_->err();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    return c;
  }
  static json body_json(const httplib::Result& r) {
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    return json::parse(r->body);  // throws (fails the test) on invalid JSON
  }

  TempDir data_;
  int port_ = 0;
  std::unique_ptr<Process> proc_;
};

TEST_F(ServeTest, SeedEndpointsAnswerJson) {
  start();
  auto c = client();

  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  json health = body_json(h);
  EXPECT_EQ(health["status"], "ok");
  EXPECT_TRUE(health["version"].is_string());
  EXPECT_EQ(health["node_name"], "bb-node");
  EXPECT_EQ(health["node_id"].get<std::string>().size(), 36u);
  EXPECT_GE(health["uptime_s"].get<double>(), 0.0);

  auto s = c.Get("/status");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 200);
  json status = body_json(s);
  EXPECT_TRUE(status["devices"].is_object());
  EXPECT_TRUE(status["models_loaded"].is_array());
  EXPECT_GE(status["requests_in_flight"].get<int>(), 1);  // this request

  auto m = c.Get("/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_TRUE(body_json(m)["models"].is_array());

  auto cfg = c.Get("/config");
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->status, 200);
  json config = body_json(cfg);
  EXPECT_EQ(config["server"]["port"], port_);
  EXPECT_EQ(config["node"]["name"], "bb-node");
  EXPECT_EQ(config["sources"]["server.port"], "flag");
}

TEST_F(ServeTest, IdentitySurvivesARestart) {
  start();
  std::string id = body_json(client().Get("/health"))["node_id"];
  proc_->signal(SIGTERM);
  ASSERT_EQ(proc_->wait(5s), 0);
  start();
  EXPECT_EQ(body_json(client().Get("/health"))["node_id"], id);
}

TEST_F(ServeTest, ErrorsAreJson) {
  start({"--max-body", "1KiB"});
  auto c = client();

  auto nf = c.Get("/no/such/thing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_NE(body_json(nf)["error"]["message"].get<std::string>().find("/no/such/thing"),
            std::string::npos);

  auto na = c.Post("/health", "{}", "application/json");
  ASSERT_TRUE(na);
  EXPECT_EQ(na->status, 405);
  EXPECT_EQ(na->get_header_value("Allow"), "GET");
  EXPECT_EQ(body_json(na)["error"]["code"], "method_not_allowed");

  auto del = c.Delete("/models");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);

  auto inf = c.Post("/inference", R"({"prompt": "hi"})", "application/json");
  ASSERT_TRUE(inf);
  EXPECT_EQ(inf->status, 503);
  json e = body_json(inf);
  EXPECT_EQ(e["error"]["code"], "no_model_loaded");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("no model loaded"), std::string::npos);

  auto emb = c.Post("/embed", R"({"input": ["a"]})", "application/json");
  ASSERT_TRUE(emb);
  EXPECT_EQ(emb->status, 503);

  auto bad = c.Post("/inference", "{not json", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(body_json(bad)["error"]["code"], "invalid_json");

  // A number no double holds is the parser's out_of_range, not an internal error.
  auto huge = c.Post("/inference", R"({"prompt": "hi", "max_tokens": 1e999})", "application/json");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 400);
  EXPECT_EQ(body_json(huge)["error"]["code"], "invalid_json");

  auto arr = c.Post("/inference", "[1,2]", "application/json");
  ASSERT_TRUE(arr);
  EXPECT_EQ(arr->status, 400);

  auto big = c.Post("/inference", std::string(4096, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(body_json(big)["error"]["code"], "body_too_large");

  // The node still answers after all that.
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST_F(ServeTest, BusyPortFailsFastWithAClearMessage) {
  start();
  Process second({tars_binary(), "serve", "--port", std::to_string(port_), "--data-dir",
                  data_.path(), "--node-name", "second"});
  int code = second.wait(10s);
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -1) << "second node did not exit";
  std::string err = second.err();
  EXPECT_NE(err.find(std::to_string(port_)), std::string::npos) << err;
  EXPECT_NE(err.find("already in use"), std::string::npos) << err;
  EXPECT_NE(err.find("--port"), std::string::npos) << err;
}

TEST_F(ServeTest, SigtermStopsWithinFiveSecondsWithExitZero) {
  start();
  // A kept-alive connection must not hold the shutdown up.
  auto c = client();
  c.set_keep_alive(true);
  ASSERT_TRUE(c.Get("/health"));
  auto t0 = std::chrono::steady_clock::now();
  proc_->signal(SIGTERM);
  int code = proc_->wait(5s);
  EXPECT_EQ(code, 0) << proc_->err();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(ServeTest, SigintStopsWithExitZero) {
  start();
  proc_->signal(SIGINT);
  EXPECT_EQ(proc_->wait(5s), 0) << proc_->err();
}

TEST_F(ServeTest, LogsGoToStderrAndTheNodeLogFile) {
  start();
  proc_->signal(SIGTERM);
  ASSERT_EQ(proc_->wait(5s), 0);
  std::string file_log = read_file(data_.path() + "/logs/bb-node.log");
  EXPECT_NE(file_log.find("listening on"), std::string::npos) << file_log;
  EXPECT_NE(proc_->err().find("listening on"), std::string::npos);
}

TEST_F(ServeTest, InvalidConfigFileNamesFileAndKey) {
  TempDir dir;
  write_file(dir.file("bad.toml"), "[server]\nport = \"x\"\n");
  Process p({tars_binary(), "serve", "--config", dir.file("bad.toml")});
  EXPECT_EQ(p.wait(10s), 1);
  EXPECT_NE(p.err().find("bad.toml"), std::string::npos) << p.err();
  EXPECT_NE(p.err().find("server.port"), std::string::npos) << p.err();
}

TEST_F(ServeTest, PrintConfigShowsSourcesAndRedactsSecrets) {
  Process p({tars_binary(), "serve", "--print-config", "--port", "8123"},
            {{"TARS_JOIN_TOKEN", "hunter2"}, {"TARS_NODE_NAME", "envname"}});
  ASSERT_EQ(p.wait(10s), 0) << p.err();
  std::string out = p.out();
  EXPECT_NE(out.find("port = 8123  # flag"), std::string::npos) << out;
  EXPECT_NE(out.find("name = 'envname'  # env"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
}

}  // namespace
}  // namespace tars::test
