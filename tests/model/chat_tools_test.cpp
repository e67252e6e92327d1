// Tools and earlier tool calls through the real chat templates of
// ../shared/models/chat-templates. The expected prompts were rendered by
// Jinja2 3.1.6 itself with Hugging Face's settings (an immutable sandbox,
// trim_blocks and lstrip_blocks, tojson as json.dumps with
// ensure_ascii=False) for the same tools and conversation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "engine/chat_template.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

// [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
//   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
JinjaValue weather_tools() {
  JinjaDict params = {{"type", JinjaValue("object")},
                      {"properties", JinjaValue(JinjaDict{{"city", JinjaValue(JinjaDict{{"type", JinjaValue("string")}})}})},
                      {"required", JinjaValue(JinjaList{JinjaValue("city")})}};
  JinjaDict fn = {{"name", JinjaValue("get_weather")}, {"description", JinjaValue("Weather now")},
                  {"parameters", JinjaValue(std::move(params))}};
  return JinjaValue(JinjaList{JinjaValue(JinjaDict{{"type", JinjaValue("function")}, {"function", JinjaValue(std::move(fn))}})});
}

// user asks, the assistant calls get_weather(city = Paris), the tool answers.
std::vector<ChatMessage> weather_chat() {
  ChatMessage call{"assistant", ""};
  call.tool_calls.push_back({"call_1", "get_weather", JinjaValue(JinjaDict{{"city", JinjaValue("Paris")}})});
  ChatMessage result{"tool", "18C"};
  result.tool_call_id = "call_1";
  return {{"user", "Weather in Paris?"}, call, result};
}

ChatTemplate fixture_template(const std::string& name, const std::string& bos) {
  return ChatTemplate(test::read_file(test::fixture("chat-templates/" + name + ".jinja")), bos, "");
}

TEST(ChatTools, QwenRendersToolsCallsAndResultsAsJinja2Does) {
  const std::string want =
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou "
      "may call one or more functions to assist with the user query.\n\nYou are provided with function signatures "
      "within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": "
      "\"get_weather\", \"description\": \"Weather now\", \"parameters\": {\"type\": \"object\", \"properties\": "
      "{\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, "
      "return a json object with function name and arguments within <tool_call></tool_call> XML "
      "tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
      "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": "
      "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n"
      "<tool_response>\n18C\n</tool_response><|im_end|>\n<|im_start|>assistant\n";
  const ChatTemplate t = fixture_template("Qwen-Qwen2.5-7B-Instruct", "");
  EXPECT_TRUE(t.mentions_tools());
  EXPECT_EQ(t.apply(weather_chat(), true, weather_tools()), want);
}

TEST(ChatTools, Llama31RendersToolsCallsAndResultsAsJinja2Does) {
  const std::string want =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge "
      "Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nGiven "
      "the following functions, please respond with a JSON for a function call with its proper arguments that best "
      "answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": dictionary of "
      "argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": "
      "{\n        \"name\": \"get_weather\",\n        \"description\": \"Weather now\",\n        \"parameters\": "
      "{\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n          "
      "          \"type\": \"string\"\n                }\n            },\n            \"required\": [\n           "
      "     \"city\"\n            ]\n        }\n    }\n}\n\nWeather in "
      "Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", "
      "\"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"18C\""
      "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  const ChatTemplate t = fixture_template("meta-llama-Llama-3.1-8B-Instruct", "<|begin_of_text|>");
  EXPECT_EQ(t.apply(weather_chat(), true, weather_tools()), want);
}

TEST(ChatTools, WithoutToolsTheConversationRendersAsBefore) {
  // No tools and no calls: the same prompt as the two-argument apply.
  const ChatTemplate t = fixture_template("Qwen-Qwen2.5-7B-Instruct", "");
  const std::vector<ChatMessage> chat = {{"user", "Hi"}};
  EXPECT_EQ(t.apply(chat, true, JinjaValue::none()), t.apply(chat, true));
  EXPECT_EQ(t.apply(chat, true, JinjaValue(JinjaList{})), t.apply(chat, true));  // an empty list is no tools
}

TEST(ChatTools, TemplatesThatCannotShowToolsSaySo) {
  auto refused = [](const ChatTemplate& t, const std::vector<ChatMessage>& chat, const JinjaValue& tools) {
    try {
      t.apply(chat, true, tools);
      return std::string("accepted");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
  };
  // Gemma 2's template never reads `tools`; the plain format and a built-in cannot either.
  const std::string gemma = refused(fixture_template("google-gemma-2-2b-it", "<bos>"), {{"user", "Hi"}}, weather_tools());
  EXPECT_NE(gemma.find("no place for tools"), std::string::npos) << gemma;
  EXPECT_NE(refused(ChatTemplate("", "", ""), {{"user", "Hi"}}, weather_tools()).find("no place for tools"),
            std::string::npos);
  EXPECT_NE(refused(ChatTemplate::builtin("chatml"), weather_chat(), JinjaValue::none()).find("earlier tool calls"),
            std::string::npos);
}

}  // namespace
}  // namespace tars::engine
