// Partial offload (ModelPart): a model split over several backends computes
// what the same model on one backend computes. Here every part is a CPU
// backend of its own, so the split's bookkeeping (which part holds which
// layer, the residual moving between parts, the tied head held twice, each
// part's memory) is checked on any machine; tests/gpu runs the CUDA + CPU
// split against the same one-backend logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

std::unique_ptr<Backend> cpu() {
  CpuBackendOptions o;
  o.n_threads = 2;
  return backend_cpu_create(o);
}

ModelOptions options() {
  ModelOptions mo;
  mo.n_ctx = 64;
  mo.n_slots = 2;
  mo.max_batch = 16;  // the 21-token prompt runs as two chunks
  return mo;
}

// Logits of a 21-token prompt in slot 1 (every position), then 6 decoding
// steps (the argmax fed back), concatenated.
std::vector<float> run(Model& m) {
  std::vector<float> out;
  Batch b;
  const int n_vocab = m.hparams().n_vocab;
  for (int i = 0; i < 21; ++i) b.add((i * 37 + 11) % n_vocab, i, 1, true);
  m.forward(b, out);
  int pos = 21;
  for (int step = 0; step < 6; ++step) {
    auto last = out.end() - n_vocab;
    int32_t id = static_cast<int32_t>(std::max_element(last, out.end()) - last);
    Batch d;
    d.add(id, pos++, 1, true);
    m.forward(d, out);
  }
  return out;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(static_cast<double>(b[i])));
  }
  return num / den;
}

class SplitModel : public ::testing::TestWithParam<std::string> {};

TEST_P(SplitModel, EverySplitPointGivesTheOneBackendLogits) {
  std::shared_ptr<const GgufFile> file = GgufFile::open(test::fixture(GetParam()));
  auto whole_be = cpu();
  auto whole = Model::load(file, *whole_be, options());
  const std::vector<float> want = run(*whole);
  const int n_layer = whole->hparams().n_layer;
  ASSERT_GE(n_layer, 1);
  const size_t kv_layer = model_buffer_sizes(whole->hparams(), whole->options()).kv_layer_bytes;
  for (int split = 0; split <= n_layer; ++split) {
    auto a = cpu(), b = cpu();
    auto m = Model::load(file, {{a.get(), split}, {b.get(), -1}}, options());
    std::vector<float> got = run(*m);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LT(max_rel_diff(got, want), 1e-6) << GetParam() << " split after layer " << split;
    // Each part's memory: its own layers' KV cache, and together the same
    // weights as the whole model (plus the tied head held a second time).
    auto mem = m->memory();
    ASSERT_EQ(mem.size(), 2u);
    EXPECT_EQ(mem[0].first_layer, 0);
    EXPECT_EQ(mem[0].n_layers, split);
    EXPECT_EQ(mem[1].first_layer, split);
    EXPECT_EQ(mem[1].n_layers, n_layer - split);
    EXPECT_EQ(mem[0].kv_cache, 2 * kv_layer * split);
    EXPECT_EQ(mem[1].kv_cache, 2 * kv_layer * (n_layer - split));
    EXPECT_EQ(mem[0].kv_cache + mem[1].kv_cache, whole_be->allocated(MemoryKind::kKvCache));
    const bool tied = !file->find_tensor("output.weight");
    const GgufTensorInfo* emb = file->find_tensor("token_embd.weight");
    const size_t tied_bytes =
        tied ? quant_row_bytes(emb->type, static_cast<int64_t>(emb->shape[0])) * emb->shape[1] : 0;
    EXPECT_EQ(mem[0].weights + mem[1].weights,
              whole_be->allocated(MemoryKind::kWeights) + tied_bytes)
        << GetParam() << " split after layer " << split;
  }
}

TEST_P(SplitModel, ThreePartsAndEmptyMiddlePartsWork) {
  std::shared_ptr<const GgufFile> file = GgufFile::open(test::fixture(GetParam()));
  auto whole_be = cpu();
  auto whole = Model::load(file, *whole_be, options());
  const std::vector<float> want = run(*whole);
  const int n_layer = whole->hparams().n_layer;
  auto a = cpu(), b = cpu(), c = cpu(), d = cpu();
  auto m = Model::load(file, {{a.get(), 1}, {b.get(), 0}, {c.get(), n_layer > 1 ? 1 : 0}, {d.get(), -1}},
                       options());
  EXPECT_LT(max_rel_diff(run(*m), want), 1e-6) << GetParam();
  // The empty part in the middle is dropped: it would only copy the residual.
  auto mem = m->memory();
  EXPECT_EQ(mem.size(), n_layer > 1 ? 3u : 2u);
  EXPECT_EQ(b->allocated(MemoryKind::kCompute), 0u);
}

INSTANTIATE_TEST_SUITE_P(Models, SplitModel,
                         ::testing::Values("reference/llama-tiny.gguf", "reference/qwen2-tiny.gguf",
                                           "reference/phi2-tiny.gguf", "reference/stablelm-tiny.gguf",
                                           "reference/quant/llama-q-Q4_K_M.gguf"),
                         [](const auto& info) {
                           std::string s = info.param.substr(info.param.rfind('/') + 1);
                           s = s.substr(0, s.find('.'));
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(SplitModelErrors, LayerCountsMustAddUpAndBackendsDiffer) {
  std::shared_ptr<const GgufFile> file = GgufFile::open(test::fixture("reference/llama-tiny.gguf"));  // 3 layers
  auto a = cpu(), b = cpu();
  auto fails = [&](std::vector<ModelPart> parts, const std::string& what) {
    try {
      Model::load(file, std::move(parts), options());
      ADD_FAILURE() << "loaded: " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << what;
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  fails({{a.get(), 1}, {b.get(), 1}}, "the model has 3");
  fails({{a.get(), 2}, {b.get(), 2}}, "the model has 3");
  fails({{a.get(), -1}, {b.get(), 1}}, "only the last model part");
  fails({{a.get(), 1}, {a.get(), -1}}, "share one backend");
  fails({}, "the model has 3");
  // A first part with every layer and an empty last part is fine: the head
  // runs on the last part's backend.
  auto m = Model::load(file, {{a.get(), 3}, {b.get(), 0}}, options());
  EXPECT_EQ(m->memory()[1].n_layers, 0);
  EXPECT_GT(b->allocated(MemoryKind::kWeights), 0u);  // output.weight
}

}  // namespace
}  // namespace tars::engine
