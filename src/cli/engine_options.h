#pragma once
// Options shared by the commands that load a model locally (run, bench,
// embed): the file, threads, context and KV-cache type.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/model.h"

namespace tars::engine {
class GgufFile;
}

namespace tars::cli {

struct EngineFlags {
  std::string model_path;
  int threads = 0;         // 0 = physical cores
  int ctx_size = 0;        // 0 = the model's trained context
  std::string kv_type = "f16";
  int batch = 512;
};

void add_engine_flags(CLI::App& cmd, EngineFlags& flags);

// A model with the backend and file it runs on (declared so they outlive it).
struct LoadedModel {
  std::shared_ptr<const engine::GgufFile> file;
  std::unique_ptr<engine::Backend> backend;
  std::unique_ptr<engine::Model> model;
};

LoadedModel load_engine_model(const EngineFlags& flags, int n_slots);

}  // namespace tars::cli
