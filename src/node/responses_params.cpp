// OpenAI's Responses API request bodies (request_params.h).
#include <algorithm>
#include <set>

#include "common/error.h"
#include "node/request_params.h"
#include "node/request_params_detail.h"

namespace tars::node {

using namespace params_detail;

namespace {

// The text of a message's content: a string, or parts of the given types
// (input_text for user / system turns, output_text for the assistant's).
std::string content_text(const json& c, const std::string& f, const std::string& role) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad(f, std::string("must be a string or an array of parts, got ") + c.type_name());
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) {
    const std::string fp = f + "[" + std::to_string(i) + "]";
    const json& part = c[i];
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) bad(fp, "must be a part with a \"type\"");
    const std::string type = part["type"].get<std::string>();
    if (type == "input_text" || type == "output_text" || type == "text") {
      if (!part.contains("text") || !part["text"].is_string()) bad(fp + ".text", "must be a string");
      out += part["text"].get<std::string>();
    } else if (type == "refusal" && role == "assistant") {
      if (!part.contains("refusal") || !part["refusal"].is_string()) bad(fp + ".refusal", "must be a string");
      out += part["refusal"].get<std::string>();
    } else if (type == "input_image" || type == "input_file" || type == "input_audio") {
      bad(fp, "is an " + type + " part: tars serves text models (only input_text and output_text)");
    } else {
      bad(fp, "has type \"" + type + "\", which is not supported (only input_text and output_text)");
    }
  }
  return out;
}

std::string string_field(const json& item, const std::string& f, const char* key) {
  if (!item.contains(key) || !item[key].is_string()) bad(f + "." + key, "must be a string");
  return item[key].get<std::string>();
}

// The input items as chat messages.
void parse_items(const json& input, std::vector<MessageParam>& out) {
  CallNames calls;  // call_id -> name, for tool messages
  std::string thoughts;  // a reasoning item's text, for the next assistant turn
  // The assistant turn the next call or text belongs to (the last message, when it is one).
  auto assistant = [&]() -> MessageParam& {
    if (out.empty() || out.back().role != "assistant" || !thoughts.empty()) {
      MessageParam m;
      m.role = "assistant";
      out.push_back(std::move(m));
    }
    if (!thoughts.empty()) out.back().reasoning_content = std::move(thoughts);
    thoughts.clear();
    return out.back();
  };
  for (size_t i = 0; i < input.size(); ++i) {
    const std::string f = "input[" + std::to_string(i) + "]";
    const json& item = input[i];
    if (!item.is_object()) bad(f, std::string("must be an object, got ") + item.type_name());
    std::string type = "message";
    if (item.contains("type") && !item["type"].is_null()) {
      if (!item["type"].is_string()) bad(f + ".type", "must be a string");
      type = item["type"].get<std::string>();
    }
    if (type == "message") {
      const std::string role = string_field(item, f, "role");
      if (role != "user" && role != "system" && role != "developer" && role != "assistant") {
        bad(f + ".role", "must be user, system, developer or assistant, got \"" + role + "\"");
      }
      if (!item.contains("content")) bad(f + ".content", "is required");
      const std::string text = content_text(item["content"], f + ".content", role);
      if (role == "assistant") {
        MessageParam& m = assistant();
        m.content += text;
      } else {
        out.push_back({role == "developer" ? "system" : role, text, {}, "", "", ""});
      }
    } else if (type == "function_call") {
      ToolCallParam c;
      c.id = string_field(item, f, "call_id");
      c.name = string_field(item, f, "name");
      if (c.name.empty()) bad(f + ".name", "must not be empty");
      json args = json::parse(string_field(item, f, "arguments"), nullptr, /*allow_exceptions=*/false);
      if (args.is_discarded() || !args.is_object()) bad(f + ".arguments", "must be the JSON text of an object");
      c.arguments = std::move(args);
      MessageParam& m = assistant();
      if (m.tool_calls.size() >= kMaxTools) bad(f, "is one call more than " + std::to_string(kMaxTools) + " in a turn");
      calls.emplace_back(c.id, c.name);
      m.tool_calls.push_back(std::move(c));
    } else if (type == "function_call_output") {
      MessageParam m;
      m.role = "tool";
      m.tool_call_id = string_field(item, f, "call_id");
      m.name = call_name(calls, m.tool_call_id);
      if (!item.contains("output")) bad(f + ".output", "is required");
      m.content = content_text(item["output"], f + ".output", "tool");
      out.push_back(std::move(m));
    } else if (type == "reasoning") {
      if (item.contains("content") && !item["content"].is_null()) {
        const json& c = item["content"];
        if (!c.is_array()) bad(f + ".content", "must be an array of reasoning_text parts");
        for (size_t j = 0; j < c.size(); ++j) {
          const std::string fp = f + ".content[" + std::to_string(j) + "]";
          if (!c[j].is_object() || !c[j].contains("type") || c[j]["type"] != "reasoning_text") {
            bad(fp, "must be a reasoning_text part");
          }
          thoughts += string_field(c[j], fp, "text");
        }
      }
    } else if (type == "item_reference") {
      bad(f, "is an item_reference, which tars does not resolve: send the items themselves, or previous_response_id");
    } else {
      bad(f + ".type", "\"" + type + "\" is not supported (message, function_call, function_call_output, reasoning)");
    }
  }
}

}  // namespace

ResponsesParams responses_parse(const json& body) {
  static const std::set<std::string> known = {
      "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "stream", "tools",
      "tool_choice", "parallel_tool_calls", "text", "reasoning", "store", "metadata", "user", "truncation",
      "include", "previous_response_id", "background", "service_tier", "prompt_cache_key", "safety_identifier",
      "max_tool_calls", "stream_options"};
  ResponsesParams out;
  GenerationParams& p = out.gen;
  p.chat = true;
  p.model = known_keys_and_model(body, known);
  if (p.model.empty()) bad("model", "is required");
  json& echo = out.echo;
  echo = json::object();
  if (body.contains("previous_response_id") && !body["previous_response_id"].is_null()) {
    if (!body["previous_response_id"].is_string()) bad("previous_response_id", "must be a string");
    out.previous_response_id = body["previous_response_id"].get<std::string>();
    if (out.previous_response_id.empty()) bad("previous_response_id", "must not be empty");
  }
  if (body.contains("background") && !body["background"].is_null() && boolean(body, "background")) {
    bad("background", "is not supported: a response is answered while the request waits");
  }
  if (body.contains("store") && !body["store"].is_null()) out.store = boolean(body, "store");
  if (body.contains("parallel_tool_calls") && !body["parallel_tool_calls"].is_null()) boolean(body, "parallel_tool_calls");
  for (const char* k : {"user", "service_tier", "prompt_cache_key", "safety_identifier"}) {
    if (body.contains(k) && !body[k].is_null() && !body[k].is_string()) bad(k, "must be a string");
  }
  if (body.contains("metadata") && !body["metadata"].is_null() && !body["metadata"].is_object()) bad("metadata", "must be an object");
  if (body.contains("include") && !body["include"].is_null() && !body["include"].is_array()) bad("include", "must be an array");
  if (body.contains("max_tool_calls") && !body["max_tool_calls"].is_null()) integer(body, "max_tool_calls", 1, INT32_MAX);
  if (body.contains("truncation") && !body["truncation"].is_null()) {
    const json& t = body["truncation"];
    if (t != "disabled" && t != "auto") bad("truncation", "must be \"disabled\" or \"auto\", got " + t.dump());
    p.truncate_history = t == "auto";  // the oldest items go when the conversation does not fit
  }
  if (body.contains("stream") && !body["stream"].is_null()) p.stream = boolean(body, "stream");
  if (body.contains("max_output_tokens") && !body["max_output_tokens"].is_null()) {
    p.max_tokens = static_cast<int>(integer(body, "max_output_tokens", 1, 1 << 24));
    echo["max_output_tokens"] = p.max_tokens;
  }
  if (body.contains("temperature") && !body["temperature"].is_null()) {
    p.sampling.temperature = static_cast<float>(number(body, "temperature", 0, 2));
  }
  if (body.contains("top_p") && !body["top_p"].is_null()) p.sampling.top_p = static_cast<float>(number(body, "top_p", 0, 1));
  echo["temperature"] = p.sampling.temperature;
  echo["top_p"] = p.sampling.top_p;
  if (body.contains("instructions") && !body["instructions"].is_null()) {
    if (!body["instructions"].is_string()) bad("instructions", "must be a string");
    echo["instructions"] = body["instructions"];
    if (!body["instructions"].get_ref<const std::string&>().empty()) {
      p.messages.push_back({"system", body["instructions"].get<std::string>(), {}, "", "", ""});
      out.n_instructions = 1;
    }
  }
  if (!body.contains("input") || body["input"].is_null()) bad("input", "is required");
  const json& input = body["input"];
  if (input.is_string()) {
    p.messages.push_back({"user", input.get<std::string>(), {}, "", "", ""});
  } else if (input.is_array()) {
    if (input.empty()) bad("input", "must have at least one item");
    parse_items(input, p.messages);
  } else {
    bad("input", std::string("must be a string or an array of items, got ") + input.type_name());
  }
  if (p.messages.empty() || p.messages.back().role == "assistant") {
    bad("input", "must end with something to answer (a user message or a function call's output)");
  }
  // Tools: {"type": "function", "name", "description", "parameters", "strict"} as OpenAI's chat tools.
  if (body.contains("tools") && !body["tools"].is_null()) {
    const json& ts = body["tools"];
    if (!ts.is_array()) bad("tools", std::string("must be an array, got ") + ts.type_name());
    json converted = json::array();
    for (size_t i = 0; i < ts.size(); ++i) {
      const std::string f = "tools[" + std::to_string(i) + "]";
      const json& t = ts[i];
      if (!t.is_object() || !t.contains("type") || !t["type"].is_string()) bad(f, "must be a tool with a \"type\"");
      if (t["type"] != "function") {
        bad(f + ".type", "is " + t["type"].dump() + ": built-in tools are not supported (only function tools)");
      }
      json fn = json::object();
      for (const char* k : {"name", "description", "parameters"}) {
        if (t.contains(k)) fn[k] = t[k];
      }
      if (t.contains("strict") && !t["strict"].is_null() && !t["strict"].is_boolean()) bad(f + ".strict", "must be a boolean");
      converted.push_back({{"type", "function"}, {"function", std::move(fn)}});
    }
    p.tools = check_tools(converted);
    echo["tools"] = ts;
  }
  echo["tool_choice"] = "auto";
  if (body.contains("tool_choice") && !body["tool_choice"].is_null()) {
    const json& tc = body["tool_choice"];
    echo["tool_choice"] = tc;
    if (tc.is_object()) {
      if (!tc.contains("type") || tc["type"] != "function" || !tc.contains("name") || !tc["name"].is_string()) {
        bad("tool_choice", "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"name\"}, got " + tc.dump());
      }
      p.forced_tool = tc["name"].get<std::string>();
      const bool known_tool = std::any_of(p.tools.begin(), p.tools.end(),
                                          [&](const json& t) { return t["function"]["name"] == p.forced_tool; });
      if (!known_tool) bad("tool_choice", "names \"" + p.forced_tool + "\", which is not among the tools");
    } else if (tc == "required") {
      if (p.tools.empty()) bad("tool_choice", "\"required\" needs tools");
      p.forced_tool.assign(1, '*');
    } else if (tc == "none") {
      p.tools = json::array();
    } else if (tc != "auto") {
      bad("tool_choice", "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"name\"}, got " + tc.dump());
    }
  }
  echo["text"] = {{"format", {{"type", "text"}}}};
  if (body.contains("text") && !body["text"].is_null()) {
    const json& text = body["text"];
    if (!text.is_object()) bad("text", "must be an object");
    for (auto it = text.begin(); it != text.end(); ++it) {
      if (it.key() != "format" && it.key() != "verbosity") bad("text." + it.key(), "is not a known field");
    }
    if (text.contains("format") && !text["format"].is_null()) {
      const json& fm = text["format"];
      if (!fm.is_object() || !fm.contains("type") || !fm["type"].is_string()) bad("text.format", "must be an object with a \"type\"");
      const std::string type = fm["type"].get<std::string>();
      if (type == "json_object") {
        p.json_object = true;
      } else if (type == "json_schema") {
        if (!fm.contains("name") || !fm["name"].is_string()) bad("text.format.name", "is required (a string)");
        p.json_schema = schema_of(fm.contains("schema") && !fm["schema"].is_null() ? fm["schema"] : json::object(),
                                  "text.format.schema");
      } else if (type != "text") {
        bad("text.format.type", "must be \"text\", \"json_object\" or \"json_schema\", got \"" + type + "\"");
      }
      echo["text"] = text;
    }
  }
  if (!p.tools.empty() && (p.json_object || p.json_schema)) bad("tools", "cannot be used with a JSON text format");
  if (body.contains("reasoning") && !body["reasoning"].is_null()) {
    const json& r = body["reasoning"];
    if (!r.is_object()) bad("reasoning", "must be an object");
    if (r.contains("effort") && !r["effort"].is_null()) {
      const json& e = r["effort"];
      if (e != "none" && e != "minimal" && e != "low" && e != "medium" && e != "high" && e != "xhigh") {
        bad("reasoning.effort", "must be none, minimal, low, medium, high or xhigh, got " + e.dump());
      }
      // "none" turns a thinking template's thoughts off (enable_thinking);
      // the other levels are all "think".
      if (e == "none") p.template_variables["enable_thinking"] = false;
    }
    echo["reasoning"] = r;
  }
  return out;
}

}  // namespace tars::node
