#include "node/tool_calls.h"

#include <set>

namespace tars::node {
namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

std::set<std::string> declared(const json& tools) {
  std::set<std::string> names;
  for (const auto& t : tools) {
    if (t.is_object() && t.contains("function") && t["function"].is_object() && t["function"].contains("name") &&
        t["function"]["name"].is_string()) {
      names.insert(t["function"]["name"].get<std::string>());
    }
  }
  return names;
}

// {"name": "f", <args_key>: {...}} (the arguments may also be the JSON text
// of an object, as some models write them) to a call of a declared function.
bool read_call(const json& j, const std::set<std::string>& names, std::initializer_list<const char*> args_keys,
               ParsedToolCall& out) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
  out.name = j["name"].get<std::string>();
  if (!names.count(out.name)) return false;
  out.arguments = json::object();
  for (const char* key : args_keys) {
    if (!j.contains(key)) continue;
    const json& a = j[key];
    if (a.is_object()) {
      out.arguments = a;
    } else if (a.is_string()) {
      json parsed = json::parse(a.get<std::string>(), nullptr, false);
      if (!parsed.is_object()) return false;
      out.arguments = std::move(parsed);
    } else if (!a.is_null()) {
      return false;
    }
    return true;
  }
  return true;  // a function without arguments
}

bool read_call(std::string_view text, const std::set<std::string>& names, std::initializer_list<const char*> args_keys,
               ParsedToolCall& out) {
  return read_call(json::parse(trim(text), nullptr, /*allow_exceptions=*/false), names, args_keys, out);
}

}  // namespace

ToolCallFormat tool_call_format(std::string_view t) {
  if (t.find("<tool_call>") != std::string_view::npos) return ToolCallFormat::kHermes;
  if (t.find(kMistralToolCalls) != std::string_view::npos) return ToolCallFormat::kMistral;
  if (t.find("<|start_header_id|>") != std::string_view::npos && t.find("\"parameters\"") != std::string_view::npos) {
    return ToolCallFormat::kLlama3;
  }
  return ToolCallFormat::kHermes;
}

ParsedAnswer parse_tool_calls(std::string_view text, ToolCallFormat format, const json& tools) {
  ParsedAnswer all_content;
  all_content.content = std::string(trim(text));
  if (format == ToolCallFormat::kNone) return all_content;
  const std::set<std::string> names = declared(tools);
  ParsedAnswer out;
  if (format == ToolCallFormat::kMistral) {
    const size_t first = text.find(kMistralToolCalls);
    if (first == std::string_view::npos) return all_content;
    out.first_call = first;
    out.content = std::string(trim(text.substr(0, first)));
    std::string_view rest = text.substr(first + kMistralToolCalls.size());
    if (!trim(rest).empty() && trim(rest).front() == '[') {
      // [{"name": "f", "arguments": {...}}, ...]
      const json list = json::parse(trim(rest), nullptr, /*allow_exceptions=*/false);
      if (!list.is_array() || list.empty()) return all_content;
      for (const json& item : list) {
        ParsedToolCall c;
        if (!read_call(item, names, {"arguments", "parameters"}, c)) return all_content;
        out.calls.push_back(std::move(c));
      }
      return out;
    }
    // f[ARGS]{...}, each call after its own [TOOL_CALLS].
    for (;;) {
      const size_t next = rest.find(kMistralToolCalls);
      const std::string_view one = rest.substr(0, next);
      const size_t args = one.find(kMistralArgs);
      if (args == std::string_view::npos) return all_content;
      ParsedToolCall c;
      c.name = std::string(trim(one.substr(0, args)));
      if (!names.count(c.name)) return all_content;
      const std::string_view body = trim(one.substr(args + kMistralArgs.size()));
      c.arguments = body.empty() ? json::object() : json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (!c.arguments.is_object()) return all_content;
      out.calls.push_back(std::move(c));
      if (next == std::string_view::npos) break;
      rest = rest.substr(next + kMistralToolCalls.size());
    }
    return out;
  }
  if (format == ToolCallFormat::kLlama3) {
    ParsedToolCall c;
    const std::string_view body = trim(text);
    if (body.empty() || body.front() != '{' || !read_call(body, names, {"parameters", "arguments"}, c)) {
      return all_content;
    }
    out.calls.push_back(std::move(c));
    out.first_call = text.find('{');
    return out;
  }
  std::string content;
  size_t at = 0;
  while (at < text.size()) {
    const size_t open = text.find(kOpen, at);
    if (open == std::string_view::npos) {
      content += text.substr(at);
      break;
    }
    content += text.substr(at, open - at);
    const size_t body = open + kOpen.size();
    size_t close = text.find(kClose, body);
    // A model that stops right after its last call may leave out the tag.
    const size_t end = close == std::string_view::npos ? text.size() : close;
    ParsedToolCall c;
    if (!read_call(text.substr(body, end - body), names, {"arguments", "parameters"}, c)) return all_content;
    if (out.calls.empty()) out.first_call = open;
    out.calls.push_back(std::move(c));
    at = close == std::string_view::npos ? text.size() : close + kClose.size();
    out.after_calls.clear();
    if (text.find(kOpen, at) == std::string_view::npos) out.after_calls = std::string(text.substr(at));
  }
  if (out.calls.empty()) return all_content;
  out.content = std::string(trim(content));
  return out;
}

namespace {

// A "$ref" into a tool's parameters ("#", "#/$defs/x") as one into the place
// they are put in the call's schema.
void move_refs(json& schema, const std::string& to) {
  if (schema.is_object()) {
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      if (it.key() == "$ref" && it.value().is_string()) {
        const std::string ref = it.value().get<std::string>();
        if (!ref.empty() && ref[0] == '#') it.value() = "#" + to + ref.substr(1);
      } else {
        move_refs(it.value(), to);
      }
    }
  } else if (schema.is_array()) {
    for (auto& v : schema) move_refs(v, to);
  }
}

}  // namespace

ForcedCall forced_call(ToolCallFormat format, const json& tools, const std::string& only) {
  const char* args = format == ToolCallFormat::kLlama3 ? "parameters" : "arguments";
  json alternatives = json::array();
  json defs = json::object();
  for (const auto& t : tools) {
    const json& f = t["function"];
    const std::string name = f["name"].get<std::string>();
    if (!only.empty() && name != only) continue;
    const std::string def = "tool" + std::to_string(defs.size());
    json params = f.contains("parameters") && !f["parameters"].is_null()
                      ? f["parameters"]
                      : json{{"type", "object"}, {"additionalProperties", false}};
    move_refs(params, "/$defs/" + def);
    defs[def] = std::move(params);
    json call = {{"type", "object"},
                 {"properties", {{"name", {{"const", name}}}, {args, {{"$ref", "#/$defs/" + def}}}}},
                 {"required", {"name", args}},
                 {"additionalProperties", false}};
    alternatives.push_back(std::move(call));
  }
  ForcedCall out;
  out.schema = json{{"anyOf", std::move(alternatives)}, {"$defs", std::move(defs)}}.dump();
  if (format != ToolCallFormat::kLlama3) {
    out.before = std::string(kOpen) + "\n";
    out.after = "\n";  // (appended, not "\n" + ...: GCC 12 warns of a false -Wrestrict overlap there)
    out.after += kClose;
  }
  return out;
}

size_t tool_call_content_prefix(std::string_view text, ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kNone:
      return text.size();
    case ToolCallFormat::kLlama3: {
      // A call is the whole answer: hold everything until the first
      // character that is not blank and not '{' shows it is text.
      const std::string_view body = trim(text);
      return body.empty() || body.front() == '{' ? 0 : text.size();
    }
    case ToolCallFormat::kHermes:
    case ToolCallFormat::kMistral: {
      const std::string_view tag = format == ToolCallFormat::kHermes ? kOpen : kMistralToolCalls;
      const size_t open = text.find(tag);
      if (open != std::string_view::npos) return open;
      // The end may be the start of the tag.
      for (size_t k = std::min(text.size(), tag.size() - 1); k > 0; --k) {
        if (text.substr(text.size() - k) == tag.substr(0, k)) return text.size() - k;
      }
      return text.size();
    }
  }
  return text.size();
}

std::string ToolCallStream::push(std::string_view piece) {
  text_ += piece;
  const size_t ready = tool_call_content_prefix(text_, format_);
  if (ready <= sent_) return {};
  std::string out = text_.substr(sent_, ready - sent_);
  sent_ = ready;
  return out;
}

ToolCallStream::Rest ToolCallStream::finish() const {
  Rest r;
  if (sent_ >= text_.size()) return r;
  r.answer = parse_tool_calls(text_, format_, tools_);
  if (r.answer.calls.empty()) {
    r.content = text_.substr(sent_);
    return r;
  }
  r.content = (r.answer.first_call > sent_ ? text_.substr(sent_, r.answer.first_call - sent_) : std::string()) +
              r.answer.after_calls;
  while (!r.content.empty() && (r.content.back() == ' ' || r.content.back() == '\n')) r.content.pop_back();
  return r;
}

}  // namespace tars::node
