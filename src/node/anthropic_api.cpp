#include "node/anthropic_api.h"

#include <random>

#include "common/error.h"
#include "node/generation.h"
#include "node/model_host.h"
#include "node/request_params.h"
#include "node/tool_calls.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += digits[rng() % 62];
  return id;
}

// Anthropic's stop_reason.
const char* stop_reason(const Generation::Event& done, bool calls) {
  if (calls) return "tool_use";
  if (done.finish == engine::FinishReason::kLength) return "max_tokens";
  return done.stats.stop_sequence.empty() ? "end_turn" : "stop_sequence";
}

json stop_sequence(const Generation::Event& done) {
  return done.stats.stop_sequence.empty() ? json(nullptr) : json(done.stats.stop_sequence);
}

// Prompt tokens read fresh and from the prompt cache (Anthropic counts them apart).
json usage(const engine::RequestStats& s) {
  return {{"input_tokens", s.n_prompt - s.n_cached},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", s.n_cached},
          {"output_tokens", s.n_generated}};
}

json tool_use_block(const ParsedToolCall& c) {
  return {{"type", "tool_use"}, {"id", random_id("toolu_")}, {"name", c.name}, {"input", c.arguments}};
}

std::string event(const char* type, const json& data) {
  return std::string("event: ") + type + "\ndata: " + data.dump(-1, ' ', false, json::error_handler_t::replace) +
         "\n\n";
}

void reply_whole(const std::shared_ptr<Generation>& g, const std::string& id, httplib::Response& res) {
  const Generation::Whole w = g->wait_whole();
  const ParsedAnswer a = parse_tool_calls(w.text, g->tool_format(), g->params().tools);
  const std::string& answer = a.calls.empty() ? w.text : a.content;
  json content = json::array();
  if (!w.thinking.empty()) content.push_back({{"type", "thinking"}, {"thinking", w.thinking}, {"signature", ""}});
  if (!answer.empty() || (a.calls.empty() && w.thinking.empty())) content.push_back({{"type", "text"}, {"text", answer}});
  for (const auto& c : a.calls) content.push_back(tool_use_block(c));
  reply_json(res, 200,
             {{"id", id},
              {"type", "message"},
              {"role", "assistant"},
              {"model", g->model_id()},
              {"content", std::move(content)},
              {"stop_reason", stop_reason(w.done, !a.calls.empty())},
              {"stop_sequence", stop_sequence(w.done)},
              {"usage", usage(w.done.stats)}});
}

// The content blocks of a streamed answer: a thinking block, then a text
// block, then one block per tool call, numbered from 0.
struct BlockStream {
  int index = -1;
  std::string open;  // "thinking", "text" or "" (none open)
  std::string out;   // events to write

  void close() {
    if (open.empty()) return;
    out += event("content_block_stop", {{"type", "content_block_stop"}, {"index", index}});
    open.clear();
  }
  void start(const std::string& type, json block) {
    close();
    ++index;
    open = type;
    out += event("content_block_start", {{"type", "content_block_start"}, {"index", index}, {"content_block", std::move(block)}});
  }
  void thinking(const std::string& piece) {
    if (piece.empty()) return;
    if (open != "thinking") start("thinking", {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
    out += event("content_block_delta", {{"type", "content_block_delta"},
                                         {"index", index},
                                         {"delta", {{"type", "thinking_delta"}, {"thinking", piece}}}});
  }
  void text(const std::string& piece) {
    if (piece.empty()) return;
    if (open != "text") start("text", {{"type", "text"}, {"text", ""}});
    out += event("content_block_delta", {{"type", "content_block_delta"},
                                         {"index", index},
                                         {"delta", {{"type", "text_delta"}, {"text", piece}}}});
  }
  void call(const ParsedToolCall& c) {
    json block = tool_use_block(c);
    block["input"] = json::object();
    start("tool_use", std::move(block));
    out += event("content_block_delta", {{"type", "content_block_delta"},
                                         {"index", index},
                                         {"delta", {{"type", "input_json_delta"}, {"partial_json", c.arguments.dump()}}}});
    close();
  }
};

void reply_stream(const std::shared_ptr<Generation>& g, const std::string& id, httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  // With tools, text from where a call may begin waits for the end.
  auto held = std::make_shared<ToolCallStream>(g->tool_format(), g->params().tools);
  auto blocks = std::make_shared<BlockStream>();
  auto started = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",
      [g, id, held, blocks, started](size_t, httplib::DataSink& sink) {
        auto flush = [&] {
          const bool ok = blocks->out.empty() || sink.write(blocks->out.data(), blocks->out.size());
          blocks->out.clear();
          return ok;
        };
        if (!*started) {
          *started = true;
          blocks->out = event("message_start", {{"type", "message_start"},
                                                {"message", {{"id", id},
                                                             {"type", "message"},
                                                             {"role", "assistant"},
                                                             {"model", g->model_id()},
                                                             {"content", json::array()},
                                                             {"stop_reason", nullptr},
                                                             {"stop_sequence", nullptr},
                                                             {"usage", {{"input_tokens", g->n_prompt()},
                                                                        {"output_tokens", 0}}}}}});
          if (!flush()) {
            g->cancel();
            return false;
          }
        }
        auto events = g->wait(200);
        if (events.empty() && !sink.is_writable()) {  // client gone while nothing to send
          g->cancel();
          return false;
        }
        for (auto& e : events) {
          if (!e.done) {
            blocks->thinking(e.thinking);
            blocks->text(held->push(e.token.text));
            if (!flush()) {
              g->cancel();  // the client disconnected: free the slot
              return false;
            }
            continue;
          }
          if (!e.error.empty()) {
            // Never a silently truncated stream: the error is the last event.
            blocks->out += event("error", {{"type", "error"},
                                           {"error", {{"type", "api_error"}, {"message", "generation failed: " + e.error}}}});
            flush();
            sink.done();
            return true;
          }
          const ToolCallStream::Rest rest = held->finish();
          blocks->text(rest.content);
          blocks->close();
          for (const auto& c : rest.answer.calls) blocks->call(c);
          blocks->out += event("message_delta", {{"type", "message_delta"},
                                                 {"delta", {{"stop_reason", stop_reason(e, !rest.answer.calls.empty())},
                                                            {"stop_sequence", stop_sequence(e)}}},
                                                 {"usage", usage(e.stats)}});
          blocks->out += event("message_stop", {{"type", "message_stop"}});
          flush();
          sink.done();
          return true;
        }
        return true;
      },
      [g](bool) {
        if (!g->finished()) g->cancel();
      });
}

void messages(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const AnthropicParams a = anthropic_parse(parse_json_object(req), /*count_tokens=*/false);
  auto g = std::make_shared<Generation>(host.get(a.gen.model, "chat"), a.gen);
  const std::string id = random_id("msg_");
  if (a.gen.stream) reply_stream(g, id, res);
  else reply_whole(g, id, res);
}

void count_tokens(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const AnthropicParams a = anthropic_parse(parse_json_object(req), /*count_tokens=*/true);
  std::shared_ptr<HostedModel> lease = host.get(a.gen.model, "chat");
  const PreparedPrompt p = prepare_prompt(*lease, a.gen);
  reply_json(res, 200, {{"input_tokens", p.tokens.size()}});
}

}  // namespace

std::vector<Route> anthropic_routes(ModelHost& host) {
  return {
      {"POST", "/v1/messages",
       [&host](const httplib::Request& req, httplib::Response& res) { messages(host, req, res); }},
      {"POST", "/v1/messages/count_tokens",
       [&host](const httplib::Request& req, httplib::Response& res) { count_tokens(host, req, res); }},
  };
}

}  // namespace tars::node
