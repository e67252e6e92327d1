#pragma once
// A Jinja subset interpreter for chat templates.
//
// Chat templates (`tokenizer.chat_template` in GGUF, from the model's
// tokenizer_config.json) are Jinja programs that Hugging Face renders with
// jinja2 in an immutable sandbox with trim_blocks and lstrip_blocks. This
// renders the same subset the real templates use (Llama 3.x, Qwen2.5,
// Phi-3.5, Gemma 2, SmolLM3, Mistral/Ministral, ...): if/elif/else, for
// (loop.*), set (namespace() included), macros, break/continue, filters,
// tests, Python string and dict methods, slicing, raise_exception() and
// strftime_now(). Semantics follow jinja2's default Undefined: a missing
// variable or key prints as "", is false, and iterates as empty, but using
// an attribute of it or adding to it is an error.
//
// Templates come from model files, i.e. untrusted input: parsing bounds the
// nesting depth, and rendering bounds the work (steps), the output, every
// intermediate string and list, and macro recursion (JinjaLimits). Whatever
// the source, parse and render either succeed or throw tars::Error.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "engine/jinja_value.h"

namespace tars::engine {

struct JinjaProgram;

// Bounds on one render. Defaults fit chat templates on long conversations
// with a wide margin; exceeding one throws tars::Error(kTooLarge).
struct JinjaLimits {
  size_t max_output_bytes = size_t{16} << 20;  // the rendered text
  size_t max_value_bytes = size_t{16} << 20;   // any one string built while rendering
  size_t max_list_items = size_t{1} << 20;     // any one list built while rendering (range(), * ...)
  uint64_t max_steps = 20'000'000;             // JinjaBudget units: nodes, iterations, bytes/16, elements
  int max_call_depth = 32;                     // nested macro calls
};

struct JinjaOptions {
  JinjaLimits limits;
  // The time strftime_now() formats (seconds since the epoch, local time
  // zone); < 0: the current time. Tests fix it.
  int64_t now_unix = -1;
};

// What raise_exception("...") in a template throws: the template refused its
// input (e.g. Gemma's "System role not supported"). Code kInvalidArgument,
// message "<template's message>".
class JinjaException : public Error {
 public:
  explicit JinjaException(const std::string& message) : Error(ErrorCode::kInvalidArgument, message) {}
};

class JinjaTemplate {
 public:
  // Parses `source`. Throws tars::Error(kUnsupported) with "line N: ..." for
  // a syntax error or a construct this subset lacks ({% include %}, ...).
  explicit JinjaTemplate(std::string_view source);
  ~JinjaTemplate();
  JinjaTemplate(JinjaTemplate&&) noexcept;
  JinjaTemplate& operator=(JinjaTemplate&&) noexcept;

  // Renders with the variables in `context` (name -> value). Const and
  // thread-safe: every render has its own state. Throws
  // JinjaException for raise_exception(), tars::Error(kUnsupported) with
  // "line N: ..." for an unknown filter/test/method/function or a type error
  // (such as adding a string to a number), kTooLarge for a limit.
  std::string render(const JinjaDict& context, const JinjaOptions& options = {}) const;

 private:
  std::unique_ptr<JinjaProgram> program_;
};

}  // namespace tars::engine
