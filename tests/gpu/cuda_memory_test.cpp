// Honest memory accounting on the GPU (issue 7): what the CUDA backend
// reports allocating (Backend::allocated) against the placement estimator
// (cluster/estimate.h) for the same model and options. Weights and KV cache
// are copies of known sizes, so they must agree exactly; the compute figure
// is the model's activation buffers (the estimator's) plus the backend's own
// scratch (dequantized weight chunks, half and 8-bit activations, metadata),
// which the estimator counts in the per-GPU runtime overhead.
#include <gtest/gtest.h>

#include <cstdio>

#include "cluster/estimate.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "gpu/gpu_support.h"
#include "node/devices.h"
#include "support/test_support.h"

namespace tars::cluster {
namespace {

using engine::MemoryKind;

void check(const std::string& path, bool fast) {
  SCOPED_TRACE(path);
  std::shared_ptr<const engine::GgufFile> file = engine::GgufFile::open(path);
  EstimateOptions o;
  o.n_ctx = 128;
  o.n_slots = 2;
  o.max_batch = 64;
  o.device = DeviceKind::kGpu;
  const MemoryEstimate e = estimate_model(*file, o);
  auto gpu = test::make_cuda(true, !fast);
  ASSERT_TRUE(gpu);
  engine::ModelOptions mo;
  mo.n_ctx = 128;
  mo.n_slots = 2;
  mo.max_batch = 64;
  auto model = engine::Model::load(file, *gpu, mo);
  // A prompt (batched products) and a decode step (mat-vec): every scratch in use.
  engine::Batch b;
  for (int i = 0; i < 40; ++i) b.add(1 + i, i, 0, i == 39);
  std::vector<float> logits;
  model->forward(b, logits);
  engine::Batch d;
  d.add(5, 40, 0, true);
  model->forward(d, logits);
  EXPECT_EQ(gpu->allocated(MemoryKind::kWeights), e.weights_bytes);
  EXPECT_EQ(gpu->allocated(MemoryKind::kKvCache), e.kv_bytes);
  const size_t compute = gpu->allocated(MemoryKind::kCompute);
  ASSERT_GE(compute, e.compute_bytes);
  const size_t scratch = compute - e.compute_bytes;
  std::printf("[ %s ] compute: buffers %llu + backend scratch %llu bytes (%s)\n", path.c_str(),
              static_cast<unsigned long long>(e.compute_bytes), static_cast<unsigned long long>(scratch),
              fast ? "fast paths" : "exact");
  EXPECT_LT(scratch, e.overhead_bytes / 4) << "the scratch must fit well inside the runtime overhead allowance";
}

// The node runs a model on the plan's GPU by uuid: NVML's uuid of each GPU
// must name a CUDA device (NVML's index and the CUDA ordinal may differ).
TEST(CudaMemory, NvmlUuidsNameCudaDevices) {
  TARS_REQUIRE_CUDA();
  node::DeviceDetector detector(node::DeviceOptions{});
  const node::DeviceInventory inv = detector.inventory();
  ASSERT_FALSE(inv.gpus.empty()) << "CUDA sees a device, NVML none";
  for (const auto& g : inv.gpus) {
    ASSERT_FALSE(g.uuid.empty()) << g.name;
    EXPECT_GE(engine::backend_cuda_ordinal_for_uuid(g.uuid), 0) << g.name << " " << g.uuid;
  }
}

TEST(CudaMemory, BackendAllocationsMatchTheEstimator) {
  TARS_REQUIRE_CUDA();
  for (bool fast : {false, true}) {
    check(test::fixture("stories260K/stories260K.gguf"), fast);
    for (const char* q : {"F16", "Q8_0", "Q4_0", "Q4_K_M", "Q6_K"}) {
      check(test::fixture(std::string("reference/quant/llama-q-") + q + ".gguf"), fast);
    }
    check(test::fixture("reference/qwen2-tiny.gguf"), fast);  // tied output: held once
  }
}

}  // namespace
}  // namespace tars::cluster
