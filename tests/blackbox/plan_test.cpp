// `tars plan` from outside: the real binary on the scenario of issue 6 (the
// user's two PCs as simulated inventories, sparse model files of the real
// shapes declared in a config file), its table, its JSON and its reasons.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/sparse_model.h"
#include "support/test_support.h"

namespace tars::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string example_inventory(const std::string& name) {
  fs::path p = fs::path(__FILE__).parent_path().parent_path().parent_path() / "examples" /
               "inventories" / name;
  EXPECT_TRUE(fs::exists(p)) << p;
  return p.string();
}

struct TarsRun {
  int code = -1;
  std::string out, err;
};

TarsRun run_tars(std::vector<std::string> args) {
  args.insert(args.begin(), tars_binary());
  Process p(args, {{"TARS_SIMULATE_DEVICES", ""}, {"TARS_CONFIG", ""}});
  TarsRun r;
  r.code = p.wait(60s);
  r.out = p.out();
  r.err = p.err();
  return r;
}

// Writes the scenario's sparse files and a config declaring them; returns
// the config's path. `extra` is appended to the config.
std::string write_scenario(const TempDir& dir, const std::string& extra = "") {
  std::string toml;
  for (const auto& s : issue6_scenario_models()) {
    write_sparse_model(s.spec, dir.file(s.alias + ".gguf"));
    toml += "[[model]]\npath = \"" + s.alias + ".gguf\"\nalias = \"" + s.alias + "\"\nrole = \"" + s.role +
            "\"\nload = \"" + s.load + "\"\nctx_size = " + std::to_string(s.ctx_size) + "\nslots = 1\n\n";
  }
  write_file(dir.file("tars.toml"), toml + extra);
  return dir.file("tars.toml");
}

std::vector<std::string> scenario_args(const std::string& config) {
  return {"plan", "--config", config, "--inventory", "pc1=" + example_inventory("pc1-rtx3060.json"),
          "--inventory", "pc2=" + example_inventory("pc2-gtx1660super.json")};
}

// The table row of a model: the line that starts with its name.
std::string row_of(const std::string& out, const std::string& model) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(model + " ", 0) == 0) return line;
  }
  ADD_FAILURE() << "no row for " << model << " in:\n" << out;
  return "";
}

TEST(BlackboxPlan, IssueScenarioTable) {
  TempDir dir;
  const TarsRun r = run_tars(scenario_args(write_scenario(dir)));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  struct Row {
    const char* model;
    const char* placement;
    const char* quant;
    const char* load;
  };
  const Row expected[] = {
      {"mistral-7b-instruct", "pc1/gpu0 NVIDIA GeForce RTX 3060", "Q4_K_M", "resident"},
      {"llama-2-7b-chat", "pc1/gpu0 NVIDIA GeForce RTX 3060", "Q4_K_M", "on-demand"},
      {"neural-chat-7b", "pc1/gpu0 NVIDIA GeForce RTX 3060", "Q4_K_M", "on-demand"},
      {"all-minilm-l6-v2", "pc2/gpu0 NVIDIA GeForce GTX 1660 SUPER", "F32", "resident"},
      {"phi-2", "pc2/gpu0 NVIDIA GeForce GTX 1660 SUPER", "Q8_0", "on-demand"},
      {"stablelm-3b", "pc2/gpu0 NVIDIA GeForce GTX 1660 SUPER", "Q8_0", "on-demand"},
  };
  for (const auto& e : expected) {
    const std::string row = row_of(r.out, e.model);
    // Columns: MODEL ROLE LOAD PLACEMENT QUANT SLOTS CTX NEED.
    EXPECT_NE(row.find(std::string(" ") + e.load + " "), std::string::npos) << row;
    EXPECT_NE(row.find(std::string(" ") + e.placement + " "), std::string::npos) << row;
    EXPECT_NE(row.find(std::string(" ") + e.quant + " "), std::string::npos) << row;
  }
  // The numbers behind the decisions.
  EXPECT_NE(r.out.find("F16 needs 5.99 GiB > 5.06 GiB available"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("room: free 11.50 GiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("swaps with stablelm-3b"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("avoided: hosts the main chat model mistral-7b-instruct"), std::string::npos) << r.out;
}

// A model trained for a long context, declared without ctx_size: the plan
// gives it the default context (at most 4096, as llama.cpp and Ollama), so a
// Llama-3.2-3B-shaped Q8_0 (trained for 131072) sits whole on the 6 GB card.
// Its trained context would need 14 GiB of KV cache per slot, and only 7 of
// its 28 layers went to the GPU. Asked for explicitly, that context is planned
// as asked: split between the GPU and RAM.
TEST(BlackboxPlan, LongTrainedContextDefaultsTo4096) {
  TempDir dir;
  SparseModelSpec s;
  s.n_embd = 3072;
  s.n_layer = 28;
  s.n_head = 24;
  s.n_head_kv = 8;
  s.n_ff = 8192;
  s.n_vocab = 128256;
  s.n_ctx = 131072;
  s.quant = "Q8_0";
  write_sparse_model(s, dir.file("llama-3.2-3b.gguf"));
  const std::string decl = "[[model]]\npath = \"llama-3.2-3b.gguf\"\nalias = \"llama-3.2-3b\"\nslots = 1\n";
  write_file(dir.file("default.toml"), decl);
  write_file(dir.file("long.toml"), decl + "ctx_size = 131072\n");
  const std::vector<std::string> inv = {"--inventory", "pc2=" + example_inventory("pc2-gtx1660super.json"), "--json"};

  std::vector<std::string> args = {"plan", "--config", dir.file("default.toml")};
  args.insert(args.end(), inv.begin(), inv.end());
  TarsRun r = run_tars(args);
  ASSERT_EQ(r.code, 0) << r.err;
  json m = json::parse(r.out)["models"][0];
  EXPECT_EQ(m["ctx_size"], 4096) << m.dump();
  EXPECT_EQ(m["device"], "gpu0") << m.dump();
  EXPECT_EQ(m["quant"], "Q8_0") << m.dump();
  EXPECT_EQ(m["gpu_layers"], -1) << "whole on the GPU: " << m.dump();

  args[2] = dir.file("long.toml");
  r = run_tars(args);
  ASSERT_EQ(r.code, 0) << r.err;
  m = json::parse(r.out)["models"][0];
  EXPECT_EQ(m["ctx_size"], 131072) << m.dump();
  EXPECT_EQ(m["device"], "gpu0") << m.dump();
  EXPECT_GT(m["gpu_layers"], 0) << "split: " << m.dump();
  EXPECT_LT(m["gpu_layers"], 28) << "split: " << m.dump();
}

TEST(BlackboxPlan, JsonAndAModelThatFitsNowhere) {
  TempDir dir;
  // A 70B-wide shape with 320 layers (about 160 GiB at Q4_K_M): fits no
  // device, whole or split over a GPU and the RAM of any machine running this
  // (the simulated inventories take the real machine's RAM).
  SparseModelSpec big;
  big.n_embd = 8192;
  big.n_layer = 320;
  big.n_head = 64;
  big.n_head_kv = 8;
  big.n_ff = 28672;
  big.quant = "Q4_K_M";
  write_sparse_model(big, dir.file("llama-70b.gguf"));
  const std::string config = write_scenario(
      dir, "[[model]]\npath = \"llama-70b.gguf\"\nalias = \"llama-70b\"\nctx_size = 4096\nslots = 1\n");
  std::vector<std::string> args = scenario_args(config);

  const TarsRun table = run_tars(args);
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(row_of(table.out, "llama-70b").find("UNPLACED"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("reason: fits on no device"), std::string::npos) << table.out;

  args.push_back("--json");
  const TarsRun r = run_tars(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["models"].size(), 7u);
  EXPECT_EQ(j["models"][4]["model"], "phi-2");
  EXPECT_EQ(j["models"][4]["node"], "pc2");
  EXPECT_EQ(j["models"][4]["quant"], "Q8_0");
  EXPECT_EQ(j["models"][4]["source_quant"], "F16");
  EXPECT_GT(j["models"][4]["need_bytes"].get<uint64_t>(), 3u << 30);
  EXPECT_EQ(j["models"][6]["placed"], false);
  EXPECT_EQ(j["models"][6]["rejected"].size(), 4u);
}

TEST(BlackboxPlan, BadInventoryArgumentIsNamed) {
  TempDir dir;
  write_file(dir.file("tars.toml"), "[[model]]\npath = \"x.gguf\"\n");
  const TarsRun r = run_tars({"plan", "--config", dir.file("tars.toml"), "--inventory", "pc1"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("NODE=FILE"), std::string::npos) << r.err;
}

TEST(BlackboxPlan, UnreadableModelIsUnplacedWithTheReason) {
  TempDir dir;
  write_file(dir.file("broken.gguf"), "not a gguf file");
  write_file(dir.file("tars.toml"), "[[model]]\npath = \"broken.gguf\"\nalias = \"broken\"\n");
  std::vector<std::string> args = {"plan", "--config", dir.file("tars.toml"), "--inventory",
                                   "pc1=" + example_inventory("pc1-rtx3060.json")};
  const TarsRun r = run_tars(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(row_of(r.out, "broken").find("UNPLACED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("broken.gguf"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace tars::test
