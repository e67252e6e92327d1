// Acceptance 5 of issue 6: the estimator's figure for each component is
// within 10% of the engine's accounting (Backend::allocated) after
// Model::load / Encoder::load on the CPU backend, for the fixtures, random
// models, and the 1.1B shape of bench/make_model.cpp (a sparse file: loading
// it touches no weight data, so it runs in well under a second).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "cluster/estimate.h"
#include "common/error.h"
#include "engine/backend.h"
#include "engine/encoder.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "support/bert_builder.h"
#include "support/model_builder.h"
#include "support/sparse_model.h"
#include "support/test_support.h"

namespace tars::cluster {
namespace {

using engine::MemoryKind;

void expect_within(uint64_t estimate, size_t actual, double tol, const std::string& what) {
  EXPECT_NEAR(static_cast<double>(estimate), static_cast<double>(actual), tol * static_cast<double>(actual))
      << what << ": estimate " << estimate << ", engine " << actual;
}

std::unique_ptr<engine::Backend> cpu_backend() {
  engine::CpuBackendOptions bo;
  bo.n_threads = 2;
  return engine::backend_cpu_create(bo);
}

// Loads a decoder on the CPU backend and compares each component; then runs
// one forward pass (which repacks the matrices into panels) and compares the
// weights again.
void check_decoder(const std::string& path, int n_ctx, int n_slots, int max_batch, bool run) {
  SCOPED_TRACE(path);
  auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(path));
  EstimateOptions o;
  o.n_ctx = n_ctx;
  o.n_slots = n_slots;
  o.max_batch = max_batch;
  o.device = DeviceKind::kCpu;
  const MemoryEstimate e = estimate_model(*file, o);
  auto backend = cpu_backend();
  engine::ModelOptions mo;
  mo.n_ctx = n_ctx;
  mo.n_slots = n_slots;
  mo.max_batch = max_batch;
  auto model = engine::Model::load(file, *backend, mo);
  expect_within(e.weights_bytes, backend->allocated(MemoryKind::kWeights), 0.10, "weights");
  // KV and compute come from the engine's own size function: exact.
  EXPECT_EQ(e.kv_bytes, backend->allocated(MemoryKind::kKvCache));
  EXPECT_EQ(e.compute_bytes, backend->allocated(MemoryKind::kCompute));
  EXPECT_EQ(e.n_ctx, model->options().n_ctx);
  if (run) {
    engine::Batch b;
    for (int i = 0; i < 8; ++i) b.add(1 + i, i, 0, i == 7);
    std::vector<float> logits;
    model->forward(b, logits);
    expect_within(e.weights_bytes, backend->allocated(MemoryKind::kWeights), 0.10, "weights after a forward pass");
  }
}

TEST(EstimateModel, FixtureDecoders) {
  check_decoder(test::fixture("stories260K/stories260K.gguf"), 0, 1, 512, true);
  for (const char* arch : {"llama", "qwen2", "phi2", "stablelm"}) {
    check_decoder(test::fixture(std::string("reference/") + arch + "-tiny.gguf"), 256, 3, 64, true);
  }
}

TEST(EstimateModel, QuantizedFixtures) {
  for (const char* q : {"F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"}) {
    check_decoder(test::fixture(std::string("reference/quant/llama-q-") + q + ".gguf"), 128, 2, 32, true);
  }
}

TEST(EstimateModel, RandomDecoders) {
  test::TempDir dir;
  for (const char* arch : {"llama", "qwen2", "phi2", "stablelm"}) {
    test::RandomModelSpec s;
    s.arch = arch;
    s.n_embd = 256;
    s.n_layer = 2;
    s.n_head = 8;
    s.n_head_kv = std::string(arch) == "phi2" ? 8 : 4;
    s.n_ff = 512;
    s.weight_type = engine::TensorType::kQ8_0;
    s.vocab_from = test::fixture("stories260K/stories260K.gguf");
    const std::string path = dir.file(std::string(arch) + ".gguf");
    test::write_random_model(s, path);
    check_decoder(path, 0, 2, 128, true);
  }
}

// No context asked for: the trained one, at most 4096 (engine::default_context,
// as llama.cpp and Ollama default); the estimator resolves it the same way.
TEST(EstimateModel, LongTrainedContextIsCappedUnlessAsked) {
  test::TempDir dir;
  test::RandomModelSpec s;
  s.n_ctx = 8192;
  s.vocab_from = test::fixture("stories260K/stories260K.gguf");
  const std::string path = dir.file("long.gguf");
  test::write_random_model(s, path);
  auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(path));
  auto backend = cpu_backend();
  EXPECT_EQ(engine::Model::load(file, *backend, {})->options().n_ctx, 4096);
  engine::ModelOptions mo;
  mo.n_ctx = 8192;
  EXPECT_EQ(engine::Model::load(file, *backend, mo)->options().n_ctx, 8192);
  check_decoder(path, 0, 1, 64, false);
  check_decoder(path, 8192, 1, 64, false);

  // Running out of the default context says the model holds more.
  auto model = engine::Model::load(file, *backend, {});
  engine::GenerateOptions go;
  go.max_tokens = 4096;
  try {
    engine::generate(*model, {1, 2, 3}, go);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the context of 4096 tokens (the model was trained for 8192"),
              std::string::npos)
        << e.what();
  }
}

void check_encoder(const std::string& path) {
  SCOPED_TRACE(path);
  auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(path));
  EstimateOptions o;
  o.encoder_batch_tokens = 1024;
  o.device = DeviceKind::kCpu;
  const MemoryEstimate e = estimate_model(*file, o);
  EXPECT_TRUE(e.encoder);
  auto backend = cpu_backend();
  engine::EncoderOptions eo;
  eo.max_batch_tokens = 1024;
  auto enc = engine::Encoder::load(file, *backend, eo);
  expect_within(e.weights_bytes, backend->allocated(MemoryKind::kWeights), 0.10, "weights");
  EXPECT_EQ(e.kv_bytes, backend->allocated(MemoryKind::kKvCache));
  EXPECT_EQ(e.compute_bytes, backend->allocated(MemoryKind::kCompute));
  const std::vector<int32_t> tokens = {1, 5, 9, 2}, start = {0, 4};
  enc->forward(tokens, start);
  expect_within(e.weights_bytes, backend->allocated(MemoryKind::kWeights), 0.10, "weights after a forward pass");
}

TEST(EstimateModel, Encoders) {
  check_encoder(test::fixture("reference/bert-tiny.gguf"));
  test::TempDir dir;
  test::RandomBertSpec s;  // the MiniLM shape
  s.vocab_txt = test::fixture("minilm/vocab.txt");
  const std::string path = dir.file("minilm.gguf");
  test::write_random_bert(s, path);
  check_encoder(path);
}

// The 1.1B shape of bench/make_model.cpp (TinyLlama: dim 2048, 22 layers, 32
// heads, 4 KV heads, FFN 5632, the 32000-token SPM vocabulary, context
// 2048), F16, as a sparse file the engine loads without reading its weights.
TEST(EstimateModel, TinyLlamaShapeTotal) {
  test::TempDir dir;
  test::SparseModelSpec s;
  s.n_embd = 2048;
  s.n_layer = 22;
  s.n_head = 32;
  s.n_head_kv = 4;
  s.n_ff = 5632;
  s.n_ctx = 2048;
  s.quant = "F16";
  s.vocab_from = test::fixture("vocab/ggml-vocab-llama-spm.gguf");
  const std::string path = dir.file("tinyllama.gguf");
  test::write_sparse_model(s, path);
  auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(path));
  EstimateOptions o;
  o.n_slots = 4;
  o.device = DeviceKind::kCpu;
  const MemoryEstimate e = estimate_model(*file, o);
  EXPECT_GT(e.n_params, 1'000'000'000u);
  EXPECT_LT(e.n_params, 1'200'000'000u);
  auto backend = cpu_backend();
  engine::ModelOptions mo;
  mo.n_slots = 4;
  auto model = engine::Model::load(file, *backend, mo);
  const size_t total = backend->allocated(MemoryKind::kWeights) + backend->allocated(MemoryKind::kKvCache) +
                       backend->allocated(MemoryKind::kCompute);
  expect_within(e.total_bytes(), total, 0.10, "total");
  expect_within(e.weights_bytes, backend->allocated(MemoryKind::kWeights), 0.10, "weights");
  EXPECT_EQ(e.kv_bytes, backend->allocated(MemoryKind::kKvCache));
  EXPECT_EQ(e.compute_bytes, backend->allocated(MemoryKind::kCompute));
}

}  // namespace
}  // namespace tars::cluster
