// Built-in chat formats, each written from its family's documented prompt
// format (model cards and the families' own reference code), for models
// whose GGUF carries no usable template. In every format a system message
// sets the system prompt, "assistant" is the model's turn, and any other role
// (user, tool, ...) is rendered as that family renders a user turn unless the
// family has a place for the role name itself (ChatML, Llama 3, Phi-3,
// Zephyr, Neural-Chat write the role as given).

#include "engine/chat_template_builtin.h"

#include "engine/jinja_builtins.h"

namespace tars::engine {

namespace {

std::string trim(const std::string& s) { return jinja_str_strip(s, nullptr, true, true); }

// Llama 2 chat (Meta's reference chat_completion): each exchange is
//   <s>[INST] {user} [/INST] {assistant} </s>
// with contents stripped, and the system prompt wrapped in <<SYS>> at the
// start of the first user message:
//   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]
std::string format_llama2(const std::vector<ChatMessage>& msgs, bool, const std::string& bos,
                          const std::string& eos) {
  std::string out, sys;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      sys = "<<SYS>>\n";
      sys += trim(m.content);
      sys += "\n<</SYS>>\n\n";
    } else if (m.role == "assistant") {
      out += ' ';
      out += trim(m.content);
      out += ' ';
      out += eos;
    } else {
      out += bos + "[INST] " + sys + trim(m.content) + " [/INST]";
      sys.clear();
    }
  }
  return out;  // the prompt already ends where the answer starts
}

// Mistral Instruct (the v1 format of Mistral's own template):
//   <s>[INST] {user} [/INST]{assistant}</s>[INST] {user} [/INST]
// Mistral has no system role; its guidance is to put the system prompt
// before the first user instruction, separated by a blank line.
std::string format_mistral(const std::vector<ChatMessage>& msgs, bool, const std::string& bos,
                           const std::string& eos) {
  std::string out = bos, sys;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      sys = m.content + "\n\n";
    } else if (m.role == "assistant") {
      out += m.content + eos;
    } else {
      out += "[INST] " + sys + m.content + " [/INST]";
      sys.clear();
    }
  }
  return out;
}

// Llama 3 (Meta's model card):
//   <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>...
//   then <|start_header_id|>assistant<|end_header_id|>\n\n for the answer.
std::string format_llama3(const std::vector<ChatMessage>& msgs, bool add_gen, const std::string& bos,
                          const std::string&) {
  std::string out = bos;
  for (const auto& m : msgs) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  }
  if (add_gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// ChatML (OpenAI's format, used by Qwen, SmolLM and many fine-tunes):
//   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
std::string format_chatml(const std::vector<ChatMessage>& msgs, bool add_gen, const std::string&,
                          const std::string&) {
  std::string out;
  for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_gen) out += "<|im_start|>assistant\n";
  return out;
}

// Phi-3 (Microsoft's model card):
//   <|system|>\n{system}<|end|>\n<|user|>\n{user}<|end|>\n<|assistant|>\n
std::string format_phi3(const std::vector<ChatMessage>& msgs, bool add_gen, const std::string&,
                        const std::string&) {
  std::string out;
  for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
  if (add_gen) out += "<|assistant|>\n";
  return out;
}

// Gemma (Google's model card): turns of "user" and "model",
//   <bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n
// Gemma has no system role; the card's advice is to put system instructions
// in the first user turn.
std::string format_gemma(const std::vector<ChatMessage>& msgs, bool add_gen, const std::string& bos,
                         const std::string&) {
  std::string out = bos, sys;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      sys = trim(m.content) + "\n\n";
      continue;
    }
    std::string role = m.role == "assistant" ? "model" : "user";
    out += "<start_of_turn>" + role + "\n" + sys + trim(m.content) + "<end_of_turn>\n";
    sys.clear();
  }
  if (add_gen) out += "<start_of_turn>model\n";
  return out;
}

// Zephyr (Hugging Face H4's model card):
//   <|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n
std::string format_zephyr(const std::vector<ChatMessage>& msgs, bool add_gen, const std::string&,
                          const std::string& eos) {
  std::string out;
  for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + eos + "\n";
  if (add_gen) out += "<|assistant|>\n";
  return out;
}

std::string capitalized(const std::string& role) {
  std::string r = role;
  if (!r.empty() && r[0] >= 'a' && r[0] <= 'z') r[0] = static_cast<char>(r[0] - 'a' + 'A');
  return r;
}

// Intel Neural-Chat (model card):
//   ### System:\n{system}\n\n### User:\n{user}\n\n### Assistant:\n
std::string format_neural_chat(const std::vector<ChatMessage>& msgs, bool add_gen, const std::string&,
                               const std::string&) {
  std::string out;
  for (const auto& m : msgs) out += "### " + capitalized(m.role) + ":\n" + m.content + "\n\n";
  if (add_gen) out += "### Assistant:\n";
  return out;
}

}  // namespace

const std::vector<ChatBuiltin>& chat_builtins() {
  static const std::vector<ChatBuiltin> kBuiltins = {
      {"llama2", format_llama2, "<s>", "</s>"},
      {"mistral", format_mistral, "<s>", "</s>"},
      {"llama3", format_llama3, "<|begin_of_text|>", "<|eot_id|>"},
      {"chatml", format_chatml, "", "<|im_end|>"},
      {"phi3", format_phi3, "", "<|end|>"},
      {"gemma", format_gemma, "<bos>", "<eos>"},
      {"zephyr", format_zephyr, "", "</s>"},
      {"neural-chat", format_neural_chat, "", ""},
  };
  return kBuiltins;
}

const ChatBuiltin* chat_builtin_find(std::string_view name) {
  for (const auto& b : chat_builtins()) {
    if (name == b.name) return &b;
  }
  return nullptr;
}

std::string chat_format_plain(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const auto& m : messages) out += capitalized(m.role) + ": " + m.content + "\n";
  if (add_generation_prompt) out += "Assistant:";
  return out;
}

}  // namespace tars::engine
