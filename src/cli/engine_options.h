#pragma once
// Options shared by the commands that load a model locally (run, bench,
// embed): the file, threads, context and KV-cache type.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/backend_select.h"
#include "engine/model.h"

namespace tars::engine {
class GgufFile;
}

namespace tars::cli {

struct EngineFlags {
  std::string model_path;
  int threads = 0;         // 0 = physical cores
  int ctx_size = 0;        // 0 = the model's trained context, at most 4096
  std::string kv_type = "f16";
  int batch = 512;
  // auto (default: cuda when a device is usable, else cpu), cpu, or cuda.
  std::string device = "auto";
  // Partial offload: layers on the device, the rest on the CPU; -1 = all.
  int gpu_layers = -1;
};

// The backend for `device` ("cpu", "cuda", "auto"). "cuda" without a usable
// device throws tars::Error(kUnavailable) with the reason; "auto" falls back
// to the CPU and says so on stderr.
std::unique_ptr<engine::Backend> make_backend(const std::string& device, int threads);
// --device on `cmd`.
void add_device_flag(CLI::App& cmd, std::string& device);

void add_engine_flags(CLI::App& cmd, EngineFlags& flags);

// A model with the backends and file it runs on (declared so they outlive it).
struct LoadedModel {
  std::shared_ptr<const engine::GgufFile> file;
  engine::ModelBackends backends;  // the device, and with --gpu-layers the CPU's part
  std::unique_ptr<engine::Model> model;
};

LoadedModel load_engine_model(const EngineFlags& flags, int n_slots);

}  // namespace tars::cli
