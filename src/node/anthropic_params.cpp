// Anthropic's Messages API request bodies (request_params.h).
#include <algorithm>
#include <set>

#include "common/error.h"
#include "engine/sampler.h"
#include "node/request_params.h"
#include "node/request_params_detail.h"

namespace tars::node {

using namespace params_detail;

namespace {

// A block's string field, required.
std::string text_field(const json& b, const std::string& f, const char* key) {
  if (!b.contains(key) || !b[key].is_string()) bad(f + "." + key, "must be a string");
  return b[key].get<std::string>();
}

// Content that may only be text: a string, or text blocks (joined by blank
// lines; tool results' content and the system prompt).
std::string text_content(const json& c, const std::string& f) {
  if (c.is_null()) return "";
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad(f, std::string("must be a string or an array of text blocks, got ") + c.type_name());
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) {
    const std::string fb = f + "[" + std::to_string(i) + "]";
    if (!c[i].is_object() || !c[i].contains("type") || c[i]["type"] != "text") {
      bad(fb, "must be a text block ({\"type\": \"text\", \"text\"})");
    }
    if (!out.empty()) out += "\n\n";
    out += text_field(c[i], fb, "text");
  }
  return out;
}

void parse_message(const json& m, size_t index, CallNames& names, std::vector<MessageParam>& out) {
  const std::string f = "messages[" + std::to_string(index) + "]";
  if (!m.is_object()) bad(f, "must be an object with role and content");
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (it.key() != "role" && it.key() != "content") bad(f + "." + it.key(), "is not a known field");
  }
  if (!m.contains("role") || !m["role"].is_string()) bad(f + ".role", "must be \"user\" or \"assistant\"");
  const std::string role = m["role"].get<std::string>();
  if (role != "user" && role != "assistant") bad(f + ".role", "must be \"user\" or \"assistant\", got \"" + role + "\"");
  if (!m.contains("content")) bad(f + ".content", "is required");
  const json& c = m["content"];
  MessageParam msg;
  msg.role = role;
  if (c.is_string()) {
    msg.content = c.get<std::string>();
    out.push_back(std::move(msg));
    return;
  }
  if (!c.is_array()) bad(f + ".content", std::string("must be a string or an array of blocks, got ") + c.type_name());
  std::vector<MessageParam> results;  // a user turn's tool results, before its text
  for (size_t i = 0; i < c.size(); ++i) {
    const std::string fb = f + ".content[" + std::to_string(i) + "]";
    const json& b = c[i];
    if (!b.is_object() || !b.contains("type") || !b["type"].is_string()) bad(fb, "must be a block with a \"type\"");
    const std::string type = b["type"].get<std::string>();
    if (type == "text") {
      if (!msg.content.empty()) msg.content += "\n\n";
      msg.content += text_field(b, fb, "text");
    } else if (type == "tool_use") {
      if (role != "assistant") bad(fb, "tool_use blocks belong to assistant turns");
      ToolCallParam call;
      call.id = text_field(b, fb, "id");
      call.name = text_field(b, fb, "name");
      if (call.name.empty()) bad(fb + ".name", "must not be empty");
      if (!b.contains("input") || !b["input"].is_object()) bad(fb + ".input", "must be an object");
      call.arguments = b["input"];
      if (msg.tool_calls.size() >= kMaxTools) bad(f + ".content", "has more than " + std::to_string(kMaxTools) + " tool calls");
      names.emplace_back(call.id, call.name);
      msg.tool_calls.push_back(std::move(call));
    } else if (type == "tool_result") {
      if (role != "user") bad(fb, "tool_result blocks belong to user turns");
      MessageParam r;
      r.role = "tool";
      r.tool_call_id = text_field(b, fb, "tool_use_id");
      r.name = call_name(names, r.tool_call_id);
      if (b.contains("content")) r.content = text_content(b["content"], fb + ".content");
      if (b.contains("is_error") && !b["is_error"].is_null()) {
        if (boolean_value(b["is_error"], fb + ".is_error")) r.content = "Error: " + r.content;
      }
      results.push_back(std::move(r));
    } else if (type == "thinking") {
      if (role != "assistant") bad(fb, "thinking blocks belong to assistant turns");
      if (!msg.reasoning_content.empty()) msg.reasoning_content += "\n\n";
      msg.reasoning_content += text_field(b, fb, "thinking");
    } else if (type == "redacted_thinking") {
      if (role != "assistant") bad(fb, "redacted_thinking blocks belong to assistant turns");
      // Encrypted thoughts of another model: nothing a template can show.
    } else if (type == "image" || type == "document") {
      bad(fb, "is a " + type + " block: tars serves text models (only text, tool_use, tool_result and thinking)");
    } else {
      bad(fb, "has type \"" + type + "\", which is not supported (only text, tool_use, tool_result and thinking)");
    }
  }
  for (auto& r : results) out.push_back(std::move(r));
  if (!msg.content.empty() || !msg.tool_calls.empty() || !msg.reasoning_content.empty() || results.empty()) {
    out.push_back(std::move(msg));
  }
}

// Anthropic's tools to OpenAI's function objects, checked by check_tools.
json anthropic_tools(const json& body) {
  if (!body.contains("tools") || body["tools"].is_null()) return json::array();
  const json& ts = body["tools"];
  if (!ts.is_array()) bad("tools", std::string("must be an array, got ") + ts.type_name());
  json converted = json::array();
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string f = "tools[" + std::to_string(i) + "]";
    const json& t = ts[i];
    if (!t.is_object()) bad(f, "must be an object with name and input_schema");
    if (t.contains("type") && !t["type"].is_null() && t["type"] != "custom") {
      bad(f + ".type", "is " + t["type"].dump() + ": server tools are not supported (only custom tools)");
    }
    for (auto it = t.begin(); it != t.end(); ++it) {
      static const std::set<std::string> known = {"type", "name", "description", "input_schema", "cache_control"};
      if (!known.count(it.key())) bad(f + "." + it.key(), "is not a known field");
    }
    json fn = json::object();
    if (t.contains("name")) fn["name"] = t["name"];
    if (t.contains("description")) fn["description"] = t["description"];
    if (!t.contains("input_schema") || !t["input_schema"].is_object()) bad(f + ".input_schema", "must be a JSON schema object");
    fn["parameters"] = t["input_schema"];
    converted.push_back({{"type", "function"}, {"function", std::move(fn)}});
  }
  return check_tools(converted);
}

}  // namespace

AnthropicParams anthropic_parse(const json& body, bool count_tokens) {
  static const std::set<std::string> messages_keys = {
      "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p", "top_k",
      "tools", "tool_choice", "thinking", "metadata", "service_tier"};
  static const std::set<std::string> count_keys = {"model", "messages", "system", "tools", "tool_choice", "thinking"};
  AnthropicParams out;
  GenerationParams& p = out.gen;
  p.chat = true;
  p.model = known_keys_and_model(body, count_tokens ? count_keys : messages_keys);
  if (p.model.empty()) bad("model", "is required");
  if (!count_tokens) {
    if (!body.contains("max_tokens")) bad("max_tokens", "is required");
    p.max_tokens = static_cast<int>(integer(body, "max_tokens", 1, 1 << 24));
    if (body.contains("stream") && !body["stream"].is_null()) p.stream = boolean(body, "stream");
    if (body.contains("temperature") && !body["temperature"].is_null()) {
      p.sampling.temperature = static_cast<float>(number(body, "temperature", 0, 1));
    }
    if (body.contains("top_p") && !body["top_p"].is_null()) p.sampling.top_p = static_cast<float>(number(body, "top_p", 0, 1));
    if (body.contains("top_k") && !body["top_k"].is_null()) p.sampling.top_k = static_cast<int>(integer(body, "top_k", 0, 1 << 20));
    if (body.contains("stop_sequences") && !body["stop_sequences"].is_null()) {
      const json& st = body["stop_sequences"];
      if (!st.is_array()) bad("stop_sequences", "must be an array of strings");
      if (st.size() > 16) bad("stop_sequences", "has more than 16 strings");
      for (const json& x : st) {
        if (!x.is_string() || x.get_ref<const std::string&>().empty()) bad("stop_sequences", "must be non-empty strings");
        p.stop.push_back(x.get<std::string>());
      }
    }
    if (body.contains("metadata") && !body["metadata"].is_null() && !body["metadata"].is_object()) {
      bad("metadata", "must be an object");
    }
    if (body.contains("service_tier") && !body["service_tier"].is_null() && !body["service_tier"].is_string()) {
      bad("service_tier", "must be a string");
    }
  }
  if (body.contains("system") && !body["system"].is_null()) {
    const std::string system = text_content(body["system"], "system");
    if (!system.empty()) p.messages.push_back({"system", system, {}, "", "", ""});
  }
  if (!body.contains("messages")) bad("messages", "is required");
  const json& ms = body["messages"];
  if (!ms.is_array()) bad("messages", std::string("must be an array, got ") + ms.type_name());
  if (ms.empty()) bad("messages", "must have at least one message");
  CallNames names;  // the tool_use ids of earlier assistant turns, for tool results' names
  for (size_t i = 0; i < ms.size(); ++i) parse_message(ms[i], i, names, p.messages);
  if (ms.back()["role"] == "assistant") {  // (parse_message checked it is a string)
    bad("messages", "end with an assistant turn: continuing a prefilled answer is not supported");
  }
  p.tools = anthropic_tools(body);
  if (body.contains("tool_choice") && !body["tool_choice"].is_null()) {
    const json& tc = body["tool_choice"];
    if (!tc.is_object() || !tc.contains("type") || !tc["type"].is_string()) {
      bad("tool_choice", "must be {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}");
    }
    for (auto it = tc.begin(); it != tc.end(); ++it) {
      if (it.key() != "type" && it.key() != "name" && it.key() != "disable_parallel_tool_use") {
        bad("tool_choice." + it.key(), "is not a known field");
      }
    }
    if (tc.contains("disable_parallel_tool_use") && !tc["disable_parallel_tool_use"].is_null()) {
      boolean_value(tc["disable_parallel_tool_use"], "tool_choice.disable_parallel_tool_use");
    }
    const std::string type = tc["type"].get<std::string>();
    if (type == "any") {
      if (p.tools.empty()) bad("tool_choice", "\"any\" needs tools");
      p.forced_tool.assign(1, '*');
    } else if (type == "tool") {
      if (!tc.contains("name") || !tc["name"].is_string()) bad("tool_choice.name", "is required with type \"tool\"");
      p.forced_tool = tc["name"].get<std::string>();
      const bool known = std::any_of(p.tools.begin(), p.tools.end(),
                                     [&](const json& t) { return t["function"]["name"] == p.forced_tool; });
      if (!known) bad("tool_choice.name", "names \"" + p.forced_tool + "\", which is not among the tools");
    } else if (type == "none") {
      p.tools = json::array();  // the model is not told of them
    } else if (type != "auto") {
      bad("tool_choice.type", "must be \"auto\", \"any\", \"tool\" or \"none\", got \"" + type + "\"");
    }
  }
  if (body.contains("thinking") && !body["thinking"].is_null()) {
    const json& th = body["thinking"];
    if (!th.is_object() || !th.contains("type") || !th["type"].is_string()) {
      bad("thinking", "must be {\"type\": \"enabled\", \"budget_tokens\": n} or {\"type\": \"disabled\"}");
    }
    const std::string type = th["type"].get<std::string>();
    if (type != "enabled" && type != "disabled" && type != "adaptive") {
      bad("thinking.type", "must be \"enabled\", \"adaptive\" or \"disabled\", got \"" + type + "\"");
    }
    if (th.contains("budget_tokens") && !th["budget_tokens"].is_null()) {
      integer_value(th["budget_tokens"], "thinking.budget_tokens", 1, 1 << 24);
    }
    out.thinking = type != "disabled";
    // The template's switch (SmolLM3, Qwen3); the model must be one that reasons.
    p.template_variables["enable_thinking"] = out.thinking;
    p.require_reasoning = out.thinking;
  }
  return out;
}

}  // namespace tars::node
