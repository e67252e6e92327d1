#include "node/model_load.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "common/error.h"
#include "common/units.h"
#include "engine/backend.h"
#include "engine/backend_cuda.h"
#include "engine/backend_select.h"
#include "engine/chat_template.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"
#include "node/embed_cache.h"
#include "node/file_sha256.h"
#include "node/model_host.h"
#include "node/model_info.h"

namespace tars::node {

std::unique_ptr<HostedModel> hosted_model_load(const ModelDecl& decl, const NodeConfig& config,
                                               std::shared_ptr<EmbedCache> embed_cache) {
  auto h = std::make_unique<HostedModel>();
  h->id = model_id(decl);
  h->decl = decl;
  auto t0 = std::chrono::steady_clock::now();
  h->file = engine::GgufFile::open(decl.path);
  std::string fallback;
  std::vector<engine::ModelPart> parts;
  // The node's [engine] device, narrowed by the cluster's plan: with "auto",
  // a model the plan put in RAM runs on the CPU and one it put on a GPU runs
  // there; "cpu" keeps everything on the CPU; "cuda" (an explicit demand)
  // puts everything on the GPU, and fails clearly where there is none.
  std::string device = config.device;
  if (decl.planned_device == "cpu" && device == "auto") {
    device = "cpu";
    spdlog::info("model {}: the plan placed it in RAM, so it runs on the CPU", h->id);
  }
  if (decl.planned_device == "gpu" && device == "cpu") {
    spdlog::warn("model {}: the plan put it on a GPU, but [engine] device is cpu: it runs on the CPU",
                 h->id);
  }
  // The plan's GPU by uuid: on a node with several, not necessarily CUDA
  // device 0 (nor NVML's index).
  int cuda_device = 0;
  if (!decl.planned_gpu.empty() && device != "cpu") {
    const int ordinal = engine::backend_cuda_ordinal_for_uuid(decl.planned_gpu);
    if (ordinal >= 0) {
      cuda_device = ordinal;
    } else if (engine::backend_cuda_available()) {
      spdlog::warn("model {}: the plan's GPU {} is not a visible CUDA device; using CUDA device 0", h->id,
                   decl.planned_gpu);
    }
  }
  if (!model_role_is_encoder(decl.role) && engine::encoder_is_encoder_file(*h->file)) {
    // A chat role (the default) on an encoder's file: say which role it needs.
    const bool rank = engine::encoder_read_hparams(*h->file).pooling == engine::PoolingType::kRank;
    throw Error(ErrorCode::kConfig,
                "model " + h->id + ": " + decl.path + " is " + (rank ? "a reranker" : "an embedding model") +
                    " (a BERT-style encoder), which cannot chat: declare it with role \"" +
                    (rank ? "rerank\" (--rerank-model)" : "embedding\" (--embedding-model)"));
  }
  if (model_role_is_encoder(decl.role)) {
    h->backend = engine::backend_for_device(device, config.threads, &fallback, cuda_device);
  } else {
    engine::ModelBackends mb =
        engine::model_backends(device, config.threads, decl.gpu_layers,
                               engine::model_read_hparams(*h->file).n_layer, &fallback, cuda_device);
    parts = mb.parts();
    h->backend = std::move(mb.device);
    h->cpu_backend = std::move(mb.cpu);
  }
  if (!fallback.empty()) {  // only with "auto": a machine without a usable GPU
    spdlog::info("model {}: no CUDA backend ({}); it runs on the CPU", h->id, fallback);
  }
  std::string what;
  if (model_role_is_encoder(decl.role)) {
    h->encoder = engine::Encoder::load(h->file, *h->backend);
    // The declared role and the file must agree: a cross-encoder's scores
    // are not embeddings, and an embedding model has no head to score with.
    const engine::EncoderHParams& hp = h->encoder->hparams();
    const bool rank = hp.pooling == engine::PoolingType::kRank;
    if (decl.role == "embedding" && rank) {
      throw Error(ErrorCode::kConfig,
                  "model " + h->id + ": " + decl.path +
                      " is a reranker (rank pooling, a classification head), not an embedding model: "
                      "declare it with role \"rerank\" (--rerank-model)");
    }
    if (decl.role == "rerank" && (!rank || hp.n_cls_out != 1)) {
      throw Error(ErrorCode::kConfig,
                  "model " + h->id + ": " + decl.path + " is not a reranker: " +
                      (rank ? "its classification head has " + std::to_string(hp.n_cls_out) +
                                  " outputs, a reranker's has one score"
                            : std::string("its pooling is ") + engine::pooling_type_name(hp.pooling) +
                                  " (a reranker's file has pooling_type rank and a classification head)"));
    }
    what = fmt::format("{} {} layers, dimension {}", h->encoder->hparams().arch,
                       h->encoder->hparams().n_layer, h->encoder->n_embd());
    if (embed_cache) {
      // The declared sha256 was checked when the file was fetched; else the
      // node's cache of file hashes (hashed once per file version).
      h->file_sha256 = !decl.sha256.empty()
                           ? decl.sha256
                           : Sha256Cache(config.data_dir + "/state/file_sha256.json").get(decl.path);
      h->embed_cache = std::move(embed_cache);
    }
  } else {
    engine::ModelOptions mo;
    mo.n_ctx = decl.ctx_size > 0 ? decl.ctx_size : config.ctx_size;
    mo.n_slots = decl.slots > 0 ? decl.slots : config.slots;
    mo.max_batch = config.batch;
    mo.kv_type = config.kv_type == "f32" ? engine::TensorType::kF32 : engine::TensorType::kF16;
    h->model = engine::Model::load(h->file, parts, mo);
    h->chat = std::make_unique<engine::ChatTemplate>(engine::chat_template_for_model(
        *h->file, h->model->tokenizer().vocab(), config.chat_template));
    h->chat_fallback = h->chat->uses_fallback();
    if (h->chat_fallback) {
      spdlog::warn("model {}: the file has no chat template; chat requests use the plain format "
                   "(pick one with --chat-template)", h->id);
    }
    engine::SchedulerOptions so;
    so.queue_limit = config.queue;
    so.step_tokens = config.batch;
    h->scheduler = std::make_unique<engine::Scheduler>(*h->model, so);
    what = fmt::format("{} {} layers, context {} x {} slots", h->model->hparams().arch,
                       h->model->hparams().n_layer, h->model->options().n_ctx,
                       h->model->options().n_slots);
    if (h->cpu_backend) {  // split: where each part's layers are
      for (const engine::ModelPartMemory& p : h->model->memory()) {
        what += fmt::format("; layers {}-{} on {} ({})", p.first_layer,
                            p.first_layer + p.n_layers - 1, p.backend,
                            format_bytes(p.weights + p.kv_cache + p.compute));
      }
    }
  }
  h->created = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("{} model {} loaded from {} in {:.2f} s: {}; memory: weights {}, KV cache {}, "
               "compute {}",
               decl.role, h->id, decl.path, secs, what,
               format_bytes(h->backend->allocated(engine::MemoryKind::kWeights)),
               format_bytes(h->backend->allocated(engine::MemoryKind::kKvCache)),
               format_bytes(h->backend->allocated(engine::MemoryKind::kCompute)));
  // (With a split the figures above are the device's; `what` lists each part.)
  return h;
}

}  // namespace tars::node
