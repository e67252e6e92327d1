#include "node/request_params.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <set>

#include "common/error.h"
#include "engine/chat_template.h"
#include "node/json_int.h"
#include "node/request_params_detail.h"

namespace tars::node {
namespace params_detail {

using json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "'" + field + "' " + what);
}

// Structured output: the schema compiled, or a 400 naming the field and the
// place in the schema (engine/json_schema.h says what a schema may use).
std::shared_ptr<const engine::JsonSchema> schema_of(const json& schema, const std::string& field) {
  if (!schema.is_object() && !schema.is_boolean()) {
    bad(field, std::string("must be a JSON schema (an object), got ") + schema.type_name());
  }
  try {
    return engine::JsonSchema::parse(schema.dump());
  } catch (const Error& e) {
    bad(field, std::string("cannot be used: ") + e.what());
  }
}

// A value checked on its own, named `label` in errors ("options.top_k").
double number_value(const json& v, const std::string& label, double lo, double hi) {
  if (!v.is_number()) bad(label, std::string("must be a number, got ") + v.type_name());
  double d = v.get<double>();
  if (!(d >= lo && d <= hi)) {
    bad(label, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + v.dump());
  }
  return d;
}

int64_t integer_value(const json& v, const std::string& label, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) bad(label, std::string("must be an integer, got ") + v.dump());
  int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) {
    bad(label, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + v.dump());
  }
  return i;
}

bool boolean_value(const json& v, const std::string& label) {
  if (!v.is_boolean()) bad(label, std::string("must be true or false, got ") + v.dump());
  return v.get<bool>();
}

double number(const json& body, const char* field, double lo, double hi) {
  return number_value(body.at(field), field, lo, hi);
}

int64_t integer(const json& body, const char* field, int64_t lo, int64_t hi) {
  return integer_value(body.at(field), field, lo, hi);
}

bool boolean(const json& body, const char* field) { return boolean_value(body.at(field), field); }

// What every body is checked for first: a JSON object of `known` keys only
// ("model" among them), whose "model", when present, is a string. Returns it
// ("" when absent: the node's default model of the role).
std::string known_keys_and_model(const json& body, const std::set<std::string>& known) {
  if (!body.is_object()) {
    throw Error(ErrorCode::kInvalidArgument, std::string("the body must be a JSON object, got ") + body.type_name());
  }
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (!known.count(it.key())) bad(it.key(), "is not a known parameter");
  }
  if (!body.contains("model")) return "";
  if (!body["model"].is_string()) bad("model", "must be a string");
  return body["model"].get<std::string>();
}

// A token id as a request gives it: an integer from 0 to INT32_MAX (the
// model's vocabulary is the handler's to check).
std::optional<int32_t> token_id(const json& v) {
  const auto id = json_int_in(v, 0, INT32_MAX);
  if (!id) return std::nullopt;
  return static_cast<int32_t>(*id);
}

// OpenAI message content: a string, or an array of {"type": "text", "text"} parts.
std::string message_content(const json& m, size_t index) {
  std::string field = "messages[" + std::to_string(index) + "].content";
  if (!m.contains("content") || m["content"].is_null()) return "";
  const json& c = m["content"];
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string text;
    for (const auto& part : c) {
      const bool text_part = part.is_object() && part.contains("type") && part["type"] == "text" &&
                             part.contains("text") && part["text"].is_string();
      if (!text_part) {
        bad(field, "parts must be {\"type\": \"text\", \"text\": \"...\"} (only text is supported)");
      }
      text += part["text"].get<std::string>();
    }
    return text;
  }
  bad(field, std::string("must be a string or an array of text parts, got ") + c.type_name());
}

// --- tools ---

// A function name as OpenAI allows it: 1 to 64 of [a-zA-Z0-9_-].
bool function_name_ok(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// "tools": [{"type": "function", "function": {"name", "description"?,
// "parameters"? (an object), "strict"?}}], at most kMaxTools, names unique.
json parse_tools(const json& body) {
  if (!body.contains("tools") || body["tools"].is_null()) return json::array();
  return check_tools(body["tools"]);
}

json check_tools(const json& ts) {
  json tools = json::array();
  if (!ts.is_array()) bad("tools", std::string("must be an array, got ") + ts.type_name());
  if (ts.size() > kMaxTools) bad("tools", "has more than " + std::to_string(kMaxTools) + " tools");
  std::set<std::string> names;
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string f = "tools[" + std::to_string(i) + "]";
    const json& t = ts[i];
    if (!t.is_object() || !t.contains("type") || t["type"] != "function") bad(f, "must be {\"type\": \"function\", \"function\": {...}}");
    if (!t.contains("function") || !t["function"].is_object()) bad(f + ".function", "must be an object");
    const json& fn = t["function"];
    if (!fn.contains("name") || !fn["name"].is_string() || !function_name_ok(fn["name"].get<std::string>())) {
      bad(f + ".function.name", "must be 1 to 64 letters, digits, '_' or '-'");
    }
    if (!names.insert(fn["name"].get<std::string>()).second) bad(f + ".function.name", "is given twice");
    if (fn.contains("description") && !fn["description"].is_string() && !fn["description"].is_null()) {
      bad(f + ".function.description", "must be a string");
    }
    if (fn.contains("parameters") && !fn["parameters"].is_object() && !fn["parameters"].is_null()) {
      bad(f + ".function.parameters", "must be a JSON schema object");
    }
    tools.push_back(t);
  }
  return tools;
}

// One call of an assistant message: OpenAI's {"id", "type": "function",
// "function": {"name", "arguments": "<JSON text>"}} or Ollama's
// {"function": {"name", "arguments": {...}}}.
ToolCallParam parse_tool_call(const json& c, const std::string& f, bool arguments_as_text) {
  if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) {
    bad(f, "must be {\"function\": {\"name\", \"arguments\"}}");
  }
  ToolCallParam out;
  if (c.contains("id") && !c["id"].is_null()) {
    if (!c["id"].is_string()) bad(f + ".id", "must be a string");
    out.id = c["id"].get<std::string>();
  }
  const json& fn = c["function"];
  if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get_ref<const std::string&>().empty()) {
    bad(f + ".function.name", "must be a non-empty string");
  }
  out.name = fn["name"].get<std::string>();
  out.arguments = json::object();
  if (fn.contains("arguments") && !fn["arguments"].is_null()) {
    const json& a = fn["arguments"];
    if (a.is_string()) {
      // OpenAI: JSON text of an object (templates need the object itself).
      json parsed = json::parse(a.get<std::string>(), nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded() || !parsed.is_object()) bad(f + ".function.arguments", "must be the JSON text of an object");
      out.arguments = std::move(parsed);
    } else if (a.is_object() && !arguments_as_text) {
      out.arguments = a;
    } else {
      bad(f + ".function.arguments", arguments_as_text ? "must be the JSON text of an object" : "must be an object");
    }
  }
  return out;
}

// The calls of an assistant message, and what a tool message names.
void parse_tool_fields(const json& m, const std::string& f, MessageParam& out, bool openai) {
  if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
    const json& calls = m["tool_calls"];
    if (!calls.is_array()) bad(f + ".tool_calls", "must be an array");
    if (!calls.empty() && out.role != "assistant") bad(f + ".tool_calls", "belong to assistant messages");
    if (calls.size() > kMaxTools) bad(f + ".tool_calls", "has more than " + std::to_string(kMaxTools) + " calls");
    for (size_t j = 0; j < calls.size(); ++j) {
      out.tool_calls.push_back(parse_tool_call(calls[j], f + ".tool_calls[" + std::to_string(j) + "]", openai));
    }
  }
  for (const char* k : {"tool_call_id", openai ? "name" : "tool_name"}) {
    if (!m.contains(k) || m[k].is_null()) continue;
    if (!m[k].is_string()) bad(f + "." + k, "must be a string");
    if (out.role != "tool") continue;  // a user's "name" (OpenAI) is not shown to templates
    (std::string(k) == "tool_call_id" ? out.tool_call_id : out.name) = m[k].get<std::string>();
  }
}

// A message's thoughts ("reasoning_content" on OpenAI's API, "thinking" on
// Ollama's): a string, on assistant messages only.
std::string reasoning_field(const json& m, const std::string& f, const char* key, const std::string& role) {
  if (!m.contains(key) || m[key].is_null()) return "";
  if (!m[key].is_string()) bad(f + "." + key, std::string("must be a string, got ") + m[key].type_name());
  if (role != "assistant") bad(f + "." + key, "belongs to assistant messages");
  return m[key].get<std::string>();
}

// --- embeddings ---

[[noreturn]] void bad_embedding(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); }

void parse_inputs(const json& body, const char* field, EmbeddingParams& out) {
  if (!body.contains(field)) bad_embedding(std::string("'") + field + "' is required");
  const json& in = body[field];
  auto token_list = [&](const json& arr, size_t index) {
    std::vector<int32_t> ids;
    for (const auto& t : arr) {
      const auto id = token_id(t);
      if (!id) {
        bad_embedding(std::string("'") + field + "'[" + std::to_string(index) +
                      "] must hold token ids (non-negative integers)");
      }
      ids.push_back(*id);
    }
    if (ids.empty()) bad_embedding(std::string("'") + field + "'[" + std::to_string(index) + "] is empty");
    return ids;
  };
  if (in.is_string()) {
    out.texts.push_back(in.get<std::string>());
  } else if (in.is_array()) {
    if (in.empty()) bad_embedding(std::string("'") + field + "' is an empty list");
    if (in.size() > kMaxEmbeddingInputs) {
      bad_embedding(std::string("'") + field + "' has " + std::to_string(in.size()) + " inputs; at most " +
                    std::to_string(kMaxEmbeddingInputs) + " per request");
    }
    if (in[0].is_number_integer()) {  // one input given as token ids
      out.tokens.push_back(token_list(in, 0));
    } else {
      for (size_t i = 0; i < in.size(); ++i) {
        const json& x = in[i];
        if (x.is_string() && out.tokens.empty()) {
          out.texts.push_back(x.get<std::string>());
        } else if (x.is_array() && out.texts.empty()) {
          out.tokens.push_back(token_list(x, i));
        } else {
          bad_embedding(std::string("'") + field + "'[" + std::to_string(i) + "] must be a string" +
                        (out.texts.empty() ? " or an array of token ids" : "") + ", got " + x.type_name());
        }
      }
    }
  } else {
    bad_embedding(std::string("'") + field + "' must be a string or an array of strings, got " + in.type_name());
  }
  for (size_t i = 0; i < out.texts.size(); ++i) {
    if (out.texts[i].empty()) bad_embedding(std::string("'") + field + "'[" + std::to_string(i) + "] is an empty string");
  }
}

bool opt_bool(const json& body, const char* field, bool dflt) {
  if (!body.contains(field)) return dflt;
  if (!body[field].is_boolean()) bad_embedding(std::string("'") + field + "' must be true or false");
  return body[field].get<bool>();
}

std::string call_name(const CallNames& calls, const std::string& id) {
  for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
    if (it->first == id) return it->second;
  }
  return "";
}

// OpenAI's logit_bias: {"token id": bias}, ids as strings, biases from -100 to 100.
void logit_bias_object(const json& lb, engine::SamplerOptions& s) {
  if (!lb.is_object()) bad("logit_bias", std::string("must be an object of token ids to biases, got ") + lb.type_name());
  if (lb.size() > 1024) bad("logit_bias", "has more than 1024 tokens");
  for (auto it = lb.begin(); it != lb.end(); ++it) {
    const std::string& key = it.key();
    int64_t id = -1;
    if (!key.empty() && key.size() <= 10 && key.find_first_not_of("0123456789") == std::string::npos) {
      id = std::stoll(key);
    }
    if (id < 0 || id > INT32_MAX) bad("logit_bias", "keys must be token ids (non-negative integers), got \"" + key + "\"");
    const json& v = it.value();
    if (!v.is_number() || !(v.get<double>() >= -100 && v.get<double>() <= 100)) {
      bad("logit_bias", "biases must be numbers from -100 to 100, got " + v.dump() + " for token " + key);
    }
    s.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(v.get<double>()));
  }
}

// "stop": a string or up to 16 strings (an empty one stops nothing).
std::vector<std::string> stop_strings(const json& body) {
  std::vector<std::string> out;
  if (!body.contains("stop") || body["stop"].is_null()) return out;
  const json& st = body["stop"];
  if (st.is_string()) {
    out.push_back(st.get<std::string>());
  } else if (st.is_array()) {
    if (st.size() > 16) bad("stop", "has more than 16 strings");
    for (const auto& x : st) {
      if (!x.is_string()) bad("stop", "must be a string or an array of strings");
      out.push_back(x.get<std::string>());
    }
  } else {
    bad("stop", "must be a string or an array of strings");
  }
  return out;
}

}  // namespace params_detail

using namespace params_detail;

GenerationParams generation_parse(const json& body, bool chat) {
  GenerationParams p;
  p.chat = chat;
  static const std::set<std::string> known = {
      "model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature",
      "top_p", "top_k", "min_p", "stop", "seed", "presence_penalty", "frequency_penalty",
      "repeat_penalty", "repeat_last_n", "stream", "stream_options", "logprobs", "top_logprobs",
      "n", "user", "ignore_eos", "cache_prompt", "echo", "best_of", "suffix", "logit_bias", "response_format",
      "tools", "tool_choice", "parallel_tool_calls", "service_tier", "store", "metadata", "reasoning_format",
      "chat_template_kwargs"};
  p.model = known_keys_and_model(body, known);
  if (chat) {
    if (!body.contains("messages")) bad("messages", "is required");
    const json& ms = body["messages"];
    if (!ms.is_array() || ms.empty()) bad("messages", "must be a non-empty array");
    for (size_t i = 0; i < ms.size(); ++i) {
      const json& m = ms[i];
      std::string f = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) bad(f, "must be an object with role and content");
      if (!m.contains("role") || !m["role"].is_string()) bad(f + ".role", "must be a string");
      std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant" && role != "developer" &&
          role != "tool") {
        bad(f + ".role", "must be system, user, assistant, developer or tool, got \"" + role + "\"");
      }
      MessageParam msg;
      msg.role = role == "developer" ? "system" : role;
      msg.content = message_content(m, i);
      parse_tool_fields(m, f, msg, /*openai=*/true);
      msg.reasoning_content = reasoning_field(m, f, "reasoning_content", role);
      p.messages.push_back(std::move(msg));
    }
  } else {
    if (!body.contains("prompt")) bad("prompt", "is required");
    const json& pr = body["prompt"];
    // OpenAI's prompt: a string, token ids, or a list of either (one here).
    const json& one = pr.is_array() && pr.size() == 1 && (pr[0].is_string() || pr[0].is_array()) ? pr[0] : pr;
    if (one.is_string()) {
      p.prompt = one.get<std::string>();
    } else if (one.is_array() && !one.empty() && std::all_of(one.begin(), one.end(), [](const json& x) {
                 return x.is_number_integer();
               })) {
      for (size_t i = 0; i < one.size(); ++i) {
        const auto id = token_id(one[i]);
        if (!id) bad("prompt", "holds " + one[i].dump() + ", which is not a token id (a non-negative integer)");
        p.prompt_parts.push_back({*id, ""});
      }
    } else {
      bad("prompt", "must be a string or token ids (one prompt per request)");
    }
  }
  for (const char* f : {"max_tokens", "max_completion_tokens"}) {
    if (body.contains(f) && !body[f].is_null()) p.max_tokens = static_cast<int>(integer(body, f, 1, 1 << 24));
  }
  auto& s = p.sampling;
  if (body.contains("temperature")) s.temperature = static_cast<float>(number(body, "temperature", 0, 2));
  if (body.contains("top_p")) s.top_p = static_cast<float>(number(body, "top_p", 0, 1));
  if (body.contains("top_k")) s.top_k = static_cast<int>(integer(body, "top_k", 0, 1 << 20));
  if (body.contains("min_p")) s.min_p = static_cast<float>(number(body, "min_p", 0, 1));
  if (body.contains("presence_penalty")) s.presence_penalty = static_cast<float>(number(body, "presence_penalty", -2, 2));
  if (body.contains("frequency_penalty")) s.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", -2, 2));
  if (body.contains("repeat_penalty")) s.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 0, 10));
  if (body.contains("repeat_last_n")) s.penalty_last_n = static_cast<int>(integer(body, "repeat_last_n", -1, 1 << 20));
  if (body.contains("seed") && !body["seed"].is_null()) {
    int64_t seed = integer(body, "seed", INT64_MIN, INT64_MAX);
    s.seed = static_cast<uint64_t>(seed);
    if (s.seed == engine::kSeedRandom) s.seed = 0;  // -1 as a seed would mean random
  }
  p.stop = stop_strings(body);
  if (body.contains("stream")) p.stream = boolean(body, "stream");
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& so = body["stream_options"];
    if (!so.is_object()) bad("stream_options", "must be an object");
    if (so.contains("include_usage")) p.include_usage = boolean(so, "include_usage");
  }
  if (body.contains("n") && integer(body, "n", 1, 1) != 1) bad("n", "must be 1");
  if (chat) {
    if (body.contains("logprobs") && !body["logprobs"].is_null()) p.logprobs = boolean(body, "logprobs");
    if (body.contains("top_logprobs") && !body["top_logprobs"].is_null()) {
      p.top_logprobs = static_cast<int>(integer(body, "top_logprobs", 0, 20));
      if (!p.logprobs && p.top_logprobs > 0) bad("top_logprobs", "needs \"logprobs\": true");
    }
  } else if (body.contains("logprobs") && !body["logprobs"].is_null()) {
    // Completions: logprobs is the number of alternatives (0..5 in OpenAI; 20 here).
    p.top_logprobs = static_cast<int>(integer(body, "logprobs", 0, 20));
    p.logprobs = true;
  }
  if (body.contains("ignore_eos")) p.ignore_eos = boolean(body, "ignore_eos");
  if (body.contains("cache_prompt")) p.cache_prompt = boolean(body, "cache_prompt");
  if (body.contains("logit_bias") && !body["logit_bias"].is_null()) logit_bias_object(body["logit_bias"], p.sampling);
  // Accepted by OpenAI, not done here: refused rather than ignored.
  if (body.contains("echo") && boolean(body, "echo")) bad("echo", "is not supported");
  if (body.contains("best_of") && !body["best_of"].is_null() && integer(body, "best_of", 1, 1) != 1) {
    bad("best_of", "must be 1");
  }
  if (body.contains("suffix") && !body["suffix"].is_null()) {
    // Fill in the middle: the prompt is the text before, the suffix after.
    const json& sf = body["suffix"];
    if (!sf.is_string()) bad("suffix", std::string("must be a string, got ") + sf.type_name());
    if (chat) bad("suffix", "applies to completions (/v1/completions)");
    p.suffix = sf.get<std::string>();
  }
  // (Filling in the middle may have nothing before the gap.)
  if (!chat && p.prompt.empty() && p.prompt_parts.empty() && p.suffix.empty()) bad("prompt", "must not be empty");
  if (!p.prompt_parts.empty() && !p.suffix.empty()) bad("suffix", "needs a text prompt (the text before the gap)");
  if (body.contains("response_format") && !body["response_format"].is_null()) {
    const json& rf = body["response_format"];
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string()) {
      bad("response_format", "must be an object with a \"type\"");
    }
    const std::string type = rf["type"].get<std::string>();
    if (type == "json_object") {
      p.json_object = true;  // JSON mode (engine/json_prefix.h)
    } else if (type == "json_schema") {
      // OpenAI's {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}.
      if (!rf.contains("json_schema") || !rf["json_schema"].is_object()) {
        bad("response_format.json_schema", "is required with type \"json_schema\" (an object with \"name\" and \"schema\")");
      }
      const json& js = rf["json_schema"];
      if (!js.contains("name") || !js["name"].is_string() || js["name"].get_ref<const std::string&>().empty()) {
        bad("response_format.json_schema.name", "is required (a string)");
      }
      if (js.contains("strict") && !js["strict"].is_null() && !js["strict"].is_boolean()) {
        bad("response_format.json_schema.strict", std::string("must be a boolean, got ") + js["strict"].type_name());
      }
      p.json_schema = schema_of(js.contains("schema") && !js["schema"].is_null() ? js["schema"] : json::object(),
                                "response_format.json_schema.schema");
    } else if (type != "text") {
      bad("response_format", "type \"" + type + "\" is not supported (only \"text\", \"json_object\" and \"json_schema\")");
    }
  }
  if ((p.json_object || p.json_schema) && p.ignore_eos) {
    bad("ignore_eos", "cannot be used with JSON mode or a JSON schema (generation ends with the value)");
  }
  p.tools = parse_tools(body);
  if (!p.tools.empty() && !chat) bad("tools", "need a chat (/v1/chat/completions)");
  if (body.contains("tool_choice") && !body["tool_choice"].is_null()) {
    const json& tc = body["tool_choice"];
    const std::string expected = "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                                 "\"function\": {\"name\": ...}}, got " + tc.dump();
    if (tc.is_object()) {
      // {"type": "function", "function": {"name": "f"}}: that function is called.
      if (!tc.contains("type") || tc["type"] != "function" || !tc.contains("function") || !tc["function"].is_object() ||
          !tc["function"].contains("name") || !tc["function"]["name"].is_string()) {
        bad("tool_choice", expected);
      }
      p.forced_tool = tc["function"]["name"].get<std::string>();
      const bool known = std::any_of(p.tools.begin(), p.tools.end(),
                                     [&](const json& t) { return t["function"]["name"] == p.forced_tool; });
      if (!known) bad("tool_choice", "names \"" + p.forced_tool + "\", which is not among the tools");
    } else if (!tc.is_string() || (tc != "none" && tc != "auto" && tc != "required")) {
      bad("tool_choice", expected);
    } else if (tc == "required") {
      if (p.tools.empty()) bad("tool_choice", "\"required\" needs tools");
      p.forced_tool.assign(1, '*');  // (not = "*": GCC 12 warns of a false -Wrestrict overlap)
    }
    if (tc == "none") p.tools = json::array();  // the model is not told of them
  }
  if (body.contains("parallel_tool_calls") && !body["parallel_tool_calls"].is_null()) {
    boolean(body, "parallel_tool_calls");
  }
  if (!p.tools.empty() && (p.json_object || p.json_schema)) bad("tools", "cannot be used with JSON mode or a JSON schema");
  if (body.contains("reasoning_format") && !body["reasoning_format"].is_null()) {
    // llama-server's: "none" leaves thoughts in the content; "auto" and
    // "deepseek" give them as reasoning_content (tars's default).
    const json& rf = body["reasoning_format"];
    if (!chat) bad("reasoning_format", "applies to chats (/v1/chat/completions)");
    if (rf != "none" && rf != "auto" && rf != "deepseek") {
      bad("reasoning_format", "must be \"none\", \"auto\" or \"deepseek\", got " + rf.dump());
    }
    p.split_reasoning = rf != "none";
  }
  if (body.contains("chat_template_kwargs") && !body["chat_template_kwargs"].is_null()) {
    const json& kw = body["chat_template_kwargs"];
    if (!chat) bad("chat_template_kwargs", "apply to chats (/v1/chat/completions)");
    if (!kw.is_object()) bad("chat_template_kwargs", std::string("must be an object, got ") + kw.type_name());
    for (auto it = kw.begin(); it != kw.end(); ++it) {
      if (engine::chat_template_reserved_variable(it.key())) {
        bad("chat_template_kwargs." + it.key(), "is set by the server");
      }
    }
    p.template_variables = kw;
  }
  return p;
}

EmbeddingParams embedding_parse(const json& body, EmbeddingApi api) {
  static const std::set<std::string> openai = {"model", "input", "encoding_format", "dimensions",
                                               "user", "truncate", "normalize"};
  static const std::set<std::string> seed = {"model", "input", "texts", "normalize", "truncate"};
  static const std::set<std::string> llama = {"model", "content", "input", "embd_normalize", "truncate"};
  EmbeddingParams p;
  p.model = known_keys_and_model(body, api == EmbeddingApi::kOpenAI ? openai : api == EmbeddingApi::kSeed ? seed : llama);
  const char* field = api == EmbeddingApi::kSeed && body.contains("texts")     ? "texts"
                      : api == EmbeddingApi::kLlama && !body.contains("input") ? "content"
                                                                                : "input";
  parse_inputs(body, field, p);
  if (api == EmbeddingApi::kLlama) {
    p.truncate = opt_bool(body, "truncate", true);
    p.normalize = false;  // the handler applies p_norm
    if (body.contains("embd_normalize") && !body["embd_normalize"].is_null()) {
      p.p_norm = static_cast<int>(integer(body, "embd_normalize", -1, 1000));
    }
    return p;
  }
  if (api == EmbeddingApi::kOpenAI) {
    if (body.contains("encoding_format")) {
      if (!body["encoding_format"].is_string()) bad_embedding("'encoding_format' must be \"float\" or \"base64\"");
      const std::string format = body["encoding_format"].get<std::string>();
      if (format != "float" && format != "base64") {
        bad_embedding("'encoding_format' must be \"float\" or \"base64\", got \"" + format + "\"");
      }
      p.base64 = format == "base64";
    }
    if (body.contains("dimensions") && !body["dimensions"].is_null()) {
      const json& d = body["dimensions"];
      if (!d.is_number_integer()) bad_embedding(std::string("'dimensions' must be an integer, got ") + d.type_name());
      p.dimensions = d.is_number_unsigned() && d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                         ? INT64_MAX
                         : d.get<int64_t>();
    }
  }
  p.truncate = opt_bool(body, "truncate", true);
  p.normalize = opt_bool(body, "normalize", true);
  return p;
}

TokenizeParams tokenize_parse(const json& body) {
  TokenizeParams p;
  static const std::set<std::string> known = {"model", "content", "add_special", "parse_special", "with_pieces"};
  p.model = known_keys_and_model(body, known);
  if (!body.contains("content")) bad("content", "is required");
  if (!body["content"].is_string()) bad("content", std::string("must be a string, got ") + body["content"].type_name());
  p.content = body["content"].get<std::string>();
  if (body.contains("add_special")) p.add_special = boolean(body, "add_special");
  if (body.contains("parse_special")) p.parse_special = boolean(body, "parse_special");
  if (body.contains("with_pieces")) p.with_pieces = boolean(body, "with_pieces");
  return p;
}

DetokenizeParams detokenize_parse(const json& body) {
  DetokenizeParams p;
  static const std::set<std::string> known = {"model", "tokens"};
  p.model = known_keys_and_model(body, known);
  if (!body.contains("tokens")) bad("tokens", "is required");
  const json& t = body["tokens"];
  if (!t.is_array()) bad("tokens", std::string("must be an array of token ids, got ") + t.type_name());
  for (size_t i = 0; i < t.size(); ++i) {
    const auto id = token_id(t[i]);
    if (!id) bad("tokens[" + std::to_string(i) + "]", "must be a token id (a non-negative integer), got " + t[i].dump());
    p.tokens.push_back(*id);
  }
  return p;
}

RerankParams rerank_parse(const json& body, RerankApi api) {
  static const std::set<std::string> jina = {"model", "query", "documents", "top_n", "return_documents", "truncate"};
  static const std::set<std::string> tei = {"model", "query", "texts", "raw_scores", "return_text", "truncate",
                                            "truncation_direction"};
  RerankParams p;
  p.model = known_keys_and_model(body, api == RerankApi::kJina ? jina : tei);
  if (!body.contains("query")) bad("query", "is required");
  if (!body["query"].is_string()) bad("query", std::string("must be a string, got ") + body["query"].type_name());
  p.query = body["query"].get<std::string>();
  const char* field = api == RerankApi::kJina ? "documents" : "texts";
  if (!body.contains(field)) bad(field, "is required");
  const json& docs = body[field];
  if (!docs.is_array()) bad(field, std::string("must be an array of strings, got ") + docs.type_name());
  if (docs.empty()) bad(field, "is an empty list");
  if (docs.size() > kMaxRerankDocuments) {
    bad(field, "has " + std::to_string(docs.size()) + " documents; at most " + std::to_string(kMaxRerankDocuments) +
                   " per request");
  }
  for (size_t i = 0; i < docs.size(); ++i) {
    const json& d = docs[i];
    const std::string at = std::string(field) + "[" + std::to_string(i) + "]";
    if (d.is_string()) {
      p.documents.push_back(d.get<std::string>());
    } else if (api == RerankApi::kJina && d.is_object() && d.size() == 1 && d.contains("text") && d["text"].is_string()) {
      p.documents.push_back(d["text"].get<std::string>());  // Cohere's and Jina's {"text": ...}
    } else {
      bad(at, api == RerankApi::kJina ? "must be a string or {\"text\": string}, got " + d.dump()
                                      : "must be a string, got " + d.dump());
    }
  }
  if (api == RerankApi::kJina) {
    if (body.contains("top_n") && !body["top_n"].is_null()) {
      p.top_n = integer(body, "top_n", 0, INT64_MAX);
    }
    if (body.contains("return_documents") && !body["return_documents"].is_null()) {
      p.return_documents = boolean(body, "return_documents");
    }
    if (body.contains("truncate")) p.truncate = boolean(body, "truncate");
  } else {
    if (body.contains("raw_scores")) p.raw_scores = boolean(body, "raw_scores");
    else p.raw_scores = false;
    if (body.contains("return_text")) p.return_documents = boolean(body, "return_text");
    p.truncate = body.contains("truncate") && !body["truncate"].is_null() ? boolean(body, "truncate") : false;
    if (body.contains("truncation_direction") && !body["truncation_direction"].is_null()) {
      const json& dir = body["truncation_direction"];
      if (!dir.is_string() || (dir != "Right" && dir != "right")) {
        bad("truncation_direction", "must be \"Right\" (pairs are cut longest first, from the end), got " + dir.dump());
      }
    }
  }
  return p;
}

// --- Ollama ---

namespace {

// Milliseconds of a Go duration ("1h30m", "2.5s", "300ms", "-1m"), or of a
// plain number of seconds; nullopt when it is neither.
std::optional<double> duration_ms(const std::string& text) {
  size_t i = 0;
  double sign = 1;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) sign = text[i++] == '-' ? -1 : 1;
  auto number = [&](double& out) {
    const size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == start || text.compare(start, i - start, ".") == 0) return false;
    try {
      size_t used = 0;
      out = std::stod(text.substr(start, i - start), &used);
      return used == i - start;
    } catch (const std::exception&) {
      return false;
    }
  };
  double value = 0;
  if (!number(value)) return std::nullopt;
  if (i == text.size()) return sign * value * 1000;  // plain seconds
  // Go's units; "ms" before "m" and "s".
  static const std::pair<const char*, double> units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3},
                                                         {"\xce\xbcs", 1e-3}, {"ms", 1}, {"s", 1000},
                                                         {"m", 60'000}, {"h", 3'600'000}};
  double total = 0;
  for (;;) {
    bool matched = false;
    for (const auto& [name, ms] : units) {
      const size_t n = std::strlen(name);
      if (text.compare(i, n, name) == 0) {
        total += value * ms;
        i += n;
        matched = true;
        break;
      }
    }
    if (!matched) return std::nullopt;
    if (i == text.size()) return sign * total;
    if (!number(value)) return std::nullopt;
  }
}

// Ollama's keep_alive where the endpoint only checks it.
void ollama_keep_alive(const json& body) { (void)ollama_keep_alive_ms(body); }

// A field that names a feature tars lacks: absent, null or empty is fine.
void ollama_unsupported(const json& body, const char* field, const std::string& why) {
  if (!body.contains(field)) return;
  const json& v = body[field];
  if (v.is_null() || (v.is_string() && v.get_ref<const std::string&>().empty()) || (v.is_array() && v.empty()) ||
      (v.is_boolean() && !v.get<bool>())) {
    return;
  }
  bad(field, why);
}

void ollama_options(const json& body, GenerationParams& p) {
  if (!body.contains("options") || body["options"].is_null()) return;
  const json& o = body["options"];
  if (!o.is_object()) bad("options", std::string("must be an object, got ") + o.type_name());
  // How a model is loaded: the node's configuration (and the cluster's plan)
  // decides; checked for type only.
  static const std::set<std::string> load_time_ints = {"num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread"};
  static const std::set<std::string> load_time_bools = {"use_mmap", "use_mlock", "numa", "low_vram", "f16_kv",
                                                        "vocab_only", "penalize_newline"};
  auto& s = p.sampling;
  for (auto it = o.begin(); it != o.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    const std::string label = "options." + key;
    if (key == "num_keep") {
      // The prompt's first tokens kept when its start is cut (-1: Ollama's default).
      const int64_t keep = integer_value(v, label, -1, INT32_MAX);
      if (keep >= 0) p.prompt_keep = static_cast<int>(keep);
    } else if (load_time_ints.count(key)) {
      integer_value(v, label, -1, INT32_MAX);
    } else if (load_time_bools.count(key)) {
      boolean_value(v, label);
    } else if (key == "temperature") {
      s.temperature = static_cast<float>(number_value(v, label, 0, 100));
    } else if (key == "top_k") {
      s.top_k = static_cast<int>(integer_value(v, label, 0, 1 << 20));
    } else if (key == "top_p") {
      s.top_p = static_cast<float>(number_value(v, label, 0, 1));
    } else if (key == "min_p") {
      s.min_p = static_cast<float>(number_value(v, label, 0, 1));
    } else if (key == "repeat_penalty") {
      s.repeat_penalty = static_cast<float>(number_value(v, label, 0, 10));
    } else if (key == "repeat_last_n") {
      s.penalty_last_n = static_cast<int>(integer_value(v, label, -1, 1 << 20));
    } else if (key == "presence_penalty") {
      s.presence_penalty = static_cast<float>(number_value(v, label, -2, 2));
    } else if (key == "frequency_penalty") {
      s.frequency_penalty = static_cast<float>(number_value(v, label, -2, 2));
    } else if (key == "seed") {
      const int64_t seed = integer_value(v, label, INT64_MIN, INT64_MAX);
      s.seed = static_cast<uint64_t>(seed);
      if (s.seed == engine::kSeedRandom) s.seed = 0;  // a chosen seed is never "random"
    } else if (key == "num_predict") {
      // -1: no limit, -2: until the context is full (the same here).
      const int64_t n = integer_value(v, label, -2, 1 << 24);
      if (n == 0) bad(label, "must be -1, -2 or at least 1");
      p.max_tokens = n < 0 ? -1 : static_cast<int>(n);
    } else if (key == "stop") {
      if (!v.is_array() && !v.is_string()) bad(label, "must be an array of strings");
      const json arr = v.is_string() ? json::array({v}) : v;
      if (arr.size() > 16) bad(label, "has more than 16 strings");
      for (const auto& x : arr) {
        if (!x.is_string()) bad(label, "must be an array of strings");
        p.stop.push_back(x.get<std::string>());
      }
    } else if (key == "typical_p" || key == "tfs_z") {
      if (number_value(v, label, 0, 1e9) != 1.0) bad(label, "is not supported (only 1, which turns it off)");
    } else if (key == "mirostat") {
      if (integer_value(v, label, 0, 2) != 0) bad(label, "is not supported (only 0, which turns it off)");
    } else if (key == "mirostat_eta" || key == "mirostat_tau") {
      number_value(v, label, -1e9, 1e9);  // meaningless without mirostat
    } else {
      bad(label, "is not a known option");
    }
  }
}

// An Ollama message: {role, content, images, tool_calls, thinking, tool_name}.
MessageParam ollama_message(const json& m, size_t i) {
  const std::string f = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) bad(f, "must be an object with role and content");
  static const std::set<std::string> known = {"role", "content", "images", "tool_calls", "thinking", "tool_name",
                                              "tool_call_id"};
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!known.count(it.key())) bad(f + "." + it.key(), "is not a known field");
  }
  if (!m.contains("role") || !m["role"].is_string()) bad(f + ".role", "must be a string");
  const std::string role = m["role"].get<std::string>();
  if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
    bad(f + ".role", "must be system, user, assistant or tool, got \"" + role + "\"");
  }
  std::string content;
  if (m.contains("content") && !m["content"].is_null()) {
    if (!m["content"].is_string()) bad(f + ".content", std::string("must be a string, got ") + m["content"].type_name());
    content = m["content"].get<std::string>();
  }
  if (m.contains("images") && !m["images"].is_null() && !(m["images"].is_array() && m["images"].empty())) {
    bad(f + ".images", "are not supported (tars serves text models)");
  }
  MessageParam msg;
  msg.role = role;
  msg.content = std::move(content);
  parse_tool_fields(m, f, msg, /*openai=*/false);
  msg.reasoning_content = reasoning_field(m, f, "thinking", role);
  return msg;
}

}  // namespace

std::optional<int64_t> ollama_keep_alive_ms(const json& body) {
  if (!body.contains("keep_alive") || body["keep_alive"].is_null()) return std::nullopt;
  const json& k = body["keep_alive"];
  double ms = 0;
  if (k.is_number()) {
    ms = k.get<double>() * 1000;
  } else if (k.is_string()) {
    const std::optional<double> parsed = duration_ms(k.get_ref<const std::string&>());
    if (!parsed) bad("keep_alive", "must be a duration such as \"5m\", \"1h30m\" or \"0\", or seconds, got " + k.dump());
    ms = *parsed;
  } else {
    bad("keep_alive", std::string("must be a duration or a number of seconds, got ") + k.type_name());
  }
  if (!std::isfinite(ms)) bad("keep_alive", "must be finite");
  if (ms < 0) return kKeepAliveForever;
  return static_cast<int64_t>(std::min(ms, 1e15));
}

OllamaGenerationParams ollama_generation_parse(const json& body, OllamaEndpoint endpoint) {
  const bool chat = endpoint == OllamaEndpoint::kChat;
  static const std::set<std::string> chat_keys = {"model", "messages", "tools", "format", "options", "stream",
                                                  "keep_alive", "think", "logprobs", "top_logprobs"};
  static const std::set<std::string> generate_keys = {"model", "prompt", "suffix", "system", "template", "context",
                                                      "stream", "raw", "format", "images", "options",
                                                      "keep_alive", "think", "logprobs", "top_logprobs"};
  OllamaGenerationParams out;
  GenerationParams& p = out.gen;
  p.model = known_keys_and_model(body, chat ? chat_keys : generate_keys);
  if (p.model.empty()) bad("model", "is required");
  // Ollama's sampling defaults.
  p.sampling.top_p = 0.9f;
  p.sampling.min_p = 0.0f;
  p.sampling.repeat_penalty = 1.1f;
  p.stream = true;
  p.truncate_history = true;  // Ollama drops the oldest messages of a chat that does not fit
  if (body.contains("stream") && !body["stream"].is_null()) p.stream = boolean(body, "stream");
  out.keep_alive_ms = ollama_keep_alive_ms(body);
  if (body.contains("format") && !body["format"].is_null()) {
    const json& f = body["format"];
    if (f == "json") {
      p.json_object = true;  // JSON mode (engine/json_prefix.h)
    } else if (f.is_object()) {
      p.json_schema = schema_of(f, "format");  // structured output (engine/json_schema.h)
    } else if (!(f.is_string() && f.get_ref<const std::string&>().empty())) {
      bad("format", "must be \"json\" or a JSON schema, got " + f.dump());
    }
  }
  if (body.contains("think") && !body["think"].is_null()) {
    // true / false: the template's enable_thinking (SmolLM3, Qwen3); true
    // also needs a model that reasons. Levels ("high", ...) are gpt-oss's.
    if (!body["think"].is_boolean()) {
      bad("think", "must be true or false (thinking levels are for gpt-oss models), got " + body["think"].dump());
    }
    const bool think = body["think"].get<bool>();
    p.template_variables["enable_thinking"] = think;
    p.require_reasoning = think;
  }
  ollama_unsupported(body, "logprobs", "are not supported on this API (use /v1/chat/completions)");
  if (body.contains("top_logprobs") && !body["top_logprobs"].is_null() && integer(body, "top_logprobs", 0, 20) != 0) {
    bad("top_logprobs", "are not supported on this API (use /v1/chat/completions)");
  }
  ollama_options(body, p);
  if (chat) {
    p.tools = parse_tools(body);
    if (!p.tools.empty() && (p.json_object || p.json_schema)) bad("tools", "cannot be used with JSON mode (format)");
    p.chat = true;
    if (body.contains("messages") && !body["messages"].is_null()) {
      const json& ms = body["messages"];
      if (!ms.is_array()) bad("messages", std::string("must be an array, got ") + ms.type_name());
      for (size_t i = 0; i < ms.size(); ++i) p.messages.push_back(ollama_message(ms[i], i));
    }
    out.load_only = p.messages.empty();
    return out;
  }
  ollama_unsupported(body, "images", "are not supported (tars serves text models)");
  ollama_unsupported(body, "template", "is not supported (the model's own chat template is used; or send raw)");
  ollama_unsupported(body, "context", "is not supported (send the conversation to /api/chat instead)");
  auto text = [&](const char* field) {
    if (!body.contains(field) || body[field].is_null()) return std::string();
    if (!body[field].is_string()) bad(field, std::string("must be a string, got ") + body[field].type_name());
    return body[field].get<std::string>();
  };
  const std::string prompt = text("prompt"), system = text("system");
  p.suffix = text("suffix");  // fill in the middle (Ollama's insert)
  const bool raw = body.contains("raw") && !body["raw"].is_null() && boolean(body, "raw");
  if (raw && !system.empty()) bad("system", "cannot be used with \"raw\": true (the prompt is sent as it is)");
  out.load_only = prompt.empty() && system.empty() && p.suffix.empty();
  if (!p.suffix.empty()) {
    // The prompt is the text before the gap, the suffix the text after it,
    // put between the model's fill-in-the-middle markers (no chat template).
    if (raw) bad("suffix", "cannot be used with \"raw\": true");
    if (!system.empty()) bad("system", "cannot be used with \"suffix\" (filling in the middle has no system prompt)");
    if (p.require_reasoning || !p.template_variables.empty()) bad("think", "cannot be used with \"suffix\"");
    p.chat = false;
    p.prompt = prompt;
    return out;
  }
  if (raw) {
    if (p.require_reasoning || !p.template_variables.empty()) {
      bad("think", "cannot be used with \"raw\": true (no chat template is applied)");
    }
    p.chat = false;
    p.prompt = prompt;
    p.templated_prompt = true;
  } else {
    // The prompt as the user's turn of the model's chat template, as Ollama does.
    p.chat = true;
    if (!system.empty()) p.messages.push_back({"system", system, {}, "", "", ""});
    p.messages.push_back({"user", prompt, {}, "", "", ""});
  }
  return out;
}

EmbeddingParams ollama_embed_parse(const json& body, bool legacy) {
  static const std::set<std::string> embed_keys = {"model", "input", "truncate", "options", "keep_alive",
                                                   "dimensions"};
  static const std::set<std::string> legacy_keys = {"model", "prompt", "options", "keep_alive"};
  EmbeddingParams p;
  p.model = known_keys_and_model(body, legacy ? legacy_keys : embed_keys);
  if (p.model.empty()) bad("model", "is required");
  ollama_keep_alive(body);
  if (body.contains("options") && !body["options"].is_null()) {
    GenerationParams ignored;  // sampling means nothing here; load-time options are checked the same way
    ollama_options(body, ignored);
  }
  if (legacy) {
    p.normalize = false;
    if (!body.contains("prompt") || body["prompt"].is_null()) return p;  // empty embedding
    if (!body["prompt"].is_string()) bad("prompt", std::string("must be a string, got ") + body["prompt"].type_name());
    std::string text = body["prompt"].get<std::string>();
    if (!text.empty()) p.texts.push_back(std::move(text));
    return p;
  }
  parse_inputs(body, "input", p);
  if (body.contains("truncate") && !body["truncate"].is_null()) p.truncate = boolean(body, "truncate");
  if (body.contains("dimensions") && !body["dimensions"].is_null()) {
    p.dimensions = integer(body, "dimensions", 1, INT32_MAX);
  }
  return p;
}

std::string ollama_show_parse(const json& body) {
  static const std::set<std::string> known = {"model", "name", "verbose", "system", "template", "options"};
  std::string model = known_keys_and_model(body, known);
  if (model.empty() && body.contains("name")) {
    if (!body["name"].is_string()) bad("name", "must be a string");
    model = body["name"].get<std::string>();
  }
  if (model.empty()) bad("model", "is required");
  if (body.contains("verbose") && !body["verbose"].is_null()) boolean(body, "verbose");
  return model;
}

}  // namespace tars::node
