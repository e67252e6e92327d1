// Reasoning models' thoughts (node/reasoning.h): the tags each real template
// shows, and answers split into thought and answer the same way whatever the
// pieces the tokens cut them into.
#include "node/reasoning.h"

#include <gtest/gtest.h>

#include <random>

#include "support/test_support.h"

namespace tars::node {
namespace {

const ReasoningTags kThink = {"<think>", "</think>"};
const ReasoningTags kMistral = {"[THINK]", "[/THINK]"};

ReasoningSplitter::Parts split(const ReasoningTags& tags, bool in_thought, const std::vector<std::string>& pieces) {
  ReasoningSplitter s(tags, in_thought);
  ReasoningSplitter::Parts all;
  auto add = [&](const ReasoningSplitter::Parts& p) {
    all.thinking += p.thinking;
    all.content += p.content;
  };
  for (const auto& piece : pieces) add(s.push(piece));
  add(s.finish());
  return all;
}

TEST(Reasoning, TagsFromTheRealTemplates) {
  auto tags = [](const char* name) {
    return reasoning_tags(test::read_file(test::fixture(std::string("chat-templates/") + name + ".jinja")));
  };
  EXPECT_EQ(tags("HuggingFaceTB-SmolLM3-3B").open, "<think>");
  EXPECT_EQ(tags("HuggingFaceTB-SmolLM3-3B").close, "</think>");
  EXPECT_EQ(tags("mistralai-Ministral-3-14B-Reasoning-2512").open, "[THINK]");
  EXPECT_EQ(tags("mistralai-Ministral-3-14B-Reasoning-2512").close, "[/THINK]");
  EXPECT_TRUE(tags("Qwen-Qwen2.5-7B-Instruct").empty());
  EXPECT_TRUE(tags("meta-llama-Llama-3.1-8B-Instruct").empty());
  EXPECT_TRUE(tags("google-gemma-2-2b-it").empty());
}

TEST(Reasoning, PromptOpensAThoughtOnlyWhenItEndsWithTheOpeningTag) {
  EXPECT_TRUE(prompt_opens_thought("<|im_start|>assistant\n<think>\n", kThink));
  // SmolLM3 and Qwen3 with thinking off: an empty thought, closed.
  EXPECT_FALSE(prompt_opens_thought("<|im_start|>assistant\n<think>\n\n</think>\n", kThink));
  EXPECT_FALSE(prompt_opens_thought("<|im_start|>assistant\n", kThink));
  EXPECT_FALSE(prompt_opens_thought("<think>", ReasoningTags{}));
}

struct Case {
  ReasoningTags tags;
  bool in_thought;
  std::string answer;
  std::string thinking, content;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {kThink, false, "<think>\nThe user greets me.\n</think>\n\nHello!", "The user greets me.", "Hello!"},
      {kThink, false, " \n<think>a</think>b", "a", "b"},
      {kThink, false, "<think>a\n\nb </think>c <think>d</think>", "a\n\nb", "c <think>d</think>"},
      {kThink, false, "<think></think>Answer", "", "Answer"},
      {kThink, false, "<think>\n\n</think>\n\n", "", ""},
      {kThink, false, "<think>a </thinx b</think>c", "a </thinx b", "c"},
      {kThink, false, "<think>still thinking \n", "still thinking", ""},  // max_tokens inside the thought
      {kThink, false, "Hello <think>x</think>", "", "Hello <think>x</think>"},
      {kThink, false, " Hello", "", " Hello"},
      {kThink, false, "<thi", "", "<thi"},
      {kThink, false, "<thinking>", "", "<thinking>"},
      {kThink, false, "", "", ""},
      {kThink, true, "I think.\n</think>\nHi", "I think.", "Hi"},
      {kThink, true, "no end", "no end", ""},
      {kMistral, false, "[THINK]Checking.[/THINK]Sunny.", "Checking.", "Sunny."},
      {ReasoningTags{}, false, "<think>x</think>y", "", "<think>x</think>y"},
      {ReasoningTags{}, true, "<think>x</think>y", "", "<think>x</think>y"},
  };
  return c;
}

TEST(Reasoning, WholeAnswersSplit) {
  for (const auto& c : cases()) {
    const auto p = split(c.tags, c.in_thought, {c.answer});
    EXPECT_EQ(p.thinking, c.thinking) << c.answer;
    EXPECT_EQ(p.content, c.content) << c.answer;
  }
}

TEST(Reasoning, EveryCutGivesTheSameSplit) {
  for (const auto& c : cases()) {
    // Byte by byte, and every cut into two or three pieces.
    std::vector<std::string> bytes;
    for (char ch : c.answer) bytes.emplace_back(1, ch);
    auto p = split(c.tags, c.in_thought, bytes);
    EXPECT_EQ(p.thinking, c.thinking) << "bytes: " << c.answer;
    EXPECT_EQ(p.content, c.content) << "bytes: " << c.answer;
    const size_t n = c.answer.size();
    for (size_t i = 0; i <= n; ++i) {
      for (size_t j = i; j <= n; ++j) {
        p = split(c.tags, c.in_thought, {c.answer.substr(0, i), c.answer.substr(i, j - i), c.answer.substr(j)});
        ASSERT_EQ(p.thinking, c.thinking) << c.answer << " cut at " << i << ", " << j;
        ASSERT_EQ(p.content, c.content) << c.answer << " cut at " << i << ", " << j;
      }
    }
  }
}

TEST(Reasoning, NothingOfATagLeaksWhileStreaming) {
  // Given piece by piece, no piece's output holds part of a tag.
  ReasoningSplitter s(kThink, false);
  std::string streamed_thinking;
  for (const char* piece : {"<", "th", "ink>", "plan", "\n</", "thi", "nk>", "\n", "Done."}) {
    const auto p = s.push(piece);
    EXPECT_EQ(p.thinking.find('<'), std::string::npos) << piece;
    EXPECT_EQ(p.content.find('<'), std::string::npos) << piece;
    streamed_thinking += p.thinking;
  }
  EXPECT_EQ(streamed_thinking, "plan");
  EXPECT_EQ(s.finish().content, "");
}

TEST(Reasoning, RandomAnswersSplitAlikeWholeAndInPieces) {
  // Answers made of tag parts, blanks and letters; the pieces' split must
  // equal the whole one's.
  const std::vector<std::string> parts = {"<think>", "</think>", "<", "</", "<th", "</thi", "nk>", " ", "\n", "a", "b"};
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string answer;
    const int n = 1 + static_cast<int>(rng() % 10);
    for (int k = 0; k < n; ++k) answer += parts[rng() % parts.size()];
    const bool in_thought = rng() % 2;
    const auto whole = split(kThink, in_thought, {answer});
    std::vector<std::string> pieces;
    for (size_t at = 0; at < answer.size();) {
      const size_t len = 1 + rng() % 4;
      pieces.push_back(answer.substr(at, len));
      at += len;
    }
    const auto cut = split(kThink, in_thought, pieces);
    ASSERT_EQ(cut.thinking, whole.thinking) << answer;
    ASSERT_EQ(cut.content, whole.content) << answer;
    // Nothing is lost but tags and blanks.
    auto letters = [](const std::string& s) {
      std::string out;
      for (char ch : s) out += (ch == 'a' || ch == 'b') ? std::string(1, ch) : "";
      return out;
    };
    std::string kept_letters = letters(whole.thinking) + letters(whole.content);
    ASSERT_EQ(kept_letters, letters(answer)) << answer;
  }
}

}  // namespace
}  // namespace tars::node
