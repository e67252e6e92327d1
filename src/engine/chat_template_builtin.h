#pragma once
// The built-in chat formats (engine-internal; chat_template.h is the API).

#include <string>
#include <string_view>
#include <vector>

#include "engine/chat_template.h"

namespace tars::engine {

// Renders `messages` in one family's format. bos/eos are the token texts to
// use (already defaulted to the family's own when the model gave none).
using ChatFormatFn = std::string (*)(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                     const std::string& bos, const std::string& eos);

struct ChatBuiltin {
  const char* name;         // what --chat-template takes
  ChatFormatFn format;
  const char* default_bos;  // the family's BOS text, used when the model gives none
  const char* default_eos;  // the family's EOS text, used when the model gives none
};

// The built-in named `name`, or nullptr.
const ChatBuiltin* chat_builtin_find(std::string_view name);
const std::vector<ChatBuiltin>& chat_builtins();

// The documented plain format for models without a template (chat_template.h).
std::string chat_format_plain(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace tars::engine
