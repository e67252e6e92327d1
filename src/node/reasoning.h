#pragma once
// Reasoning models (SmolLM3, Qwen3, DeepSeek-R1, Ministral's reasoning
// versions) write their thoughts first, between tags, then the answer:
//   <think>
//   The user greets me; I greet back.
//   </think>
//
//   Hello!
// The APIs give the thoughts apart from the answer (OpenAI-compatible
// servers as message.reasoning_content, Ollama as message.thinking), as
// llama-server and Ollama do. This file finds the tags a model uses (from its
// chat template) and splits a streamed answer at them.
//
// Rules (llama-server's and Ollama's behaviour): a thought is read only at
// the start of the answer (blanks before the opening tag are dropped); when
// the prompt itself ends with the opening tag (templates that open the
// thought for the model), the answer starts inside the thought. After the
// closing tag, blanks are dropped and everything else is the answer, tags
// included. An answer that ends inside its thought (max_tokens) is all
// thought. Blanks at the start of a thought are dropped too.

#include <string>
#include <string_view>

namespace tars::node {

struct ReasoningTags {
  std::string open, close;  // "<think>", "</think>"; both empty: the model does not reason aloud
  bool empty() const { return open.empty(); }
};

// The tags a chat template's text shows: "<think>"/"</think>", or Mistral's
// "[THINK]"/"[/THINK]" (control tokens in Mistral's vocabularies); none when
// it mentions neither.
ReasoningTags reasoning_tags(std::string_view template_text);

// Whether a rendered prompt leaves the model inside a thought: it ends (but
// for blanks) with the opening tag.
bool prompt_opens_thought(std::string_view prompt, const ReasoningTags& tags);

// Splits an answer, given piece by piece, into thought and answer text.
// Text that may be the start of a tag is held back until the next piece
// shows it is not (or finish()).
class ReasoningSplitter {
 public:
  struct Parts {
    std::string thinking, content;
  };

  ReasoningSplitter(ReasoningTags tags, bool in_thought);
  Parts push(std::string_view text);
  Parts finish();  // what was held back

 private:
  enum class State { kStart, kThought, kAfterThought, kAnswer };
  void run(Parts& out, bool at_end);

  ReasoningTags tags_;
  State state_;
  bool thought_started_ = false;  // kThought: a non-blank byte was given out
  std::string pending_;
};

}  // namespace tars::node
