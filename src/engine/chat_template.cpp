// ChatTemplate: the model's Jinja template, a built-in format, or the plain
// fallback (see chat_template.h).

#include "engine/chat_template.h"

#include <algorithm>

#include "common/error.h"
#include "engine/chat_template_builtin.h"
#include "engine/jinja.h"

namespace tars::engine {

namespace {

std::string names_list() {
  std::string s;
  for (const auto& n : chat_template_builtin_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// The advice every "cannot use this template" message ends with.
std::string override_hint(const std::string& family) {
  std::string hint = "; pass --chat-template NAME to use a built-in format instead";
  if (!family.empty()) hint += " (this template looks like '" + family + "')";
  return hint + "; built-in formats: " + names_list();
}

// Render limits that grow with the conversation, so a long chat renders
// while a runaway template still stops early.
JinjaOptions options_for(const std::vector<ChatMessage>& messages, int64_t now_unix) {
  size_t bytes = 0;
  for (const auto& m : messages) bytes += m.role.size() + m.content.size();
  JinjaOptions o;
  o.now_unix = now_unix;
  o.limits.max_output_bytes = (size_t{1} << 20) + 4 * bytes;
  o.limits.max_value_bytes = o.limits.max_output_bytes;
  o.limits.max_steps = 4'000'000 + 4 * static_cast<uint64_t>(bytes);
  return o;
}

JinjaValue messages_value(const std::vector<ChatMessage>& messages) {
  JinjaList list;
  list.reserve(messages.size());
  for (const auto& m : messages) {
    JinjaDict d = {{"role", JinjaValue(m.role)}, {"content", JinjaValue(m.content)}};
    if (!m.tool_calls.empty()) {
      JinjaList calls;
      for (const auto& c : m.tool_calls) {
        JinjaDict call;
        if (!c.id.empty()) call.emplace_back("id", JinjaValue(c.id));
        call.emplace_back("type", JinjaValue("function"));
        call.emplace_back("function", JinjaValue(JinjaDict{{"name", JinjaValue(c.name)}, {"arguments", c.arguments}}));
        calls.emplace_back(std::move(call));
      }
      d.emplace_back("tool_calls", JinjaValue(std::move(calls)));
    }
    if (!m.tool_call_id.empty()) d.emplace_back("tool_call_id", JinjaValue(m.tool_call_id));
    if (!m.name.empty()) d.emplace_back("name", JinjaValue(m.name));
    if (!m.reasoning_content.empty()) d.emplace_back("reasoning_content", JinjaValue(m.reasoning_content));
    list.emplace_back(std::move(d));
  }
  return JinjaValue(std::move(list));
}

}  // namespace

ChatTemplate::ChatTemplate(std::string_view template_text, std::string bos_token, std::string eos_token)
    : bos_(std::move(bos_token)), eos_(std::move(eos_token)) {
  if (template_text.empty()) return;  // the plain fallback
  family_ = chat_template_guess_family(template_text);
  text_ = std::string(template_text);
  try {
    jinja_ = std::make_shared<const JinjaTemplate>(template_text);
  } catch (const Error& e) {
    throw Error(ErrorCode::kUnsupported,
                std::string("the chat template cannot be used: ") + e.what() + override_hint(family_));
  }
  kind_ = Kind::kJinja;
  name_ = "jinja";
}

ChatTemplate ChatTemplate::builtin(std::string_view name, std::string bos_token, std::string eos_token) {
  const ChatBuiltin* b = chat_builtin_find(name);
  if (b == nullptr) {
    throw Error(ErrorCode::kInvalidArgument,
                "unknown chat template '" + std::string(name) + "'; built-in formats: " + names_list());
  }
  ChatTemplate t;
  t.kind_ = Kind::kBuiltin;
  t.name_ = b->name;
  t.bos_ = bos_token.empty() ? b->default_bos : std::move(bos_token);
  t.eos_ = eos_token.empty() ? b->default_eos : std::move(eos_token);
  return t;
}

ChatTemplate ChatTemplate::from_override(std::string_view value, std::string bos_token, std::string eos_token) {
  if (chat_builtin_find(value) != nullptr) return builtin(value, std::move(bos_token), std::move(eos_token));
  if (value.find("{{") != std::string_view::npos || value.find("{%") != std::string_view::npos) {
    return ChatTemplate(value, std::move(bos_token), std::move(eos_token));
  }
  throw Error(ErrorCode::kInvalidArgument,
              "--chat-template '" + std::string(value.substr(0, 80)) +
                  "' is neither a built-in format nor Jinja text; built-in formats: " + names_list());
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(const ChatTemplate&) = default;
ChatTemplate& ChatTemplate::operator=(const ChatTemplate&) = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  return apply(messages, add_generation_prompt, JinjaValue::none());
}

bool ChatTemplate::mentions_tools() const { return kind_ == Kind::kJinja && chat_template_mentions_tools(text_); }

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                const JinjaValue& tools) const {
  return apply(messages, add_generation_prompt, tools, {});
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                const JinjaValue& tools, const JinjaDict& variables) const {
  for (const auto& [name, value] : variables) {
    if (chat_template_reserved_variable(name)) {
      throw Error(ErrorCode::kInvalidArgument, "the chat template variable '" + name + "' is set by the server");
    }
  }
  if (messages.empty()) throw Error(ErrorCode::kInvalidArgument, "a chat needs at least one message");
  const bool with_tools = !tools.is_none() && tools.truthy();
  if (with_tools && !mentions_tools()) {
    throw Error(ErrorCode::kInvalidArgument,
                "this model's chat template (" + name_ + ") has no place for tools, so the model cannot be told "
                "about them; send the request without tools, or give a template that renders them (--chat-template)");
  }
  bool plain = true;  // the built-in and plain formats know role and content only
  for (const auto& m : messages) plain = plain && m.tool_calls.empty();
  if (!plain && kind_ != Kind::kJinja) {
    throw Error(ErrorCode::kInvalidArgument,
                "this model's chat template (" + name_ + ") cannot show earlier tool calls to the model");
  }
  switch (kind_) {
    case Kind::kPlain:
      return chat_format_plain(messages, add_generation_prompt);
    case Kind::kBuiltin:
      return chat_builtin_find(name_)->format(messages, add_generation_prompt, bos_, eos_);
    case Kind::kJinja:
      break;
  }
  try {
    return render_jinja(messages, add_generation_prompt, tools, variables);
  } catch (const JinjaException& refused) {
    // Families without a system role (Gemma, some Mistral versions) refuse
    // one; their cards say to put it in the first user turn instead.
    if (messages.size() >= 2 && messages[0].role == "system" && messages[1].role == "user") {
      std::vector<ChatMessage> merged(messages.begin() + 1, messages.end());
      merged[0].content = messages[0].content + "\n\n" + messages[1].content;
      try {
        return render_jinja(merged, add_generation_prompt, tools, variables);
      } catch (const JinjaException&) {
        // fall through: report the first refusal
      }
    }
    throw Error(ErrorCode::kInvalidArgument,
                std::string("the model's chat template refused the conversation: ") + refused.what());
  }
}

std::string ChatTemplate::render_jinja(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                       const JinjaValue& tools, const JinjaDict& variables) const {
  JinjaDict context = variables;
  JinjaDict own = {
      {"messages", messages_value(messages)},
      {"add_generation_prompt", JinjaValue(add_generation_prompt)},
      {"bos_token", JinjaValue(bos_)},
      {"eos_token", JinjaValue(eos_)},
      {"tools", tools},
  };
  context.insert(context.end(), own.begin(), own.end());
  try {
    return jinja_->render(context, options_for(messages, now_unix_));
  } catch (const JinjaException&) {
    throw;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnsupported) {
      throw Error(ErrorCode::kUnsupported, std::string("the chat template failed: ") + e.what() + override_hint(family_));
    }
    throw Error(e.code(), std::string("the chat template failed: ") + e.what());
  }
}

std::vector<std::string> chat_template_builtin_names() {
  std::vector<std::string> names;
  for (const auto& b : chat_builtins()) names.emplace_back(b.name);
  return names;
}

std::string chat_template_guess_family(std::string_view t) {
  auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|start_header_id|>")) return "llama3";
  if (has("<|im_start|>")) return "chatml";
  if (has("<start_of_turn>")) return "gemma";
  if (has("<|assistant|>") && has("<|end|>")) return "phi3";
  if (has("<|assistant|>")) return "zephyr";
  if (has("[INST]") && has("<<SYS>>")) return "llama2";
  if (has("[INST]")) return "mistral";
  if (has("### User:") || has("### Assistant:")) return "neural-chat";
  return "";
}

}  // namespace tars::engine
