// What the coordinator tells a node to host for one placement
// (coordinator_decl_for): the plan's context, slots and type, and where the
// plan put the model, including a split's layer count.
#include <gtest/gtest.h>

#include "cluster/coordinator.h"

namespace tars::cluster {
namespace {

node::ModelDecl declared() {
  node::ModelDecl d;
  d.path = "/m/llama-7b.Q4_K_M.gguf";
  d.alias = "llama-7b";
  d.load = "always";
  d.keep_alive_s = 60;
  return d;
}

// A placement of llama-7b at Q4_K_M on gpu0, whole.
PlanPlacement on_gpu0() {
  PlanPlacement p;
  p.model = "llama-7b";
  p.placed = true;
  p.kind = DeviceKind::kGpu;
  p.device = "gpu0";
  p.quant = "Q4_K_M";
  return p;
}

TEST(CoordinatorDecl, SplitPlacementCarriesGpuLayers) {
  PlanPlacement p = on_gpu0();
  p.n_ctx = 4096;
  p.slots = 1;
  p.gpu_layers = 28;
  p.n_layer = 32;
  p.device_uuid = "GPU-0f349f86-eff9-7b9f-0417-070e677871dc";
  const node::ModelDecl d = coordinator_decl_for(declared(), p);
  EXPECT_EQ(d.gpu_layers, 28);
  EXPECT_EQ(d.planned_device, "gpu");
  EXPECT_EQ(d.planned_gpu, p.device_uuid);  // the node finds its CUDA device by it
  EXPECT_EQ(d.ctx_size, 4096);
  EXPECT_EQ(d.slots, 1);
  EXPECT_EQ(d.quant, std::vector<std::string>{"Q4_K_M"});
  EXPECT_EQ(d.path, declared().path);
  EXPECT_EQ(d.keep_alive_s, 60);
}

TEST(CoordinatorDecl, WholePlacementsKeepEveryLayerOnTheirDevice) {
  PlanPlacement p = on_gpu0();
  p.kind = DeviceKind::kCpu;
  p.device = "cpu";
  p.n_ctx = 2048;
  p.slots = 2;
  node::ModelDecl d = coordinator_decl_for(declared(), p);
  EXPECT_EQ(d.gpu_layers, -1);
  EXPECT_EQ(d.planned_device, "cpu");
  EXPECT_EQ(d.planned_gpu, "");
  p.kind = DeviceKind::kGpu;
  p.device = "gpu0";
  d = coordinator_decl_for(declared(), p);
  EXPECT_EQ(d.gpu_layers, -1);
  EXPECT_EQ(d.planned_device, "gpu");
}

// gpu_layers in the configuration is the user's choice of split (the GPU
// check found a node ignoring `gpu_layers = 11` because the plan, which
// holds the model whole, said -1).
TEST(CoordinatorDecl, DeclaredGpuLayersWinOverThePlan) {
  PlanPlacement p = on_gpu0();
  p.n_layer = 32;
  node::ModelDecl mine = declared();
  mine.gpu_layers = 11;
  EXPECT_EQ(coordinator_decl_for(mine, p).gpu_layers, 11);
  p.gpu_layers = 28;  // the plan's split too
  EXPECT_EQ(coordinator_decl_for(mine, p).gpu_layers, 11);
  mine.gpu_layers = 0;  // all on the CPU
  EXPECT_EQ(coordinator_decl_for(mine, p).gpu_layers, 0);
}

}  // namespace
}  // namespace tars::cluster
