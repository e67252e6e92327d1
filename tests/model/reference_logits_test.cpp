// Outside truth: another engine's logits on small random-weight models of
// every architecture (shared/models/reference), and on one LLaMA model in
// every quantized type (shared/models/reference/quant).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "support/reference_model.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

using json = nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

struct Runner {
  std::shared_ptr<const GgufFile> file;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;

  // exact: float activations (CpuBackendOptions::exact_activations); the
  // default quantizes them to 8 bits per product, as llama.cpp does.
  explicit Runner(const std::string& path, bool exact = true) {
    file = GgufFile::open(path);
    CpuBackendOptions bo;
    bo.n_threads = 2;
    bo.exact_activations = exact;
    backend = backend_cpu_create(bo);
    ModelOptions mo;
    mo.kv_type = TensorType::kF32;  // exact comparison
    mo.n_ctx = 256;
    model = Model::load(file, *backend, mo);
  }

  // Logits after the prompt (slot 0, from position 0).
  std::vector<float> prompt_logits(const std::vector<int32_t>& prompt) {
    Batch b;
    for (size_t i = 0; i < prompt.size(); ++i) {
      b.add(prompt[i], static_cast<int>(i), 0, i + 1 == prompt.size());
    }
    std::vector<float> logits;
    model->forward(b, logits);
    return logits;
  }
};

// Each [id, logit] of `top` must match our logit for that id within `tol`,
// and our top-N ids must be the same set where the reference's gaps allow.
void expect_top_logits(const std::vector<float>& logits, const json& top, double tol,
                       const std::string& what) {
  double worst = 0;
  for (const auto& e : top) {
    int id = e[0].get<int>();
    double ref = e[1].get<double>();
    worst = std::max(worst, std::abs(logits.at(id) - ref));
  }
  EXPECT_LT(worst, tol) << what << ": max |logit - reference| over the top " << top.size();
  EXPECT_EQ(argmax(logits), top[0][0].get<int>()) << what << ": argmax differs";
}

// Max |recorded - ours| over the recorded top ids.
double top_distance(const json& top, const std::vector<double>& logits) {
  double d = 0;
  for (const auto& e : top) d = std::max(d, std::abs(e[1].get<double>() - logits.at(e[0].get<int>())));
  return d;
}

// How the recordings in reference/*.logits.json were rounded (found by
// matching them: see HalfRounding). The 5-token prompts went
// through the flash-attention path that keeps the value sum in half, the
// 118-token prompts through one that reads half keys and values into float;
// the batch size that separates the two is between those.
test::HalfRounding llama_cpp_rounding(size_t n_tokens) {
  test::HalfRounding r;
  r.keys_values = true;
  r.query_and_sum = n_tokens < 32;
  r.gelu_table = true;
  return r;
}

class ArchReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchReference, TopLogitsAndGreedyPathMatch) {
  const std::string arch = GetParam();
  json ref = read_json(test::fixture("reference/" + arch + "-tiny.logits.json"));
  Runner r(test::fixture("reference/" + arch + "-tiny.gguf"));
  test::ReferenceModel dbl(*r.file);
  EXPECT_EQ(r.model->hparams().arch, arch);
  for (const auto& c : ref["cases"]) {
    std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
    // Our tokenizer gives the same ids for the prompt text.
    EXPECT_EQ(r.model->tokenizer().encode(c["prompt"].get<std::string>(), true, false), prompt)
        << arch << ": tokenization of the prompt differs";
    std::string what = arch + " prompt of " + std::to_string(prompt.size()) + " tokens";
    std::vector<float> logits = r.prompt_logits(prompt);
    // The bound is 1e-3, except where the recorded logits themselves are
    // further than that from exact arithmetic (the double-precision
    // reference of tests/support) and the recording engine's half-precision
    // rounding accounts for it: then tars may be no further from them than
    // exact arithmetic is, plus 1e-4. MatchesDoublePrecisionReference holds
    // tars to 1e-5 of exact arithmetic on every position.
    const std::vector<int> tokens(prompt.begin(), prompt.end());
    double recorded_error = top_distance(c["top_logits"], dbl.logits_all(tokens).back());
    double tol = 1e-3;
    if (recorded_error > tol) {
      double explained = top_distance(c["top_logits"],
                                      dbl.logits_all(tokens, llama_cpp_rounding(prompt.size())).back());
      std::printf("[ %s ] the recorded logits are %.2e from exact arithmetic and %.2e from it with "
                  "llama.cpp's half-precision attention and GELU\n",
                  what.c_str(), recorded_error, explained);
      ASSERT_LT(explained, 5e-4) << what << ": the recording is " << recorded_error
                                 << " from exact arithmetic, and not for the known reasons";
      tol = recorded_error + 1e-4;
    }
    expect_top_logits(logits, c["top_logits"], tol, what);

    // The greedy path: feed our argmax back, compare every step's id.
    std::vector<int32_t> greedy = c["greedy_ids"].get<std::vector<int32_t>>();
    int pos = static_cast<int>(prompt.size());
    for (size_t step = 0; step < greedy.size(); ++step) {
      int32_t id = argmax(logits);
      ASSERT_EQ(id, greedy[step]) << what << ": greedy step " << step;
      Batch b;
      b.add(id, pos++, 0, true);
      logits.clear();
      r.model->forward(b, logits);
    }
  }
}

// The engine against the double-precision reference of tests/support, over
// every position of the long prompt; also reports how far the other engine's
// recorded logits are from the same reference.
TEST_P(ArchReference, MatchesDoublePrecisionReference) {
  const std::string arch = GetParam();
  json ref = read_json(test::fixture("reference/" + arch + "-tiny.logits.json"));
  Runner r(test::fixture("reference/" + arch + "-tiny.gguf"));
  test::ReferenceModel dbl(*r.file);
  for (const auto& c : ref["cases"]) {
    std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
    auto expect = dbl.logits_all(std::vector<int>(prompt.begin(), prompt.end()));
    Batch b;
    for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], static_cast<int>(i), 0, true);
    // Slot 0 is rewritten from position 0, so earlier cases do not matter.
    std::vector<float> logits;
    r.model->forward(b, logits);
    double num = 0, den = 0;
    for (size_t t = 0; t < prompt.size(); ++t) {
      for (int i = 0; i < dbl.n_vocab(); ++i) {
        num = std::max(num, std::abs(logits[t * dbl.n_vocab() + i] - expect[t][i]));
        den = std::max(den, std::abs(expect[t][i]));
      }
    }
    EXPECT_LT(num / den, 1e-5) << arch << ": max|a-b|/max|b| over " << prompt.size() << " positions";
    double other = top_distance(c["top_logits"], expect.back());
    double rounded = top_distance(
        c["top_logits"], dbl.logits_all(std::vector<int>(prompt.begin(), prompt.end()),
                                        llama_cpp_rounding(prompt.size()))
                             .back());
    std::printf("[ %s ] %zu tokens: tars vs double %.2e (relative %.2e); reference engine vs double "
                "%.2e, vs double with its half roundings %.2e\n",
                arch.c_str(), prompt.size(), num, num / den, other, rounded);
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, ArchReference,
                         ::testing::Values("llama", "qwen2", "phi2", "stablelm"),
                         [](const auto& info) { return info.param; });

// Every quantized file, in both activation modes: with float activations
// the engine matches the reference's exact_top_logits (the dequantized model
// in float32) within 2e-3; with 8-bit activations (the default, fast path)
// it matches llama.cpp's own figures on the quantized file (top_logits, also
// 8-bit activations) within 0.08.
TEST(QuantLogits, TopLogitsMatchDequantizedReference) {
  json ref = read_json(test::fixture("reference/quant/reference.json"));
  ASSERT_FALSE(ref["files"].empty());
  for (const auto& [name, entry] : ref["files"].items()) {
    Runner r(test::fixture("reference/quant/" + name), /*exact=*/true);
    for (const auto& c : entry["cases"]) {
      std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
      std::vector<float> logits = r.prompt_logits(prompt);
      expect_top_logits(logits, c["exact_top_logits"], 2e-3,
                        name + " (exact), prompt of " + std::to_string(prompt.size()) + " tokens");
    }
  }
}

TEST(QuantLogits, QuantizedActivationsMatchReferenceEngine) {
  json ref = read_json(test::fixture("reference/quant/reference.json"));
  ASSERT_FALSE(ref["files"].empty());
  for (const auto& [name, entry] : ref["files"].items()) {
    Runner r(test::fixture("reference/quant/" + name), /*exact=*/false);
    for (const auto& c : entry["cases"]) {
      std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
      std::vector<float> logits = r.prompt_logits(prompt);
      const std::string what = name + " (8-bit activations), prompt of " + std::to_string(prompt.size()) + " tokens";
      expect_top_logits(logits, c["top_logits"], 0.08, what);
      // Report how far the fast path is from llama.cpp's figures and from exact arithmetic.
      double to_ref = 0, to_exact = 0;
      for (const auto& e : c["top_logits"]) to_ref = std::max(to_ref, std::abs(logits.at(e[0].get<int>()) - e[1].get<double>()));
      for (const auto& e : c["exact_top_logits"]) to_exact = std::max(to_exact, std::abs(logits.at(e[0].get<int>()) - e[1].get<double>()));
      std::printf("[ %s ] max |logit - llama.cpp| %.4f, max |logit - exact| %.4f\n", what.c_str(), to_ref, to_exact);
    }
  }
}

}  // namespace
}  // namespace tars::engine
