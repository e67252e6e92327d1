// The estimator's split figures (estimate_split) against the engine: each
// fixture loaded over two CPU backends at every split point
// (Model::load(file, {{a, n}, {b, -1}})), each backend's own accounting
// (Backend::allocated) compared with the estimate of its part. KV cache and
// compute buffers come from the engine's size function: exact. Weights are
// within 3% after a forward pass (the CPU backend repacks matrices into
// panels on first use, 3% larger for K-quants; the estimate is the GPU's
// exact copy of the file's bytes).
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <vector>

#include "cluster/estimate.h"
#include "common/error.h"
#include "engine/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/quantize.h"
#include "support/sparse_model.h"
#include "support/test_support.h"

namespace tars::cluster {
namespace {

using engine::MemoryKind;

std::unique_ptr<engine::Backend> cpu_backend() {
  engine::CpuBackendOptions bo;
  bo.n_threads = 2;
  return engine::backend_cpu_create(bo);
}

void expect_within(uint64_t estimate, size_t actual, double tol, const std::string& what) {
  EXPECT_NEAR(static_cast<double>(estimate), static_cast<double>(actual), tol * static_cast<double>(actual))
      << what << ": estimate " << estimate << ", engine " << actual;
}

struct SplitCase {
  int n_ctx = 128;
  int n_slots = 2;
  int max_batch = 32;
  std::string quant;  // estimate with this target ("" = the file's types)
};

// Estimates `estimate_path` and loads `load_path` (the same model, or the
// file the target gives) split at every point; compares each part.
void check_every_split(const std::string& estimate_path, const std::string& load_path, const SplitCase& c) {
  SCOPED_TRACE(load_path);
  auto est_file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(estimate_path));
  auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(load_path));
  EstimateOptions o;
  o.n_ctx = c.n_ctx;
  o.n_slots = c.n_slots;
  o.max_batch = c.max_batch;
  o.quant = c.quant;
  const MemoryEstimate e = estimate_model(*est_file, o);
  ASSERT_FALSE(e.encoder);
  ASSERT_EQ(e.split.n_layer(), e.n_layer);
  EXPECT_EQ(e.split.head_tied, file->find_tensor("output.weight") == nullptr);
  // The pieces add up to the whole (the tied head counted once).
  uint64_t layers = 0;
  for (uint64_t b : e.split.layer_weights_bytes) {
    EXPECT_GT(b, 0u);
    layers += b;
  }
  const uint64_t rope = file->find_tensor("rope_freqs.weight") ? file->find_tensor("rope_freqs.weight")->n_elems * 4 : 0;
  EXPECT_EQ(e.split.embd_bytes + layers + e.split.head_bytes - (e.split.head_tied ? e.split.embd_bytes : 0) + rope,
            e.weights_bytes);
  EXPECT_EQ(e.split.compute_x_bytes + e.split.compute_layers_bytes + e.split.compute_head_bytes, e.compute_bytes);
  EXPECT_EQ(e.split.kv_layer_slot_bytes * static_cast<uint64_t>(e.n_layer * e.n_slots), e.kv_bytes);

  engine::ModelOptions mo;
  mo.n_ctx = c.n_ctx;
  mo.n_slots = c.n_slots;
  mo.max_batch = c.max_batch;
  for (int n = 0; n <= e.n_layer; ++n) {
    SCOPED_TRACE("gpu_layers " + std::to_string(n));
    const SplitEstimate s = estimate_split(e, n);
    EXPECT_EQ(s.gpu_layers, n);
    EXPECT_EQ(s.device.n_layers, n);
    EXPECT_EQ(s.cpu.first_layer, n);
    EXPECT_EQ(s.cpu.n_layers, e.n_layer - n);
    EXPECT_EQ(s.device.overhead_bytes, kGpuRuntimeOverheadBytes);
    EXPECT_EQ(s.cpu.overhead_bytes, 0u);
    auto a = cpu_backend(), b = cpu_backend();
    auto model = engine::Model::load(file, {{a.get(), n}, {b.get(), -1}}, mo);
    EXPECT_EQ(s.device.kv_bytes, a->allocated(MemoryKind::kKvCache));
    EXPECT_EQ(s.cpu.kv_bytes, b->allocated(MemoryKind::kKvCache));
    EXPECT_EQ(s.device.compute_bytes, a->allocated(MemoryKind::kCompute));
    EXPECT_EQ(s.cpu.compute_bytes, b->allocated(MemoryKind::kCompute));
    // Before any product the CPU uses the file's bytes in place: for a file
    // of the target's types, the estimate exactly.
    EXPECT_EQ(s.device.weights_bytes, a->allocated(MemoryKind::kWeights));
    EXPECT_EQ(s.cpu.weights_bytes, b->allocated(MemoryKind::kWeights));
    engine::Batch batch;
    for (int i = 0; i < 8; ++i) batch.add(1 + i, i, 0, i == 7);
    std::vector<float> logits;
    model->forward(batch, logits);
    expect_within(s.device.weights_bytes, a->allocated(MemoryKind::kWeights), 0.03, "device weights after a pass");
    expect_within(s.cpu.weights_bytes, b->allocated(MemoryKind::kWeights), 0.03, "cpu weights after a pass");
  }
}

TEST(EstimateSplit, FixturesAtEverySplitPoint) {
  for (const char* arch : {"llama", "qwen2", "phi2", "stablelm"}) {
    const std::string path = test::fixture(std::string("reference/") + arch + "-tiny.gguf");
    check_every_split(path, path, SplitCase{});
  }
  const std::string q = test::fixture("reference/quant/llama-q-Q4_K_M.gguf");
  check_every_split(q, q, SplitCase{96, 3, 16, ""});
}

TEST(EstimateSplit, TiedHeadIsHeldTwice) {
  // qwen2-tiny has no output.weight: the RAM part loads token_embd again.
  auto file = engine::GgufFile::open(test::fixture("reference/qwen2-tiny.gguf"));
  ASSERT_EQ(file->find_tensor("output.weight"), nullptr);
  const engine::GgufTensorInfo* emb = file->find_tensor("token_embd.weight");
  const MemoryEstimate e = estimate_model(*file, EstimateOptions{});
  EXPECT_TRUE(e.split.head_tied);
  const uint64_t emb_bytes = engine::quant_row_bytes(emb->type, static_cast<int64_t>(emb->shape[0])) * emb->shape[1];
  EXPECT_EQ(e.split.embd_bytes, emb_bytes);
  EXPECT_GT(e.split.head_bytes, emb_bytes);  // plus output_norm.weight
  const SplitEstimate s = estimate_split(e, 1);
  EXPECT_EQ(s.device.weights_bytes + s.cpu.weights_bytes, e.weights_bytes + emb_bytes);
}

// The target's per-tensor types: the estimate of a float file at a target
// against the file the quantizer writes for it, loaded split.
TEST(EstimateSplit, QuantizationTargetMatchesTheQuantizedFile) {
  test::TempDir dir;
  const std::string src = test::fixture("reference/llama-tiny.gguf");
  for (const char* target : {"Q8_0", "Q4_K_M"}) {
    SCOPED_TRACE(target);
    const std::string out = dir.file(std::string("llama-") + target + ".gguf");
    engine::QuantizeOptions qo;
    qo.target = *engine::quantize_target_from_name(target);
    qo.n_threads = 2;
    engine::quantize_model(src, out, qo);
    auto f_src = engine::GgufFile::open(src);
    auto f_out = engine::GgufFile::open(out);
    EstimateOptions o;
    o.quant = target;
    const MemoryEstimate from_target = estimate_model(*f_src, o);
    const MemoryEstimate from_file = estimate_model(*f_out, EstimateOptions{});
    EXPECT_EQ(from_target.split.layer_weights_bytes, from_file.split.layer_weights_bytes);
    EXPECT_EQ(from_target.split.embd_bytes, from_file.split.embd_bytes);
    EXPECT_EQ(from_target.split.head_bytes, from_file.split.head_bytes);
    check_every_split(src, out, SplitCase{64, 1, 16, target});
  }
}

// A Q4_K_M mix gives some layers more bits (attn_v and ffn_down in Q6_K on
// the first and last eighth and every third layer between): the layers
// differ in size, and each split point still matches the engine. A sparse
// file (zeros) of 8 layers of a 256-wide model.
TEST(EstimateSplit, QuantMixLayersDiffer) {
  test::TempDir dir;
  test::SparseModelSpec s;
  s.n_embd = 256;
  s.n_layer = 8;
  s.n_head = 8;
  s.n_head_kv = 4;
  s.n_ff = 512;
  s.n_ctx = 256;
  s.quant = "Q4_K_M";
  s.vocab_from = test::fixture("stories260K/stories260K.gguf");
  const std::string path = dir.file("mix.gguf");
  test::write_sparse_model(s, path);
  auto f = engine::GgufFile::open(path);
  const MemoryEstimate e = estimate_model(*f, EstimateOptions{});
  const std::set<uint64_t> sizes(e.split.layer_weights_bytes.begin(), e.split.layer_weights_bytes.end());
  EXPECT_EQ(sizes.size(), 2u) << "Q4_K_M layers with and without the more-bits rule";
  for (int il = 0; il < s.n_layer; ++il) {
    const bool more = engine::quantize_use_more_bits(il, s.n_layer);
    EXPECT_EQ(e.split.layer_weights_bytes[static_cast<size_t>(il)], more ? *sizes.rbegin() : *sizes.begin())
        << "layer " << il;
  }
  check_every_split(path, path, SplitCase{64, 2, 16, ""});
}

TEST(EstimateSplit, ErrorsNameTheProblem) {
  auto f = engine::GgufFile::open(test::fixture("reference/llama-tiny.gguf"));  // 3 layers
  const MemoryEstimate e = estimate_model(*f, EstimateOptions{});
  for (int bad : {-1, 4}) {
    try {
      estimate_split(e, bad);
      ADD_FAILURE() << bad;
    } catch (const Error& err) {
      EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(err.what()).find("outside 0..3"), std::string::npos) << err.what();
    }
  }
  auto bert = engine::GgufFile::open(test::fixture("reference/bert-tiny.gguf"));
  const MemoryEstimate eb = estimate_model(*bert, EstimateOptions{});
  EXPECT_TRUE(eb.split.layer_weights_bytes.empty());
  try {
    estimate_split(eb, 1);
    ADD_FAILURE() << "an encoder split";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(err.what()).find("encoder"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace tars::cluster
