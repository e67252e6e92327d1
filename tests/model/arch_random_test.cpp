// Acceptance 4 of issue 3: for each architecture, models with random
// weights in real head sizes, GQA ratios and partial-rotary widths (width
// and depth scaled down) give the logits of the double-precision reference,
// with an F32 KV cache: at several prompt lengths, with several sequences in
// one batch, and over many decoding steps.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "support/model_builder.h"
#include "support/reference_model.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

struct Case {
  std::string name;
  test::RandomModelSpec spec;
  double bound;  // max|a-b| / max|b|
};

test::RandomModelSpec shape(const std::string& arch, int n_head, int n_head_kv, int head_dim,
                            int n_rot, int n_ff, TensorType type) {
  test::RandomModelSpec s;
  s.arch = arch;
  s.n_head = n_head;
  s.n_head_kv = n_head_kv;
  s.n_embd = n_head * head_dim;
  s.n_rot = n_rot;
  s.n_ff = n_ff;
  s.n_layer = 2;
  s.weight_type = type;
  s.vocab_from = test::fixture("stories260K/stories260K.gguf");
  return s;
}

std::vector<Case> cases() {
  std::vector<Case> c;
  // LLaMA-2/Mistral/TinyLlama: head 128 (Mistral GQA 4, TinyLlama GQA 8).
  c.push_back({"llama_f32_gqa4", shape("llama", 8, 2, 128, 0, 512, TensorType::kF32), 1e-4});
  c.push_back({"llama_f32_gqa8_linear_rope", shape("llama", 8, 1, 128, 0, 512, TensorType::kF32), 1e-4});
  c.back().spec.linear_rope_factor = 4;
  // Qwen2.5-0.5B: head 64, 14 heads over 2 KV heads (GQA 7), QKV biases, tied output.
  c.push_back({"qwen2_f32_gqa7", shape("qwen2", 7, 1, 64, 0, 512, TensorType::kF32), 1e-4});
  // phi-2: head 80, rotary over 32 of 80 dims, fused QKV, GELU, parallel residual.
  c.push_back({"phi2_f32", shape("phi2", 4, 4, 80, 32, 512, TensorType::kF32), 1e-4});
  // StableLM-3B: head 80, rotary over 20 of 80 dims (25%), LayerNorm.
  c.push_back({"stablelm_f32", shape("stablelm", 4, 4, 80, 20, 512, TensorType::kF32), 1e-4});
  // Quantized weights against the reference on the dequantized weights.
  for (TensorType t : {TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ4_0,
                       TensorType::kQ4_1, TensorType::kQ5_0, TensorType::kQ5_1, TensorType::kQ4_K,
                       TensorType::kQ5_K, TensorType::kQ6_K}) {
    c.push_back({"llama_" + std::string(tensor_type_name(t)),
                 shape("llama", 4, 2, 64, 0, 512, t), 1e-3});
  }
  c.push_back({"phi2_Q8_0", shape("phi2", 4, 4, 80, 32, 512, TensorType::kQ8_0), 1e-3});
  return c;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ArchRandom : public ::testing::TestWithParam<Case> {};

double rel_error(const float* a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / den;
}

TEST_P(ArchRandom, MatchesDoublePrecisionReference) {
  const Case& c = GetParam();
  test::TempDir dir;
  std::string path = dir.file("m.gguf");
  test::write_random_model(c.spec, path);
  std::shared_ptr<const GgufFile> file = GgufFile::open(path);
  test::ReferenceModel ref(*file);
  CpuBackendOptions bo;
  bo.n_threads = 2;
  bo.exact_activations = true;  // float activations: compared with exact arithmetic
  auto backend = backend_cpu_create(bo);
  ModelOptions mo;
  mo.kv_type = TensorType::kF32;
  mo.n_slots = 3;
  mo.max_batch = 16;  // prompts longer than this are processed in chunks
  auto model = Model::load(file, *backend, mo);
  const int V = model->hparams().n_vocab;

  // A deterministic token sequence (never special ids 0..2).
  auto tokens = [&](int n, int salt) {
    std::vector<int> t(n);
    for (int i = 0; i < n; ++i) t[i] = 3 + (i * 37 + salt * 101) % (V - 3);
    return t;
  };

  // Several prompt lengths, all three in ONE batch on three slots, logits at
  // every position.
  std::vector<std::vector<int>> prompts = {tokens(1, 1), tokens(7, 2), tokens(40, 3)};
  Batch b;
  for (int s = 0; s < 3; ++s) {
    for (size_t i = 0; i < prompts[s].size(); ++i) b.add(prompts[s][i], static_cast<int>(i), s, true);
  }
  std::vector<float> logits;
  model->forward(b, logits);
  size_t row = 0;
  for (int s = 0; s < 3; ++s) {
    auto expect = ref.logits_all(prompts[s]);
    for (size_t i = 0; i < prompts[s].size(); ++i, ++row) {
      double e = rel_error(logits.data() + row * V, expect[i]);
      ASSERT_LT(e, c.bound) << c.name << ": slot " << s << " position " << i;
    }
  }

  // Many decoding steps on slot 1, one token at a time after its prompt.
  std::vector<int> seq = prompts[1];
  std::vector<int> more = tokens(48, 4);
  double worst = 0;
  for (size_t k = 0; k < more.size(); ++k) {
    Batch step;
    step.add(more[k], static_cast<int>(seq.size()), 1, true);
    seq.push_back(more[k]);
    std::vector<float> l;
    model->forward(step, l);
    if (k % 8 == 7 || k + 1 == more.size()) {
      auto expect = ref.logits_all(seq);
      worst = std::max(worst, rel_error(l.data(), expect.back()));
    }
  }
  EXPECT_LT(worst, c.bound) << c.name << ": decoding steps up to position " << seq.size();
}

INSTANTIATE_TEST_SUITE_P(Shapes, ArchRandom, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace tars::engine
