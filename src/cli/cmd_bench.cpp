// `tars bench MODEL [-p 512] [-n 128] [-t N] [-r reps] [--json]`: prompt
// processing (pp: one batch of p tokens) and generation (tg: n tokens, one
// forward pass each) in tokens per second, like llama-bench. Each test runs
// once to warm up, then `reps` times; the table shows mean +- standard
// deviation of the per-repetition speeds. Model loading is not timed.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "common/error.h"
#include "engine/backend_cuda.h"
#include "engine/gguf.h"
#include "engine/kernels_cpu.h"
#include "engine/model.h"
#include "engine/thread_pool.h"

namespace tars::cli {
namespace {

struct BenchFlags {
  EngineFlags engine;
  int n_prompt = 512;  // pp test size; 0 skips it
  int n_gen = 128;     // tg test size; 0 skips it
  int reps = 5;
  bool json = false;
};

struct TestResult {
  std::string name;             // "pp512", "tg128"
  int n_prompt = 0, n_gen = 0;  // tokens of the test
  std::vector<double> ns;       // nanoseconds per repetition
  std::vector<double> ts;       // tokens per second per repetition
  double mean = 0, stddev = 0;  // of ts
};

void summarize(TestResult& r) {
  double s = 0;
  for (double v : r.ts) s += v;
  r.mean = s / r.ts.size();
  double var = 0;
  for (double v : r.ts) var += (v - r.mean) * (v - r.mean);
  r.stddev = r.ts.size() > 1 ? std::sqrt(var / (r.ts.size() - 1)) : 0.0;
}

using Clock = std::chrono::steady_clock;

double elapsed_ns(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

// One batch of the first n tokens of `ids` at positions 0..n-1, logits for
// the last only (what a prompt needs).
double run_pp(engine::Model& m, const std::vector<int32_t>& ids, int n) {
  engine::Batch b;
  for (int i = 0; i < n; ++i) b.add(ids[i], i, 0, i + 1 == n);
  std::vector<float> logits;
  const auto t0 = Clock::now();
  m.forward(b, logits);
  return elapsed_ns(t0);
}

// n forward passes of one token each at positions 0..n-1, with logits.
double run_tg(engine::Model& m, const std::vector<int32_t>& ids, int n) {
  std::vector<float> logits;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    engine::Batch b;
    b.add(ids[i], i, 0, true);
    logits.clear();
    m.forward(b, logits);
  }
  return elapsed_ns(t0);
}

std::string human_size(uint64_t bytes) {
  char buf[64];
  if (bytes >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1073741824.0);
  else std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1048576.0);
  return buf;
}

std::string human_params(uint64_t n) {
  char buf[64];
  if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  return buf;
}

int bench(const BenchFlags& f) {
  if (f.n_prompt < 0 || f.n_gen < 0 || f.reps < 1) {
    throw Error(ErrorCode::kInvalidArgument, "-p and -n must be >= 0 and -r >= 1");
  }
  EngineFlags ef = f.engine;
  if (ef.ctx_size == 0) ef.ctx_size = std::max(1, f.n_prompt + f.n_gen);  // like llama-bench
  if (ef.batch < f.n_prompt) ef.batch = f.n_prompt;  // pp is one batch
  const int threads = ef.threads > 0 ? ef.threads : engine::physical_core_count();
  ef.threads = threads;

  const auto t_load = Clock::now();
  LoadedModel lm = load_engine_model(ef, /*n_slots=*/1);
  std::fprintf(stderr, "tars bench: loaded %s in %.0f ms (not counted)\n", f.engine.model_path.c_str(),
               elapsed_ns(t_load) / 1e6);
  engine::Model& model = *lm.model;
  if (f.n_prompt + f.n_gen > model.options().n_ctx) {
    throw Error(ErrorCode::kInvalidArgument,
                "-p " + std::to_string(f.n_prompt) + " plus -n " + std::to_string(f.n_gen) +
                    " exceeds the context of " + std::to_string(model.options().n_ctx) + " (use -c)");
  }

  // Random token ids (speed does not depend on them), the same every run.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, model.hparams().n_vocab - 1);
  std::vector<int32_t> ids(std::max(f.n_prompt, f.n_gen));
  for (auto& id : ids) id = tok(rng);

  std::vector<TestResult> results;
  if (f.n_prompt > 0) {
    TestResult r{"pp" + std::to_string(f.n_prompt), f.n_prompt, 0, {}, {}, 0, 0};
    run_pp(model, ids, f.n_prompt);  // warm-up
    for (int i = 0; i < f.reps; ++i) {
      const double ns = run_pp(model, ids, f.n_prompt);
      r.ns.push_back(ns);
      r.ts.push_back(f.n_prompt * 1e9 / ns);
    }
    summarize(r);
    results.push_back(r);
  }
  if (f.n_gen > 0) {
    TestResult r{"tg" + std::to_string(f.n_gen), 0, f.n_gen, {}, {}, 0, 0};
    run_tg(model, ids, 1);  // warm-up
    for (int i = 0; i < f.reps; ++i) {
      const double ns = run_tg(model, ids, f.n_gen);
      r.ns.push_back(ns);
      r.ts.push_back(f.n_gen * 1e9 / ns);
    }
    summarize(r);
    results.push_back(r);
  }

  uint64_t bytes = 0, params = 0;
  for (const auto& t : lm.file->tensors()) {
    bytes += t.n_bytes;
    params += t.n_elems;
  }
  const std::string isa(engine::cpu::isa_name(engine::cpu::isa_active()));
  // Where it ran: "cpu", "cuda", or for a split "cuda+cpu" with the layers of each.
  std::string backend, where;
  const std::vector<engine::ModelPartMemory> parts = model.memory();
  for (const engine::ModelPartMemory& p : parts) {
    backend += (backend.empty() ? "" : "+") + p.backend;
    const std::string label = p.backend == "cpu" ? "CPU (" + isa + ")" : "CUDA";
    where += (where.empty() ? "" : " + ") + label;
    if (parts.size() > 1) {
      where += " " + std::to_string(p.n_layers) + "/" + std::to_string(model.hparams().n_layer);
    }
  }
  std::string file = f.engine.model_path;
  if (auto slash = file.find_last_of('/'); slash != std::string::npos) file = file.substr(slash + 1);

  const engine::CudaStats graphs = engine::backend_cuda_stats(model.backend());
  if (f.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : results) {
      out.push_back({{"model_file", f.engine.model_path},
                     {"model_type", model.hparams().arch},
                     {"model_size", bytes},
                     {"model_n_params", params},
                     {"backend", backend},
                     {"parts", where},
                     {"cuda_graph_launches", graphs.launches},
                     {"cuda_graph_instantiations", graphs.instantiations},
                     {"cuda_graph_replays", graphs.replays},
                     {"cuda_graph_mismatches", graphs.mismatches},
                     {"isa", isa},
                     {"n_threads", threads},
                     {"kv_type", f.engine.kv_type},
                     {"test", r.name},
                     {"n_prompt", r.n_prompt},
                     {"n_gen", r.n_gen},
                     {"reps", f.reps},
                     {"avg_ts", r.mean},
                     {"stddev_ts", r.stddev},
                     {"samples_ts", r.ts},
                     {"samples_ns", r.ns}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("| model | size | params | backend | threads | test | t/s |\n");
  std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    std::printf("| %s | %s | %s | %s | %d | %s | %.2f ± %.2f |\n", file.c_str(), human_size(bytes).c_str(),
                human_params(params).c_str(), where.c_str(), threads, r.name.c_str(), r.mean, r.stddev);
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, CommandResult& result) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) speed of a local model");
  add_engine_flags(*cmd, f->engine);
  cmd->add_option("-p,--n-prompt", f->n_prompt, "Prompt tokens processed in one batch (0: skip)")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", f->n_gen, "Tokens generated one at a time (0: skip)")->capture_default_str();
  cmd->add_option("-r,--repetitions", f->reps, "Timed repetitions of each test, after one warm-up")
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print the results as JSON instead of a table");
  cmd->callback([f, &result] { result.exit_code = bench(*f); });
}

}  // namespace tars::cli
