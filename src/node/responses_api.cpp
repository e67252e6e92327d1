#include "node/responses_api.h"

#include <chrono>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "common/error.h"
#include "node/event_stream.h"
#include "node/generation.h"
#include "node/model_host.h"
#include "node/request_params.h"
#include "node/request_params_detail.h"
#include "node/tool_calls.h"

namespace tars::node {
namespace {

using json = nlohmann::ordered_json;

json reasoning_item(const std::string& id, const std::string& text) {
  return {{"type", "reasoning"}, {"id", id}, {"summary", json::array()},
          {"content", json::array({{{"type", "reasoning_text"}, {"text", text}}})}};
}

json text_part(const std::string& text) {
  return {{"type", "output_text"}, {"text", text}, {"annotations", json::array()}, {"logprobs", json::array()}};
}

json message_item(const std::string& id, const std::string& text, const char* status) {
  json content = json::array();
  if (std::string(status) == "completed") content.push_back(text_part(text));
  return {{"type", "message"}, {"id", id}, {"status", status}, {"role", "assistant"}, {"content", std::move(content)}};
}

json call_item(const std::string& id, const std::string& call_id, const ParsedToolCall& c, const char* status) {
  return {{"type", "function_call"}, {"id", id},           {"call_id", call_id},
          {"name", c.name},          {"arguments", std::string(status) == "completed" ? c.arguments.dump() : ""},
          {"status", status}};
}

// The response object: what the request set, the output items, the status
// and usage (none while in progress).
json response_object(const std::string& id, int64_t created, const std::string& model, const ResponsesParams& rp,
                     const json& output, const Generation::Event* done, bool failed = false) {
  json r = {{"id", id}, {"object", "response"}, {"created_at", created}};
  const bool incomplete = done && done->finish == engine::FinishReason::kLength;
  r["status"] = failed ? "failed" : !done ? "in_progress" : incomplete ? "incomplete" : "completed";
  r["error"] = nullptr;
  r["incomplete_details"] = incomplete ? json{{"reason", "max_output_tokens"}} : json(nullptr);
  r["instructions"] = rp.echo.value("instructions", json(nullptr));
  r["max_output_tokens"] = rp.echo.value("max_output_tokens", json(nullptr));
  r["model"] = model;
  r["output"] = output;
  r["parallel_tool_calls"] = true;
  r["previous_response_id"] = rp.previous_response_id.empty() ? json(nullptr) : json(rp.previous_response_id);
  r["reasoning"] = rp.echo.value("reasoning", json{{"effort", nullptr}, {"summary", nullptr}});
  r["store"] = rp.store;
  r["temperature"] = rp.echo["temperature"];
  r["text"] = rp.echo["text"];
  r["tool_choice"] = rp.echo["tool_choice"];
  r["tools"] = rp.echo.value("tools", json::array());
  r["top_p"] = rp.echo["top_p"];
  r["truncation"] = rp.gen.truncate_history ? "auto" : "disabled";
  if (done) {
    const engine::RequestStats& s = done->stats;
    r["usage"] = {{"input_tokens", s.n_prompt},
                  {"input_tokens_details", {{"cached_tokens", s.n_cached}}},
                  {"output_tokens", s.n_generated},
                  {"output_tokens_details", {{"reasoning_tokens", 0}}},
                  {"total_tokens", s.n_prompt + s.n_generated}};
  } else {
    r["usage"] = nullptr;
  }
  r["metadata"] = json::object();
  return r;
}

// Responses kept for previous_response_id and GET /v1/responses/{id}: in
// this node's memory (a restart forgets them), the oldest forgotten once
// they hold more than kStoreBytes.
constexpr size_t kStoreBytes = size_t{64} << 20;

class ResponseStore {
 public:
  struct Entry {
    json response;
    std::vector<MessageParam> conversation;  // its input (instructions apart) and its answer, as chat messages
  };

  void put(const std::string& id, Entry e) {
    size_t bytes = e.response.dump().size();
    for (const auto& m : e.conversation) {
      bytes += m.content.size() + m.reasoning_content.size() + 64;
      for (const auto& c : m.tool_calls) bytes += c.name.size() + c.arguments.dump().size();
    }
    std::lock_guard<std::mutex> lock(mu_);
    erase_locked(id);
    order_.push_back(id);
    map_.emplace(id, Slot{std::move(e), bytes, std::prev(order_.end())});
    bytes_ += bytes;
    while (bytes_ > kStoreBytes && order_.size() > 1) erase_locked(order_.front());
  }
  std::optional<Entry> get(const std::string& id) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = map_.find(id);
    if (it == map_.end()) return std::nullopt;
    return it->second.entry;
  }
  bool erase(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return erase_locked(id);
  }

 private:
  struct Slot {
    Entry entry;
    size_t bytes = 0;
    std::list<std::string>::iterator at;
  };
  bool erase_locked(const std::string& id) {
    const auto it = map_.find(id);
    if (it == map_.end()) return false;
    bytes_ -= it->second.bytes;
    order_.erase(it->second.at);
    map_.erase(it);
    return true;
  }
  mutable std::mutex mu_;
  std::list<std::string> order_;  // oldest first
  std::unordered_map<std::string, Slot> map_;
  size_t bytes_ = 0;
};

std::string not_stored(const std::string& id) {
  return "response '" + id + "' is not stored on this node (responses are kept in its memory while they fit in " +
         std::to_string(kStoreBytes >> 20) + " MiB, until it restarts, and only with \"store\": true)";
}

struct Request {
  ResponsesParams params;
  std::string id = random_id("resp_");
  int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::shared_ptr<ResponseStore> store;
  // What a stored response of this request remembers: the conversation so
  // far (earlier responses' and this input), without the instructions.
  std::vector<MessageParam> conversation;

  // Keeps the finished response (store: true), with its answer as the
  // conversation's next assistant turn.
  void keep(const json& response) const {
    if (!params.store) return;
    ResponseStore::Entry e{response, conversation};
    MessageParam turn;
    turn.role = "assistant";
    for (const auto& item : response["output"]) {
      if (item["type"] == "reasoning") {
        for (const auto& part : item["content"]) turn.reasoning_content += part.value("text", "");
      } else if (item["type"] == "message") {
        for (const auto& part : item["content"]) turn.content += part.value("text", "");
      } else if (item["type"] == "function_call") {
        ToolCallParam c;
        c.id = item["call_id"].get<std::string>();
        c.name = item["name"].get<std::string>();
        c.arguments = json::parse(item["arguments"].get<std::string>());
        turn.tool_calls.push_back(std::move(c));
      }
    }
    e.conversation.push_back(std::move(turn));
    store->put(id, std::move(e));
  }
};

void reply_whole(const std::shared_ptr<Generation>& g, const Request& rq, httplib::Response& res) {
  const Generation::Whole w = g->wait_whole();
  const ParsedAnswer a = parse_tool_calls(w.text, g->tool_format(), g->params().tools);
  const std::string& answer = a.calls.empty() ? w.text : a.content;
  json output = json::array();
  if (!w.thinking.empty()) output.push_back(reasoning_item(random_id("rs_"), w.thinking));
  if (!answer.empty() || a.calls.empty()) output.push_back(message_item(random_id("msg_"), answer, "completed"));
  for (const auto& c : a.calls) output.push_back(call_item(random_id("fc_"), random_id("call_"), c, "completed"));
  const json r = response_object(rq.id, rq.created, g->model_id(), rq.params, output, &w.done);
  rq.keep(r);
  reply_json(res, 200, r);
}

// The events of a streamed response, numbered; output items open one at a
// time (reasoning, then the message, then each call) and close with their
// whole content.
struct EventStream {
  std::string out;
  int sequence = 0;
  json items = json::array();  // the closed items, for the final response
  std::string open;            // "reasoning", "message" or ""
  std::string open_id, open_text;

  void emit(json e) {
    e["sequence_number"] = sequence++;
    out += "event: " + e["type"].get<std::string>() + "\ndata: " +
           e.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  }
  int index() const { return static_cast<int>(items.size()); }
  void close() {
    if (open.empty()) return;
    const bool message = open == "message";
    const json part = message ? text_part(open_text) : json{{"type", "reasoning_text"}, {"text", open_text}};
    json done = {{"type", message ? "response.output_text.done" : "response.reasoning_text.done"},
                 {"item_id", open_id}, {"output_index", index()}, {"content_index", 0}, {"text", open_text}};
    if (message) done["logprobs"] = json::array();
    emit(std::move(done));
    emit({{"type", "response.content_part.done"}, {"item_id", open_id}, {"output_index", index()},
          {"content_index", 0}, {"part", part}});
    json item = message ? message_item(open_id, open_text, "completed") : reasoning_item(open_id, open_text);
    emit({{"type", "response.output_item.done"}, {"output_index", index()}, {"item", item}});
    items.push_back(std::move(item));
    open.clear();
    open_text.clear();
  }
  void piece(const std::string& kind, const std::string& text) {
    if (text.empty()) return;
    const bool message = kind == "message";
    if (open != kind) {
      close();
      open = kind;
      open_id = random_id(message ? "msg_" : "rs_");
      json item = message ? message_item(open_id, "", "in_progress")
                          : json{{"type", "reasoning"}, {"id", open_id}, {"summary", json::array()}, {"content", json::array()}};
      emit({{"type", "response.output_item.added"}, {"output_index", index()}, {"item", std::move(item)}});
      emit({{"type", "response.content_part.added"}, {"item_id", open_id}, {"output_index", index()},
            {"content_index", 0},
            {"part", message ? text_part("") : json{{"type", "reasoning_text"}, {"text", ""}}}});
    }
    open_text += text;
    json delta = {{"type", message ? "response.output_text.delta" : "response.reasoning_text.delta"},
                  {"item_id", open_id}, {"output_index", index()}, {"content_index", 0}, {"delta", text}};
    if (message) delta["logprobs"] = json::array();
    emit(std::move(delta));
  }
  void call(const ParsedToolCall& c) {
    close();
    const std::string id = random_id("fc_"), call_id = random_id("call_");
    emit({{"type", "response.output_item.added"}, {"output_index", index()}, {"item", call_item(id, call_id, c, "in_progress")}});
    const std::string args = c.arguments.dump();
    emit({{"type", "response.function_call_arguments.delta"}, {"item_id", id}, {"output_index", index()}, {"delta", args}});
    emit({{"type", "response.function_call_arguments.done"}, {"item_id", id}, {"output_index", index()},
          {"name", c.name}, {"arguments", args}});
    json item = call_item(id, call_id, c, "completed");
    emit({{"type", "response.output_item.done"}, {"output_index", index()}, {"item", item}});
    items.push_back(std::move(item));
  }
};

// The Responses API's events, from response.created to response.completed.
class ResponsesWriter : public EventWriter {
 public:
  ResponsesWriter(const Generation& g, std::shared_ptr<const Request> rq)
      : rq_(std::move(rq)), model_(g.model_id()), held_(g.tool_format(), g.params().tools) {}

  std::string start(const Generation&) override {
    const json r = response_object(rq_->id, rq_->created, model_, rq_->params, json::array(), nullptr);
    ev_.emit({{"type", "response.created"}, {"response", r}});
    ev_.emit({{"type", "response.in_progress"}, {"response", r}});
    return take();
  }
  std::string token(const Generation::Event& e) override {
    ev_.piece("reasoning", e.thinking);
    // With tools, text from where a call may begin waits for the end.
    ev_.piece("message", held_.push(e.token.text));
    return take();
  }
  std::string finish(const Generation::Event& done) override {
    const ToolCallStream::Rest rest = held_.finish();
    ev_.piece("message", rest.content);
    ev_.close();
    for (const auto& c : rest.answer.calls) ev_.call(c);
    const json r = response_object(rq_->id, rq_->created, model_, rq_->params, ev_.items, &done);
    rq_->keep(r);
    ev_.emit({{"type", r["status"] == "incomplete" ? "response.incomplete" : "response.completed"}, {"response", r}});
    return take();
  }
  std::string failure(const std::string& error) override {
    json r = response_object(rq_->id, rq_->created, model_, rq_->params, ev_.items, nullptr, /*failed=*/true);
    r["error"] = {{"code", "server_error"}, {"message", "generation failed: " + error}};
    ev_.emit({{"type", "response.failed"}, {"response", std::move(r)}});
    return take();
  }

 private:
  std::string take() { return std::exchange(ev_.out, std::string()); }
  std::shared_ptr<const Request> rq_;
  std::string model_;
  ToolCallStream held_;
  EventStream ev_;
};

void create(ModelHost& host, const std::shared_ptr<ResponseStore>& store, const httplib::Request& req,
            httplib::Response& res) {
  auto rq = std::make_shared<Request>();
  rq->params = responses_parse(parse_json_object(req));
  rq->store = store;
  std::vector<MessageParam>& messages = rq->params.gen.messages;
  const auto input = messages.begin() + static_cast<std::ptrdiff_t>(rq->params.n_instructions);
  if (!rq->params.previous_response_id.empty()) {
    // The stored conversation goes between the (new) instructions and the
    // new input; the previous response's instructions are not carried over.
    const std::optional<ResponseStore::Entry> earlier = store->get(rq->params.previous_response_id);
    if (!earlier) throw HttpError(404, "not_found", "'previous_response_id': " + not_stored(rq->params.previous_response_id));
    const size_t n_earlier = earlier->conversation.size();
    messages.insert(input, earlier->conversation.begin(), earlier->conversation.end());
    // A function_call_output answers a call made in an earlier response: its name comes from there.
    params_detail::CallNames calls;
    for (const auto& e : earlier->conversation) {
      for (const auto& c : e.tool_calls) calls.emplace_back(c.id, c.name);
    }
    for (size_t i = rq->params.n_instructions + n_earlier; i < messages.size(); ++i) {
      MessageParam& m = messages[i];
      if (m.role == "tool" && m.name.empty()) m.name = params_detail::call_name(calls, m.tool_call_id);
    }
  }
  rq->conversation.assign(messages.begin() + static_cast<std::ptrdiff_t>(rq->params.n_instructions), messages.end());
  auto g = std::make_shared<Generation>(host.get(rq->params.gen.model, "chat"), rq->params.gen);
  if (rq->params.gen.stream) reply_event_stream(res, g, std::make_shared<ResponsesWriter>(*g, rq));
  else reply_whole(g, *rq, res);
}

}  // namespace

std::vector<Route> responses_routes(ModelHost& host) {
  auto store = std::make_shared<ResponseStore>();
  return {
      {"POST", "/v1/responses",
       [&host, store](const httplib::Request& req, httplib::Response& res) { create(host, store, req, res); }},
      {"GET", R"(/v1/responses/([^/]+))",
       [store](const httplib::Request& req, httplib::Response& res) {
         const std::optional<ResponseStore::Entry> e = store->get(req.matches[1]);
         if (!e) throw HttpError(404, "not_found", not_stored(req.matches[1]));
         reply_json(res, 200, e->response);
       }},
      {"DELETE", R"(/v1/responses/([^/]+))",
       [store](const httplib::Request& req, httplib::Response& res) {
         const std::string id = req.matches[1];
         if (!store->erase(id)) throw HttpError(404, "not_found", not_stored(id));
         reply_json(res, 200, {{"id", id}, {"object", "response"}, {"deleted", true}});
       }},
  };
}

}  // namespace tars::node
