#include "node/anthropic_api.h"

#include <utility>

#include "common/error.h"
#include "node/event_stream.h"
#include "node/generation.h"
#include "node/model_host.h"
#include "node/request_params.h"
#include "node/tool_calls.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

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

// Anthropic's events: message_start, the blocks, message_delta, message_stop.
class AnthropicWriter : public EventWriter {
 public:
  AnthropicWriter(const Generation& g, std::string id)
      : id_(std::move(id)), held_(g.tool_format(), g.params().tools) {}

  std::string start(const Generation& g) override {
    return event("message_start", {{"type", "message_start"},
                                   {"message", {{"id", id_},
                                                {"type", "message"},
                                                {"role", "assistant"},
                                                {"model", g.model_id()},
                                                {"content", json::array()},
                                                {"stop_reason", nullptr},
                                                {"stop_sequence", nullptr},
                                                {"usage", {{"input_tokens", g.n_prompt()}, {"output_tokens", 0}}}}}});
  }
  std::string token(const Generation::Event& e) override {
    blocks_.thinking(e.thinking);
    // With tools, text from where a call may begin waits for the end.
    blocks_.text(held_.push(e.token.text));
    return take();
  }
  std::string finish(const Generation::Event& done) override {
    const ToolCallStream::Rest rest = held_.finish();
    blocks_.text(rest.content);
    blocks_.close();
    for (const auto& c : rest.answer.calls) blocks_.call(c);
    blocks_.out += event("message_delta", {{"type", "message_delta"},
                                           {"delta", {{"stop_reason", stop_reason(done, !rest.answer.calls.empty())},
                                                      {"stop_sequence", stop_sequence(done)}}},
                                           {"usage", usage(done.stats)}});
    blocks_.out += event("message_stop", {{"type", "message_stop"}});
    return take();
  }
  std::string failure(const std::string& error) override {
    return event("error", {{"type", "error"}, {"error", {{"type", "api_error"}, {"message", "generation failed: " + error}}}});
  }

 private:
  std::string take() { return std::exchange(blocks_.out, std::string()); }
  std::string id_;
  ToolCallStream held_;
  BlockStream blocks_;
};

void messages(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const AnthropicParams a = anthropic_parse(parse_json_object(req), /*count_tokens=*/false);
  auto g = std::make_shared<Generation>(host.get(a.gen.model, "chat"), a.gen);
  const std::string id = random_id("msg_");
  if (a.gen.stream) reply_event_stream(res, g, std::make_shared<AnthropicWriter>(*g, id));
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
