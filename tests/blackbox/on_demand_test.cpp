// Black-box: `tars serve` with on-demand models from a config file. The
// first request loads a model, /status shows it, keep-alive unloads it, the
// memory budget evicts the least recently used one, and /files serves it.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/test_support.h"

namespace tars::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class OnDemandTest : public ::testing::Test {
 protected:
  // `models_toml`: the [[model]] tables; `extra`: more flags.
  void start(const std::string& models_toml, std::vector<std::string> extra = {}) {
    std::string cfg = data_.file("tars.toml");
    write_file(cfg, models_toml);
    port_ = free_port();
    std::vector<std::string> argv = {tars_binary(), "serve",  "--config",  cfg,
                                     "--port",      std::to_string(port_), "--data-dir",
                                     data_.path() + "/data", "--node-name", "od-node",
                                     "--threads",   "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<Process>(argv);
    ASSERT_TRUE(wait_http_ready(port_, 20s)) << "node did not come up; stderr:\n" << proc_->err();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(20, 0);
    return c;
  }
  json get(const std::string& path) {
    auto r = client().Get(path.c_str());
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    return json::parse(r->body);
  }
  json model_status(const std::string& id) {
    json status = get("/status");  // named: a temporary's member would dangle in the loop
    for (const auto& m : status["models_loaded"]) {
      if (m["id"] == id) return m;
    }
    ADD_FAILURE() << "no /status entry for " << id;
    return json();
  }
  int complete(const std::string& model) {
    json body = {{"model", model}, {"prompt", "Once upon a time"}, {"max_tokens", 8},
                 {"temperature", 0}};
    auto r = client().Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return 0;
    if (r->status == 200) {
      EXPECT_FALSE(json::parse(r->body)["choices"][0]["text"].get<std::string>().empty());
    }
    return r->status;
  }
  static std::string model_toml(const std::string& alias, int keep_alive) {
    return "[[model]]\npath = \"" + fixture("stories260K/stories260K.gguf") + "\"\nalias = \"" +
           alias + "\"\nload = \"on_demand\"\nkeep_alive = " + std::to_string(keep_alive) + "\n";
  }

  TempDir data_;
  int port_ = 0;
  std::unique_ptr<Process> proc_;
};

TEST_F(OnDemandTest, FirstRequestLoadsTheModelAndStatusShowsIt) {
  start(model_toml("story", 300));
  json before = model_status("story");
  EXPECT_EQ(before["state"], "unloaded");
  EXPECT_EQ(before["load"], "on_demand");
  EXPECT_TRUE(before["last_used"].is_null());
  EXPECT_EQ(get("/status")["model_host"]["loads"], 0);
  // Listed, as not loaded, before any request.
  json v1 = get("/v1/models");
  ASSERT_EQ(v1["data"].size(), 1u);
  EXPECT_EQ(v1["data"][0]["id"], "story");
  EXPECT_EQ(v1["data"][0]["loaded"], false);
  EXPECT_EQ(get("/models")["models"][0]["loaded"], false);

  EXPECT_EQ(complete("story"), 200);
  json after = model_status("story");
  EXPECT_EQ(after["state"], "loaded");
  EXPECT_EQ(after["loads"], 1);
  EXPECT_TRUE(after["last_used"].is_number());
  EXPECT_GT(after["memory"]["total"].get<uint64_t>(), 0u);
  EXPECT_EQ(get("/v1/models")["data"][0]["loaded"], true);
  EXPECT_EQ(get("/models")["models"][0]["loaded"], true);
  // A second request reuses it.
  EXPECT_EQ(complete("story"), 200);
  EXPECT_EQ(model_status("story")["loads"], 1);

  // An unknown model: 404 with a JSON message naming each served model once.
  json bad = {{"model", "no-such-model"}, {"prompt", "hi"}, {"max_tokens", 2}};
  auto nf = client().Post("/v1/completions", bad.dump(), "application/json");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404) << nf->body;
  const std::string msg = json::parse(nf->body)["error"]["message"];
  EXPECT_NE(msg.find("no-such-model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("story"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("story"), msg.rfind("story")) << "a model listed twice: " << msg;
  EXPECT_NE(proc_->err().find("loading model story"), std::string::npos);

  // The model file API serves it with its sha256.
  std::string bytes = read_file(fixture("stories260K/stories260K.gguf"));
  json info = get("/files/story/info");
  EXPECT_EQ(info["size"], bytes.size());
  EXPECT_EQ(info["sha256"], sha256_hex(bytes.data(), bytes.size()));
}

TEST_F(OnDemandTest, KeepAliveAndMemoryBudget) {
  // `tars serve` estimates like the planner: weights 1.12 MiB + KV cache
  // 320 KiB + compute 2.8 MiB = 4.2 MiB per model, so a budget of 6 MiB
  // holds one of the two.
  start(model_toml("a", 300) + model_toml("b", 1), {"--memory-budget", "6MiB"});
  EXPECT_EQ(get("/status")["model_host"]["memory_budget"], 6u << 20);
  EXPECT_EQ(complete("a"), 200);
  EXPECT_EQ(complete("b"), 200);  // evicts a, the least recently used
  EXPECT_EQ(model_status("a")["state"], "unloaded");
  EXPECT_EQ(model_status("a")["evictions"], 1);
  EXPECT_EQ(get("/status")["model_host"]["evictions"], 1);
  // b has a keep-alive of 1 s.
  std::string state;
  for (int i = 0; i < 40 && state != "unloaded"; ++i) {
    std::this_thread::sleep_for(100ms);
    state = model_status("b")["state"];
  }
  EXPECT_EQ(state, "unloaded");
  EXPECT_EQ(model_status("b")["keep_alive_unloads"], 1);
}

}  // namespace
}  // namespace tars::test
