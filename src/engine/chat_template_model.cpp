// chat_template_for_model: the template a loaded model uses (see
// chat_template.h). Kept apart from chat_template.cpp so the renderer builds
// without the GGUF and tokenizer code (the fuzz target compiles it alone).

#include "engine/chat_template.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

namespace tars::engine {

namespace {

std::string token_text(const Vocab& vocab, int32_t id) {
  if (id < 0 || id >= vocab.n_vocab()) return "";
  return vocab.tokens[static_cast<size_t>(id)];
}

}  // namespace

ChatTemplate chat_template_for_model(const GgufFile& gguf, const Vocab& vocab, std::string_view override_value) {
  std::string bos = token_text(vocab, vocab.bos);
  std::string eos = token_text(vocab, vocab.eos);
  if (!override_value.empty()) return ChatTemplate::from_override(override_value, bos, eos);
  std::string text;
  if (gguf.has("tokenizer.chat_template")) text = gguf.get_string("tokenizer.chat_template");
  return ChatTemplate(text, bos, eos);
}

}  // namespace tars::engine
