#include "cli/engine_options.h"

#include "common/error.h"
#include "engine/gguf.h"

namespace tars::cli {

void add_engine_flags(CLI::App& cmd, EngineFlags& f) {
  cmd.add_option("model", f.model_path, "GGUF model file")->required();
  cmd.add_option("-t,--threads", f.threads, "Threads (default: physical cores)");
  cmd.add_option("-c,--ctx-size", f.ctx_size, "Context length (default: the model's)");
  cmd.add_option("--kv-type", f.kv_type, "KV cache type: f16 or f32")
      ->check(CLI::IsMember({"f16", "f32"}))
      ->capture_default_str();
  cmd.add_option("-b,--batch-size", f.batch, "Tokens per forward chunk for prompts")
      ->capture_default_str();
}

LoadedModel load_engine_model(const EngineFlags& f, int n_slots) {
  LoadedModel m;
  m.file = engine::GgufFile::open(f.model_path);
  m.backend = engine::backend_cpu_create({f.threads});
  engine::ModelOptions mo;
  mo.n_ctx = f.ctx_size;
  mo.n_slots = n_slots;
  mo.max_batch = f.batch;
  mo.kv_type = f.kv_type == "f32" ? engine::TensorType::kF32 : engine::TensorType::kF16;
  m.model = engine::Model::load(m.file, *m.backend, mo);
  return m;
}

}  // namespace tars::cli
