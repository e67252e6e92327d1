#include "node/openai_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "common/error.h"
#include "node/event_stream.h"
#include "node/generation.h"
#include "node/model_host.h"
#include "node/tool_calls.h"

namespace tars::node {
namespace {

using json = nlohmann::json;
enum class Api { kChat, kCompletion, kInference };

// Collects what a response needs as events arrive.
struct Accumulator {
  std::string text;
  std::string thinking;  // a reasoning model's thoughts (reasoning_content)
  int n_generated = 0;
  json chat_logprobs = json::array();                  // chat: content[]
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();                          // completions
  size_t offset = 0;

  // Adds a token; returns its logprobs entry in the API's shape (null when
  // logprobs are off).
  json add(const Generation& g, const engine::TokenEvent& t, Api api) {
    text += t.text;
    if (t.id < 0) return nullptr;
    ++n_generated;
    if (!g.params().logprobs) return nullptr;
    std::string piece = g.token_text(t.id);
    if (api == Api::kChat) {
      json alts = json::array();
      for (const auto& a : t.top) {
        std::string ap = g.token_text(a.id);
        alts.push_back({{"token", ap}, {"logprob", a.logprob}, {"bytes", json_bytes(ap)}});
      }
      json e = {{"token", piece}, {"logprob", t.logprob}, {"bytes", json_bytes(piece)},
                {"top_logprobs", alts}};
      chat_logprobs.push_back(e);
      return e;
    }
    json alts = json::object();
    for (const auto& a : t.top) alts[g.token_text(a.id)] = a.logprob;
    tokens.push_back(piece);
    token_logprobs.push_back(t.logprob);
    top.push_back(alts);
    offsets.push_back(offset);
    offset += piece.size();
    return {{"tokens", {piece}}, {"token_logprobs", {t.logprob}}, {"top_logprobs", {alts}},
            {"text_offset", {offset - piece.size()}}};
  }
  json logprobs(const Generation& g, Api api) const {
    if (!g.params().logprobs) return nullptr;
    if (api == Api::kChat) return {{"content", chat_logprobs}};
    return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top},
            {"text_offset", offsets}};
  }
};

// "call_" and 24 hex digits, as OpenAI's ids look.
std::string call_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[32];
  std::snprintf(buf, sizeof buf, "call_%016llx%08x", static_cast<unsigned long long>(rng()),
                static_cast<unsigned>(rng() & 0xffffffffu));
  return buf;
}

// OpenAI's message.tool_calls (arguments as JSON text); with `index` for
// stream deltas.
json openai_tool_calls(const ParsedAnswer& a, bool with_index) {
  json calls = json::array();
  for (size_t i = 0; i < a.calls.size(); ++i) {
    json c = {{"id", call_id()},
              {"type", "function"},
              {"function", {{"name", a.calls[i].name}, {"arguments", a.calls[i].arguments.dump()}}}};
    if (with_index) c["index"] = i;
    calls.push_back(std::move(c));
  }
  return calls;
}

// OpenAI's usage; prompt_tokens_details.cached_tokens counts the prompt
// tokens the slot's prompt cache held (read from it, not computed again).
json usage(const Generation& g, int n_generated, const engine::RequestStats& s) {
  return {{"prompt_tokens", g.n_prompt()},
          {"completion_tokens", n_generated},
          {"total_tokens", g.n_prompt() + n_generated},
          {"prompt_tokens_details", {{"cached_tokens", s.n_cached}}}};
}

json timings(const engine::RequestStats& s) {
  double tps = s.n_generated > 1 && s.generate_ms > 0 ? (s.n_generated - 1) / (s.generate_ms / 1000.0) : 0;
  return {{"queue_ms", s.queue_ms},   {"prompt_ms", s.prompt_ms},
          {"ttft_ms", s.ttft_ms},     {"generate_ms", s.generate_ms},
          {"prompt_tokens", s.n_prompt}, {"cached_tokens", s.n_cached}, {"generated_tokens", s.n_generated},
          {"tokens_per_s", tps}};
}

void respond_whole(Generation& g, Api api, httplib::Response& res) {
  Accumulator acc;
  for (;;) {
    for (auto& e : g.wait(1000)) {
      if (!e.done) {
        acc.add(g, e.token, api);
        acc.thinking += e.thinking;
        continue;
      }
      if (!e.error.empty()) throw_generation_failure(e.error);
      json body;
      if (api == Api::kInference) {
        body = {{"model", g.model_id()}, {"text", acc.text}, {"finish_reason", finish_reason_name(e.finish)},
                {"usage", usage(g, acc.n_generated, e.stats)}, {"timings", timings(e.stats)}};
      } else {
        json choice = {{"index", 0}, {"finish_reason", finish_reason_name(e.finish)},
                       {"logprobs", acc.logprobs(g, api)}};
        if (api == Api::kChat) {
          choice["message"] = {{"role", "assistant"}, {"content", acc.text}};
          if (!acc.thinking.empty()) choice["message"]["reasoning_content"] = acc.thinking;
          const ParsedAnswer a = parse_tool_calls(acc.text, g.tool_format(), g.params().tools);
          if (!a.calls.empty()) {
            choice["message"]["content"] = a.content.empty() ? json(nullptr) : json(a.content);
            choice["message"]["tool_calls"] = openai_tool_calls(a, false);
            choice["finish_reason"] = "tool_calls";
          }
        } else {
          choice["text"] = acc.text;
        }
        body = {{"id", g.id()},
                {"object", api == Api::kChat ? "chat.completion" : "text_completion"},
                {"created", g.created()},
                {"model", g.model_id()},
                {"choices", json::array({choice})},
                {"usage", usage(g, acc.n_generated, e.stats)},
                {"timings", timings(e.stats)}};
      }
      reply_json(res, 200, body);
      return;
    }
  }
}

std::string sse(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// OpenAI's stream: chunks of deltas (chat) or text (completions), held back
// where a tool call may begin; the last chunk has the finish reason and
// timings, an optional usage chunk follows, then "data: [DONE]".
class OpenAIWriter : public EventWriter {
 public:
  OpenAIWriter(const Generation& g, Api api) : g_(g), api_(api), held_(g.tool_format(), g.params().tools) {}

  std::string start(const Generation&) override {
    if (api_ != Api::kChat) return "";
    return sse(chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr},
                      {"logprobs", nullptr}}));
  }

  std::string token(const Generation::Event& e) override {
    std::string out;
    json lp = acc_.add(g_, e.token, api_);
    const std::string text = held_.push(e.token.text);
    if (!e.thinking.empty()) {  // thoughts come as delta.reasoning_content (llama-server's)
      out += sse(chunk({{"index", 0}, {"finish_reason", nullptr}, {"logprobs", lp},
                        {"delta", {{"reasoning_content", e.thinking}}}}));
      lp = nullptr;  // the token's logprobs went with its thought
    }
    if (text.empty() && lp.is_null()) return out;
    json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", lp}};
    if (api_ == Api::kChat) choice["delta"] = {{"content", text}};
    else choice["text"] = text;
    return out + sse(chunk(choice));
  }

  std::string finish(const Generation::Event& e) override {
    std::string out;
    json choice = {{"index", 0}, {"finish_reason", finish_reason_name(e.finish)}, {"logprobs", nullptr}};
    if (api_ == Api::kChat) choice["delta"] = json::object();
    else choice["text"] = "";
    // What was held back: calls, or content after all.
    const ToolCallStream::Rest rest = held_.finish();
    if (!rest.content.empty()) {
      out += sse(chunk({{"index", 0}, {"delta", {{"content", rest.content}}}, {"finish_reason", nullptr},
                        {"logprobs", nullptr}}));
    }
    if (!rest.answer.calls.empty()) {
      out += sse(chunk({{"index", 0}, {"delta", {{"tool_calls", openai_tool_calls(rest.answer, true)}}},
                        {"finish_reason", nullptr}, {"logprobs", nullptr}}));
      choice["finish_reason"] = "tool_calls";
    }
    json last = chunk(choice);
    last["timings"] = timings(e.stats);
    out += sse(last);
    if (g_.params().include_usage) {
      json u = chunk(nullptr);
      u["choices"] = json::array();
      u["usage"] = usage(g_, acc_.n_generated, e.stats);
      out += sse(u);
    }
    return out + "data: [DONE]\n\n";
  }

  std::string failure(const std::string& error) override {
    // Never a silently truncated stream: say what happened.
    return sse({{"error", {{"message", "generation failed: " + error}, {"type", "server_error"},
                           {"code", "generation_failed"}}}}) +
           "data: [DONE]\n\n";
  }

 private:
  json chunk(json choice) const {
    return json{{"id", g_.id()},
                {"object", api_ == Api::kChat ? "chat.completion.chunk" : "text_completion"},
                {"created", g_.created()},
                {"model", g_.model_id()},
                {"choices", json::array({std::move(choice)})}};
  }

  const Generation& g_;  // owned by the stream, which owns this writer too
  Api api_;
  Accumulator acc_;
  ToolCallStream held_;  // with tools, text from where a call may begin waits for the end
};

HttpHandler generation_handler(ModelHost& host, Api api) {
  return [&host, api](const httplib::Request& req, httplib::Response& res) {
    const auto body = parse_json_object(req);
    // The seed's /inference takes either messages or a prompt; it streams
    // in the completions shape.
    bool chat = api == Api::kChat || (api == Api::kInference && body.contains("messages"));
    GenerationParams p = generation_parse(body, chat);
    std::shared_ptr<HostedModel> m = host.get(p.model, "chat");  // a lease
    if (p.stream) {
      auto g = std::make_shared<Generation>(std::move(m), p);
      reply_event_stream(res, g, std::make_shared<OpenAIWriter>(*g, api == Api::kInference ? Api::kCompletion : api));
    } else {
      Generation g(std::move(m), p);
      respond_whole(g, api, res);
    }
  };
}

}  // namespace

std::vector<Route> openai_routes(ModelHost& host) {
  auto list_models = [&host](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    // Every declared model; on-demand ones not loaded yet say so.
    for (const auto& m : host.list()) {
      data.push_back({{"id", m.id}, {"object", "model"}, {"created", m.created},
                      {"owned_by", "tars"}, {"role", m.decl.role},
                      {"loaded", m.state == ModelState::kLoaded},
                      {"state", model_state_name(m.state)}});
    }
    reply_json(res, 200, {{"object", "list"}, {"data", data}});
  };
  return {
      {"GET", "/v1/models", list_models},
      {"POST", "/v1/chat/completions", generation_handler(host, Api::kChat)},
      {"POST", "/chat/completions", generation_handler(host, Api::kChat)},  // llama-server's alias
      {"POST", "/v1/completions", generation_handler(host, Api::kCompletion)},
      {"POST", "/inference", generation_handler(host, Api::kInference)},
  };
}

}  // namespace tars::node
