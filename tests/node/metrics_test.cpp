// GET /metrics's content: the node's figures as samples (node_metrics.h),
// the HTTP layer's counters (metrics.h), read back from the text format.
#include <gtest/gtest.h>

#include "node/metrics.h"
#include "node/node_metrics.h"
#include "support/metrics_text.h"

namespace tars::node {
namespace {

using test::parse_metrics_text;

GpuInfo full_gpu() {
  GpuInfo g;
  g.index = 0;
  g.name = "NVIDIA GeForce RTX 3060";
  g.uuid = "GPU-1";
  g.total_memory_bytes = 12884901888;
  g.free_memory_bytes = 11811160064;
  g.compute_major = 8;
  g.compute_minor = 6;
  g.temperature_c = 71;
  g.utilization_percent = 35;
  g.driver_version = "580.95.05";
  g.sources.identity = g.sources.total_memory = g.sources.free_memory = DeviceSource::kNvml;
  g.sources.compute_capability = g.sources.temperature = g.sources.utilization = DeviceSource::kNvml;
  return g;
}

// A GPU the CUDA driver saw without NVML: no live figures.
GpuInfo bare_gpu() {
  GpuInfo g;
  g.index = 1;
  g.name = "NVIDIA GeForce GTX 1660 SUPER";
  g.uuid = "GPU-2";
  g.total_memory_bytes = 6442450944;
  g.compute_major = 7;
  g.compute_minor = 5;
  g.sources.identity = g.sources.total_memory = g.sources.compute_capability = DeviceSource::kCuda;
  return g;
}

NodeFigures figures() {
  NodeFigures f;
  f.version = "0.1.0";
  f.node_id = "id-1";
  f.node_name = "pc1";
  f.uptime_s = 12.5;
  f.requests_in_flight = 3;
  f.devices.gpus = {full_gpu(), bare_gpu()};
  f.devices.cpu.ram_total_bytes = 32ull << 30;
  f.devices.cpu.ram_available_bytes = 20ull << 30;
  f.devices.cpu.logical_cores = 12;
  // A chat model split between the GPU and the CPU, an embedding model
  // loaded, and an on-demand model not loaded yet.
  f.models = nlohmann::json::parse(R"([
    {"id": "mistral", "role": "chat", "state": "loaded", "loads": 2, "load_failures": 1,
     "unloads": 1, "evictions": 0, "keep_alive_unloads": 1, "requests_active": 2,
     "backend": "cuda", "context": 4096,
     "memory": {"weights": 4000, "kv_cache": 600, "compute": 60, "total": 4660,
                "parts": [{"backend": "cuda", "weights": 3000, "kv_cache": 500, "compute": 50},
                          {"backend": "cpu", "weights": 1000, "kv_cache": 100, "compute": 10}]}},
    {"id": "minilm", "role": "embedding", "state": "loaded", "loads": 1, "load_failures": 0,
     "unloads": 0, "evictions": 0, "keep_alive_unloads": 0, "requests_active": 0,
     "backend": "cpu", "memory": {"weights": 90, "compute": 9, "total": 99}},
    {"id": "qwen", "role": "chat", "state": "unloaded", "loads": 0, "load_failures": 0,
     "unloads": 0, "evictions": 3, "keep_alive_unloads": 0, "requests_active": 0}
  ])");
  f.host = {{"memory_used", 4759}, {"memory_budget", 10000}, {"budget_refusals", 4}};
  engine::SchedulerStats s;
  s.slots = 4;
  s.slots_busy = 2;
  s.queued = 1;
  s.requests_done = 10;
  s.requests_cancelled = 2;
  s.requests_rejected = 1;
  s.tokens_in = 500;
  s.tokens_cached = 320;
  s.tokens_out = 700;
  s.steps = 300;
  s.step_sequences = 450;
  s.prompt_seconds = 1.5;
  s.generation_seconds = 20.25;
  s.ttft.observe(0.004);
  s.ttft.observe(0.2);
  s.ttft.observe(0.2);
  s.ttft.observe(45);
  f.schedulers = {{"mistral", s}};
  EmbedStats e;
  e.requests = 3;
  e.inputs = 40;
  e.tokens = 520;
  e.truncated = 2;
  e.seconds = 0.09;
  e.duration.observe(0.02);
  e.duration.observe(0.03);
  e.duration.observe(0.04);
  f.embedders = {{"minilm", e}};
  return f;
}

std::string render(const NodeFigures& f) {
  Metrics m;
  return m.render([&](MetricsWriter& w) { write_node_metrics(w, f); });
}

TEST(NodeMetrics, DevicesWithTheirLiveFiguresAndNothingInventedForUnknownOnes) {
  auto t = parse_metrics_text(render(figures()));
  const std::string g1 = R"({gpu="0",uuid="GPU-1",name="NVIDIA GeForce RTX 3060"})";
  const std::string g2 = R"({gpu="1",uuid="GPU-2",name="NVIDIA GeForce GTX 1660 SUPER"})";
  EXPECT_EQ(t.at("tars_gpu_temperature_celsius" + g1), 71);
  EXPECT_EQ(t.at("tars_gpu_utilization_ratio" + g1), 0.35);
  EXPECT_EQ(t.at("tars_gpu_memory_total_bytes" + g1), 12884901888.0);
  EXPECT_EQ(t.at("tars_gpu_memory_free_bytes" + g1), 11811160064.0);
  EXPECT_EQ(t.at("tars_gpu_memory_used_bytes" + g1), 12884901888.0 - 11811160064.0);
  EXPECT_EQ(t.at(R"(tars_gpu_info{gpu="0",uuid="GPU-1",name="NVIDIA GeForce RTX 3060",)"
                 R"(compute_capability="8.6",driver_version="580.95.05"})"),
            1);
  // The second card's total is known; its free memory, temperature and
  // load are not, and are absent rather than 0 (an alert on 0 free bytes
  // would fire for nothing).
  EXPECT_EQ(t.at("tars_gpu_memory_total_bytes" + g2), 6442450944.0);
  EXPECT_FALSE(t.has("tars_gpu_memory_free_bytes" + g2));
  EXPECT_FALSE(t.has("tars_gpu_memory_used_bytes" + g2));
  EXPECT_FALSE(t.has("tars_gpu_temperature_celsius" + g2));
  EXPECT_FALSE(t.has("tars_gpu_utilization_ratio" + g2));
  EXPECT_EQ(t.at("tars_host_memory_total_bytes"), double(32ull << 30));
  EXPECT_EQ(t.at("tars_host_memory_available_bytes"), double(20ull << 30));
  EXPECT_EQ(t.at("tars_cpu_logical_cores"), 12);
  EXPECT_EQ(t.at("tars_devices_simulated"), 0);
  EXPECT_EQ(t.types.at("tars_gpu_temperature_celsius"), "gauge");
}

TEST(NodeMetrics, IdentityAndHostFigures) {
  auto t = parse_metrics_text(render(figures()));
  EXPECT_EQ(t.at(R"(tars_build_info{version="0.1.0"})"), 1);
  EXPECT_EQ(t.at(R"(tars_node_info{node_id="id-1",node_name="pc1"})"), 1);
  EXPECT_EQ(t.at("tars_uptime_seconds"), 12.5);
  EXPECT_EQ(t.at("tars_http_requests_in_flight"), 3);
  EXPECT_EQ(t.at("tars_models_memory_used_bytes"), 4759);
  EXPECT_EQ(t.at("tars_models_memory_budget_bytes"), 10000);
  EXPECT_EQ(t.at("tars_models_budget_refusals_total"), 4);
  EXPECT_EQ(t.types.at("tars_models_budget_refusals_total"), "counter");
}

TEST(NodeMetrics, ModelsStatesCountersAndMemoryByBackendAndKind) {
  auto t = parse_metrics_text(render(figures()));
  // One series per state, 1 for the current one.
  EXPECT_EQ(t.at(R"(tars_model_state{model="mistral",role="chat",state="loaded"})"), 1);
  EXPECT_EQ(t.at(R"(tars_model_state{model="mistral",role="chat",state="failed"})"), 0);
  EXPECT_EQ(t.at(R"(tars_model_state{model="qwen",role="chat",state="unloaded"})"), 1);
  EXPECT_EQ(t.at(R"(tars_model_state{model="qwen",role="chat",state="loaded"})"), 0);
  EXPECT_EQ(t.at(R"(tars_model_state{model="minilm",role="embedding",state="loaded"})"), 1);
  EXPECT_EQ(t.at(R"(tars_model_loads_total{model="mistral"})"), 2);
  EXPECT_EQ(t.at(R"(tars_model_load_failures_total{model="mistral"})"), 1);
  EXPECT_EQ(t.at(R"(tars_model_unloads_total{model="mistral"})"), 1);
  EXPECT_EQ(t.at(R"(tars_model_keep_alive_unloads_total{model="mistral"})"), 1);
  EXPECT_EQ(t.at(R"(tars_model_evictions_total{model="qwen"})"), 3);
  EXPECT_EQ(t.at(R"(tars_model_requests_active{model="mistral"})"), 2);
  EXPECT_EQ(t.at(R"(tars_model_context_tokens{model="mistral"})"), 4096);
  EXPECT_FALSE(t.has(R"(tars_model_context_tokens{model="minilm"})"));
  // Each part of the split model, by backend and kind.
  EXPECT_EQ(t.at(R"(tars_model_memory_bytes{model="mistral",backend="cuda",kind="weights"})"), 3000);
  EXPECT_EQ(t.at(R"(tars_model_memory_bytes{model="mistral",backend="cuda",kind="kv_cache"})"), 500);
  EXPECT_EQ(t.at(R"(tars_model_memory_bytes{model="mistral",backend="cpu",kind="weights"})"), 1000);
  EXPECT_EQ(t.at(R"(tars_model_memory_bytes{model="mistral",backend="cpu",kind="compute"})"), 10);
  // The embedding model: one part on its backend, no KV cache.
  EXPECT_EQ(t.at(R"(tars_model_memory_bytes{model="minilm",backend="cpu",kind="weights"})"), 90);
  EXPECT_EQ(t.at(R"(tars_model_memory_bytes{model="minilm",backend="cpu",kind="compute"})"), 9);
  EXPECT_FALSE(t.has(R"(tars_model_memory_bytes{model="minilm",backend="cpu",kind="kv_cache"})"));
  // Not loaded: no memory series at all.
  for (const auto& [key, v] : t.samples) {
    EXPECT_EQ(key.find(R"(tars_model_memory_bytes{model="qwen")"), std::string::npos) << key;
  }
}

TEST(NodeMetrics, SchedulerCountersAndTheTimeToFirstTokenHistogramCumulative) {
  auto t = parse_metrics_text(render(figures()));
  const std::string m = R"({model="mistral"})";
  EXPECT_EQ(t.at("tars_model_slots" + m), 4);
  EXPECT_EQ(t.at("tars_model_slots_busy" + m), 2);
  EXPECT_EQ(t.at("tars_model_requests_queued" + m), 1);
  EXPECT_EQ(t.at(R"(tars_model_requests_total{model="mistral",outcome="done"})"), 10);
  EXPECT_EQ(t.at(R"(tars_model_requests_total{model="mistral",outcome="cancelled"})"), 2);
  EXPECT_EQ(t.at(R"(tars_model_requests_total{model="mistral",outcome="rejected"})"), 1);
  EXPECT_EQ(t.at("tars_model_prompt_tokens_total" + m), 500);
  EXPECT_EQ(t.at("tars_model_prompt_tokens_cached_total" + m), 320);
  EXPECT_EQ(t.types.at("tars_model_prompt_tokens_cached_total"), "counter");
  EXPECT_EQ(t.at("tars_model_generated_tokens_total" + m), 700);
  EXPECT_EQ(t.at("tars_model_prompt_seconds_total" + m), 1.5);
  EXPECT_EQ(t.at("tars_model_generation_seconds_total" + m), 20.25);
  EXPECT_EQ(t.at("tars_model_steps_total" + m), 300);
  EXPECT_EQ(t.at("tars_model_step_sequences_total" + m), 450);
  EXPECT_EQ(t.types.at("tars_model_time_to_first_token_seconds"), "histogram");
  const std::string h = "tars_model_time_to_first_token_seconds";
  EXPECT_EQ(t.at(h + "_count" + m), 4);
  EXPECT_DOUBLE_EQ(t.at(h + "_sum" + m), 0.004 + 0.2 + 0.2 + 45);
  EXPECT_EQ(t.at(h + R"(_bucket{model="mistral",le="0.005"})"), 1);
  EXPECT_EQ(t.at(h + R"(_bucket{model="mistral",le="0.1"})"), 1);
  EXPECT_EQ(t.at(h + R"(_bucket{model="mistral",le="0.25"})"), 3);
  EXPECT_EQ(t.at(h + R"(_bucket{model="mistral",le="30"})"), 3);
  EXPECT_EQ(t.at(h + R"(_bucket{model="mistral",le="+Inf"})"), 4);
  // The embedding model has no scheduler, so none of these.
  EXPECT_FALSE(t.has(R"(tars_model_slots{model="minilm"})"));
}

TEST(NodeMetrics, EmbeddingModelsShareTheRequestAndTokenFamiliesAndHaveTheirOwn) {
  auto t = parse_metrics_text(render(figures()));
  const std::string m = R"({model="minilm"})";
  EXPECT_EQ(t.at(R"(tars_model_requests_total{model="minilm",outcome="done"})"), 3);
  EXPECT_FALSE(t.has(R"(tars_model_requests_total{model="minilm",outcome="rejected"})"));
  EXPECT_EQ(t.at("tars_model_prompt_tokens_total" + m), 520);
  EXPECT_EQ(t.at("tars_model_embedded_inputs_total" + m), 40);
  EXPECT_EQ(t.at("tars_model_truncated_inputs_total" + m), 2);
  EXPECT_EQ(t.at("tars_model_embed_duration_seconds_count" + m), 3);
  EXPECT_DOUBLE_EQ(t.at("tars_model_embed_duration_seconds_sum" + m), 0.09);
  EXPECT_EQ(t.at(R"(tars_model_embed_duration_seconds_bucket{model="minilm",le="0.025"})"), 1);
  EXPECT_EQ(t.at(R"(tars_model_embed_duration_seconds_bucket{model="minilm",le="0.05"})"), 3);
  // One family each, whichever role wrote first.
  EXPECT_EQ(t.types.at("tars_model_requests_total"), "counter");
  EXPECT_EQ(t.at(R"(tars_model_requests_total{model="mistral",outcome="done"})"), 10);
}

TEST(Metrics, RequestsByRouteMethodAndStatusWithUnmatchedPathsPooled) {
  Metrics m;
  m.observe_request("POST", "/v1/chat/completions", 200, 0.3);
  m.observe_request("POST", "/v1/chat/completions", 200, 2.0);
  m.observe_request("POST", "/v1/chat/completions", 400, 0.001);
  m.observe_request("GET", "", 404, 0.0005);
  m.observe_request("GET", "", 404, 0.0005);
  m.observe_request("POST", "/v1/embeddings", 413, -1);  // refused before routing: no duration
  auto t = parse_metrics_text(m.render());
  EXPECT_EQ(t.at(R"(tars_http_requests_total{code="200",method="POST",route="/v1/chat/completions"})"), 2);
  EXPECT_EQ(t.at(R"(tars_http_requests_total{code="400",method="POST",route="/v1/chat/completions"})"), 1);
  EXPECT_EQ(t.at(R"(tars_http_requests_total{code="404",method="GET",route="unmatched"})"), 2);
  EXPECT_EQ(t.at(R"(tars_http_requests_total{code="413",method="POST",route="/v1/embeddings"})"), 1);
  const std::string d = "tars_http_request_duration_seconds";
  EXPECT_EQ(t.at(d + R"(_count{route="/v1/chat/completions"})"), 3);
  EXPECT_DOUBLE_EQ(t.at(d + R"(_sum{route="/v1/chat/completions"})"), 2.301);
  EXPECT_EQ(t.at(d + R"(_bucket{route="/v1/chat/completions",le="0.5"})"), 2);
  EXPECT_EQ(t.at(d + R"(_count{route="unmatched"})"), 2);
  EXPECT_FALSE(t.has(d + R"(_count{route="/v1/embeddings"})"));
  EXPECT_EQ(t.types.at("tars_http_requests_total"), "counter");
  EXPECT_EQ(t.types.at(d), "histogram");
}

TEST(Metrics, CollectorsAddTheirFamiliesAfterTheNodesOwn) {
  Metrics m;
  m.add_collector([](MetricsWriter& w) { w.gauge("x_later", "added by a layer above", {{"a", "1"}}, 2); });
  std::string text = m.render([](MetricsWriter& w) { w.counter("x_first_total", "the node's", {}, 5); });
  auto t = parse_metrics_text(text);
  EXPECT_EQ(t.at(R"(x_later{a="1"})"), 2);
  EXPECT_EQ(t.at("x_first_total"), 5);
  EXPECT_LT(text.find("x_first_total"), text.find("x_later"));
  // Same-name samples from two calls share one family (one TYPE line).
  Metrics m2;
  std::string two = m2.render([](MetricsWriter& w) {
    w.gauge("x_g", "h", {{"k", "a"}}, 1);
    w.gauge("x_g", "h", {{"k", "b"}}, 2);
  });
  EXPECT_EQ(two.find("# TYPE x_g"), two.rfind("# TYPE x_g"));
  EXPECT_EQ(parse_metrics_text(two).at(R"(x_g{k="b"})"), 2);
}

TEST(Metrics, LabelValuesAreEscaped) {
  Metrics m;
  std::string text = m.render([](MetricsWriter& w) {
    w.gauge("x_g", "h", {{"model", "a\"b\\c\nd"}}, 1);
  });
  EXPECT_NE(text.find(R"(x_g{model="a\"b\\c\nd"} 1)"), std::string::npos) << text;
}

TEST(Metrics, ProcessFamiliesFromProc) {
  Metrics m;
  auto t = parse_metrics_text(m.render([](MetricsWriter& w) { write_process_metrics(w); }));
  EXPECT_GT(t.at("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(t.at("process_virtual_memory_bytes"), t.at("process_resident_memory_bytes"));
  EXPECT_GE(t.at("process_cpu_seconds_total"), 0);
  EXPECT_GT(t.at("process_open_fds"), 2);  // at least stdin, stdout, stderr
  EXPECT_GE(t.at("process_max_fds"), t.at("process_open_fds"));
  // Started in the last day, not in the future.
  double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(t.at("process_start_time_seconds"), now + 2);
  EXPECT_GT(t.at("process_start_time_seconds"), now - 86400);
}

}  // namespace
}  // namespace tars::node
