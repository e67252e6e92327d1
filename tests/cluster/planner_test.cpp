// The placement planner on the scenario of issue 6 (sparse GGUF files of the
// real shapes), two other inventories checked by invariants, pins, a model
// that fits nowhere, and replanning after a node is gone.
#include "cluster/planner.h"

#include <gtest/gtest.h>

#include <set>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/units.h"
#include "engine/gguf.h"
#include "node/devices.h"
#include "support/sparse_model.h"
#include "support/test_support.h"

namespace tars::cluster {
namespace {

// The LLaMA-2-70B shape at Q4_K_M (about 39 GiB): too big for either PC's GPU.
test::SparseModelSpec llama_70b_q4km() {
  test::SparseModelSpec big;
  big.n_embd = 8192;
  big.n_layer = 80;
  big.n_head = 64;
  big.n_head_kv = 8;
  big.n_ff = 28672;
  big.quant = "Q4_K_M";
  return big;
}

constexpr uint64_t kGiB = uint64_t{1} << 30;

// A node from simulated-inventory JSON, with fixed CPU figures (the
// inventories of the issue say nothing about RAM; tests must not depend on
// this machine's).
PlanNode make_node(const std::string& name, const std::string& gpus_json, uint64_t ram_gib) {
  node::CpuInfo cpu;
  cpu.model_name = "test CPU";
  cpu.ram_total_bytes = ram_gib * kGiB;
  cpu.ram_available_bytes = ram_gib * kGiB * 3 / 4;
  return plan_node_from_inventory(
      name, node::devices_parse_simulated("{\"gpus\": " + gpus_json + "}", name + ".json", cpu));
}

const char* kRtx3060 =
    R"([{"name": "NVIDIA GeForce RTX 3060", "total_memory": "12GiB", "free_memory": "11.5GiB",
         "compute_capability": "8.6"}])";
const char* kGtx1660 =
    R"([{"name": "NVIDIA GeForce GTX 1660 SUPER", "total_memory": "6GiB", "free_memory": "5.8GiB",
         "compute_capability": "7.5"}])";

std::vector<PlanNode> scenario_nodes() {
  return {make_node("pc1", kRtx3060, 32), make_node("pc2", kGtx1660, 16)};
}

// The scenario's sparse files, written once for all tests.
class PlannerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    for (const auto& s : test::issue6_scenario_models()) {
      const std::string path = dir_->file(s.alias + ".gguf");
      test::write_sparse_model(s.spec, path);
      node::ModelDecl d;
      d.path = path;
      d.alias = s.alias;
      d.role = s.role;
      d.load = s.load;
      d.ctx_size = s.ctx_size;
      d.slots = 1;
      decls_->push_back(d);
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
    decls_->clear();
  }

  static PlanModel model(const node::ModelDecl& d) {
    auto f = engine::GgufFile::open(d.path);
    return plan_model_from_gguf(d, *f, PlanModelOptions{});
  }
  static std::vector<PlanModel> models(const std::vector<node::ModelDecl>& decls) {
    std::vector<PlanModel> out;
    for (const auto& d : decls) out.push_back(model(d));
    return out;
  }
  static std::vector<PlanModel> scenario_models() { return models(*decls_); }

  static test::TempDir* dir_;
  static std::unique_ptr<std::vector<node::ModelDecl>> decls_;
};
test::TempDir* PlannerTest::dir_ = nullptr;
std::unique_ptr<std::vector<node::ModelDecl>> PlannerTest::decls_ =
    std::make_unique<std::vector<node::ModelDecl>>();

// ---- invariants ----------------------------------------------------------------

struct Loc {
  std::string node, device;
  bool operator<(const Loc& o) const { return std::tie(node, device) < std::tie(o.node, o.device); }
};

const PlanDevice& device_of(const std::vector<PlanNode>& nodes, const Loc& l) {
  for (const auto& n : nodes) {
    for (const auto& d : n.devices) {
      if (n.name == l.node && d.id == l.device) return d;
    }
  }
  throw std::runtime_error("no device " + l.node + "/" + l.device);
}

uint64_t margin_of(const PlanDevice& d) {
  return std::max<uint64_t>(kPlanMarginMinBytes, static_cast<uint64_t>(kPlanMarginFraction * d.total_bytes));
}

// Memory a device needs for a set of (need, resident) models, recomputed
// here from the placements (not from the planner's own summary).
uint64_t device_need(const PlanDevice& d, const std::vector<std::pair<uint64_t, bool>>& ms) {
  if (ms.empty()) return 0;
  uint64_t res = 0, peak = 0;
  for (auto [need, resident] : ms) {
    if (resident) res += need;
    else peak = std::max(peak, need);
  }
  return estimate_runtime_overhead(d.kind) + res + peak;
}

// What each placement puts on device l: its need on its device, and a
// split's RAM part on its node's RAM.
std::vector<std::pair<uint64_t, bool>> on_device(const Plan& plan, const Loc& l,
                                                 const std::string& except = "") {
  std::vector<std::pair<uint64_t, bool>> ms;
  for (const auto& p : plan.placements) {
    if (!p.placed || p.node != l.node || p.model == except) continue;
    if (p.device == l.device) ms.emplace_back(p.need_bytes, p.resident);
    if (p.gpu_layers >= 0 && p.cpu_part.device == l.device) ms.emplace_back(p.cpu_part.need_bytes, p.resident);
  }
  return ms;
}

// A split's parts recomputed from a candidate's figures (SplitFigures), by
// hand: the GPU part holds the embeddings, layers [0, n), their KV cache and
// the layers' compute buffers; the RAM part the other layers, their KV
// cache, the head and every compute buffer.
uint64_t gpu_part(const PlanCandidate& c, int n, int slots) {
  uint64_t b = c.split.embd_bytes + c.split.compute_x_bytes + (n > 0 ? c.split.compute_layers_bytes : 0);
  for (int i = 0; i < n; ++i) b += c.split.layer_weights_bytes[i] + c.split.kv_layer_slot_bytes * slots;
  return b;
}
uint64_t ram_part(const PlanCandidate& c, int n, int slots) {
  const int L = c.split.n_layer();
  uint64_t b = c.split.head_bytes + c.split.compute_x_bytes + c.split.compute_head_bytes +
               (n < L ? c.split.compute_layers_bytes : 0);
  for (int i = n; i < L; ++i) b += c.split.layer_weights_bytes[i] + c.split.kv_layer_slot_bytes * slots;
  return b;
}
// The most first layers (1 .. L-1) whose GPU part fits in `gpu_room`; 0 when none.
int layers_that_fit(const PlanCandidate& c, int slots, uint64_t gpu_room) {
  int best = 0;
  for (int n = 1; n < c.split.n_layer(); ++n) {
    if (gpu_part(c, n, slots) <= gpu_room) best = n;
  }
  return best;
}
// Room on a device that holds nothing yet: free - overhead - margin.
uint64_t empty_room(const PlanDevice& d) {
  return d.free_bytes - estimate_runtime_overhead(d.kind) - std::max<uint64_t>(kPlanMarginMinBytes,
                                                                                static_cast<uint64_t>(kPlanMarginFraction * d.total_bytes));
}

bool fits(const PlanDevice& d, std::vector<std::pair<uint64_t, bool>> ms, uint64_t need, bool resident) {
  ms.emplace_back(need, resident);
  return device_need(d, ms) + margin_of(d) <= d.free_bytes;
}

void check_invariants(const std::vector<PlanNode>& nodes, const std::vector<PlanModel>& models,
                      const Plan& plan) {
  ASSERT_EQ(plan.placements.size(), models.size());
  // Every device's set fits (residents + overhead + the largest on-demand + margin).
  for (const auto& n : nodes) {
    for (const auto& d : n.devices) {
      const uint64_t need = device_need(d, on_device(plan, {n.name, d.id}));
      if (need > 0) {
        EXPECT_LE(need + margin_of(d), d.free_bytes) << n.name << "/" << d.id;
      }
    }
  }
  const PlanModel* main_chat = nullptr;
  for (const auto& m : models) {
    if (m.decl.role == "chat" && m.decl.load == "always" && (!main_chat || m.n_params > main_chat->n_params)) {
      main_chat = &m;
    }
  }
  for (size_t i = 0; i < models.size(); ++i) {
    const PlanModel& m = models[i];
    const PlanPlacement& p = plan.placements[i];
    EXPECT_EQ(p.model, m.name);
    const bool resident = m.decl.load != "on_demand";
    // A declared gpu_layers overrides the rules below (the split is the
    // user's, not the planner's): DeclaredGpuLayersSplitExactlyThere checks it.
    const bool declared = m.decl.gpu_layers >= 0;
    if (!p.placed) {
      if (declared) continue;
      // Nothing that fits somewhere is left unplaced: its smallest candidate
      // with one slot fits on no device beside what the plan put there.
      EXPECT_FALSE(p.reason.empty()) << m.name;
      for (const auto& n : nodes) {
        for (const auto& d : n.devices) {
          if (!m.decl.pin.empty() && m.decl.pin != n.name && m.decl.pin != n.name + "/" + d.id) continue;
          EXPECT_FALSE(fits(d, on_device(plan, {n.name, d.id}), m.candidates.back().model_bytes(1), resident))
              << m.name << " is unplaced but fits on " << n.name << "/" << d.id;
        }
      }
      continue;
    }
    // Pins honoured.
    if (!m.decl.pin.empty()) {
      const bool whole_node = m.decl.pin.find('/') == std::string::npos;
      EXPECT_EQ(whole_node ? p.node : p.node + "/" + p.device, m.decl.pin) << m.name;
    }
    // The numbers add up.
    size_t ci = 0;
    while (ci < m.candidates.size() && m.candidates[ci].quant != p.quant) ++ci;
    ASSERT_LT(ci, m.candidates.size()) << m.name << " got " << p.quant << ", not one of its candidates";
    if (p.gpu_layers >= 0) {
      // A split: a resident decoder, on a GPU, that no GPU holds whole.
      const PlanCandidate& c = m.candidates[ci];
      EXPECT_FALSE(m.encoder) << m.name;
      EXPECT_TRUE(resident) << m.name;
      EXPECT_EQ(p.kind, DeviceKind::kGpu) << m.name;
      EXPECT_GE(p.gpu_layers, 1) << m.name;
      EXPECT_LT(p.gpu_layers, c.split.n_layer()) << m.name;
      EXPECT_EQ(p.n_layer, c.split.n_layer()) << m.name;
      EXPECT_EQ(p.need_bytes, gpu_part(c, p.gpu_layers, p.slots)) << m.name;
      EXPECT_EQ(p.cpu_part.need_bytes, ram_part(c, p.gpu_layers, p.slots)) << m.name;
      EXPECT_EQ(p.cpu_part.first_layer, p.gpu_layers) << m.name;
      EXPECT_EQ(p.cpu_part.device, "cpu") << m.name;
      if (declared) {
        EXPECT_EQ(p.gpu_layers, m.decl.gpu_layers) << m.name;
        continue;
      }
      for (const auto& n : nodes) {
        for (const auto& g : n.devices) {
          if (g.kind != DeviceKind::kGpu) continue;
          EXPECT_FALSE(fits(g, on_device(plan, {n.name, g.id}, m.name), m.candidates.back().model_bytes(1), true))
              << m.name << " is split but fits whole on " << n.name << "/" << g.id;
        }
      }
      continue;
    }
    EXPECT_EQ(p.need_bytes, m.candidates[ci].model_bytes(p.slots)) << m.name;
    // The highest precision that fits on its device is chosen: no higher
    // candidate fits there beside the others (with the same slots).
    const Loc loc{p.node, p.device};
    const PlanDevice& d = device_of(nodes, loc);
    const auto others = on_device(plan, loc, m.name);
    for (size_t k = 0; k < ci; ++k) {
      EXPECT_FALSE(fits(d, others, m.candidates[k].model_bytes(p.slots), resident))
          << m.name << ": " << m.candidates[k].quant << " would fit on " << p.node << "/" << p.device;
    }
    // GPUs before CPU RAM: on the CPU only when no GPU can take it at all.
    if (p.kind == DeviceKind::kCpu && !declared) {
      for (const auto& n : nodes) {
        for (const auto& g : n.devices) {
          if (g.kind != DeviceKind::kGpu) continue;
          EXPECT_FALSE(fits(g, on_device(plan, {n.name, g.id}), m.candidates.back().model_bytes(1), resident))
              << m.name << " is on a CPU but fits on " << n.name << "/" << g.id;
        }
      }
    }
    // The embedding model is off the main chat model's device unless no
    // other GPU could take it (beside the residents placed before it).
    if (m.decl.role == "embedding" && main_chat && m.decl.pin.empty()) {
      const PlanPlacement* mc = plan.find(main_chat->name);
      if (mc && mc->placed && mc->node == p.node && mc->device == p.device) {
        for (const auto& n : nodes) {
          for (const auto& g : n.devices) {
            if (g.kind != DeviceKind::kGpu || (n.name == p.node && g.id == p.device)) continue;
            std::vector<std::pair<uint64_t, bool>> res;
            for (auto x : on_device(plan, {n.name, g.id})) {
              if (x.second) res.push_back(x);
            }
            EXPECT_FALSE(fits(g, res, m.candidates.back().model_bytes(1), true))
                << "the embedding model shares the main chat model's device but fits on " << n.name << "/"
                << g.id;
          }
        }
      }
    }
  }
}

// ---- the scenario ----------------------------------------------------------------

TEST_F(PlannerTest, SparseFilesCostNoDisk) {
  for (const auto& d : *decls_) {
    auto f = engine::GgufFile::open(d.path);
    EXPECT_LT(test::sparse_disk_bytes(d.path), 4u << 20) << d.path;
    EXPECT_GT(f->file_size(), 20u << 20) << d.path;
  }
  auto f = engine::GgufFile::open(dir_->file("mistral-7b-instruct.gguf"));
  EXPECT_GT(f->file_size(), 4 * kGiB);  // a real Q4_K_M Mistral is 4.37 GB
  EXPECT_LT(f->file_size(), 4.5 * kGiB);
}

TEST_F(PlannerTest, IssueScenarioTable) {
  const auto nodes = scenario_nodes();
  const auto ms = scenario_models();
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  struct Row {
    const char* model;
    const char* node;
    const char* device_name;
    const char* quant;
    bool resident;
  };
  const Row expected[] = {
      {"mistral-7b-instruct", "pc1", "NVIDIA GeForce RTX 3060", "Q4_K_M", true},
      {"llama-2-7b-chat", "pc1", "NVIDIA GeForce RTX 3060", "Q4_K_M", false},
      {"neural-chat-7b", "pc1", "NVIDIA GeForce RTX 3060", "Q4_K_M", false},
      {"all-minilm-l6-v2", "pc2", "NVIDIA GeForce GTX 1660 SUPER", "F32", true},
      {"phi-2", "pc2", "NVIDIA GeForce GTX 1660 SUPER", "Q8_0", false},
      {"stablelm-3b", "pc2", "NVIDIA GeForce GTX 1660 SUPER", "Q8_0", false},
  };
  for (const auto& r : expected) {
    const PlanPlacement* p = plan.find(r.model);
    ASSERT_NE(p, nullptr) << r.model;
    EXPECT_TRUE(p->placed) << r.model << ": " << p->reason;
    EXPECT_EQ(p->node, r.node) << r.model;
    EXPECT_EQ(p->device, "gpu0") << r.model;
    EXPECT_EQ(p->device_name, r.device_name) << r.model;
    EXPECT_EQ(p->quant, r.quant) << r.model;
    EXPECT_EQ(p->resident, r.resident) << r.model;
    EXPECT_EQ(p->slots, 1) << r.model;
  }
  // On-demand models swap with the others on their device.
  EXPECT_EQ(plan.find("phi-2")->swaps_with, std::vector<std::string>{"stablelm-3b"});
  EXPECT_EQ(plan.find("stablelm-3b")->swaps_with, std::vector<std::string>{"phi-2"});
  EXPECT_EQ(plan.find("llama-2-7b-chat")->swaps_with, std::vector<std::string>{"neural-chat-7b"});
  // phi-2 at F16 is rejected on the 1660 with its numbers.
  bool f16_rejected = false;
  for (const auto& r : plan.find("phi-2")->rejected) {
    if (r.node == "pc2" && r.why.rfind("F16 needs", 0) == 0) f16_rejected = true;
  }
  EXPECT_TRUE(f16_rejected);
  check_invariants(nodes, ms, plan);
}

TEST_F(PlannerTest, IssueScenarioNumbers) {
  // The arithmetic behind the table, against a hand computation in double
  // precision from the shapes (no file read): llama-2's KV cache is 2 GiB,
  // Mistral's 512 MiB (8 KV heads), phi-2's 640 MiB at 2048 tokens.
  const auto ms = scenario_models();
  std::map<std::string, const PlanModel*> by;
  for (const auto& m : ms) by[m.name] = &m;
  auto kv = [](double layers, double ctx, double kv_dim) {
    return static_cast<uint64_t>(2 * layers * ctx * kv_dim * 2);
  };
  EXPECT_EQ(by["llama-2-7b-chat"]->candidates[0].kv_bytes_per_slot, kv(32, 4096, 4096));
  EXPECT_EQ(by["mistral-7b-instruct"]->candidates[0].kv_bytes_per_slot, kv(32, 4096, 1024));
  EXPECT_EQ(by["phi-2"]->candidates[0].kv_bytes_per_slot, kv(32, 2048, 2560));
  // phi-2 in Q8_0: every matrix 34 bytes per 32 weights, vectors F32.
  const double E = 2560, F = 10240, V = 51200, L = 32;
  const double matrices = 2 * E * V + L * (E * 3 * E + E * E + 2 * E * F);
  const double vectors = 2 * E + V + L * (2 * E + 3 * E + E + F + E);
  EXPECT_EQ(by["phi-2"]->candidates[1].quant, "Q8_0");
  EXPECT_EQ(by["phi-2"]->candidates[1].weights_bytes, static_cast<uint64_t>(matrices * 34 / 32 + vectors * 4));
  EXPECT_EQ(by["phi-2"]->candidates[0].weights_bytes, static_cast<uint64_t>(matrices * 2 + vectors * 4));
  // The ladders: quantized files run as they are, float files go down.
  EXPECT_EQ(by["mistral-7b-instruct"]->candidates.size(), 1u);
  EXPECT_EQ(by["phi-2"]->candidates.size(), 6u);
  EXPECT_EQ(by["all-minilm-l6-v2"]->candidates[0].quant, "F32");
}

TEST_F(PlannerTest, TableAndJsonShowTheNumbers) {
  const Plan plan = plan_placement(scenario_nodes(), scenario_models());
  const std::string table = plan_to_table(plan);
  EXPECT_NE(table.find("phi-2"), std::string::npos);
  EXPECT_NE(table.find("pc2/gpu0 NVIDIA GeForce GTX 1660 SUPER"), std::string::npos);
  EXPECT_NE(table.find("room: free 11.50 GiB"), std::string::npos) << table;
  EXPECT_NE(table.find("quantized at load"), std::string::npos) << table;
  const nlohmann::json j = plan_to_json(plan);
  ASSERT_EQ(j["models"].size(), 6u);
  EXPECT_EQ(j["models"][4]["model"], "phi-2");
  EXPECT_EQ(j["models"][4]["quant"], "Q8_0");
  EXPECT_EQ(j["models"][4]["need_bytes"], plan.placements[4].need_bytes);
  EXPECT_EQ(j["devices"].size(), 4u);  // two GPUs, two CPUs
}

// ---- other inventories: invariants -------------------------------------------------

TEST_F(PlannerTest, BigGpuAndCpuOnlyNode) {
  const std::vector<PlanNode> nodes = {
      make_node("big", R"([{"name": "NVIDIA GeForce RTX 4090", "total_memory": "24GiB",
                            "free_memory": "23.5GiB", "compute_capability": "8.9"}])", 64),
      make_node("cpuonly", "[]", 32)};
  const auto ms = scenario_models();
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  for (const auto& p : plan.placements) {
    EXPECT_TRUE(p.placed) << p.model;
    EXPECT_EQ(p.node, "big") << p.model;  // 24 GiB takes everything; CPU RAM is the last resort
  }
  // Room for the on-demand 7B models in F16? No: their files are Q4_K_M.
  EXPECT_EQ(plan.find("llama-2-7b-chat")->quant, "Q4_K_M");
  EXPECT_EQ(plan.find("phi-2")->quant, "F16");
  EXPECT_EQ(plan.find("stablelm-3b")->quant, "F16");
}

TEST_F(PlannerTest, ThreeEightGigabyteGpus) {
  const char* gpu = R"([{"name": "NVIDIA GeForce RTX 3070", "total_memory": "8GiB",
                         "free_memory": "7.6GiB", "compute_capability": "8.6"}])";
  const std::vector<PlanNode> nodes = {make_node("a", gpu, 16), make_node("b", gpu, 16),
                                       make_node("c", gpu, 16)};
  const auto ms = scenario_models();
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  for (const auto& p : plan.placements) {
    EXPECT_TRUE(p.placed) << p.model;
    EXPECT_EQ(p.kind, DeviceKind::kGpu) << p.model;
  }
  const PlanPlacement* chat = plan.find("mistral-7b-instruct");
  const PlanPlacement* emb = plan.find("all-minilm-l6-v2");
  EXPECT_NE(chat->node, emb->node);
}

TEST_F(PlannerTest, ReplicasGoToOtherNodesAfterEveryFirstCopy) {
  const char* gpu = R"([{"name": "NVIDIA GeForce RTX 3070", "total_memory": "8GiB",
                         "free_memory": "7.6GiB", "compute_capability": "8.6"}])";
  const std::vector<PlanNode> nodes = {make_node("a", gpu, 16), make_node("b", gpu, 16),
                                       make_node("c", gpu, 16)};
  auto decls = *decls_;
  decls[0].replicas = 2;  // mistral on two nodes
  decls[3].replicas = 4;  // the embedding model: one more copy than there are nodes
  const Plan single = plan_placement(nodes, scenario_models());
  const Plan plan = plan_placement(nodes, models(decls));
  SCOPED_TRACE(plan_to_table(plan));
  // The first copies are where they were without replicas.
  for (const auto& d : *decls_) {
    const PlanPlacement* a = single.find(d.alias);
    const PlanPlacement* b = plan.find(d.alias);
    ASSERT_TRUE(a && b) << d.alias;
    EXPECT_EQ(a->placed, b->placed) << d.alias;
    EXPECT_EQ(a->node + "/" + a->device + " " + a->quant, b->node + "/" + b->device + " " + b->quant)
        << d.alias;
  }
  auto copies = [&](const std::string& model) {
    std::vector<const PlanPlacement*> out;
    for (const auto& p : plan.placements) {
      if (p.model == model) out.push_back(&p);
    }
    return out;
  };
  auto mistral = copies("mistral-7b-instruct");
  ASSERT_EQ(mistral.size(), 2u);
  EXPECT_TRUE(mistral[1]->placed) << mistral[1]->reason;
  EXPECT_NE(mistral[0]->node, mistral[1]->node);
  EXPECT_NE(mistral[1]->reason.find("replica 2 of 2"), std::string::npos) << mistral[1]->reason;
  auto emb = copies("all-minilm-l6-v2");
  ASSERT_EQ(emb.size(), 4u);
  std::set<std::string> nodes_used;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(emb[i]->placed) << i << ": " << emb[i]->reason;
    nodes_used.insert(emb[i]->node);
  }
  EXPECT_EQ(nodes_used.size(), 3u) << "each copy on its own node";
  EXPECT_FALSE(emb[3]->placed);
  EXPECT_NE(emb[3]->reason.find("replica 4 of 4: no other node"), std::string::npos) << emb[3]->reason;
  // Every device still holds what it was given.
  for (const auto& d : plan.devices) {
    EXPECT_LE(d.used_bytes() + d.margin_bytes, d.free_bytes) << d.node << "/" << d.device;
  }
}

// ---- pins, a model that fits nowhere, failover ------------------------------------

TEST_F(PlannerTest, PinsAreHonoured) {
  auto decls = *decls_;
  decls[4].pin = "pc1";       // phi-2 to the 3060's node
  decls[3].pin = "pc1/gpu0";  // the embedding model beside the main chat model
  const auto nodes = scenario_nodes();
  const auto ms = models(decls);
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  EXPECT_EQ(plan.find("phi-2")->node, "pc1");
  EXPECT_EQ(plan.find("phi-2")->device, "gpu0");
  EXPECT_EQ(plan.find("all-minilm-l6-v2")->node, "pc1");
  EXPECT_EQ(plan.find("all-minilm-l6-v2")->reason, "pinned to pc1/gpu0");

  decls = *decls_;
  decls[0].pin = "pc9";
  const Plan missing = plan_placement(nodes, models(decls));
  EXPECT_FALSE(missing.find("mistral-7b-instruct")->placed);
  EXPECT_NE(missing.find("mistral-7b-instruct")->reason.find("node pc9 is not in the cluster"),
            std::string::npos);
}

TEST_F(PlannerTest, ModelThatFitsNowhereGetsAReason) {
  const test::SparseModelSpec big = llama_70b_q4km();
  const std::string path = dir_->file("llama-70b.gguf");
  test::write_sparse_model(big, path);
  auto decls = *decls_;
  node::ModelDecl d;
  d.path = path;
  d.alias = "llama-70b";
  d.ctx_size = 4096;
  d.slots = 1;
  decls.push_back(d);
  const auto nodes = scenario_nodes();
  const auto ms = models(decls);
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  const PlanPlacement* p = plan.find("llama-70b");
  EXPECT_FALSE(p->placed);
  EXPECT_EQ(p->reason, "fits on no device, whole or split over a GPU and its node's RAM");
  ASSERT_EQ(p->rejected.size(), 4u);  // every device says what it lacks
  for (const auto& r : p->rejected) {
    EXPECT_NE(r.why.find("Q4_K_M needs"), std::string::npos) << r.why;
    // The GPUs also say how far a split got.
    EXPECT_EQ(r.why.find("Q4_K_M split: ") != std::string::npos, r.device == "gpu0") << r.why;
  }
  EXPECT_NE(plan_to_table(plan).find("UNPLACED"), std::string::npos);
  // The rest of the table is as without it.
  EXPECT_EQ(plan.find("phi-2")->node, "pc2");
}

TEST_F(PlannerTest, ReplanWithoutTheWorker) {
  const std::vector<PlanNode> nodes = {make_node("pc1", kRtx3060, 32)};
  const auto ms = scenario_models();
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  for (const auto& p : plan.placements) {
    EXPECT_TRUE(p.placed) << p.model << ": " << p.reason;
    EXPECT_EQ(p.node, "pc1") << p.model;
  }
  // With no other GPU, the embedding model joins the chat model's.
  EXPECT_EQ(plan.find("all-minilm-l6-v2")->device, "gpu0");
}

TEST_F(PlannerTest, SlotsReducedOnlyWhenNothingFitsWithThem) {
  auto decls = *decls_;
  decls[1].slots = 4;  // llama-2: 4 x 2 GiB of KV cache cannot fit a 3060
  const auto nodes = scenario_nodes();
  const auto ms = models(decls);
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  const PlanPlacement* p = plan.find("llama-2-7b-chat");
  ASSERT_TRUE(p->placed);
  EXPECT_EQ(p->node, "pc1");
  EXPECT_GE(p->slots, 1);
  EXPECT_LT(p->slots, 4);
  EXPECT_EQ(p->kv_bytes, uint64_t{2} * kGiB * static_cast<uint64_t>(p->slots));
}

// ---- partial offload (rule 3) ----------------------------------------------------

// A resident copy of a scenario model (they are declared on demand there).
node::ModelDecl resident_decl(const std::vector<node::ModelDecl>& decls, const std::string& alias) {
  for (auto d : decls) {
    if (d.alias == alias) {
      d.load = "always";
      return d;
    }
  }
  throw std::runtime_error("no model " + alias);
}

TEST_F(PlannerTest, SevenBOnASixGigabyteCardSplitsWithTheRestInRam) {
  const std::vector<PlanNode> nodes = {make_node("pc2", kGtx1660, 16)};
  const std::vector<PlanModel> ms = models({resident_decl(*decls_, "llama-2-7b-chat")});
  const PlanCandidate& c = ms[0].candidates.at(0);  // Q4_K_M, the file's type
  const PlanDevice& gpu = nodes[0].devices[0];
  const PlanDevice& ram = nodes[0].devices[1];
  ASSERT_EQ(ram.id, "cpu");
  // Not whole: 3.9 GiB of weights and 2 GiB of KV cache exceed the card.
  ASSERT_GT(c.model_bytes(1), empty_room(gpu));
  const int L = c.split.n_layer();
  ASSERT_EQ(L, 32);
  const int want = layers_that_fit(c, 1, empty_room(gpu));
  ASSERT_GE(want, 1);
  ASSERT_LT(want, L);
  ASSERT_GT(gpu_part(c, want + 1, 1), empty_room(gpu));  // one more would not fit
  ASSERT_LE(ram_part(c, want, 1), empty_room(ram));

  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  const PlanPlacement& p = plan.placements[0];
  ASSERT_TRUE(p.placed) << p.reason;
  EXPECT_EQ(p.device, "gpu0");
  EXPECT_EQ(p.quant, "Q4_K_M");
  EXPECT_EQ(p.gpu_layers, want);
  EXPECT_EQ(p.n_layer, L);
  EXPECT_EQ(p.need_bytes, gpu_part(c, want, 1));
  EXPECT_EQ(p.weights_bytes + p.kv_bytes + p.compute_bytes, p.need_bytes);
  EXPECT_EQ(p.kv_bytes, c.split.kv_layer_slot_bytes * want);
  EXPECT_EQ(p.available_bytes, empty_room(gpu));
  EXPECT_EQ(p.cpu_part.need_bytes, ram_part(c, want, 1));
  EXPECT_EQ(p.cpu_part.n_layers, L - want);
  EXPECT_EQ(p.cpu_part.available_bytes, empty_room(ram));
  // Both parts together: the whole model plus the tied head's second copy
  // (none here) and a second set of layer buffers (x ... ff2): each part
  // runs layers.
  EXPECT_FALSE(c.split.head_tied);
  EXPECT_EQ(p.need_bytes + p.cpu_part.need_bytes,
            c.model_bytes(1) + c.split.compute_x_bytes + c.split.compute_layers_bytes);
  EXPECT_EQ(p.reason, "split: " + std::to_string(want) + " of 32 layers on gpu0 (" + format_bytes(p.need_bytes) +
                          "), " + std::to_string(L - want) + " in RAM (" + format_bytes(p.cpu_part.need_bytes) +
                          "): no GPU holds it whole");
  // The RAM device counts its part.
  ASSERT_EQ(plan.devices.size(), 2u);
  EXPECT_EQ(plan.devices[0].resident_bytes, p.need_bytes);
  EXPECT_EQ(plan.devices[1].resident_bytes, p.cpu_part.need_bytes);
  EXPECT_EQ(plan.devices[1].residents, std::vector<std::string>{"llama-2-7b-chat"});
  // The table and the JSON say it.
  const std::string table = plan_to_table(plan);
  EXPECT_NE(table.find("(" + std::to_string(want) + "/32 layers on GPU)"), std::string::npos) << table;
  EXPECT_NE(table.find("gpu_layers = " + std::to_string(want)), std::string::npos) << table;
  EXPECT_NE(table.find("room in RAM: free 12.00 GiB"), std::string::npos) << table;
  const nlohmann::json j = plan_to_json(plan);
  EXPECT_EQ(j["models"][0]["gpu_layers"], want);
  EXPECT_EQ(j["models"][0]["cpu_bytes"], p.cpu_part.need_bytes);
  EXPECT_EQ(j["models"][0]["cpu_part"]["n_layers"], L - want);
  EXPECT_EQ(j["devices"][1]["resident_bytes"], p.cpu_part.need_bytes);

  // Pinned to the GPU: the same split. Pinned to the RAM: whole in RAM.
  auto pinned = [&](const std::string& pin) {
    node::ModelDecl d = resident_decl(*decls_, "llama-2-7b-chat");
    d.pin = pin;
    return plan_placement(nodes, models({d})).placements[0];
  };
  const PlanPlacement on_gpu = pinned("pc2/gpu0");
  EXPECT_EQ(on_gpu.gpu_layers, want) << on_gpu.reason;
  EXPECT_EQ(on_gpu.reason.rfind("pinned to pc2/gpu0; split: ", 0), 0u) << on_gpu.reason;
  const PlanPlacement on_cpu = pinned("pc2/cpu");
  EXPECT_TRUE(on_cpu.placed);
  EXPECT_EQ(on_cpu.device, "cpu");
  EXPECT_EQ(on_cpu.gpu_layers, -1);
  // On demand: no split, RAM alone.
  node::ModelDecl od = resident_decl(*decls_, "llama-2-7b-chat");
  od.load = "on_demand";
  const PlanPlacement swapped = plan_placement(nodes, models({od})).placements[0];
  EXPECT_EQ(swapped.device, "cpu");
  EXPECT_EQ(swapped.gpu_layers, -1);
}

TEST_F(PlannerTest, SevenBBesideATwelveGigabyteCardGoesWholeThere) {
  const std::vector<PlanNode> nodes = {make_node("pc2", kGtx1660, 16), make_node("pc1", kRtx3060, 32)};
  const std::vector<PlanModel> ms = models({resident_decl(*decls_, "llama-2-7b-chat")});
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  const PlanPlacement& p = plan.placements[0];
  ASSERT_TRUE(p.placed) << p.reason;
  EXPECT_EQ(p.node, "pc1");
  EXPECT_EQ(p.device, "gpu0");
  EXPECT_EQ(p.gpu_layers, -1);
  EXPECT_EQ(p.cpu_part.need_bytes, 0u);
  EXPECT_EQ(p.need_bytes, ms[0].candidates[0].model_bytes(1));
}

// gpu_layers in the configuration (as llama.cpp's -ngl): the plan splits at
// exactly that count, though the 12 GB card could hold the 7B whole, and
// counts both parts; 0 keeps it in RAM; n_layer is the default; a count
// that does not fit leaves it unplaced with the numbers.
TEST_F(PlannerTest, DeclaredGpuLayersSplitExactlyThere) {
  const std::vector<PlanNode> nodes = {make_node("pc1", kRtx3060, 32)};
  auto plan_with = [&](int gpu_layers, const std::vector<PlanNode>& on) {
    node::ModelDecl d = resident_decl(*decls_, "llama-2-7b-chat");
    d.gpu_layers = gpu_layers;
    const std::vector<PlanModel> ms = models({d});
    const Plan plan = plan_placement(on, ms);
    check_invariants(on, ms, plan);
    return std::make_pair(plan, ms[0].candidates.at(0));
  };
  {
    const auto [plan, c] = plan_with(20, nodes);
    SCOPED_TRACE(plan_to_table(plan));
    const PlanPlacement& p = plan.placements[0];
    ASSERT_TRUE(p.placed) << p.reason;
    EXPECT_EQ(p.device, "gpu0");
    EXPECT_EQ(p.gpu_layers, 20);
    EXPECT_EQ(p.need_bytes, gpu_part(c, 20, 1));
    EXPECT_EQ(p.cpu_part.need_bytes, ram_part(c, 20, 1));
    EXPECT_EQ(p.cpu_part.first_layer, 20);
    EXPECT_NE(p.reason.find("split: 20 of 32 layers on gpu0"), std::string::npos) << p.reason;
    EXPECT_NE(p.reason.find("gpu_layers = 20 in the configuration"), std::string::npos) << p.reason;
    EXPECT_EQ(plan.devices[1].resident_bytes, p.cpu_part.need_bytes);
  }
  {
    const auto [plan, c] = plan_with(0, nodes);
    const PlanPlacement& p = plan.placements[0];
    ASSERT_TRUE(p.placed) << p.reason;
    EXPECT_EQ(p.device, "cpu");
    EXPECT_EQ(p.gpu_layers, -1);
    EXPECT_EQ(plan.devices[0].resident_bytes, 0u);  // nothing on the GPU
  }
  {
    const auto [plan, c] = plan_with(32, nodes);
    const PlanPlacement& p = plan.placements[0];
    ASSERT_TRUE(p.placed) << p.reason;
    EXPECT_EQ(p.device, "gpu0");
    EXPECT_EQ(p.gpu_layers, -1);
    EXPECT_EQ(p.need_bytes, c.model_bytes(1));
  }
  {
    // 31 layers of the 7B do not fit the 6 GB card.
    const std::vector<PlanNode> small = {make_node("pc2", kGtx1660, 16)};
    const auto [plan, c] = plan_with(31, small);
    SCOPED_TRACE(plan_to_table(plan));
    ASSERT_GT(gpu_part(c, 31, 1), empty_room(small[0].devices[0]));
    const PlanPlacement& p = plan.placements[0];
    EXPECT_FALSE(p.placed);
    EXPECT_EQ(p.reason, "gpu_layers = 31 in the configuration: that split fits on no GPU and its node's RAM");
    ASSERT_EQ(p.rejected.size(), 1u);
    EXPECT_EQ(p.rejected[0].why, "Q4_K_M split: 31 of 32 layers (gpu_layers) need " +
                                     format_bytes(gpu_part(c, 31, 1)) + " > " +
                                     format_bytes(empty_room(small[0].devices[0])) + " available on gpu0");
    EXPECT_EQ(plan.devices[0].resident_bytes, 0u);
    EXPECT_EQ(plan.devices[1].resident_bytes, 0u);
  }
  {
    // A node without a GPU: the declaration is moot, the model goes to RAM.
    const std::vector<PlanNode> cpu_only = {make_node("pc3", "[]", 32)};
    const auto [plan, c] = plan_with(20, cpu_only);
    const PlanPlacement& p = plan.placements[0];
    ASSERT_TRUE(p.placed) << p.reason;
    EXPECT_EQ(p.device, "cpu");
    EXPECT_EQ(p.gpu_layers, -1);
  }
}

TEST_F(PlannerTest, TooBigForGpuAndRamIsUnplacedWithTheSplitNumbers) {
  const test::SparseModelSpec big = llama_70b_q4km();
  const std::string path = dir_->file("llama-70b-split.gguf");
  test::write_sparse_model(big, path);
  node::ModelDecl d;
  d.path = path;
  d.alias = "llama-70b";
  d.ctx_size = 4096;
  d.slots = 1;
  const std::vector<PlanNode> nodes = {make_node("pc2", kGtx1660, 16)};
  const std::vector<PlanModel> ms = models({d});
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  const PlanPlacement& p = plan.placements[0];
  EXPECT_FALSE(p.placed);
  EXPECT_EQ(p.reason, "fits on no device, whole or split over a GPU and its node's RAM");
  const PlanCandidate& c = ms[0].candidates[0];
  const int n = layers_that_fit(c, 1, empty_room(nodes[0].devices[0]));
  ASSERT_GE(n, 1);
  ASSERT_EQ(p.rejected.size(), 2u);
  EXPECT_EQ(p.rejected[0].device, "gpu0");
  EXPECT_NE(p.rejected[0].why.find("Q4_K_M split: " + std::to_string(n) + " of 80 layers fit on gpu0 but the other " +
                                   std::to_string(80 - n) + " and the head need " + format_bytes(ram_part(c, n, 1)) +
                                   " > " + format_bytes(empty_room(nodes[0].devices[1])) + " of RAM available"),
            std::string::npos)
      << p.rejected[0].why;
  EXPECT_EQ(plan.devices[1].resident_bytes, 0u);  // nothing half-placed
}

TEST_F(PlannerTest, EncodersNeverSplit) {
  // A BERT too big for the 6 GB card at F32 (the only type allowed), small
  // enough for the RAM: RAM alone, never split.
  test::SparseModelSpec s;
  s.arch = "bert";
  s.n_embd = 4096;
  s.n_layer = 10;
  s.n_head = 32;
  s.n_ff = 16384;
  s.n_ctx = 512;
  s.quant = "F32";
  const std::string path = dir_->file("big-bert.gguf");
  test::write_sparse_model(s, path);
  node::ModelDecl d;
  d.path = path;
  d.alias = "big-bert";
  d.role = "embedding";
  d.quant = {"F32"};
  d.slots = 1;
  const std::vector<PlanNode> nodes = {make_node("pc2", kGtx1660, 16)};
  const std::vector<PlanModel> ms = models({d});
  ASSERT_TRUE(ms[0].encoder);
  ASSERT_EQ(ms[0].candidates.size(), 1u);
  EXPECT_EQ(ms[0].candidates[0].split.n_layer(), 0);
  ASSERT_GT(ms[0].candidates[0].model_bytes(1), empty_room(nodes[0].devices[0]));
  ASSERT_LE(ms[0].candidates[0].model_bytes(1), empty_room(nodes[0].devices[1]));
  const Plan plan = plan_placement(nodes, ms);
  SCOPED_TRACE(plan_to_table(plan));
  check_invariants(nodes, ms, plan);
  const PlanPlacement& p = plan.placements[0];
  ASSERT_TRUE(p.placed) << p.reason;
  EXPECT_EQ(p.device, "cpu");
  EXPECT_EQ(p.gpu_layers, -1);
}

// An F16 7B on the 6 GB card of a node with 48 GB of RAM (room for any
// split's rest): which candidate splits. The rule: the highest precision
// that puts at least half the layers on the GPU, else the most GPU layers.
TEST_F(PlannerTest, SplitPrefersHalfTheLayersOnTheGpuOverPrecision) {
  test::SparseModelSpec s;  // the 7B LLaMA shape, F16
  const std::string path = dir_->file("llama-7b-f16.gguf");
  test::write_sparse_model(s, path);
  const std::vector<PlanNode> nodes = {make_node("pc2", kGtx1660, 48)};
  const uint64_t gpu_room = empty_room(nodes[0].devices[0]);
  const uint64_t ram_room = empty_room(nodes[0].devices[1]);

  // The candidate the rule picks, from the candidates' figures: returns its
  // index and layer count.
  auto expected = [&](const PlanModel& m) {
    const int L = m.candidates[0].split.n_layer();
    int best = -1, best_n = 0;
    for (size_t i = 0; i < m.candidates.size(); ++i) {
      const int n = layers_that_fit(m.candidates[i], 1, gpu_room);
      EXPECT_GT(m.candidates[i].model_bytes(1), gpu_room) << m.candidates[i].quant << " fits whole";
      if (n == 0 || ram_part(m.candidates[i], n, 1) > ram_room) continue;
      if (2 * n >= L) return std::make_pair(static_cast<int>(i), n);  // the first (highest) to reach half
      if (n > best_n) best = static_cast<int>(i), best_n = n;          // else the most layers
    }
    return std::make_pair(best, best_n);
  };

  node::ModelDecl d;
  d.path = path;
  d.alias = "llama-7b";
  d.ctx_size = 4096;
  d.slots = 1;
  {
    const std::vector<PlanModel> ms = models({d});
    ASSERT_EQ(ms[0].candidates[0].quant, "F16");
    // F16 puts fewer than half of the 32 layers on the card.
    ASSERT_LT(2 * layers_that_fit(ms[0].candidates[0], 1, gpu_room), 32);
    const auto [ci, n] = expected(ms[0]);
    ASSERT_GT(ci, 0);  // a lower type than F16 reaches half
    ASSERT_GE(2 * n, 32);
    const Plan plan = plan_placement(nodes, ms);
    SCOPED_TRACE(plan_to_table(plan));
    check_invariants(nodes, ms, plan);
    const PlanPlacement& p = plan.placements[0];
    ASSERT_TRUE(p.placed) << p.reason;
    EXPECT_EQ(p.quant, ms[0].candidates[ci].quant);
    EXPECT_EQ(p.gpu_layers, n);
    // Why F16 lost is on the list.
    bool f16_listed = false;
    for (const auto& r : p.rejected) {
      if (r.why.rfind("F16 split: ", 0) == 0 && r.why.find("fewer than half") != std::string::npos) f16_listed = true;
    }
    EXPECT_TRUE(f16_listed);
  }
  {
    // A 16k context: 256 MiB of KV cache per layer; no candidate reaches half,
    // so the most GPU layers win (ties: the higher precision).
    d.ctx_size = 16384;
    const std::vector<PlanModel> ms = models({d});
    const auto [ci, n] = expected(ms[0]);
    ASSERT_GE(ci, 0);
    ASSERT_LT(2 * n, 32);
    for (size_t i = 0; i < static_cast<size_t>(ci); ++i) {
      EXPECT_LT(layers_that_fit(ms[0].candidates[i], 1, gpu_room), n) << ms[0].candidates[i].quant;
    }
    const Plan plan = plan_placement(nodes, ms);
    SCOPED_TRACE(plan_to_table(plan));
    check_invariants(nodes, ms, plan);
    const PlanPlacement& p = plan.placements[0];
    ASSERT_TRUE(p.placed) << p.reason;
    EXPECT_EQ(p.quant, ms[0].candidates[ci].quant);
    EXPECT_EQ(p.gpu_layers, n);
    EXPECT_NE(p.reason.find("no candidate puts half of the layers on a GPU"), std::string::npos) << p.reason;
  }
}

TEST(PlannerLadder, FromTheSourceDown) {
  using V = std::vector<std::string>;
  EXPECT_EQ(plan_quant_ladder("F16", {}), (V{"F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"}));
  EXPECT_EQ(plan_quant_ladder("F32", {}), (V{"F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"}));
  EXPECT_EQ(plan_quant_ladder("Q4_K_M", {}), (V{"Q4_K_M"}));
  EXPECT_EQ(plan_quant_ladder("F16", {"q4_k_m", "Q8_0"}), (V{"Q8_0", "Q4_K_M"}));
  EXPECT_EQ(plan_quant_ladder("Q4_K_M", {"Q8_0"}), V{});
}

TEST(PlannerNodes, FromInventory) {
  node::CpuInfo cpu;
  cpu.ram_total_bytes = 32 * kGiB;
  cpu.ram_available_bytes = 20 * kGiB;
  const PlanNode n = plan_node_from_inventory(
      "pc1", node::devices_parse_simulated(std::string("{\"gpus\": ") + kRtx3060 + "}", "x.json", cpu));
  ASSERT_EQ(n.devices.size(), 2u);
  EXPECT_EQ(n.devices[0].id, "gpu0");
  EXPECT_EQ(n.devices[0].free_bytes, static_cast<uint64_t>(11.5 * kGiB));
  EXPECT_EQ(n.devices[0].kind, DeviceKind::kGpu);
  EXPECT_EQ(n.devices[1].id, "cpu");
  EXPECT_EQ(n.devices[1].free_bytes, 20 * kGiB);
}

}  // namespace
}  // namespace tars::cluster
