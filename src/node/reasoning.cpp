#include "node/reasoning.h"

#include <algorithm>
#include <utility>

namespace tars::node {
namespace {

bool blank(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Drops the blanks at the start of `s`.
void drop_blanks(std::string& s) {
  size_t n = 0;
  while (n < s.size() && blank(s[n])) ++n;
  s.erase(0, n);
}

// The length of the longest end of `s` that is the start of `tag` (and not
// all of it).
size_t partial_tag_at_end(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace

ReasoningTags reasoning_tags(std::string_view template_text) {
  if (template_text.find("<think>") != std::string_view::npos) return {"<think>", "</think>"};
  if (template_text.find("[THINK]") != std::string_view::npos) return {"[THINK]", "[/THINK]"};
  return {};
}

bool prompt_opens_thought(std::string_view prompt, const ReasoningTags& tags) {
  if (tags.empty()) return false;
  while (!prompt.empty() && blank(prompt.back())) prompt.remove_suffix(1);
  return prompt.ends_with(tags.open);
}

ReasoningSplitter::ReasoningSplitter(ReasoningTags tags, bool in_thought)
    : tags_(std::move(tags)), state_(tags_.empty() ? State::kAnswer : in_thought ? State::kThought : State::kStart) {}

ReasoningSplitter::Parts ReasoningSplitter::push(std::string_view text) {
  pending_.append(text);
  Parts out;
  run(out, false);
  return out;
}

ReasoningSplitter::Parts ReasoningSplitter::finish() {
  Parts out;
  run(out, true);
  return out;
}

void ReasoningSplitter::run(Parts& out, bool at_end) {
  for (;;) {
    switch (state_) {
      case State::kStart: {
        // Blanks, then the opening tag or the answer: blanks before a tag are
        // dropped, before an answer they are the answer's.
        size_t lead = 0;
        while (lead < pending_.size() && blank(pending_[lead])) ++lead;
        const std::string_view rest = std::string_view(pending_).substr(lead);
        if (rest.starts_with(tags_.open)) {
          pending_.erase(0, lead + tags_.open.size());
          state_ = State::kThought;
          continue;
        }
        const bool maybe_tag = std::string_view(tags_.open).starts_with(rest);  // also when rest is empty
        if (maybe_tag && !at_end) return;
        state_ = State::kAnswer;
        continue;
      }
      case State::kThought: {
        if (!thought_started_) {
          drop_blanks(pending_);
          if (pending_.empty()) return;
        }
        const size_t close = pending_.find(tags_.close);
        size_t give = close != std::string::npos ? close
                      : at_end                   ? pending_.size()
                                                 : pending_.size() - partial_tag_at_end(pending_, tags_.close);
        // Blanks before the closing tag (or the end) are dropped, so they
        // wait until text follows them.
        size_t text_end = give;
        while (text_end > 0 && blank(pending_[text_end - 1])) --text_end;
        out.thinking.append(pending_, 0, text_end);
        thought_started_ = thought_started_ || text_end > 0;
        if (close != std::string::npos) {
          pending_.erase(0, close + tags_.close.size());
          state_ = State::kAfterThought;
          continue;
        }
        if (at_end) {
          pending_.clear();
          return;
        }
        pending_.erase(0, text_end);
        return;
      }
      case State::kAfterThought:
        drop_blanks(pending_);
        if (pending_.empty()) return;
        state_ = State::kAnswer;
        continue;
      case State::kAnswer:
        out.content += pending_;
        pending_.clear();
        return;
    }
  }
}

}  // namespace tars::node
