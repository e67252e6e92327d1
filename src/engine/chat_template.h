#pragma once
// Chat templates: turning a conversation into the prompt text a chat model
// was trained on.
//
// Three sources, in the order a caller normally tries them:
//   1. The model's own Jinja template (GGUF `tokenizer.chat_template`),
//      rendered by the Jinja subset in jinja.h exactly as Hugging Face
//      renders it (variables: messages, add_generation_prompt, bos_token,
//      eos_token, tools = none).
//   2. A named built-in format, for `--chat-template NAME` when the model has
//      no usable template: llama2, mistral, llama3, chatml, phi3, gemma,
//      zephyr, neural-chat (each written from the family's documented
//      format; see chat_template_builtin.cpp).
//   3. No template at all (e.g. stories260K): the plain format
//        "System: ...\nUser: ...\nAssistant: ...\nUser: ...\nAssistant:"
//      one "Role: content" line per message (role capitalised), then
//      "Assistant:" when a generation prompt is asked for. uses_fallback()
//      says so, and the caller should log a warning.
//
// BOS: Jinja templates and the built-in llama2, mistral, llama3 and gemma
// formats write the BOS token text at the start (as the families document);
// the plain format never does. A caller that tokenizes the result should
// parse special tokens and not add a second BOS when the text already starts
// with it.

#include <cstdint>
#include <memory>

#include "engine/jinja_value.h"
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tars::engine {

class JinjaTemplate;
class GgufFile;
struct Vocab;

// A function call an assistant message made (OpenAI's tool_calls[i]).
struct ChatToolCall {
  std::string id;          // "call_..."; may be empty
  std::string name;
  JinjaValue arguments;    // the arguments object, as templates read it (`arguments | tojson`)
};

struct ChatMessage {
  ChatMessage() = default;
  ChatMessage(std::string r, std::string c) : role(std::move(r)), content(std::move(c)) {}

  std::string role;     // "system", "user", "assistant", "tool", ...
  std::string content;  // the message text (UTF-8)
  // Assistant messages that called tools. Templates see them as
  // message.tool_calls = [{"id", "type": "function", "function": {"name",
  // "arguments"}}], Hugging Face's shape; a message without calls has no
  // tool_calls key at all (Llama 3.1's template tests `'tool_calls' in message`).
  std::vector<ChatToolCall> tool_calls;
  std::string tool_call_id;  // tool messages: the call answered (when given)
  std::string name;          // tool messages: the function's name (when given)
  // Assistant messages: the thoughts before the answer (what a reasoning
  // model wrote between its think tags), as message.reasoning_content, the
  // key Qwen3's template reads; absent when empty.
  std::string reasoning_content;
};

class ChatTemplate {
 public:
  // From the text of `tokenizer.chat_template` (or a user's Jinja override)
  // and the model's BOS / EOS token text. Empty `template_text`: the plain
  // fallback. Throws tars::Error(kUnsupported) when the Jinja does not parse
  // or uses a construct this renderer lacks; the message names the line and
  // the construct and suggests --chat-template NAME (with the family the text
  // looks like, when it can tell).
  ChatTemplate(std::string_view template_text, std::string bos_token, std::string eos_token);

  // A built-in format by name (chat_template_builtin_names()). An empty BOS /
  // EOS text takes the family's usual token ("<s>", "</s>", ...). Throws
  // tars::Error(kInvalidArgument) listing the names for an unknown one.
  static ChatTemplate builtin(std::string_view name, std::string bos_token = {}, std::string eos_token = {});

  // What `--chat-template VALUE` means: a built-in name, or else Jinja text
  // (anything containing "{{" or "{%"). Other values: kInvalidArgument
  // listing the built-in names.
  static ChatTemplate from_override(std::string_view value, std::string bos_token, std::string eos_token);

  ~ChatTemplate();
  ChatTemplate(const ChatTemplate&);
  ChatTemplate& operator=(const ChatTemplate&);
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // The prompt text for `messages`; add_generation_prompt appends the start
  // of an assistant turn. Thread-safe (copies share the parsed template,
  // which is immutable). Throws tars::Error:
  //   kInvalidArgument  no messages, or the template refused the
  //                     conversation (its raise_exception() message is
  //                     quoted). One retry first: when a template refuses a
  //                     conversation that starts with a system message (Gemma
  //                     has no system role), the system text is put at the
  //                     start of the first user message ("system\n\nuser"), as
  //                     those families' model cards advise.
  //   kUnsupported      the template needs something this renderer lacks
  //                     (suggests --chat-template NAME).
  //   kTooLarge         the template went past a render limit.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // The same with `tools` (a list of OpenAI tool objects, {"type":
  // "function", "function": {"name", "description", "parameters"}}) given to
  // the template as its `tools` variable. Only Jinja templates can show tools
  // to the model: the built-in and plain formats get kInvalidArgument when
  // `tools` is not empty, as does a template that never reads `tools`.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt, const JinjaValue& tools) const;
  // The same with more variables for a Jinja template (llama-server's
  // chat_template_kwargs, such as enable_thinking); the built-in and plain
  // formats have none to set. A name the renderer sets itself
  // (chat_template_reserved_variable) is kInvalidArgument.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt, const JinjaValue& tools,
                    const JinjaDict& variables) const;
  // Whether the template reads the `tools` variable at all.
  bool mentions_tools() const;
  // The Jinja text ("" for the built-in and plain formats).
  const std::string& text() const { return text_; }

  // True when there was no template and the plain format is in use.
  bool uses_fallback() const { return kind_ == Kind::kPlain; }
  // "jinja", a built-in's name, or "plain".
  const std::string& name() const { return name_; }

  // Fixes the time strftime_now() sees (seconds since the epoch); for tests.
  void set_time_for_testing(int64_t unix_seconds) { now_unix_ = unix_seconds; }

 private:
  enum class Kind { kJinja, kBuiltin, kPlain };
  ChatTemplate() = default;
  std::string render_jinja(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                           const JinjaValue& tools, const JinjaDict& variables) const;

  Kind kind_ = Kind::kPlain;
  std::string name_ = "plain";
  std::shared_ptr<const JinjaTemplate> jinja_;  // kJinja; immutable, so copies share it
  std::string family_;  // kJinja: chat_template_guess_family() of the text, for error messages
  std::string text_;    // kJinja: the template's text
  std::string bos_;
  std::string eos_;
  int64_t now_unix_ = -1;
};

// Whether a Jinja template's text reads the `tools` variable at all (what
// ChatTemplate::mentions_tools says of a parsed one).
inline bool chat_template_mentions_tools(std::string_view template_text) {
  return template_text.find("tools") != std::string_view::npos;
}

// Whether `name` is a variable the renderer sets itself (messages,
// add_generation_prompt, bos_token, eos_token, tools), which a caller's
// variables may not replace.
inline bool chat_template_reserved_variable(std::string_view name) {
  return name == "messages" || name == "add_generation_prompt" || name == "bos_token" || name == "eos_token" ||
         name == "tools";
}

// The built-in format names, in a stable order.
std::vector<std::string> chat_template_builtin_names();

// The built-in family a Jinja template's text looks like ("llama3" for one
// that writes <|start_header_id|>, "chatml" for <|im_start|>, ...), or ""
// when it cannot tell. Used to make error messages actionable.
std::string chat_template_guess_family(std::string_view template_text);

// The template a loaded model uses: `override_value` (--chat-template) when
// not empty, else the GGUF's tokenizer.chat_template, else the plain
// fallback; BOS / EOS text from the vocabulary.
ChatTemplate chat_template_for_model(const GgufFile& gguf, const Vocab& vocab, std::string_view override_value);

}  // namespace tars::engine
