// Black-box: where a node's models run ([engine] device / --device).
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "engine/backend_cuda.h"
#include "support/test_support.h"

namespace tars::test {
namespace {

using namespace std::chrono_literals;

TEST(DeviceChoice, CudaWithoutADeviceFailsClearlyAndAutoFallsBackToTheCpu) {
  std::string reason;
  const bool have_cuda = engine::backend_cuda_available(&reason);
  TempDir dir;
  const std::string model = fixture("stories260K/stories260K.gguf");
  if (!have_cuda) {
    Process p({tars_binary(), "serve", "--port", std::to_string(free_port()), "--data-dir",
               dir.file("a"), "--model", model, "--device", "cuda"});
    EXPECT_EQ(p.wait(30s), 1);
    EXPECT_NE(p.err().find("device cuda: " + reason), std::string::npos) << p.err();
  }
  int port = free_port();
  Process p({tars_binary(), "serve", "--port", std::to_string(port), "--data-dir", dir.file("b"),
             "--model", model, "--device", "auto"});
  ASSERT_TRUE(wait_http_ready(port, 30s)) << p.err();
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/status");
  ASSERT_TRUE(r);
  auto j = nlohmann::json::parse(r->body);
  ASSERT_EQ(j["models_loaded"].size(), 1u);
  EXPECT_EQ(j["models_loaded"][0]["backend"], have_cuda ? "cuda" : "cpu") << r->body;
  if (!have_cuda) {
    EXPECT_NE(p.err().find("runs on the CPU"), std::string::npos) << p.err();
  }
}

}  // namespace
}  // namespace tars::test
