// The real pretrained stories260K model: greedy text must equal the
// reference that two independent engines print (shared/models/README.md).
#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

struct Loaded {
  std::shared_ptr<const GgufFile> file;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
};

Loaded load_stories(TensorType kv_type, int threads, int max_batch = 512) {
  Loaded l;
  l.file = GgufFile::open(test::fixture("stories260K/stories260K.gguf"));
  l.backend = backend_cpu_create({threads});
  ModelOptions mo;
  mo.kv_type = kv_type;
  mo.max_batch = max_batch;
  l.model = Model::load(l.file, *l.backend, mo);
  return l;
}

std::string expected_text() {
  return test::read_file(test::fixture("stories260K/reference_greedy_64.txt"));
}

TEST(StoriesModel, HyperParameters) {
  Loaded l = load_stories(TensorType::kF32, 1);
  const ModelHParams& hp = l.model->hparams();
  EXPECT_EQ(hp.arch, "llama");
  EXPECT_EQ(hp.n_embd, 64);
  EXPECT_EQ(hp.n_layer, 5);
  EXPECT_EQ(hp.n_head, 8);
  EXPECT_EQ(hp.n_head_kv, 4);
  EXPECT_EQ(hp.n_ff, 172);
  EXPECT_EQ(hp.n_vocab, 512);
  EXPECT_EQ(hp.n_ctx_train, 128);
  EXPECT_EQ(hp.rope.n_rot, 8);
}

TEST(StoriesModel, PromptTokens) {
  Loaded l = load_stories(TensorType::kF32, 1);
  auto ids = l.model->tokenizer().encode("Once upon a time", true, false);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
}

// Greedy generation reproduces the reference text byte for byte, with the
// exact F32 cache and the default F16 cache, on one and two threads.
TEST(StoriesModel, GreedyTextMatchesReference) {
  for (TensorType kv : {TensorType::kF32, TensorType::kF16}) {
    for (int threads : {1, 2}) {
      Loaded l = load_stories(kv, threads);
      const std::string prompt = "Once upon a time";
      auto ids = l.model->tokenizer().encode(prompt, true, false);
      GenerateOptions go;
      go.max_tokens = 60;
      go.sampling.temperature = 0;
      GenerateResult r = generate(*l.model, ids, go);
      EXPECT_EQ(r.tokens.size(), 60u);
      std::string text = prompt + r.text;
      if (text.back() != '\n') text += '\n';
      EXPECT_EQ(text, expected_text()) << "kv " << tensor_type_name(kv) << ", threads " << threads;
    }
  }
}

// Prompt processing in chunks (as small as one token) gives the same logits
// as one batch.
TEST(StoriesModel, ChunkedPromptMatchesOneBatch) {
  std::vector<float> ref;
  for (int max_batch : {512, 7, 1}) {
    Loaded l = load_stories(TensorType::kF32, 2, max_batch);
    auto ids = l.model->tokenizer().encode(
        "Once upon a time, there was a little girl named Lily. She loved to play", true, false);
    Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], static_cast<int>(i), 0, true);
    std::vector<float> logits;
    l.model->forward(b, logits);
    if (ref.empty()) {
      ref = logits;
      continue;
    }
    ASSERT_EQ(logits.size(), ref.size());
    float worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(logits[i] - ref[i]));
    EXPECT_LT(worst, 1e-4) << "max_batch " << max_batch;
  }
}

TEST(StoriesModel, ContextOverflowIsAClearError) {
  Loaded l = load_stories(TensorType::kF32, 1);
  auto ids = l.model->tokenizer().encode("Once upon a time", true, false);
  GenerateOptions go;
  go.max_tokens = 200;
  try {
    generate(*l.model, ids, go);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("exceeds the context of 128"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tars::engine
