// Tool calls in answers (node/tool_calls.h): the format each real template's
// family writes, answers split into content and calls, and the streaming
// hold-back never letting the start of a call out as content.
#include "node/tool_calls.h"

#include <gtest/gtest.h>

#include "engine/json_schema.h"
#include "support/test_support.h"

namespace tars::node {
namespace {

using nlohmann::json;

const json kTools = json::parse(R"([{"type": "function", "function": {"name": "get_weather"}},
                                    {"type": "function", "function": {"name": "get_time"}}])");

TEST(ToolCalls, FormatFromTheRealTemplates) {
  auto format = [](const char* name) {
    return tool_call_format(test::read_file(test::fixture(std::string("chat-templates/") + name + ".jinja")));
  };
  EXPECT_EQ(format("Qwen-Qwen2.5-7B-Instruct"), ToolCallFormat::kHermes);
  EXPECT_EQ(format("meta-llama-Llama-3.1-8B-Instruct"), ToolCallFormat::kLlama3);
}

TEST(ToolCalls, HermesBlocksAreCallsAndTheRestIsContent) {
  const ParsedAnswer a = parse_tool_calls(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"zone\\\": \\\"CET\\\"}\"}\n</tool_call>",
      ToolCallFormat::kHermes, kTools);
  EXPECT_EQ(a.content, "Let me check.");
  EXPECT_EQ(a.first_call, 14u);
  ASSERT_EQ(a.calls.size(), 2u);
  EXPECT_EQ(a.calls[0].name, "get_weather");
  EXPECT_EQ(a.calls[0].arguments, json({{"city", "Paris"}}));
  EXPECT_EQ(a.calls[1].arguments, json({{"zone", "CET"}}));  // arguments written as JSON text
  // Text after the calls is content too (and kept as written for streams).
  const ParsedAnswer t = parse_tool_calls("<tool_call>{\"name\": \"get_time\"}</tool_call>\nDone.",
                                          ToolCallFormat::kHermes, kTools);
  EXPECT_EQ(t.content, "Done.");
  EXPECT_EQ(t.first_call, 0u);
  EXPECT_EQ(t.after_calls, "\nDone.");
  // The closing tag left out at the very end, and a function without arguments.
  const ParsedAnswer b = parse_tool_calls("<tool_call>{\"name\": \"get_time\"}", ToolCallFormat::kHermes, kTools);
  ASSERT_EQ(b.calls.size(), 1u);
  EXPECT_EQ(b.calls[0].arguments, json::object());
  EXPECT_EQ(b.content, "");
}

TEST(ToolCalls, AnythingDoubtfulIsContent) {
  for (const char* text : {
           "<tool_call>{\"name\": \"launch_rockets\", \"arguments\": {}}</tool_call>",  // not declared
           "<tool_call>{\"name\": \"get_time\", \"arguments\": [1]}</tool_call>",        // not an object
           "<tool_call>{\"name\": get_time}</tool_call>",                                 // not JSON
           "<tool_call></tool_call>",
           "Plain text about <tool_call> tags.",
       }) {
    const ParsedAnswer a = parse_tool_calls(text, ToolCallFormat::kHermes, kTools);
    EXPECT_TRUE(a.calls.empty()) << text;
    EXPECT_EQ(a.content, text) << text;
  }
  EXPECT_TRUE(parse_tool_calls("<tool_call>{\"name\": \"get_time\"}</tool_call>", ToolCallFormat::kNone, kTools)
                  .calls.empty());
}

TEST(ToolCalls, Llama3TheWholeAnswerIsTheCall) {
  const ParsedAnswer a =
      parse_tool_calls(" {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}\n", ToolCallFormat::kLlama3, kTools);
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(a.calls[0].arguments, json({{"city", "Paris"}}));
  EXPECT_EQ(a.content, "");
  for (const char* text : {"It is sunny {\"name\": \"get_weather\"}", "{\"name\": \"nope\", \"parameters\": {}}",
                           "{\"answer\": 42}"}) {
    EXPECT_TRUE(parse_tool_calls(text, ToolCallFormat::kLlama3, kTools).calls.empty()) << text;
  }
}

// A forced call's schema: one call of a declared function (or of the one
// named), arguments as its parameters say ($refs moved along), in the
// family's shape; the text around it makes what parse_tool_calls reads back.
TEST(ToolCalls, ForcedCallSchemaAcceptsExactlyOneCallOfTheTools) {
  const nlohmann::ordered_json tools = nlohmann::ordered_json::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"$ref": "#/$defs/city"}}, "required": ["city"], "$defs": {"city": {"enum": ["Paris"]}}}}},
      {"type": "function", "function": {"name": "ping"}}])");
  auto whole = [](const std::shared_ptr<const engine::JsonSchema>& s, const std::string& text) {
    engine::SchemaPrefix p(s);
    return p.push(text) && p.complete();
  };
  const ForcedCall any = forced_call(ToolCallFormat::kHermes, tools, "");
  EXPECT_EQ(any.before, "<tool_call>\n");
  EXPECT_EQ(any.after, "\n</tool_call>");
  const auto s = engine::JsonSchema::parse(any.schema);
  EXPECT_TRUE(whole(s, R"({"name":"get_weather","arguments":{"city":"Paris"}})"));
  EXPECT_TRUE(whole(s, R"({"arguments":{},"name":"ping"})"));
  EXPECT_FALSE(whole(s, R"({"name":"get_weather","arguments":{"city":"Rome"}})"));
  EXPECT_FALSE(whole(s, R"({"name":"get_weather","arguments":{}})"));
  EXPECT_FALSE(whole(s, R"({"name":"ping","arguments":{"x":1}})"));
  EXPECT_FALSE(whole(s, R"({"name":"nope","arguments":{}})"));
  EXPECT_FALSE(whole(s, R"({"name":"ping"})"));
  const std::string text = any.before + R"({"name":"get_weather","arguments":{"city":"Paris"}})" + any.after;
  const ParsedAnswer a = parse_tool_calls(text, ToolCallFormat::kHermes, tools);
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(a.calls[0].name, "get_weather");
  EXPECT_EQ(a.calls[0].arguments, json({{"city", "Paris"}}));

  const ForcedCall named = forced_call(ToolCallFormat::kLlama3, tools, "ping");
  EXPECT_EQ(named.before, "");
  EXPECT_EQ(named.after, "");
  const auto n = engine::JsonSchema::parse(named.schema);
  EXPECT_TRUE(whole(n, R"({"name":"ping","parameters":{}})"));
  EXPECT_FALSE(whole(n, R"({"name":"ping","arguments":{}})"));
  EXPECT_FALSE(whole(n, R"({"name":"get_weather","parameters":{"city":"Paris"}})"));
  EXPECT_EQ(parse_tool_calls(R"({"name":"ping","parameters":{}})", ToolCallFormat::kLlama3, tools).calls.size(), 1u);
}

// Mistral: after [TOOL_CALLS] (written into the text by the node), a list of
// calls (v0.3) or f[ARGS]{...} per call (Ministral 3); the text before them is
// content; anything doubtful is all content.
TEST(ToolCalls, MistralBothWaysAfterTheMarker) {
  const auto list = parse_tool_calls(
      R"(Sure.[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}])",
      ToolCallFormat::kMistral, kTools);
  ASSERT_EQ(list.calls.size(), 2u);
  EXPECT_EQ(list.content, "Sure.");
  EXPECT_EQ(list.first_call, 5u);
  EXPECT_EQ(list.calls[0].arguments, json({{"city", "Paris"}}));
  EXPECT_EQ(list.calls[1].name, "get_time");
  const auto args = parse_tool_calls(R"([TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{})",
                                     ToolCallFormat::kMistral, kTools);
  ASSERT_EQ(args.calls.size(), 2u);
  EXPECT_EQ(args.content, "");
  EXPECT_EQ(args.calls[0].name, "get_weather");
  EXPECT_EQ(args.calls[1].arguments, json::object());
  for (const char* text : {"[TOOL_CALLS]nope[ARGS]{}", "[TOOL_CALLS]get_weather{}", "[TOOL_CALLS]get_weather[ARGS]{oops",
                           "[TOOL_CALLS] [{\"name\": \"nope\"}]", "[TOOL_CALLS] []", "no marker get_weather[ARGS]{}"}) {
    const auto a = parse_tool_calls(text, ToolCallFormat::kMistral, kTools);
    EXPECT_TRUE(a.calls.empty()) << text;
    EXPECT_EQ(a.content, text);
  }
  EXPECT_EQ(tool_call_format(test::read_file(test::fixture("chat-templates/mistralai-Ministral-3-14B-Reasoning-2512.jinja"))),
            ToolCallFormat::kMistral);
  EXPECT_EQ(tool_call_content_prefix("Let me check.[TOOL_C", ToolCallFormat::kMistral), 13u);
  EXPECT_EQ(tool_call_content_prefix("Let me check.[TOOL_CALLS]get", ToolCallFormat::kMistral), 13u);
}

TEST(ToolCalls, StreamingHoldsBackWhereACallMayBegin) {
  // Every prefix of an answer with a call: what is released never reaches
  // into the call.
  const std::string answer = "Checking.<tool_call>{\"name\": \"get_time\"}</tool_call>";
  const size_t call = answer.find("<tool_call>");
  for (size_t n = 0; n <= answer.size(); ++n) {
    const size_t ready = tool_call_content_prefix(answer.substr(0, n), ToolCallFormat::kHermes);
    EXPECT_LE(ready, std::min(n, call)) << n;
  }
  EXPECT_EQ(tool_call_content_prefix("Checking.<tool", ToolCallFormat::kHermes), 9u);
  EXPECT_EQ(tool_call_content_prefix("a < b", ToolCallFormat::kHermes), 5u);  // '<' then ' ' is not the tag
  EXPECT_EQ(tool_call_content_prefix("  {\"na", ToolCallFormat::kLlama3), 0u);
  EXPECT_EQ(tool_call_content_prefix("  ", ToolCallFormat::kLlama3), 0u);
  EXPECT_EQ(tool_call_content_prefix("Sunny", ToolCallFormat::kLlama3), 5u);
  EXPECT_EQ(tool_call_content_prefix("Sunny", ToolCallFormat::kNone), 5u);
}

TEST(ToolCalls, StreamGivesContentAsItComesAndTheRestAtTheEnd) {
  // Token by token: content until the tag, then the call and the text after it.
  ToolCallStream s(ToolCallFormat::kHermes, kTools);
  std::string sent;
  for (const char* piece : {"Check", "ing.", "<tool", "_call>{\"name\": \"get_time\"}", "</tool_call>", "\nDone.  \n"}) {
    sent += s.push(piece);
  }
  EXPECT_EQ(sent, "Checking.");
  const ToolCallStream::Rest rest = s.finish();
  EXPECT_EQ(rest.content, "\nDone.");  // blanks at its end cut, as there are calls
  ASSERT_EQ(rest.answer.calls.size(), 1u);
  EXPECT_EQ(rest.answer.calls[0].name, "get_time");
  // Without calls, what was held back is content as it was.
  ToolCallStream t(ToolCallFormat::kHermes, kTools);
  EXPECT_EQ(t.push("a <"), "a ");
  EXPECT_EQ(t.finish().content, "<");
  EXPECT_TRUE(t.finish().answer.calls.empty());
  // Without tools, every piece is given out at once and nothing is left.
  ToolCallStream n(ToolCallFormat::kNone, json::array());
  EXPECT_EQ(n.push("<tool_call>"), "<tool_call>");
  EXPECT_EQ(n.finish().content, "");
}

}  // namespace
}  // namespace tars::node
