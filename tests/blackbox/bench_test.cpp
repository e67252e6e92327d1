// Black-box test of `tars bench` on the real stories260K model: the JSON
// record has one entry per test with its repetitions, and says where the
// model ran; the table names the same tests.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace tars::test {
namespace {

using namespace std::chrono_literals;

TEST(BenchCommand, JsonRecordsEachTestAndTheBackend) {
  Process p({tars_binary(), "bench", fixture("stories260K/stories260K.gguf"), "-p", "16", "-n", "8", "-r",
             "2", "-t", "1", "--json"});
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  const auto j = nlohmann::json::parse(p.out());
  ASSERT_EQ(j.size(), 2u) << p.out();
  EXPECT_EQ(j[0]["test"], "pp16");
  EXPECT_EQ(j[1]["test"], "tg8");
  for (const auto& r : j) {
    EXPECT_EQ(r["backend"], "cpu");
    EXPECT_NE(r["parts"].get<std::string>().find("CPU"), std::string::npos) << r.dump();
    EXPECT_EQ(r["n_threads"], 1);
    EXPECT_EQ(r["reps"], 2);
    ASSERT_EQ(r["samples_ts"].size(), 2u);
    EXPECT_GT(r["avg_ts"].get<double>(), 0.0);
    EXPECT_EQ(r["model_type"], "llama");
    // What CUDA graphs did (gpu_check reads these): nothing, on the CPU.
    for (const char* k : {"cuda_graph_launches", "cuda_graph_replays", "cuda_graph_mismatches",
                          "cuda_graph_instantiations"}) {
      ASSERT_TRUE(r.contains(k)) << k;
      EXPECT_EQ(r[k], 0) << k;
    }
  }
}

TEST(BenchCommand, TableAndGpuLayersWithoutAGpu) {
  // --gpu-layers asks nothing of a CPU run: the same table, every layer on the CPU.
  Process p({tars_binary(), "bench", fixture("stories260K/stories260K.gguf"), "-p", "8", "-n", "4", "-r",
             "1", "--gpu-layers", "2"});
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  EXPECT_NE(p.out().find("| pp8 |"), std::string::npos) << p.out();
  EXPECT_NE(p.out().find("| tg4 |"), std::string::npos) << p.out();
  EXPECT_NE(p.out().find("CPU ("), std::string::npos) << p.out();
  EXPECT_NE(p.err().find("--gpu-layers 2 has no effect"), std::string::npos) << p.err();
}

}  // namespace
}  // namespace tars::test
