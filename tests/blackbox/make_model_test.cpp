// bench_make_model --type (the generator of bench/gpu_check.sh's models):
// the file has the tensor types `tars quantize` would give the same shape,
// random non-zero quantized weights, and loads and runs in the real binary.
#include <gtest/gtest.h>

#include <map>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "support/test_support.h"

namespace tars::test {
namespace {

using namespace std::chrono_literals;

TEST(MakeModel, WritesTheQuantizedMixDirectly) {
#ifndef TARS_BENCH_MAKE_MODEL
  GTEST_SKIP() << "configured with TARS_BUILD_BENCH=OFF: no bench_make_model";
#else
  TempDir dir;
  const std::string path = dir.file("m.gguf");
  // The 1.1B shape with one layer: the 32000 x 2048 embedding and output
  // matrices keep it a real-sized file (about 90 MB).
  Process p({TARS_BENCH_MAKE_MODEL, path, "--vocab", fixture("vocab/ggml-vocab-llama-spm.gguf"), "--shape",
             "1.1b", "--layers", "1", "--type", "Q4_K_M"});
  ASSERT_EQ(p.wait(120s), 0) << p.err();
  auto f = engine::GgufFile::open(path);
  std::map<std::string, engine::TensorType> types;
  for (const auto& t : f->tensors()) types[t.name] = t.type;
  EXPECT_EQ(types.at("output.weight"), engine::TensorType::kQ6_K);  // the output rule
  EXPECT_EQ(types.at("blk.0.attn_q.weight"), engine::TensorType::kQ4_K);
  EXPECT_EQ(types.at("blk.0.ffn_down.weight"), engine::TensorType::kQ6_K);  // more bits in layer 0 of 1
  EXPECT_EQ(types.at("blk.0.attn_norm.weight"), engine::TensorType::kF32);
  // The weights are the tile's values, not the sparse file's zeros.
  const auto* q = f->find_tensor("blk.0.attn_q.weight");
  std::vector<float> row(q->shape[0]);
  engine::dequantize_row(q->type, q->data + q->n_bytes / 2, row.data(), static_cast<int64_t>(row.size()));
  double sum_sq = 0;
  for (float v : row) sum_sq += static_cast<double>(v) * v;
  EXPECT_GT(sum_sq / row.size(), 1e-5) << "rows in the middle of a matrix hold random weights";
  Process run({tars_binary(), "run", path, "Hello", "-n", "4"});
  ASSERT_EQ(run.wait(120s), 0) << run.err();
  EXPECT_NE(run.err().find("generated 4 tokens"), std::string::npos) << run.err();
#endif
}

}  // namespace
}  // namespace tars::test
