// The formats Ollama's clients parse in tars's answers: RFC 3339 times with
// nanoseconds, and the parameter count as Ollama writes it. (The endpoints
// themselves are tested with the official ollama npm package:
// tests/clients/ollama.test.mjs.)
#include "node/ollama_api.h"

#include <gtest/gtest.h>

namespace tars::node {
namespace {

TEST(OllamaApi, TimesAreRfc3339WithNanoseconds) {
  EXPECT_EQ(ollama_time(0), "1970-01-01T00:00:00.000000000Z");
  // 2026-11-27 15:04:05 UTC and 123456789 ns (1795791845 s since the epoch).
  EXPECT_EQ(ollama_time(1'795'791'845'123'456'789LL), "2026-11-27T15:04:05.123456789Z");
  EXPECT_EQ(ollama_time(-1), "1969-12-31T23:59:59.999999999Z");  // before the epoch: the second before
}

TEST(OllamaApi, ParameterSizesAsOllamaWritesThem) {
  EXPECT_EQ(ollama_parameter_size(292'864), "293K");
  EXPECT_EQ(ollama_parameter_size(22'713'216), "22.7M");
  EXPECT_EQ(ollama_parameter_size(1'100'048'384), "1.1B");
  EXPECT_EQ(ollama_parameter_size(6'738'415'616), "6.7B");
  EXPECT_EQ(ollama_parameter_size(999), "999");
}

}  // namespace
}  // namespace tars::node
