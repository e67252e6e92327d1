#include "node/ollama_api.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <ctime>

#include <sys/stat.h>

#include "common/error.h"
#include "common/version.h"
#include "engine/backend.h"
#include "engine/chat_template.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "node/embeddings_api.h"
#include "node/event_stream.h"
#include "node/generation.h"
#include "node/model_host.h"
#include "node/model_info.h"
#include "node/reasoning.h"
#include "node/request_params.h"
#include "node/tool_calls.h"

namespace tars::node {

using json = nlohmann::json;

std::string ollama_time(int64_t unix_ns) {
  const int64_t sec = unix_ns >= 0 ? unix_ns / 1'000'000'000 : (unix_ns - 999'999'999) / 1'000'000'000;
  const int64_t ns = unix_ns - sec * 1'000'000'000;
  const std::time_t t = static_cast<std::time_t>(sec);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(ns));
  return buf;
}

std::string ollama_parameter_size(uint64_t params) {
  char buf[32];
  if (params >= 1'000'000'000) {
    std::snprintf(buf, sizeof buf, "%.1fB", static_cast<double>(params) / 1e9);
  } else if (params >= 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(params) / 1e6);
  } else if (params >= 1'000) {
    std::snprintf(buf, sizeof buf, "%lluK", static_cast<unsigned long long>((params + 500) / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(params));
  }
  return buf;
}

namespace {

using Clock = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

int64_t ms_to_ns(double ms) { return static_cast<int64_t>(ms * 1e6); }

// The model file's modification time, or now when it cannot be read.
int64_t file_mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return now_ns();
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Ollama's "details" of a model, from its file (model_file_info).
json details_of(const json& info) {
  const std::string arch = info.value("architecture", "unknown");
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", arch},
          {"families", json::array({arch})},
          {"parameter_size", ollama_parameter_size(info.value("parameters", uint64_t{0}))},
          {"quantization_level", info.value("quantization", "unknown")}};
}

// One entry of /api/tags for a declared model.
json tag_entry(const ModelListing& m) {
  const json info = model_file_info(m.decl);
  return {{"name", m.id},
          {"model", m.id},
          {"modified_at", ollama_time(file_mtime_ns(m.decl.path))},
          {"size", info.value("file_size", uint64_t{0})},
          {"digest", m.decl.sha256},
          {"details", details_of(info)}};
}

// The counts and durations Ollama reports with a finished request.
json usage_fields(const engine::RequestStats& s, int64_t total_ns, int64_t load_ns) {
  return {{"total_duration", total_ns},
          {"load_duration", load_ns},
          {"prompt_eval_count", s.n_prompt},
          {"prompt_eval_duration", ms_to_ns(s.prompt_ms)},
          {"eval_count", s.n_generated},
          {"eval_duration", ms_to_ns(s.generate_ms)}};
}

// One JSON line of an answer: {"model", "created_at", <text>, "done"}; the
// text is a message for /api/chat and "response" for /api/generate.
json line(const std::string& model, bool chat, const std::string& text, bool done, const std::string& thinking = "") {
  json j = {{"model", model}, {"created_at", ollama_time(now_ns())}};
  if (chat) j["message"] = {{"role", "assistant"}, {"content", text}};
  else j["response"] = text;
  if (!thinking.empty()) (chat ? j["message"]["thinking"] : j["thinking"]) = thinking;
  j["done"] = done;
  return j;
}

// Ollama's message.tool_calls: [{"function": {"name", "arguments": {...}}}].
json ollama_tool_calls(const ParsedAnswer& a) {
  json calls = json::array();
  for (const auto& c : a.calls) calls.push_back({{"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  return calls;
}

std::string ndjson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

// Ollama's stream: a JSON line per piece of the answer (text held back where
// a tool call may begin), then the closing line with the counts, or an error
// line.
class OllamaWriter : public EventWriter {
 public:
  using FinishLine = std::function<json(const Generation::Event&, const std::string&, const std::string&)>;
  OllamaWriter(const Generation& g, bool chat, FinishLine finish_line)
      : model_(g.model_id()), chat_(chat), finish_line_(std::move(finish_line)),
        held_(g.tool_format(), g.params().tools) {}
  std::string start(const Generation&) override { return ""; }
  std::string token(const Generation::Event& e) override {
    const std::string piece = held_.push(e.token.text);
    if (piece.empty() && e.thinking.empty()) return "";
    return ndjson(line(model_, chat_, piece, false, e.thinking));
  }
  std::string finish(const Generation::Event& done) override {
    std::string out;
    const ToolCallStream::Rest rest = held_.finish();  // what was held back: calls, or content after all
    if (!rest.content.empty() || !rest.answer.calls.empty()) {
      json held = line(model_, chat_, rest.content, false);
      if (!rest.answer.calls.empty()) held["message"]["tool_calls"] = ollama_tool_calls(rest.answer);
      out += ndjson(held);
    }
    return out + ndjson(finish_line_(done, "", ""));
  }
  std::string failure(const std::string& error) override { return ndjson(json{{"error", "generation failed: " + error}}); }

 private:
  std::string model_;
  bool chat_;
  FinishLine finish_line_;
  ToolCallStream held_;
};

void generate(ModelHost& host, const httplib::Request& req, httplib::Response& res, OllamaEndpoint endpoint) {
  const auto t0 = Clock::now();
  const bool chat = endpoint == OllamaEndpoint::kChat;
  const OllamaGenerationParams p = ollama_generation_parse(parse_json_object(req), endpoint);
  if (p.load_only && p.keep_alive_ms == 0) {
    // Ollama's unload (what `ollama stop` sends): an on-demand model is
    // unloaded (requests still running finish first); an always-loaded one
    // stays, and the client is told why.
    const std::optional<ModelDecl> decl = host.find_decl(p.gen.model);
    if (!decl) host.get(p.gen.model, "chat");  // throws the usual "not served here" (404)
    if (decl && decl->load != "on_demand") {
      throw Error(ErrorCode::kInvalidArgument, "model '" + p.gen.model +
                                                   "' is always loaded (load = \"always\" in the node's "
                                                   "configuration); a request cannot unload it");
    }
    host.unload(p.gen.model);
    json j = line(p.gen.model, chat, "", true);
    j["done_reason"] = "unload";
    reply_json(res, 200, j);
    return;
  }
  std::shared_ptr<HostedModel> lease = host.get(p.gen.model, "chat");  // held for the request
  const int64_t load_ns = ns_between(t0, Clock::now());
  // As Ollama does, each request sets how long the model stays loaded after
  // it (absent: the configured keep_alive); only on-demand models unload.
  host.set_keep_alive(lease->id, p.keep_alive_ms);
  if (p.load_only) {
    json j = line(lease->id, chat, "", true);
    j["done_reason"] = "load";
    reply_json(res, 200, j);
    return;
  }
  auto g = std::make_shared<Generation>(std::move(lease), p.gen);
  const std::string model = g->model_id();
  auto finish_line = [=](const Generation::Event& e, const std::string& text, const std::string& thinking) {
    json j = line(model, chat, text, true, thinking);
    j["done_reason"] = finish_reason_name(e.finish);
    j.update(usage_fields(e.stats, ns_between(t0, Clock::now()), load_ns));
    return j;
  };
  if (!p.gen.stream) {
    const Generation::Whole w = g->wait_whole();
    const ParsedAnswer a = parse_tool_calls(w.text, g->tool_format(), g->params().tools);
    json j = finish_line(w.done, a.calls.empty() ? w.text : a.content, w.thinking);
    if (!a.calls.empty()) j["message"]["tool_calls"] = ollama_tool_calls(a);
    reply_json(res, 200, j);
    return;
  }
  reply_event_stream(res, g, std::make_shared<OllamaWriter>(*g, chat, finish_line), "application/x-ndjson");
}

void embed(ModelHost& host, const httplib::Request& req, httplib::Response& res, bool legacy) {
  const auto t0 = Clock::now();
  const json body = parse_json_object(req);
  const EmbeddingParams p = ollama_embed_parse(body, legacy);
  std::shared_ptr<HostedModel> lease = host.get(p.model, "embedding");
  const int64_t load_ns = ns_between(t0, Clock::now());
  host.set_keep_alive(lease->id, ollama_keep_alive_ms(body));  // as for generation
  HostedModel& m = *lease;
  const std::vector<engine::Embedding> out = embed_request(m, p);
  if (legacy) {
    reply_json(res, 200, {{"embedding", out.empty() ? json::array() : json(out[0].values)}});
    return;
  }
  json embeddings = json::array();
  int64_t tokens = 0;
  for (const auto& e : out) {
    embeddings.push_back(e.values);
    tokens += e.n_tokens;
  }
  reply_json(res, 200, {{"model", m.id},
                        {"embeddings", embeddings},
                        {"total_duration", ns_between(t0, Clock::now())},
                        {"load_duration", load_ns},
                        {"prompt_eval_count", tokens}});
}

// GGUF metadata as Ollama's model_info: scalar values, and arrays only when
// verbose (a vocabulary is tens of thousands of strings).
json model_info(const engine::GgufFile& f) {
  json info = json::object();
  for (const auto& [key, v] : f.metadata()) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, uint64_t> || std::is_same_v<T, int64_t> || std::is_same_v<T, double> ||
                        std::is_same_v<T, bool> || std::is_same_v<T, std::string>) {
            info[key] = x;
          }
        },
        v.value);
  }
  return info;
}

void show(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const std::string id = ollama_show_parse(parse_json_object(req));
  const std::optional<ModelDecl> decl = host.find_decl(id);
  if (!decl) throw Error(ErrorCode::kNotFound, "model '" + id + "' not found");
  const json info = model_file_info(*decl);
  if (info.contains("error")) throw Error(ErrorCode::kUnavailable, info["error"].get<std::string>());
  auto file = engine::GgufFile::open(decl->path);
  const std::string chat_template = file->opt_string("tokenizer.chat_template").value_or("");
  // Ollama's capability names: what the model's own template lets it do.
  json capabilities = json::array({decl->role == "chat" ? "completion" : decl->role});
  if (decl->role == "chat") {
    if (engine::chat_template_mentions_tools(chat_template)) capabilities.push_back("tools");
    if (!reasoning_tags(chat_template).empty()) capabilities.push_back("thinking");
    if (engine::vocab_load(*file).fim_pre != engine::kTokenNone) capabilities.push_back("insert");  // suffix
  }
  json body = {{"modelfile", ""},
               {"parameters", ""},
               {"template", chat_template},
               {"details", details_of(info)},
               {"model_info", model_info(*file)},
               {"capabilities", capabilities},
               {"modified_at", ollama_time(file_mtime_ns(decl->path))}};
  reply_json(res, 200, body);
}

void list_tags(ModelHost& host, httplib::Response& res) {
  json models = json::array();
  for (const auto& m : host.list()) models.push_back(tag_entry(m));
  reply_json(res, 200, {{"models", models}});
}

void list_running(ModelHost& host, httplib::Response& res) {
  json models = json::array();
  auto bytes_of = [](const engine::Backend& b) {
    return b.allocated(engine::MemoryKind::kWeights) + b.allocated(engine::MemoryKind::kKvCache) +
           b.allocated(engine::MemoryKind::kCompute);
  };
  std::map<std::string, ModelListing> listed;
  for (auto& l : host.list()) listed[l.id] = l;
  for (const auto& m : host.models()) {
    auto it = listed.find(m->id);
    if (it == listed.end()) continue;  // removed since
    const ModelListing& l = it->second;
    json e = tag_entry(l);
    e.erase("modified_at");
    e["size"] = m->memory_bytes();
    // On a GPU, the bytes its backend holds (with partial offload, the CPU
    // backend's share is the rest of "size").
    const bool on_gpu = m->backend && m->backend->name() != "cpu";
    e["size_vram"] = on_gpu ? bytes_of(*m->backend) : uint64_t{0};
    // Always-loaded models (and a keep_alive of forever) never expire; the
    // others may be unloaded keep_alive after their last request (from now
    // while one runs).
    if (l.keep_alive_ms == kKeepAliveForever) {
      e["expires_at"] = "9999-12-31T23:59:59.000000000Z";
    } else {
      const int64_t from_ms = l.leases > 0 || l.last_used_unix_ms == 0 ? now_ns() / 1'000'000 : l.last_used_unix_ms;
      e["expires_at"] = ollama_time((from_ms + l.keep_alive_ms) * 1'000'000);
    }
    models.push_back(std::move(e));
  }
  reply_json(res, 200, {{"models", models}});
}

}  // namespace

std::vector<Route> ollama_routes(ModelHost& host) {
  std::vector<Route> routes = {
      {"POST", "/api/chat",
       [&host](const httplib::Request& req, httplib::Response& res) { generate(host, req, res, OllamaEndpoint::kChat); }},
      {"POST", "/api/generate",
       [&host](const httplib::Request& req, httplib::Response& res) {
         generate(host, req, res, OllamaEndpoint::kGenerate);
       }},
      {"POST", "/api/embed",
       [&host](const httplib::Request& req, httplib::Response& res) { embed(host, req, res, /*legacy=*/false); }},
      {"POST", "/api/embeddings",
       [&host](const httplib::Request& req, httplib::Response& res) { embed(host, req, res, /*legacy=*/true); }},
      {"POST", "/api/show", [&host](const httplib::Request& req, httplib::Response& res) { show(host, req, res); }},
      {"GET", "/api/tags", [&host](const httplib::Request&, httplib::Response& res) { list_tags(host, res); }},
      {"GET", "/api/ps", [&host](const httplib::Request&, httplib::Response& res) { list_running(host, res); }},
      {"GET", "/api/version",
       [](const httplib::Request&, httplib::Response& res) { reply_json(res, 200, {{"version", kVersion}}); }},
  };
  // Ollama's model management: said plainly rather than a bare 404.
  for (const char* path : {"/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"}) {
    routes.push_back({std::string(path) == "/api/delete" ? "DELETE" : "POST", path,
                      [path](const httplib::Request&, httplib::Response&) {
                        throw HttpError(501, "not_implemented",
                                        std::string(path) + " is not offered by tars: models are declared in the "
                                        "node's configuration ([[models]] or --model), and the cluster's workers "
                                        "fetch them from the coordinator");
                      }});
  }
  return routes;
}

}  // namespace tars::node
