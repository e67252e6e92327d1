#include "cli/engine_options.h"

#include <cstdio>

#include "common/error.h"
#include "engine/backend_select.h"
#include "engine/gguf.h"

namespace tars::cli {

namespace {
// "auto" without a usable GPU: says why the CPU runs it.
void say_fallback(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "tars: no CUDA backend (%s); running on the CPU\n", why.c_str());
}
}  // namespace

std::unique_ptr<engine::Backend> make_backend(const std::string& device, int threads) {
  std::string fallback;
  auto b = engine::backend_for_device(device, threads, &fallback);
  say_fallback(fallback);
  return b;
}

void add_device_flag(CLI::App& cmd, std::string& device) {
  cmd.add_option("--device", device, "cpu, cuda, or auto (cuda when usable, else cpu)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
}

void add_engine_flags(CLI::App& cmd, EngineFlags& f) {
  cmd.add_option("model", f.model_path, "GGUF model file")->required();
  cmd.add_option("-t,--threads", f.threads, "Threads (default: physical cores)");
  cmd.add_option("-c,--ctx-size", f.ctx_size, "Context length (default: the model's trained context, at most 4096)");
  cmd.add_option("--kv-type", f.kv_type, "KV cache type: f16 or f32")
      ->check(CLI::IsMember({"f16", "f32"}))
      ->capture_default_str();
  cmd.add_option("-b,--batch-size", f.batch, "Tokens per forward chunk for prompts")
      ->capture_default_str();
  add_device_flag(cmd, f.device);
  cmd.add_option("--gpu-layers,--n-gpu-layers,--ngl", f.gpu_layers,
                 "Layers on the GPU, the rest on the CPU (partial offload; -1 = all)")
      ->check(CLI::Range(-1, 1 << 20));
}

LoadedModel load_engine_model(const EngineFlags& f, int n_slots) {
  LoadedModel m;
  m.file = engine::GgufFile::open(f.model_path);
  std::string fallback;
  m.backends = engine::model_backends(f.device, f.threads, f.gpu_layers,
                                      engine::model_read_hparams(*m.file).n_layer, &fallback);
  say_fallback(fallback);
  const engine::ModelBackends& mb = m.backends;
  if (mb.cpu) {
    std::fprintf(stderr, "tars: %d layers on %s, the rest on the CPU\n", mb.device_layers,
                 mb.device->name().c_str());
  } else if (f.gpu_layers > 0 && mb.device->name() == "cpu") {
    std::fprintf(stderr, "tars: --gpu-layers %d has no effect: the model runs on the CPU (--device %s)\n",
                 f.gpu_layers, f.device.c_str());
  }
  engine::ModelOptions mo;
  mo.n_ctx = f.ctx_size;
  mo.n_slots = n_slots;
  mo.max_batch = f.batch;
  mo.kv_type = f.kv_type == "f32" ? engine::TensorType::kF32 : engine::TensorType::kF16;
  m.model = engine::Model::load(m.file, mb.parts(), mo);
  return m;
}

}  // namespace tars::cli
