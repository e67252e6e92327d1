#include "node/node_metrics.h"

namespace tars::node {

namespace {

using nlohmann::json;

constexpr const char* kRequestsHelp =
    "Requests by outcome: done (answered), cancelled (client gone, or stopped), rejected (queue "
    "full); embedding models count done only";
constexpr const char* kPromptTokensHelp = "Tokens read: prompts admitted, inputs embedded";

double number(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

void write_devices(MetricsWriter& w, const DeviceInventory& inv) {
  w.gauge("tars_devices_simulated",
          "1 when the node's devices come from a simulated inventory file (--simulate-devices)", {},
          inv.simulated ? 1 : 0);
  w.gauge("tars_host_memory_total_bytes", "The machine's RAM", {},
          static_cast<double>(inv.cpu.ram_total_bytes));
  w.gauge("tars_host_memory_available_bytes", "RAM available now (MemAvailable)", {},
          static_cast<double>(inv.cpu.ram_available_bytes));
  w.gauge("tars_cpu_logical_cores", "Online hardware threads", {}, inv.cpu.logical_cores);
  for (const GpuInfo& g : inv.gpus) {
    const MetricLabels id = {{"gpu", std::to_string(g.index)}, {"uuid", g.uuid}, {"name", g.name}};
    MetricLabels info = id;
    info.emplace_back("compute_capability",
                      std::to_string(g.compute_major) + "." + std::to_string(g.compute_minor));
    info.emplace_back("driver_version", g.driver_version);
    w.gauge("tars_gpu_info", "A GPU of this node (always 1), with its compute capability and driver",
            info, 1);
    // Figures the driver did not give are left out rather than written as 0:
    // an alert on free memory must not fire for a GPU whose memory is unknown.
    if (g.sources.total_memory != DeviceSource::kNone) {
      w.gauge("tars_gpu_memory_total_bytes", "The GPU's memory", id,
              static_cast<double>(g.total_memory_bytes));
    }
    if (g.sources.free_memory != DeviceSource::kNone) {
      w.gauge("tars_gpu_memory_free_bytes", "GPU memory free now", id,
              static_cast<double>(g.free_memory_bytes));
    }
    if (g.sources.total_memory != DeviceSource::kNone && g.sources.free_memory != DeviceSource::kNone &&
        g.total_memory_bytes >= g.free_memory_bytes) {
      w.gauge("tars_gpu_memory_used_bytes", "GPU memory in use now, by every process", id,
              static_cast<double>(g.total_memory_bytes - g.free_memory_bytes));
    }
    if (g.temperature_c) {
      w.gauge("tars_gpu_temperature_celsius", "The GPU core's temperature", id, *g.temperature_c);
    }
    if (g.utilization_percent) {
      w.gauge("tars_gpu_utilization_ratio",
              "Share of the last sample period in which a kernel ran on the GPU (0 to 1)", id,
              *g.utilization_percent / 100.0);
    }
  }
}

void write_model(MetricsWriter& w, const json& m) {
  const std::string id = m.value("id", "");
  const MetricLabels model = {{"model", id}};
  const std::string state = m.value("state", "");
  for (const char* s : {"unloaded", "loading", "loaded", "failed"}) {
    w.gauge("tars_model_state",
            "1 for the state a declared model is in now (unloaded, loading, loaded, failed), 0 for "
            "the others",
            {{"model", id}, {"role", m.value("role", "")}, {"state", s}}, state == s ? 1 : 0);
  }
  w.counter("tars_model_loads_total", "Times the model was loaded", model, number(m, "loads"));
  w.counter("tars_model_load_failures_total", "Loads of the model that failed", model,
            number(m, "load_failures"));
  w.counter("tars_model_unloads_total", "Times the model was unloaded", model, number(m, "unloads"));
  w.counter("tars_model_evictions_total",
            "Unloads of the model to make room for another (on-demand models)", model,
            number(m, "evictions"));
  w.counter("tars_model_keep_alive_unloads_total",
            "Unloads of the model after keep_alive seconds without a request", model,
            number(m, "keep_alive_unloads"));
  w.gauge("tars_model_requests_active", "Requests using the model now (generating or embedding)",
          model, number(m, "requests_active"));
  if (m.contains("context")) {
    w.gauge("tars_model_context_tokens", "Context length of each of the model's slots", model,
            number(m, "context"));
  }
  // What each backend really allocated: one part per device the model is
  // split over (an embedding model has one part and no KV cache).
  auto memory = m.find("memory");
  if (memory == m.end()) return;
  json parts = memory->contains("parts")
                   ? (*memory)["parts"]
                   : json::array({{{"backend", m.value("backend", "")},
                                   {"weights", number(*memory, "weights")},
                                   {"compute", number(*memory, "compute")}}});
  for (const json& p : parts) {
    for (const char* kind : {"weights", "kv_cache", "compute"}) {
      if (!p.contains(kind)) continue;
      w.gauge("tars_model_memory_bytes",
              "Bytes the model's backends allocated, by backend (cpu, cuda) and kind (weights, "
              "kv_cache, compute)",
              {{"model", id}, {"backend", p.value("backend", "")}, {"kind", kind}}, number(p, kind));
    }
  }
}

void write_scheduler(MetricsWriter& w, const std::string& id, const engine::SchedulerStats& s) {
  const MetricLabels model = {{"model", id}};
  w.gauge("tars_model_slots", "Sequences the model can run at once", model, s.slots);
  w.gauge("tars_model_slots_busy", "Slots running a request now", model, s.slots_busy);
  w.gauge("tars_model_requests_queued", "Requests waiting for a free slot", model, s.queued);
  const std::pair<const char*, uint64_t> outcomes[] = {
      {"done", s.requests_done}, {"cancelled", s.requests_cancelled}, {"rejected", s.requests_rejected}};
  for (const auto& [outcome, n] : outcomes) {
    w.counter("tars_model_requests_total",
              kRequestsHelp,
              {{"model", id}, {"outcome", outcome}}, static_cast<double>(n));
  }
  w.counter("tars_model_prompt_tokens_total", kPromptTokensHelp, model,
            static_cast<double>(s.tokens_in));
  w.counter("tars_model_prompt_tokens_cached_total",
            "Prompt tokens read from a slot's prompt cache instead of computed (part of tars_model_prompt_tokens_total)",
            model, static_cast<double>(s.tokens_cached));
  w.counter("tars_model_generated_tokens_total", "Tokens generated", model,
            static_cast<double>(s.tokens_out));
  w.counter("tars_model_prompt_seconds_total",
            "Sum over requests of the time from admission to the end of the prompt", model,
            s.prompt_seconds);
  w.counter("tars_model_generation_seconds_total",
            "Sum over requests of the time from the first token to the last", model,
            s.generation_seconds);
  w.counter("tars_model_steps_total", "Forward passes run (continuous batching steps)", model,
            static_cast<double>(s.steps));
  w.counter("tars_model_step_sequences_total",
            "Sum over steps of the sequences in the step (divided by steps: the mean batch)", model,
            static_cast<double>(s.step_sequences));
  w.histogram("tars_model_time_to_first_token_seconds",
              "Time from a request's arrival to its first generated token", model, s.ttft);
}

void write_embedder(MetricsWriter& w, const std::string& id, const EmbedStats& e) {
  const MetricLabels model = {{"model", id}};
  // The families a chat model has too, so one query covers both roles.
  w.counter("tars_model_requests_total",
            kRequestsHelp,
            {{"model", id}, {"outcome", "done"}}, static_cast<double>(e.requests));
  w.counter("tars_model_prompt_tokens_total", kPromptTokensHelp, model,
            static_cast<double>(e.tokens));
  w.counter("tars_model_embedded_inputs_total", "Texts (or token lists) embedded", model,
            static_cast<double>(e.inputs));
  w.counter("tars_model_truncated_inputs_total", "Inputs cut to the embedding model's context",
            model, static_cast<double>(e.truncated));
  w.histogram("tars_model_embed_duration_seconds",
              "Time an embedding request spent in the encoder (tokenizing, forward passes, pooling)",
              model, e.duration);
}

}  // namespace

void write_node_metrics(MetricsWriter& w, const NodeFigures& f) {
  w.gauge("tars_build_info", "The tars build (always 1)", {{"version", f.version}}, 1);
  w.gauge("tars_node_info", "This node's identity (always 1)",
          {{"node_id", f.node_id}, {"node_name", f.node_name}}, 1);
  w.gauge("tars_uptime_seconds", "Seconds since the node started", {}, f.uptime_s);
  w.gauge("tars_http_requests_in_flight", "HTTP requests being answered now", {},
          f.requests_in_flight);
  write_devices(w, f.devices);
  w.gauge("tars_models_memory_used_bytes",
          "Bytes counted against the node's model memory budget by the models loaded or loading", {},
          number(f.host, "memory_used"));
  w.gauge("tars_models_memory_budget_bytes", "The node's model memory budget (0: none)", {},
          number(f.host, "memory_budget"));
  w.counter("tars_models_budget_refusals_total",
            "Loads refused because the model did not fit the memory budget", {},
            number(f.host, "budget_refusals"));
  if (f.models.is_array()) {
    for (const json& m : f.models) write_model(w, m);
  }
  for (const auto& [id, s] : f.schedulers) write_scheduler(w, id, s);
  for (const auto& [id, e] : f.embedders) write_embedder(w, id, e);
  if (f.usage_log) {
    const UsageStats& u = *f.usage_log;
    w.gauge("tars_usage_log_connected", "1 while the usage ledger's last write to PostgreSQL succeeded", {},
            u.connected ? 1 : 0);
    w.counter("tars_usage_log_written_total", "Request records written to the usage ledger", {},
              static_cast<double>(u.written));
    w.gauge("tars_usage_log_queued", "Request records waiting to be written", {}, static_cast<double>(u.queued));
    w.counter("tars_usage_log_dropped_total", "Request records lost to a full queue (the database was away)", {},
              static_cast<double>(u.dropped));
    w.counter("tars_usage_log_errors_total", "Failed connections and writes to the usage ledger", {},
              static_cast<double>(u.errors));
  }
  if (f.embed_cache) {
    const EmbedCacheStats& c = *f.embed_cache;
    w.gauge("tars_embed_cache_connected", "1 while the node is connected to the embedding cache's Redis",
            {}, c.connected ? 1 : 0);
    w.counter("tars_embed_cache_hits_total", "Inputs whose embedding was read from the cache", {},
              static_cast<double>(c.hits));
    w.counter("tars_embed_cache_misses_total", "Inputs not in the cache (embedded, then stored)", {},
              static_cast<double>(c.misses));
    w.counter("tars_embed_cache_stores_total", "Embeddings written to the cache", {},
              static_cast<double>(c.stores));
    w.counter("tars_embed_cache_errors_total",
              "Failed connections or commands and undecodable values (each read as a miss)", {},
              static_cast<double>(c.errors));
  }
}

}  // namespace tars::node
