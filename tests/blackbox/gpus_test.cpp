// `tars gpus` from outside: the real binary, its stdout, stderr and exit code.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

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

// Runs `tars args...` to completion; returns the exit code.
struct TarsRun {
  int code = -1;
  std::string out, err;
};

TarsRun run_tars(std::vector<std::string> args, const std::map<std::string, std::string>& env = {}) {
  args.insert(args.begin(), tars_binary());
  Process p(args, env);
  TarsRun r;
  r.code = p.wait(30s);
  r.out = p.out();
  r.err = p.err();
  return r;
}

json parse_json(const TarsRun& r) {
  try {
    return json::parse(r.out);
  } catch (const json::exception& e) {
    ADD_FAILURE() << "stdout is not JSON (" << e.what() << "):\n" << r.out << "\nstderr:\n" << r.err;
    return json::object();
  }
}

TEST(BlackboxGpus, JsonHasCpuAndRamOnAnyMachine) {
  // An empty TARS_SIMULATE_DEVICES means "detect", whatever the caller's environment holds.
  TarsRun r = run_tars({"gpus", "--json"}, {{"TARS_SIMULATE_DEVICES", ""}});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse_json(r);
  ASSERT_TRUE(j.contains("cpu")) << r.out;
  EXPECT_GE(j["cpu"]["logical_cores"].get<int>(), 1);
  EXPECT_GE(j["cpu"]["physical_cores"].get<int>(), 1);
  EXPECT_GT(j["cpu"]["ram_total"].get<uint64_t>(), 0u);
  EXPECT_GT(j["cpu"]["ram_available"].get<uint64_t>(), 0u);
  EXPECT_TRUE(j["cpu"]["simd"].is_array());
  EXPECT_TRUE(j["gpus"].is_array());
  EXPECT_EQ(j["simulated"], false);
  EXPECT_EQ(j["source"], "detected");
  EXPECT_TRUE(j["warnings"].is_array());
  // Warnings appear on stderr too, one line each.
  for (const auto& w : j["warnings"]) {
    EXPECT_NE(r.err.find(w.get<std::string>()), std::string::npos) << r.err;
  }
}

TEST(BlackboxGpus, TableListsTheCpu) {
  TarsRun r = run_tars({"gpus"}, {{"TARS_SIMULATE_DEVICES", ""}});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("CPU:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RAM:"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("simulated"), std::string::npos) << r.out;
}

TEST(BlackboxGpus, SimulatedByFlag) {
  std::string pc1 = example_inventory("pc1-rtx3060.json");
  TarsRun r = run_tars({"gpus", "--json", "--simulate-devices", pc1});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse_json(r);
  EXPECT_EQ(j["simulated"], true);
  EXPECT_EQ(j["source"], pc1);
  ASSERT_EQ(j["gpus"].size(), 1u) << r.out;
  EXPECT_EQ(j["gpus"][0]["name"], "NVIDIA GeForce RTX 3060");
  EXPECT_EQ(j["gpus"][0]["total_memory"], 12ull << 30);
  EXPECT_EQ(j["gpus"][0]["free_memory"], (23ull << 30) / 2);
  EXPECT_EQ(j["gpus"][0]["compute_capability"], "8.6");
  EXPECT_GT(j["cpu"]["ram_total"].get<uint64_t>(), 0u);

  TarsRun table = run_tars({"gpus", "--simulate-devices", pc1});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("simulated inventory from " + pc1), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("NVIDIA GeForce RTX 3060"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("11.50 GiB / 12.00 GiB"), std::string::npos) << table.out;
}

TEST(BlackboxGpus, SimulatedByEnvironment) {
  std::string pc2 = example_inventory("pc2-gtx1660super.json");
  TarsRun r = run_tars({"gpus", "--json"}, {{"TARS_SIMULATE_DEVICES", pc2}});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse_json(r);
  EXPECT_EQ(j["simulated"], true);
  EXPECT_EQ(j["source"], pc2);
  ASSERT_EQ(j["gpus"].size(), 1u) << r.out;
  EXPECT_EQ(j["gpus"][0]["name"], "NVIDIA GeForce GTX 1660 SUPER");
  EXPECT_EQ(j["gpus"][0]["total_memory"], 6ull << 30);
  EXPECT_EQ(j["gpus"][0]["compute_capability"], "7.5");
}

TEST(BlackboxGpus, FlagWinsOverEnvironment) {
  std::string pc1 = example_inventory("pc1-rtx3060.json");
  std::string pc2 = example_inventory("pc2-gtx1660super.json");
  TarsRun r = run_tars({"gpus", "--json", "--simulate-devices", pc1}, {{"TARS_SIMULATE_DEVICES", pc2}});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse_json(r);
  EXPECT_EQ(j["source"], pc1);
  ASSERT_EQ(j["gpus"].size(), 1u);
  EXPECT_EQ(j["gpus"][0]["name"], "NVIDIA GeForce RTX 3060");
}

TEST(BlackboxGpus, BothPcsTogether) {
  // The two example PCs' GPUs in one inventory, written the way a user would.
  TempDir dir;
  std::string both = dir.file("both.json");
  json pc1 = json::parse(read_file(example_inventory("pc1-rtx3060.json")));
  json pc2 = json::parse(read_file(example_inventory("pc2-gtx1660super.json")));
  write_file(both, json{{"gpus", {pc1["gpus"][0], pc2["gpus"][0]}}}.dump());
  TarsRun r = run_tars({"gpus", "--json", "--simulate-devices", both});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse_json(r);
  ASSERT_EQ(j["gpus"].size(), 2u) << r.out;
  EXPECT_EQ(j["gpus"][0]["index"], 0);
  EXPECT_EQ(j["gpus"][1]["index"], 1);
  EXPECT_EQ(j["gpus"][1]["name"], "NVIDIA GeForce GTX 1660 SUPER");
  EXPECT_NE(j["gpus"][0]["uuid"], j["gpus"][1]["uuid"]);
}

TEST(BlackboxGpus, OldSimulatedDriverWarnsOnStderrAndListsOnlyTheCpu) {
  TempDir dir;
  std::string path = dir.file("old.json");
  write_file(path, R"({"gpus": [{"name": "G", "total_memory": "8GiB", "free_memory": "8GiB",
                       "compute_capability": "8.6"}], "cuda_driver_version": 12020})");
  TarsRun r = run_tars({"gpus", "--json", "--simulate-devices", path});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse_json(r);
  EXPECT_TRUE(j["gpus"].empty());
  ASSERT_EQ(j["warnings"].size(), 1u);
  EXPECT_NE(r.err.find("580"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("12.2"), std::string::npos) << r.err;
}

TEST(BlackboxGpus, BadFileFailsNamingIt) {
  TempDir dir;
  std::string bad = dir.file("bad.json");
  write_file(bad, R"({"gpus": [{"name": "G", "total_memory": "6GiB", "free_memory": "7GiB",
                      "compute_capability": "7.5"}]})");
  TarsRun r = run_tars({"gpus", "--json", "--simulate-devices", bad});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gpus[0].free_memory"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  std::string missing = dir.file("missing.json");
  TarsRun m = run_tars({"gpus"}, {{"TARS_SIMULATE_DEVICES", missing}});
  EXPECT_NE(m.code, 0);
  EXPECT_NE(m.err.find(missing), std::string::npos) << m.err;
}

}  // namespace
}  // namespace tars::test
