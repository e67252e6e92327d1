#pragma once
// Tool calls in a model's answer: which way the model's family writes them
// (from its chat template), splitting a finished answer into content and
// calls, and, while streaming, how much of the answer so far is surely
// content. Pure functions of text, tested and fuzzed on their own.
//
// Three ways of writing calls are understood:
//   - Hermes / Qwen2.5 (and the default for a template that shows tools):
//     <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>, one block
//     per call, text before them is content;
//   - Llama 3.1 / 3.2: the whole answer is {"name": "f", "parameters": {...}};
//   - Mistral: after the control token [TOOL_CALLS], either a list
//     [{"name": "f", "arguments": {...}}, ...] (Mistral 7B v0.3, Mistral
//     Nemo) or f[ARGS]{...} with [TOOL_CALLS] before each call (Ministral 3,
//     Mistral Small 3.2; [ARGS] a control token too). Control tokens never
//     reach the text, so the node writes these two into the answer's text
//     as they come (Generation), where the parser finds them.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace tars::node {

enum class ToolCallFormat { kNone, kHermes, kLlama3, kMistral };

// Mistral's markers, as the node writes them into the text.
inline constexpr std::string_view kMistralToolCalls = "[TOOL_CALLS]";
inline constexpr std::string_view kMistralArgs = "[ARGS]";

// The format of the family whose chat template this is.
ToolCallFormat tool_call_format(std::string_view template_text);

struct ParsedToolCall {
  std::string name;
  nlohmann::ordered_json arguments;  // an object, keys as the model wrote them
};

struct ParsedAnswer {
  std::string content;  // the text outside the calls, trimmed
  std::vector<ParsedToolCall> calls;
  // With calls: where the first begins, and the text after the last (as
  // written), for a stream that has sent part of the content already.
  size_t first_call = 0;
  std::string after_calls;
};

// A finished answer as content and calls to the declared `tools` (OpenAI's
// tool objects). When a call does not parse or names a function that was not
// declared, nothing is taken for a call: the whole answer is content.
ParsedAnswer parse_tool_calls(std::string_view text, ToolCallFormat format, const nlohmann::ordered_json& tools);

// A forced call (tool_choice "required", or one function named): the JSON
// schema of the call's object in the family's own shape ({"name",
// "arguments"}, or Llama 3's {"name", "parameters"}) over the declared tools
// (only the one named `only`, when not empty), each with its parameters (their
// "$ref"s moved to where the parameters are put), and the text around the
// object. Generation keeps the answer exactly that (engine/json_schema.h), so
// it is one call that parse_tool_calls reads back.
struct ForcedCall {
  std::string schema;  // JSON text
  std::string before, after;
};
ForcedCall forced_call(ToolCallFormat format, const nlohmann::ordered_json& tools, const std::string& only);

// While streaming: the length of the prefix of `text` that is content
// whatever comes next (from where a call may begin, the text is held back
// until the answer is finished).
size_t tool_call_content_prefix(std::string_view text, ToolCallFormat format);

// A streamed answer, for the endpoints that stream it (OpenAI's events,
// Ollama's lines): the text that is surely content as it comes, and at the
// end what was held back, split into content and calls.
class ToolCallStream {
 public:
  ToolCallStream(ToolCallFormat format, nlohmann::ordered_json tools)
      : format_(format), tools_(std::move(tools)) {}
  // Adds a token's text; returns what is content now ("" while a call may be
  // beginning). With ToolCallFormat::kNone, the piece itself.
  std::string push(std::string_view piece);
  // At the end: the content that was held back (around the calls, blanks at
  // its end cut when there are calls), and the calls; both empty when
  // nothing was held back.
  struct Rest {
    std::string content;
    ParsedAnswer answer;
  };
  Rest finish() const;

 private:
  ToolCallFormat format_;
  nlohmann::ordered_json tools_;
  std::string text_;  // the answer so far
  size_t sent_ = 0;   // bytes of it given out as content
};

}  // namespace tars::node
