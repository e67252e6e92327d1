// ChatTemplate (engine/chat_template.h): the named built-in formats, the
// plain fallback, overrides, and the errors a caller sees. Expected strings
// are written by hand from each family's documented prompt format, for one
// conversation: system + user + assistant + user, generation prompt on.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "engine/chat_template.h"

namespace tars::engine {
namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "You are terse."},
    {"user", "Hi"},
    {"assistant", "Hello."},
    {"user", "Name a colour."},
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string builtin(const char* name) { return ChatTemplate::builtin(name).apply(kChat, true); }

TEST(ChatTemplate, BuiltinNamesAreTheDocumentedFamilies) {
  EXPECT_EQ(chat_template_builtin_names(),
            (std::vector<std::string>{"llama2", "mistral", "llama3", "chatml", "phi3", "gemma", "zephyr",
                                      "neural-chat"}));
}

TEST(ChatTemplate, Llama2) {
  // <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] {user} [/INST]
  EXPECT_EQ(builtin("llama2"),
            "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello. </s>"
            "<s>[INST] Name a colour. [/INST]");
}

TEST(ChatTemplate, Mistral) {
  // <s>[INST] {user} [/INST]{answer}</s>[INST] {user} [/INST]; system text
  // leads the first instruction.
  EXPECT_EQ(builtin("mistral"), "<s>[INST] You are terse.\n\nHi [/INST]Hello.</s>[INST] Name a colour. [/INST]");
}

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(builtin("llama3"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, ChatML) {
  EXPECT_EQ(builtin("chatml"),
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Phi3) {
  EXPECT_EQ(builtin("phi3"),
            "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n"
            "<|user|>\nName a colour.<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, Gemma) {
  // No system role: its text opens the first user turn.
  EXPECT_EQ(builtin("gemma"),
            "<bos><start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nName a colour.<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, Zephyr) {
  EXPECT_EQ(builtin("zephyr"),
            "<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n"
            "<|user|>\nName a colour.</s>\n<|assistant|>\n");
}

TEST(ChatTemplate, NeuralChat) {
  EXPECT_EQ(builtin("neural-chat"),
            "### System:\nYou are terse.\n\n### User:\nHi\n\n### Assistant:\nHello.\n\n"
            "### User:\nName a colour.\n\n### Assistant:\n");
}

TEST(ChatTemplate, BuiltinsTakeTheModelsTokens) {
  ChatTemplate t = ChatTemplate::builtin("zephyr", "<bos>", "<|endoftext|>");
  EXPECT_EQ(t.apply({{"user", "Hi"}}, true), "<|user|>\nHi<|endoftext|>\n<|assistant|>\n");
  // Without a generation prompt the text ends after the last message.
  EXPECT_EQ(ChatTemplate::builtin("chatml").apply({{"user", "Hi"}}, false), "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, PlainFallback) {
  ChatTemplate t("", "<s>", "</s>");
  EXPECT_TRUE(t.uses_fallback());
  EXPECT_EQ(t.name(), "plain");
  EXPECT_EQ(t.apply(kChat, true),
            "System: You are terse.\nUser: Hi\nAssistant: Hello.\nUser: Name a colour.\nAssistant:");
  EXPECT_EQ(t.apply({{"user", "Hi"}}, false), "User: Hi\n");
}

TEST(ChatTemplate, JinjaTemplateGetsTheConversationAndTokens) {
  ChatTemplate t(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m['content'] }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}{{ tools is none }}",
      "<B>", "<E>");
  EXPECT_FALSE(t.uses_fallback());
  EXPECT_EQ(t.name(), "jinja");
  EXPECT_EQ(t.apply({{"user", "Hi"}}, true), "<B><user>Hi<assistant><E>True");
  EXPECT_EQ(t.apply({{"user", "Hi"}}, false), "<B><user>Hi<E>True");
  ChatTemplate copy = t;  // copies share the parsed template
  EXPECT_EQ(copy.apply({{"user", "Hi"}}, false), "<B><user>Hi<E>True");
}

TEST(ChatTemplate, ReasoningContentAndVariablesReachTheTemplate) {
  ChatTemplate t(
      "{% for m in messages %}<{{ m.role }}>{% if m.reasoning_content is defined %}[{{ m.reasoning_content }}]"
      "{% endif %}{{ m.content }}{% endfor %}{{ mood | default('calm') }}",
      "", "");
  ChatMessage answer("assistant", "Hello.");
  answer.reasoning_content = "greet back";
  EXPECT_EQ(t.apply({{"user", "Hi"}, answer}, false), "<user>Hi<assistant>[greet back]Hello.calm");
  EXPECT_EQ(t.apply({{"user", "Hi"}}, false, JinjaValue::none(), {{"mood", JinjaValue("glad")}}), "<user>Higlad");
}

TEST(ChatTemplate, StrftimeNow) {
  // As Llama 3.2's template asks for today's date.
  ChatTemplate t(
      "{%- if strftime_now is defined %}{%- set date_string = strftime_now('%d %b %Y') %}"
      "{%- else %}{%- set date_string = '1 Jan 2000' %}{%- endif %}{{ date_string }}",
      "", "");
  t.set_time_for_testing(1721995200);  // 2024-07-26 12:00 UTC: the same date in every time zone but +12..+14
  std::string out = t.apply({{"user", "x"}}, true);
  EXPECT_TRUE(out == "26 Jul 2024" || out == "27 Jul 2024") << out;
}

TEST(ChatTemplate, Overrides) {
  EXPECT_EQ(ChatTemplate::from_override("chatml", "", "").name(), "chatml");
  ChatTemplate j = ChatTemplate::from_override("{% for m in messages %}{{ m.content }}{% endfor %}", "", "");
  EXPECT_EQ(j.name(), "jinja");
  EXPECT_EQ(j.apply({{"user", "a"}, {"assistant", "b"}}, true), "ab");
  try {
    ChatTemplate::from_override("vicuna", "", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(contains(e.what(), "'vicuna'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "llama2, mistral, llama3, chatml, phi3, gemma, zephyr, neural-chat")) << e.what();
  }
  EXPECT_THROW(ChatTemplate::builtin("nope"), Error);
}

TEST(ChatTemplate, UnsupportedTemplateSaysWhatAndSuggestsAnOverride) {
  try {
    ChatTemplate t("<|im_start|>\n{% include 'other.jinja' %}", "", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    std::string m = e.what();
    EXPECT_TRUE(contains(m, "line 2: unsupported tag '{% include %}'")) << m;
    EXPECT_TRUE(contains(m, "--chat-template NAME")) << m;
    EXPECT_TRUE(contains(m, "looks like 'chatml'")) << m;
  }
  // Found only while rendering: an unknown filter on the path the
  // conversation takes.
  ChatTemplate t("{% for m in messages %}{{ m.content | shout }}{% endfor %}", "", "");
  try {
    t.apply({{"user", "x"}}, true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_TRUE(contains(e.what(), "unknown filter 'shout'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "--chat-template NAME")) << e.what();
  }
}

TEST(ChatTemplate, RefusalsAndSystemMerging) {
  const char* src =
      "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
      "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}";
  ChatTemplate t(src, "", "");
  // Refused with a system message: retried with the system text at the head
  // of the first user message.
  EXPECT_EQ(t.apply({{"system", "S"}, {"user", "U"}}, true), "[user:S\n\nU]");
  // A refusal that merging cannot fix is reported with the template's words.
  ChatTemplate never("{{ raise_exception('never') }}", "", "");
  try {
    never.apply({{"system", "S"}, {"user", "U"}}, true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(contains(e.what(), "refused the conversation: never")) << e.what();
  }
  EXPECT_THROW(t.apply({}, true), Error);  // no messages
}

TEST(ChatTemplate, RunawayTemplateStops) {
  ChatTemplate t("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "", "");
  try {
    t.apply({{"user", "x"}}, true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTooLarge);
  }
}

TEST(ChatTemplate, FamilyGuess) {
  EXPECT_EQ(chat_template_guess_family("<|start_header_id|>"), "llama3");
  EXPECT_EQ(chat_template_guess_family("[INST] <<SYS>>"), "llama2");
  EXPECT_EQ(chat_template_guess_family("[INST]"), "mistral");
  EXPECT_EQ(chat_template_guess_family("<|user|> <|assistant|>"), "zephyr");
  EXPECT_EQ(chat_template_guess_family("### User:"), "neural-chat");
  EXPECT_EQ(chat_template_guess_family("{{ messages }}"), "");
}

}  // namespace
}  // namespace tars::engine
