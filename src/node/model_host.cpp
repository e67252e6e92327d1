#include "node/model_host.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "common/error.h"
#include "common/units.h"
#include "engine/backend.h"
#include "engine/chat_template.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"
#include "node/http_server.h"
#include "node/model_info.h"

namespace tars::node {

HostedModel::~HostedModel() {
  // The scheduler's thread uses the model; the model uses the backend.
  scheduler.reset();
  model.reset();
  encoder.reset();
  backend.reset();
}

namespace {

// Opens the file, makes the model's backend and loads it for its role:
// a decoder with its chat template and scheduler, or an encoder.
std::unique_ptr<HostedModel> load_model(const ModelDecl& decl, const NodeConfig& config) {
  auto h = std::make_unique<HostedModel>();
  h->id = model_id(decl);
  h->decl = decl;
  auto t0 = std::chrono::steady_clock::now();
  h->file = engine::GgufFile::open(decl.path);
  engine::CpuBackendOptions bo;
  bo.n_threads = config.threads;
  h->backend = engine::backend_cpu_create(bo);
  std::string what;
  if (decl.role == "embedding") {
    h->encoder = engine::Encoder::load(h->file, *h->backend);
    what = fmt::format("{} {} layers, dimension {}", h->encoder->hparams().arch,
                       h->encoder->hparams().n_layer, h->encoder->n_embd());
  } else {
    engine::ModelOptions mo;
    mo.n_ctx = config.ctx_size;
    mo.n_slots = config.slots;
    mo.max_batch = config.batch;
    mo.kv_type = config.kv_type == "f32" ? engine::TensorType::kF32 : engine::TensorType::kF16;
    h->model = engine::Model::load(h->file, *h->backend, mo);
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
  return h;
}

}  // namespace

ModelHost::ModelHost(const NodeConfig& config) {
  for (const auto& decl : config.models) {
    std::string id = model_id(decl);
    for (const auto& m : models_) {
      if (m->id == id) {
        throw Error(ErrorCode::kConfig, "two models have the id '" + id + "'; name one with --alias");
      }
    }
    try {
      models_.push_back(load_model(decl, config));
    } catch (const Error& e) {
      throw Error(e.code(), "cannot load model '" + id + "': " + e.what());
    }
  }
}

ModelHost::~ModelHost() { stop(); }

void ModelHost::stop() {
  for (auto& m : models_) {
    if (m->scheduler) m->scheduler->stop();
  }
}

HostedModel& ModelHost::get(const std::string& id, const std::string& role) {
  for (auto& m : models_) {
    if (id.empty() ? m->decl.role == role : m->id == id) {
      if (m->decl.role != role) {
        throw Error(ErrorCode::kInvalidArgument, "model '" + id + "' is a " + m->decl.role +
                                                     " model; this endpoint needs a " + role +
                                                     " model");
      }
      return *m;
    }
  }
  std::string known;
  for (auto& m : models_) {
    if (m->decl.role == role) known += (known.empty() ? "" : ", ") + m->id;
  }
  if (id.empty() || known.empty()) {
    throw HttpError(503, "no_model_loaded",
                    "no model loaded: this node serves no " + role + " model" +
                        (known.empty() ? std::string(" (start it with ") +
                                             (role == "embedding" ? "--embedding-model" : "--model") +
                                             " FILE)"
                                       : " (loaded: " + known + ")"));
  }
  throw Error(ErrorCode::kNotFound, "model '" + id + "' is not served here" +
                                        (known.empty() ? " (no models loaded)"
                                                       : " (models: " + known + ")"));
}

nlohmann::json ModelHost::status_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : models_) {
    nlohmann::json j = {{"id", m->id}, {"path", m->decl.path}, {"role", m->decl.role}};
    if (m->encoder) {
      j["architecture"] = m->encoder->hparams().arch;
      j["dimension"] = m->encoder->n_embd();
      j["backend"] = m->backend->name();
      j["memory"] = {{"weights", m->backend->allocated(engine::MemoryKind::kWeights)},
                     {"compute", m->backend->allocated(engine::MemoryKind::kCompute)}};
    }
    if (m->model) {
      const auto& hp = m->model->hparams();
      j["architecture"] = hp.arch;
      j["context"] = m->model->options().n_ctx;
      j["backend"] = m->backend->name();
      j["memory"] = {{"weights", m->backend->allocated(engine::MemoryKind::kWeights)},
                     {"kv_cache", m->backend->allocated(engine::MemoryKind::kKvCache)},
                     {"compute", m->backend->allocated(engine::MemoryKind::kCompute)}};
    }
    if (m->scheduler) {
      engine::SchedulerStats s = m->scheduler->stats();
      j["slots"] = {{"total", s.slots}, {"busy", s.slots_busy}, {"queued", s.queued}};
      j["counters"] = {{"steps", s.steps},
                       {"step_sequences", s.step_sequences},
                       {"max_sequences_per_step", s.max_step_sequences},
                       {"mean_sequences_per_step",
                        s.steps ? static_cast<double>(s.step_sequences) / s.steps : 0.0},
                       {"requests_done", s.requests_done},
                       {"requests_cancelled", s.requests_cancelled},
                       {"requests_rejected", s.requests_rejected},
                       {"tokens_in", s.tokens_in},
                       {"tokens_out", s.tokens_out},
                       {"last_ttft_ms", s.last_ttft_ms},
                       {"last_tokens_per_s", s.last_tokens_per_s}};
    }
    list.push_back(std::move(j));
  }
  return list;
}

}  // namespace tars::node
