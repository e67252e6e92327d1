// The real chat templates in ../shared/models/chat-templates, rendered by
// ChatTemplate and compared with strings written by hand from each family's
// documented prompt format (and from reading the template). The conversation
// is the same everywhere: system + user + assistant + user, generation prompt
// on.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "engine/chat_template.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "Hi there. How can I help?"},
    {"user", "What is 2+2?"},
};

ChatTemplate load(const std::string& file, const std::string& bos, const std::string& eos) {
  return ChatTemplate(test::read_file(test::fixture("chat-templates/" + file)), bos, eos);
}

std::vector<ChatMessage> without_system() { return {kChat.begin() + 1, kChat.end()}; }

// ---- Llama 3.1 --------------------------------------------------------------
// Header blocks <|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>; the
// 3.1 template adds the knowledge-cutoff / date lines to the system turn
// (date_string defaults to "26 Jul 2024") and trims contents.
TEST(ChatTemplateFiles, Llama31) {
  ChatTemplate t = load("meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_FALSE(t.uses_fallback());
  EXPECT_EQ(t.apply(kChat, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            "You are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateFiles, Llama31NoSystemTrimsAndNoPrompt) {
  ChatTemplate t = load("meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_EQ(t.apply({{"user", "  padded \n"}}, false),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
}

// ---- Qwen2.5 (ChatML) -----------------------------------------------------
TEST(ChatTemplateFiles, Qwen25) {
  ChatTemplate t = load("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>");
  EXPECT_EQ(t.apply(kChat, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplateFiles, Qwen25DefaultSystemAndToolTurns) {
  ChatTemplate t = load("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>");
  // No system message: Qwen's own default system prompt.
  EXPECT_EQ(t.apply({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // Consecutive tool results share one user turn, wrapped in <tool_response>.
  EXPECT_EQ(t.apply({{"user", "Q"}, {"tool", "r1"}, {"tool", "r2"}}, false),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nQ<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response>"
            "<|im_end|>\n");
}

// ---- Phi-3.5 ----------------------------------------------------------------
TEST(ChatTemplateFiles, Phi35) {
  ChatTemplate t = load("microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>");
  EXPECT_EQ(t.apply(kChat, true),
            "<|system|>\nYou are a helpful assistant.<|end|>\n"
            "<|user|>\nHello!<|end|>\n"
            "<|assistant|>\nHi there. How can I help?<|end|>\n"
            "<|user|>\nWhat is 2+2?<|end|>\n"
            "<|assistant|>\n");
  // Without a generation prompt this template ends the text with EOS.
  EXPECT_EQ(t.apply({{"user", "Hi"}}, false), "<|user|>\nHi<|end|>\n<|endoftext|>");
}

// ---- Gemma 2 ------------------------------------------------------------------
// <start_of_turn>user / model, contents trimmed. The template refuses a system
// role; ChatTemplate then puts the system text at the head of the first user
// turn, as Gemma's card advises.
TEST(ChatTemplateFiles, Gemma2) {
  ChatTemplate t = load("google-gemma-2-2b-it.jinja", "<bos>", "<eos>");
  EXPECT_EQ(t.apply(kChat, true),
            "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(t.apply(without_system(), true),
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
}

TEST(ChatTemplateFiles, Gemma2RefusesNonAlternatingRoles) {
  ChatTemplate t = load("google-gemma-2-2b-it.jinja", "<bos>", "<eos>");
  try {
    t.apply({{"user", "a"}, {"user", "b"}}, true);
    FAIL() << "expected the template to refuse";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("Conversation roles must alternate user/assistant"), std::string::npos)
        << e.what();
  }
}

// ---- SmolLM3 -------------------------------------------------------------------
// ChatML with a generated system block (metadata, reasoning mode, custom
// instructions); /think by default, /no_think in the system text turns it off
// and makes every assistant turn start with an empty think block.
TEST(ChatTemplateFiles, SmolLM3) {
  ChatTemplate t = load("HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>");
  EXPECT_EQ(t.apply(kChat, true),
            "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
            "Reasoning Mode: /think\n\n## Custom Instructions\n\n"
            "You are a helpful assistant.\n\n<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplateFiles, SmolLM3NoThink) {
  ChatTemplate t = load("HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>");
  std::vector<ChatMessage> chat = kChat;
  chat[0].content = "Be brief. /no_think  ";
  chat[2].content = "\n\nFour-ish.";  // leading newlines are dropped from assistant turns
  EXPECT_EQ(t.apply(chat, true),
            "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
            "Reasoning Mode: /no_think\n\n## Custom Instructions\n\n"
            "Be brief.\n\n<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\nFour-ish.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n");
}

// enable_thinking (a request's chat_template_kwargs, Ollama's think) is the
// template's own switch: false gives the /no_think prompt without touching
// the system text.
TEST(ChatTemplateFiles, SmolLM3EnableThinkingVariable) {
  ChatTemplate t = load("HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>");
  const JinjaDict off = {{"enable_thinking", JinjaValue(false)}};
  const std::string out = t.apply(kChat, true, JinjaValue::none(), off);
  EXPECT_NE(out.find("Reasoning Mode: /no_think\n"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("<|im_start|>assistant\n<think>\n\n</think>\n")) << out;
  EXPECT_EQ(t.apply(kChat, true, JinjaValue::none(), {{"enable_thinking", JinjaValue(true)}}), t.apply(kChat, true));
  // A variable the renderer sets itself cannot be replaced.
  try {
    t.apply(kChat, true, JinjaValue::none(), {{"add_generation_prompt", JinjaValue(false)}});
    ADD_FAILURE() << "a reserved variable was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("add_generation_prompt"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplateFiles, SmolLM3DefaultInstructions) {
  ChatTemplate t = load("HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>");
  std::string out = t.apply({{"user", "Hi"}}, true);
  EXPECT_EQ(out.rfind("<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
                      "Reasoning Mode: /think\n\n## Custom Instructions\n\n"
                      "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role",
                      0),
            0u)
      << out;
  EXPECT_NE(out.find("necessary steps needed to reach the conclusion.\n\n<|im_end|>\n"
                     "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
            std::string::npos)
      << out;
}

// ---- Ministral 3 (Mistral's v7-style tokens) ---------------------------------
// [SYSTEM_PROMPT]...[/SYSTEM_PROMPT], [INST]user[/INST]assistant</s>, no spaces.
TEST(ChatTemplateFiles, Ministral3) {
  ChatTemplate t = load("mistralai-Ministral-3-14B-Reasoning-2512.jinja", "<s>", "</s>");
  EXPECT_EQ(t.apply(kChat, true),
            "<s>[SYSTEM_PROMPT]You are a helpful assistant.[/SYSTEM_PROMPT]"
            "[INST]Hello![/INST]Hi there. How can I help?</s>"
            "[INST]What is 2+2?[/INST]");
}

TEST(ChatTemplateFiles, Ministral3DefaultSystemAndAlternation) {
  ChatTemplate t = load("mistralai-Ministral-3-14B-Reasoning-2512.jinja", "<s>", "</s>");
  std::string out = t.apply({{"user", "Hi"}}, true);
  EXPECT_EQ(out.rfind("<s>[SYSTEM_PROMPT]# HOW YOU SHOULD THINK AND ANSWER\n\nFirst draft your thinking", 0), 0u)
      << out;
  EXPECT_NE(out.find("[/THINK]Here, provide a self-contained response.[/SYSTEM_PROMPT][INST]Hi[/INST]"),
            std::string::npos)
      << out;
  try {
    t.apply({{"user", "a"}, {"user", "b"}}, true);
    FAIL() << "expected the template to refuse";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("conversation roles must alternate user and assistant"),
              std::string::npos)
        << e.what();
  }
}

// Each real template parses, and rendering is deterministic.
TEST(ChatTemplateFiles, EveryFileParsesAndRendersTwiceTheSame) {
  for (const char* f : {"meta-llama-Llama-3.1-8B-Instruct.jinja", "Qwen-Qwen2.5-7B-Instruct.jinja",
                        "microsoft-Phi-3.5-mini-instruct.jinja", "google-gemma-2-2b-it.jinja",
                        "HuggingFaceTB-SmolLM3-3B.jinja", "mistralai-Ministral-3-14B-Reasoning-2512.jinja"}) {
    SCOPED_TRACE(f);
    ChatTemplate t = load(f, "<s>", "</s>");
    std::string a = t.apply(without_system(), true);
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(a, t.apply(without_system(), true));
    EXPECT_NE(a.find("What is 2+2?"), std::string::npos);
  }
}

// The family guess used in error messages recognises each real template.
TEST(ChatTemplateFiles, FamilyGuess) {
  auto guess = [](const char* f) {
    return chat_template_guess_family(test::read_file(test::fixture(std::string("chat-templates/") + f)));
  };
  EXPECT_EQ(guess("meta-llama-Llama-3.1-8B-Instruct.jinja"), "llama3");
  EXPECT_EQ(guess("Qwen-Qwen2.5-7B-Instruct.jinja"), "chatml");
  EXPECT_EQ(guess("HuggingFaceTB-SmolLM3-3B.jinja"), "chatml");
  EXPECT_EQ(guess("microsoft-Phi-3.5-mini-instruct.jinja"), "phi3");
  EXPECT_EQ(guess("google-gemma-2-2b-it.jinja"), "gemma");
  EXPECT_EQ(guess("mistralai-Ministral-3-14B-Reasoning-2512.jinja"), "mistral");
}

// stories260K has no tokenizer.chat_template: the plain fallback.
TEST(ChatTemplateFiles, StoriesUsesThePlainFallback) {
  auto gguf = GgufFile::open(test::fixture("stories260K/stories260K.gguf"));
  Vocab vocab = vocab_load(*gguf);
  ChatTemplate t = chat_template_for_model(*gguf, vocab, "");
  EXPECT_TRUE(t.uses_fallback());
  EXPECT_EQ(t.apply(kChat, true),
            "System: You are a helpful assistant.\nUser: Hello!\nAssistant: Hi there. How can I help?\n"
            "User: What is 2+2?\nAssistant:");
  ChatTemplate o = chat_template_for_model(*gguf, vocab, "llama2");
  EXPECT_FALSE(o.uses_fallback());
  EXPECT_EQ(o.name(), "llama2");
  EXPECT_EQ(o.apply({{"user", "Hi"}}, true), "<s>[INST] Hi [/INST]");  // stories' BOS text is <s>
}

}  // namespace
}  // namespace tars::engine
