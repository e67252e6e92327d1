// The request-body parsers (node/request_params.h): what they accept, and
// that every bad body is a tars::Error(kInvalidArgument) naming the field,
// never a json exception (which the HTTP layer would turn into a 500).
// fuzz/targets/requests_fuzz.cpp searches the same property at random; the
// cases below are the ones it found, kept as plain tests.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/error.h"
#include "node/request_params.h"

namespace tars::node {
namespace {

using nlohmann::json;

// Runs f, which must throw tars::Error(kInvalidArgument) whose message holds `needle`.
template <class F>
void expect_invalid(F f, const std::string& needle, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << what << ": accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << what;
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << what << ": " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw something else than tars::Error: " << e.what();
  }
}

TEST(GenerationParse, ReadsEveryField) {
  const json body = json::parse(R"({"model": "m", "messages": [{"role": "developer", "content": "S"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
      "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.1, "stop": ["x", "y"],
      "seed": 7, "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 3})");
  const GenerationParams p = generation_parse(body, true);
  EXPECT_EQ(p.model, "m");
  ASSERT_EQ(p.messages.size(), 2u);
  EXPECT_EQ(p.messages[0].role, "system");  // developer is system
  EXPECT_EQ(p.messages[1].content, "ab");   // text parts joined
  EXPECT_EQ(p.max_tokens, 8);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_EQ(p.sampling.top_k, 40);
  EXPECT_EQ(p.sampling.seed, 7u);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
  EXPECT_EQ(p.top_logprobs, 3);
  EXPECT_TRUE(p.cache_prompt);  // llama-server's default
  EXPECT_TRUE(p.split_reasoning);
  EXPECT_EQ(generation_parse(json::parse(R"({"prompt": "def f():", "suffix": "\n    pass"})"), false).suffix,
            "\n    pass");
  const GenerationParams r = generation_parse(
      json::parse(R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y",
                      "reasoning_content": "t"}], "reasoning_format": "none",
                      "chat_template_kwargs": {"enable_thinking": false, "custom": [1]}})"),
      true);
  EXPECT_FALSE(r.split_reasoning);
  EXPECT_EQ(r.messages[1].reasoning_content, "t");
  EXPECT_EQ(json(r.template_variables), json::parse(R"({"enable_thinking": false, "custom": [1]})"));
  EXPECT_FALSE(generation_parse(json::parse(R"({"prompt": "x", "cache_prompt": false})"), false).cache_prompt);

  const GenerationParams b = generation_parse(
      json::parse(R"({"prompt": "x", "logit_bias": {"15": -100, "7": 2.5}, "response_format": {"type": "text"},
                      "best_of": 1, "suffix": ""})"),
      false);
  ASSERT_EQ(b.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(b.sampling.logit_bias[0], (std::pair<int32_t, float>{15, -100.0f}));  // keys in the object's order
  EXPECT_EQ(b.sampling.logit_bias[1], (std::pair<int32_t, float>{7, 2.5f}));

  EXPECT_FALSE(b.json_object);
  EXPECT_TRUE(generation_parse(json::parse(R"({"prompt": "x", "response_format": {"type": "json_object"}})"), false)
                  .json_object);
  EXPECT_TRUE(ollama_generation_parse(json::parse(R"({"model": "m", "prompt": "x", "format": "json"})"),
                                      OllamaEndpoint::kGenerate)
                  .gen.json_object);
  // Structured output: the schema is compiled (engine/json_schema.h) and reaches the engine's options.
  const GenerationParams d = generation_parse(
      json::parse(R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
                      "json_schema": {"name": "person", "strict": true, "schema": {"type": "object",
                        "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false}}}})"),
      true);
  ASSERT_TRUE(d.json_schema);
  EXPECT_FALSE(d.json_object);
  EXPECT_TRUE(engine::SchemaPrefix(d.json_schema).push(R"({"n":)"));
  EXPECT_FALSE(engine::SchemaPrefix(d.json_schema).push(R"({"m":)"));
  const OllamaGenerationParams e = ollama_generation_parse(
      json::parse(R"({"model": "m", "prompt": "x", "format": {"type": "array", "items": {"type": "boolean"}}})"),
      OllamaEndpoint::kGenerate);
  ASSERT_TRUE(e.gen.json_schema);
  EXPECT_TRUE(engine::SchemaPrefix(e.gen.json_schema).push("[true,"));
  EXPECT_FALSE(engine::SchemaPrefix(e.gen.json_schema).push("[1"));
  EXPECT_FALSE(b.json_schema);
  // tool_choice: "required" forces a call of any tool, a function object that one.
  const char* tools = R"("tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}])";
  auto choice = [&](const std::string& tc) {
    return generation_parse(json::parse(R"({"messages": [{"role": "user", "content": "x"}], )" + std::string(tools) +
                                        R"(, "tool_choice": )" + tc + "}"),
                            true)
        .forced_tool;
  };
  EXPECT_EQ(choice(R"("auto")"), "");
  EXPECT_EQ(choice(R"("required")"), "*");
  EXPECT_EQ(choice(R"({"type": "function", "function": {"name": "g"}})"), "g");

  // Token ids, alone or as the one prompt of a list.
  EXPECT_EQ(generation_parse(json::parse(R"({"prompt": [1, 403, 407]})"), false).prompt_parts,
            (std::vector<PromptPart>{{1, ""}, {403, ""}, {407, ""}}));
  EXPECT_EQ(generation_parse(json::parse(R"({"prompt": [[1, 403]]})"), false).prompt_parts,
            (std::vector<PromptPart>{{1, ""}, {403, ""}}));
  expect_invalid([] { generation_parse(json::parse(R"({"prompt": [[1], [2]]})"), false); }, "one prompt per request",
                 "two token prompts");
  expect_invalid([] { generation_parse(json::parse(R"({"prompt": [1, -2]})"), false); }, "not a token id", "-2");
  expect_invalid([] { generation_parse(json::parse(R"({"prompt": [1, "x"]})"), false); }, "one prompt per request",
                 "ids and text");
  expect_invalid([] { generation_parse(json::parse(R"({"prompt": [1], "suffix": "x"})"), false); }, "'suffix'",
                 "ids with a suffix");
  const GenerationParams c = generation_parse(json::parse(R"({"prompt": ["once"], "logprobs": 2})"), false);
  EXPECT_EQ(c.prompt, "once");
  EXPECT_TRUE(c.logprobs);
  EXPECT_EQ(c.top_logprobs, 2);
}

TEST(GenerationParse, BadBodiesNameTheField) {
  const struct {
    const char* body;
    bool chat;
    const char* needle;
  } cases[] = {
      {R"([1])", true, "JSON object"},
      {R"(0)", false, "JSON object"},
      // a content part whose "type" is not a string: value("type", "") threw json's type_error
      {R"({"messages": [{"role": "user", "content": [{"type": 1}]}]})", true, "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": null, "text": "x"}]}]})", true, "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", true, "only text"},
      {R"({"messages": [{"role": 3, "content": "x"}]})", true, "messages[0].role"},
      {R"({"messages": []})", true, "messages"},
      {R"({"prompt": ""})", false, "prompt"},
      {R"({"prompt": "x", "max_tokens": 0.5})", false, "max_tokens"},
      {R"({"prompt": "x", "temperature": "hot"})", false, "temperature"},
      {R"({"prompt": "x", "top_k": 1e300})", false, "top_k"},
      {R"({"prompt": "x", "seed": 0.5})", false, "seed"},
      {R"({"prompt": "x", "stop": [1]})", false, "stop"},
      {R"({"prompt": "x", "stream_options": []})", false, "stream_options"},
      {R"({"prompt": "x", "n": 2})", false, "'n'"},
      {R"({"prompt": "x", "cache_prompt": 1})", false, "cache_prompt"},
      {R"({"messages": [{"role": "user", "content": "x"}], "reasoning_format": "xml"})", true, "reasoning_format"},
      {R"({"prompt": "x", "reasoning_format": "none"})", false, "reasoning_format"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": []})", true, "chat_template_kwargs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"messages": []}})", true,
       "chat_template_kwargs.messages"},
      {R"({"prompt": "x", "chat_template_kwargs": {}})", false, "chat_template_kwargs"},
      {R"({"messages": [{"role": "assistant", "content": "x", "reasoning_content": 5}]})", true,
       "messages[0].reasoning_content"},
      {R"({"messages": [{"role": "user", "content": "x", "reasoning_content": "t"}]})", true,
       "messages[0].reasoning_content"},
      {R"({"prompt": "x", "frobnicate": 1})", false, "frobnicate"},
      {R"({"prompt": "x", "logit_bias": [[1, 2]]})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"a1": 2}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"-1": 2}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"99999999999": 2}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"1": 101}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"1": "up"}})", false, "logit_bias"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}})", true,
       "response_format.json_schema"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
          "json_schema": {"schema": {}}}})", true, "response_format.json_schema.name"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
          "json_schema": {"name": "n", "strict": "yes"}}})", true, "response_format.json_schema.strict"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
          "json_schema": {"name": "n", "schema": "{}"}}})", true, "response_format.json_schema.schema"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
          "json_schema": {"name": "n", "schema": {"type": "object", "properties": {"a": {"type": "string",
          "pattern": "^x"}}}}}})", true, "#/properties/a\": \"pattern\" is not supported"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
          "json_schema": {"name": "n", "schema": {"$ref": "#/$defs/x"}}}})", true, "names nothing"},
      {R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "n"}},
          "ignore_eos": true})", false, "ignore_eos"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
          "json_schema": {"name": "n"}}, "tools": [{"type": "function", "function": {"name": "f"}}]})", true,
       "JSON schema"},
      {R"({"prompt": "x", "response_format": {"type": "yaml"}})", false, "response_format"},
      // accepted by OpenAI, not done by tars: refused, never ignored
      {R"({"prompt": "x", "response_format": {"type": "json_object"}, "ignore_eos": true})", false, "ignore_eos"},
      {R"({"prompt": "x", "response_format": "json"})", false, "response_format"},
      {R"({"prompt": "x", "suffix": 5})", false, "suffix"},
      {R"({"messages": [{"role": "user", "content": "x"}], "suffix": "end"})", true, "suffix"},
      {R"({"prompt": "x", "best_of": 2})", false, "best_of"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})", true, "needs tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})", true, "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval"}]})", true, "tools[0]"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a b"}}]})",
       true, "tools[0].function.name"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}},
          {"type": "function", "function": {"name": "f"}}]})", true, "given twice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f",
          "parameters": "{}"}}]})", true, "tools[0].function.parameters"},
      {R"({"prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}]})", false, "chat"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
          "function": {"name": "f", "arguments": "{not json"}}]}]})", true, "messages[0].tool_calls[0].function.arguments"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"type": "function",
          "function": {"name": "f", "arguments": {"a": 1}}}]}]})", true, "arguments"},
      {R"({"messages": [{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}]})", true,
       "assistant messages"},
      {R"({"messages": [{"role": "tool", "content": "x", "tool_call_id": 5}]})", true, "messages[0].tool_call_id"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"},
          "tools": [{"type": "function", "function": {"name": "f"}}]})", true, "JSON mode"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function"}})", true, "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {"name": "h"}}})", true, "not among the tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": "always"})", true, "tool_choice"},
  };
  for (const auto& c : cases) {
    expect_invalid([&] { generation_parse(json::parse(c.body), c.chat); }, c.needle, c.body);
  }
}

TEST(GenerationParse, ToolsAndToolCallMessages) {
  const GenerationParams p = generation_parse(json::parse(R"({"messages": [
      {"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
          "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18C"}],
      "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
      "tool_choice": "auto", "parallel_tool_calls": false})"),
                                              true);
  ASSERT_EQ(p.messages.size(), 3u);
  ASSERT_EQ(p.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(p.messages[1].tool_calls[0], (ToolCallParam{"call_1", "get_weather", json{{"city", "Paris"}}}));
  EXPECT_EQ(p.messages[1].content, "");
  EXPECT_EQ(p.messages[2].tool_call_id, "call_1");
  EXPECT_EQ(p.messages[2].name, "get_weather");
  ASSERT_EQ(p.tools.size(), 1u);
  EXPECT_EQ(p.tools[0]["function"]["name"], "get_weather");
  // Keys keep the client's order (templates print the schemas as they came).
  const GenerationParams ordered = generation_parse(nlohmann::ordered_json::parse(R"({"messages": [
      {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
          "function": {"name": "f", "arguments": "{\"z\": 1, \"a\": 2}"}}]}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})"),
                                                    true);
  EXPECT_EQ(ordered.tools.dump(), R"([{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])");
  EXPECT_EQ(ordered.messages[0].tool_calls[0].arguments.dump(), R"({"z":1,"a":2})");
  // tool_choice "none": the model is not told of the tools.
  EXPECT_TRUE(generation_parse(json::parse(R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none",
      "tools": [{"type": "function", "function": {"name": "f"}}]})"),
                               true)
                  .tools.empty());
  // Ollama: arguments are an object, the tool's name is tool_name.
  const auto o = ollama_generation_parse(json::parse(R"({"model": "m", "messages": [
      {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
      {"role": "tool", "content": "2", "tool_name": "f"}],
      "tools": [{"type": "function", "function": {"name": "f"}}]})"),
                                         OllamaEndpoint::kChat);
  EXPECT_EQ(o.gen.messages[0].tool_calls[0], (ToolCallParam{"", "f", json{{"x", 1}}}));
  EXPECT_EQ(o.gen.messages[1].name, "f");
  EXPECT_EQ(o.gen.tools.size(), 1u);
}

TEST(EmbeddingParse, ReadsTextsTokenIdsAndOptions) {
  const EmbeddingParams a = embedding_parse(
      json::parse(R"({"model": "e", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 384})"),
      EmbeddingApi::kOpenAI);
  EXPECT_EQ(a.model, "e");
  EXPECT_EQ(a.texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(a.base64);
  EXPECT_EQ(a.dimensions, 384);
  EXPECT_TRUE(a.normalize);

  const EmbeddingParams b = embedding_parse(json::parse(R"({"input": [101, 7, 102]})"), EmbeddingApi::kOpenAI);
  ASSERT_EQ(b.tokens.size(), 1u);
  EXPECT_EQ(b.tokens[0], (std::vector<int32_t>{101, 7, 102}));

  const EmbeddingParams c =
      embedding_parse(json::parse(R"({"texts": "x", "normalize": false, "truncate": false})"), EmbeddingApi::kSeed);
  EXPECT_EQ(c.texts, (std::vector<std::string>{"x"}));
  EXPECT_FALSE(c.normalize);
  EXPECT_FALSE(c.truncate);
}

TEST(EmbeddingParse, BadBodiesNameTheField) {
  const struct {
    const char* body;
    EmbeddingApi api;
    const char* needle;
  } cases[] = {
      {R"("x")", EmbeddingApi::kOpenAI, "JSON object"},
      {R"({})", EmbeddingApi::kOpenAI, "'input' is required"},
      {R"({"input": []})", EmbeddingApi::kOpenAI, "empty list"},
      {R"({"input": [""]})", EmbeddingApi::kOpenAI, "empty string"},
      {R"({"input": ["a", [1]]})", EmbeddingApi::kOpenAI, "'input'[1]"},
      {R"({"input": [[1], "a"]})", EmbeddingApi::kOpenAI, "'input'[1]"},
      {R"({"input": [[-1]]})", EmbeddingApi::kOpenAI, "token ids"},
      {R"({"input": [[1e300]]})", EmbeddingApi::kOpenAI, "token ids"},
      {R"({"input": 5})", EmbeddingApi::kOpenAI, "'input'"},
      {R"({"input": "a", "encoding_format": "hex"})", EmbeddingApi::kOpenAI, "encoding_format"},
      {R"({"input": "a", "dimensions": 1.5})", EmbeddingApi::kOpenAI, "dimensions"},
      {R"({"input": "a", "normalize": 1})", EmbeddingApi::kOpenAI, "normalize"},
      {R"({"input": "a", "model": 1})", EmbeddingApi::kOpenAI, "model"},
      {R"({"input": "a", "dimensions": 3})", EmbeddingApi::kSeed, "'dimensions' is not a known parameter"},
  };
  for (const auto& c : cases) {
    expect_invalid([&] { embedding_parse(json::parse(c.body), c.api); }, c.needle, c.body);
  }
  json many = {{"input", std::vector<std::string>(kMaxEmbeddingInputs + 1, "x")}};
  expect_invalid([&] { embedding_parse(many, EmbeddingApi::kOpenAI); }, "at most 2048", "2049 inputs");
}

TEST(TokenizeParse, ReadsTheFieldsAndRefusesBadOnes) {
  const TokenizeParams t =
      tokenize_parse(json::parse(R"({"model": "m", "content": "", "add_special": true, "with_pieces": true})"));
  EXPECT_EQ(t.model, "m");
  EXPECT_EQ(t.content, "");
  EXPECT_TRUE(t.add_special);
  EXPECT_TRUE(t.parse_special);
  EXPECT_TRUE(t.with_pieces);
  EXPECT_EQ(detokenize_parse(json::parse(R"({"tokens": [1, 0, 2147483647]})")).tokens,
            (std::vector<int32_t>{1, 0, INT32_MAX}));
  const struct {
    const char* body;
    bool tokenize;
    const char* needle;
  } cases[] = {
      {R"([])", true, "JSON object"},
      {R"({})", true, "'content' is required"},
      {R"({"content": 5})", true, "content"},
      {R"({"content": "x", "add_special": 1})", true, "add_special"},
      {R"({"content": "x", "text": "y"})", true, "'text' is not a known parameter"},
      {R"({"content": "x", "model": 3})", true, "model"},
      {R"({})", false, "'tokens' is required"},
      {R"({"tokens": "1 2"})", false, "tokens"},
      {R"({"tokens": [1, -1]})", false, "tokens[1]"},
      {R"({"tokens": [1.5]})", false, "tokens[0]"},
      {R"({"tokens": [2147483648]})", false, "tokens[0]"},
      {R"({"tokens": [18446744073709551615]})", false, "tokens[0]"},
  };
  for (const auto& c : cases) {
    expect_invalid(
        [&] {
          if (c.tokenize) tokenize_parse(json::parse(c.body));
          else detokenize_parse(json::parse(c.body));
        },
        c.needle, c.body);
  }
}

TEST(OllamaParse, ChatReadsMessagesOptionsAndOllamasDefaults) {
  const OllamaGenerationParams c = ollama_generation_parse(
      json::parse(R"({"model": "m", "messages": [{"role": "system", "content": "S"},
          {"role": "user", "content": "hi", "images": []},
          {"role": "assistant", "content": "yo", "thinking": "", "tool_calls": []},
          {"role": "tool", "content": "42", "tool_name": "f"}],
          "keep_alive": "5m", "format": "", "think": false, "tools": [],
          "options": {"temperature": 0.2, "top_k": 5, "top_p": 0.5, "min_p": 0.1, "seed": 3, "num_predict": 7,
                      "stop": ["a", "b"], "repeat_penalty": 1.3, "repeat_last_n": 16, "presence_penalty": 0.5,
                      "frequency_penalty": -0.5, "num_ctx": 8192, "num_gpu": 99, "use_mmap": true,
                      "typical_p": 1.0, "mirostat": 0}})"),
      OllamaEndpoint::kChat);
  const GenerationParams& p = c.gen;
  EXPECT_FALSE(c.load_only);
  EXPECT_TRUE(p.chat);
  EXPECT_TRUE(p.stream);  // Ollama streams unless told not to
  EXPECT_EQ(p.model, "m");
  ASSERT_EQ(p.messages.size(), 4u);
  EXPECT_EQ(p.messages[3].role, "tool");
  EXPECT_EQ(p.messages[3].content, "42");
  EXPECT_EQ(p.messages[3].name, "f");  // Ollama's tool_name
  EXPECT_EQ(p.template_variables, nlohmann::ordered_json::parse(R"({"enable_thinking": false})"));  // think: false
  EXPECT_FALSE(p.require_reasoning);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.2f);
  EXPECT_EQ(p.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.5f);
  EXPECT_FLOAT_EQ(p.sampling.min_p, 0.1f);
  EXPECT_EQ(p.sampling.seed, 3u);
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_FLOAT_EQ(p.sampling.repeat_penalty, 1.3f);
  EXPECT_EQ(p.sampling.penalty_last_n, 16);
  EXPECT_FLOAT_EQ(p.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(p.sampling.frequency_penalty, -0.5f);

  // Ollama's defaults, not OpenAI's.
  const OllamaGenerationParams d = ollama_generation_parse(
      json::parse(R"({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": false})"),
      OllamaEndpoint::kChat);
  EXPECT_FALSE(d.gen.stream);
  EXPECT_FLOAT_EQ(d.gen.sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(d.gen.sampling.min_p, 0.0f);
  EXPECT_FLOAT_EQ(d.gen.sampling.repeat_penalty, 1.1f);
  EXPECT_EQ(d.gen.max_tokens, -1);
  // num_predict -1 and -2: no limit.
  for (const char* n : {"-1", "-2"}) {
    const auto q = ollama_generation_parse(
        json::parse(std::string(R"({"model": "m", "prompt": "x", "options": {"num_predict": )") + n + "}}"),
        OllamaEndpoint::kGenerate);
    EXPECT_EQ(q.gen.max_tokens, -1) << n;
  }
  // No messages: load the model only.
  EXPECT_TRUE(ollama_generation_parse(json::parse(R"({"model": "m"})"), OllamaEndpoint::kChat).load_only);
  EXPECT_TRUE(ollama_generation_parse(json::parse(R"({"model": "m", "messages": []})"), OllamaEndpoint::kChat)
                  .load_only);
}

TEST(OllamaParse, KeepAliveIsSecondsOrAGoDuration) {
  auto ms = [](const std::string& value) {
    return ollama_generation_parse(json::parse(R"({"model": "m", "prompt": "x", "keep_alive": )" + value + "}"),
                                   OllamaEndpoint::kGenerate)
        .keep_alive_ms;
  };
  EXPECT_EQ(ollama_generation_parse(json::parse(R"({"model": "m"})"), OllamaEndpoint::kChat).keep_alive_ms,
            std::nullopt);
  EXPECT_EQ(ms("null"), std::nullopt);
  EXPECT_EQ(ms("300"), 300'000);
  EXPECT_EQ(ms("0"), 0);
  EXPECT_EQ(ms("1.5"), 1'500);
  EXPECT_EQ(ms("-1"), kKeepAliveForever);
  EXPECT_EQ(ms(R"("5m")"), 300'000);
  EXPECT_EQ(ms(R"("1h30m")"), 5'400'000);
  EXPECT_EQ(ms(R"("2h45m10.5s")"), 9'910'500);
  EXPECT_EQ(ms(R"("300ms")"), 300);
  EXPECT_EQ(ms(R"("1.5s")"), 1'500);
  EXPECT_EQ(ms(R"("1500000us")"), 1'500);
  EXPECT_EQ(ms(R"("0")"), 0);
  EXPECT_EQ(ms(R"("0s")"), 0);
  EXPECT_EQ(ms(R"("+10s")"), 10'000);
  EXPECT_EQ(ms(R"("-1")"), kKeepAliveForever);
  EXPECT_EQ(ms(R"("-5m")"), kKeepAliveForever);
  EXPECT_EQ(ms(R"("600")"), 600'000);  // a plain number string: seconds
  for (const char* bad : {R"("")", R"("5 minutes")", R"("m5")", R"("5m30")", R"("5x")", R"("1.2.3s")", R"(".s")",
                          R"("-")", "true", "[]", "{}"}) {
    expect_invalid([&] { ms(bad); }, "keep_alive", bad);
  }
  // The embedding endpoints check it the same way.
  expect_invalid([] { ollama_embed_parse(json::parse(R"({"model": "e", "input": "a", "keep_alive": "soon"})"), false); },
                 "keep_alive", "embed");
}

TEST(OllamaParse, GenerateTemplatesThePromptUnlessRaw) {
  const auto t = ollama_generation_parse(json::parse(R"({"model": "m", "prompt": "P", "system": "S"})"),
                                         OllamaEndpoint::kGenerate);
  EXPECT_TRUE(t.gen.chat);
  ASSERT_EQ(t.gen.messages.size(), 2u);
  EXPECT_EQ(t.gen.messages[0], (MessageParam{"system", "S", {}, "", "", ""}));
  EXPECT_EQ(t.gen.messages[1], (MessageParam{"user", "P", {}, "", "", ""}));
  const auto r = ollama_generation_parse(json::parse(R"({"model": "m", "prompt": "<s>P", "raw": true})"),
                                         OllamaEndpoint::kGenerate);
  EXPECT_FALSE(r.gen.chat);
  EXPECT_TRUE(r.gen.templated_prompt);
  EXPECT_EQ(r.gen.prompt, "<s>P");
  EXPECT_FALSE(r.load_only);
  EXPECT_TRUE(ollama_generation_parse(json::parse(R"({"model": "m", "prompt": ""})"), OllamaEndpoint::kGenerate)
                  .load_only);
  EXPECT_FALSE(ollama_generation_parse(json::parse(R"({"model": "m", "system": "S"})"), OllamaEndpoint::kGenerate)
                   .load_only);
  // A suffix: fill in the middle, no template.
  const auto f = ollama_generation_parse(json::parse(R"({"model": "m", "prompt": "def f():", "suffix": "pass"})"),
                                         OllamaEndpoint::kGenerate);
  EXPECT_FALSE(f.gen.chat);
  EXPECT_FALSE(f.gen.templated_prompt);
  EXPECT_EQ(f.gen.prompt, "def f():");
  EXPECT_EQ(f.gen.suffix, "pass");
  // Nothing before the gap (the start of a file) is a fill, not a load.
  const auto start = ollama_generation_parse(json::parse(R"({"model": "m", "suffix": "pass"})"),
                                             OllamaEndpoint::kGenerate);
  EXPECT_FALSE(start.load_only);
  EXPECT_EQ(start.gen.prompt, "");
  EXPECT_EQ(generation_parse(json::parse(R"({"prompt": "", "suffix": "pass"})"), false).suffix, "pass");
}

TEST(OllamaParse, BadBodiesNameTheField) {
  const struct {
    const char* body;
    bool chat;
    const char* needle;
  } cases[] = {
      {R"([])", true, "JSON object"},
      {R"({"messages": [{"role": "user", "content": "x"}]})", true, "'model' is required"},
      {R"({"model": 1, "prompt": "x"})", false, "model"},
      {R"({"model": "m", "messages": {}})", true, "messages"},
      {R"({"model": "m", "messages": [3]})", true, "messages[0]"},
      {R"({"model": "m", "messages": [{"role": "robot", "content": "x"}]})", true, "messages[0].role"},
      {R"({"model": "m", "messages": [{"role": "user", "content": ["x"]}]})", true, "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]})", true,
       "messages[0].images"},
      {R"({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]})", true,
       "messages[0].tool_calls[0].function.name"},
      {R"({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f",
          "arguments": [1]}}]}]})", true, "must be an object"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x", "name": "n"}]})", true, "messages[0].name"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", true,
       "tools[0].function"},
      {R"({"model": "m", "prompt": "x", "format": "yaml"})", false, "format"},
      {R"({"model": "m", "prompt": "x", "format": 1})", false, "format"},
      {R"({"model": "m", "prompt": "x", "format": {"type": "object", "properties": {"a": {"minimum": 1}}}})", false,
       "'format' cannot be used: JSON schema at \"#/properties/a\": \"minimum\" is not supported"},
      {R"({"model": "m", "prompt": "x", "format": ["json"]})", false, "format"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "format": {"type": "object"},
          "tools": [{"type": "function", "function": {"name": "f"}}]})", true, "tools"},
      {R"({"model": "m", "prompt": "x", "think": "high"})", false, "think"},
      {R"({"model": "m", "prompt": "x", "raw": true, "think": true})", false, "raw"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x", "thinking": "t"}]})", true,
       "messages[0].thinking"},
      {R"({"model": "m", "messages": [{"role": "assistant", "content": "x", "thinking": 1}]})", true,
       "messages[0].thinking"},
      {R"({"model": "m", "prompt": "x", "images": ["aGk="]})", false, "images"},
      {R"({"model": "m", "prompt": "x", "template": "{{ .Prompt }}"})", false, "template"},
      {R"({"model": "m", "prompt": "x", "context": [1, 2]})", false, "context"},
      {R"({"model": "m", "prompt": "x", "suffix": "y", "raw": true})", false, "suffix"},
      {R"({"model": "m", "prompt": "x", "suffix": "y", "system": "S"})", false, "system"},
      {R"({"model": "m", "prompt": "x", "suffix": 1})", false, "suffix"},
      {R"({"model": "m", "prompt": "x", "raw": true, "system": "S"})", false, "system"},
      {R"({"model": "m", "prompt": 5})", false, "prompt"},
      {R"({"model": "m", "prompt": "x", "stream": "yes"})", false, "stream"},
      {R"({"model": "m", "prompt": "x", "keep_alive": []})", false, "keep_alive"},
      {R"({"model": "m", "prompt": "x", "options": []})", false, "options"},
      {R"({"model": "m", "prompt": "x", "options": {"temprature": 0}})", false, "options.temprature"},
      {R"({"model": "m", "prompt": "x", "options": {"temperature": "hot"}})", false, "options.temperature"},
      {R"({"model": "m", "prompt": "x", "options": {"top_k": 1e300}})", false, "options.top_k"},
      {R"({"model": "m", "prompt": "x", "options": {"num_predict": 0}})", false, "options.num_predict"},
      {R"({"model": "m", "prompt": "x", "options": {"num_predict": -3}})", false, "options.num_predict"},
      {R"({"model": "m", "prompt": "x", "options": {"stop": [1]}})", false, "options.stop"},
      {R"({"model": "m", "prompt": "x", "options": {"num_ctx": "big"}})", false, "options.num_ctx"},
      {R"({"model": "m", "prompt": "x", "options": {"use_mmap": 1}})", false, "options.use_mmap"},
      {R"({"model": "m", "prompt": "x", "options": {"mirostat": 2}})", false, "options.mirostat"},
      {R"({"model": "m", "prompt": "x", "options": {"typical_p": 0.5}})", false, "options.typical_p"},
      {R"({"model": "m", "prompt": "x", "top_logprobs": 3})", false, "top_logprobs"},
      {R"({"model": "m", "prompt": "x", "frobnicate": 1})", false, "frobnicate"},
  };
  for (const auto& c : cases) {
    expect_invalid(
        [&] {
          ollama_generation_parse(json::parse(c.body), c.chat ? OllamaEndpoint::kChat : OllamaEndpoint::kGenerate);
        },
        c.needle, c.body);
  }
}

TEST(OllamaParse, EmbedAndShow) {
  const EmbeddingParams e = ollama_embed_parse(
      json::parse(R"({"model": "e", "input": ["a", "b"], "truncate": false, "keep_alive": 300,
                      "options": {"num_thread": 4}})"),
      false);
  EXPECT_EQ(e.model, "e");
  EXPECT_EQ(e.texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(e.truncate);
  EXPECT_TRUE(e.normalize);
  const EmbeddingParams legacy = ollama_embed_parse(json::parse(R"({"model": "e", "prompt": "a"})"), true);
  EXPECT_EQ(legacy.texts, (std::vector<std::string>{"a"}));
  EXPECT_FALSE(legacy.normalize);  // the older endpoint gives the pooled vector as it is
  EXPECT_TRUE(ollama_embed_parse(json::parse(R"({"model": "e", "prompt": ""})"), true).texts.empty());
  EXPECT_EQ(ollama_show_parse(json::parse(R"({"model": "m", "verbose": true})")), "m");
  EXPECT_EQ(ollama_show_parse(json::parse(R"({"name": "m"})")), "m");  // the older field

  const struct {
    const char* body;
    int which;  // 0 embed, 1 embeddings, 2 show
    const char* needle;
  } cases[] = {
      {R"({"input": "x"})", 0, "'model' is required"},
      {R"({"model": "e"})", 0, "'input' is required"},
      {R"({"model": "e", "input": []})", 0, "input"},
      {R"({"model": "e", "input": "x", "truncate": "no"})", 0, "truncate"},
      {R"({"model": "e", "input": "x", "dimensions": 0})", 0, "dimensions"},
      {R"({"model": "e", "input": "x", "options": {"bogus": 1}})", 0, "options.bogus"},
      {R"({"model": "e", "input": "x", "prompt": "y"})", 0, "prompt"},
      {R"({"model": "e", "prompt": 3})", 1, "prompt"},
      {R"({"model": "e", "input": "x"})", 1, "input"},
      {R"({})", 2, "'model' is required"},
      {R"({"name": 3})", 2, "name"},
      {R"({"model": "m", "verbose": "yes"})", 2, "verbose"},
  };
  for (const auto& c : cases) {
    expect_invalid(
        [&] {
          if (c.which == 2) ollama_show_parse(json::parse(c.body));
          else ollama_embed_parse(json::parse(c.body), c.which == 1);
        },
        c.needle, c.body);
  }
}

TEST(AnthropicParse, BlocksBecomeTheChatsMessages) {
  const json body = json::parse(R"({"model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "A"},
      {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}],
    "messages": [
      {"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": [{"type": "thinking", "thinking": "Look it up.", "signature": "s"},
        {"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "storm", "is_error": true},
        {"type": "text", "text": "And tomorrow?"}]}],
    "stop_sequences": ["END"], "temperature": 0.25, "top_p": 0.5, "top_k": 7, "stream": true,
    "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}},
              {"name": "get_time", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "get_time"}, "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "u"}})");
  const AnthropicParams a = anthropic_parse(body, false);
  const GenerationParams& p = a.gen;
  EXPECT_TRUE(p.chat);
  EXPECT_EQ(p.model, "m");
  EXPECT_EQ(p.max_tokens, 64);
  EXPECT_TRUE(p.stream);
  EXPECT_EQ(p.stop, std::vector<std::string>{"END"});
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.25f);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.5f);
  EXPECT_EQ(p.sampling.top_k, 7);
  EXPECT_TRUE(a.thinking);
  EXPECT_EQ(p.template_variables["enable_thinking"], true);
  EXPECT_TRUE(p.require_reasoning);
  EXPECT_EQ(p.forced_tool, "get_time");
  ASSERT_EQ(p.tools.size(), 2u);
  EXPECT_EQ(p.tools[0]["type"], "function");
  EXPECT_EQ(p.tools[0]["function"]["name"], "get_weather");
  EXPECT_EQ(p.tools[0]["function"]["parameters"], json({{"type", "object"}}));
  // system, user, assistant (thought, text, two calls), two tool results, then the user's text.
  ASSERT_EQ(p.messages.size(), 6u);
  EXPECT_EQ(p.messages[0].role, "system");
  EXPECT_EQ(p.messages[0].content, "A\n\nB");
  EXPECT_EQ(p.messages[1].role, "user");
  const MessageParam& asst = p.messages[2];
  EXPECT_EQ(asst.role, "assistant");
  EXPECT_EQ(asst.content, "Checking.");
  EXPECT_EQ(asst.reasoning_content, "Look it up.");
  ASSERT_EQ(asst.tool_calls.size(), 2u);
  EXPECT_EQ(asst.tool_calls[0].id, "toolu_1");
  EXPECT_EQ(asst.tool_calls[0].name, "get_weather");
  EXPECT_EQ(asst.tool_calls[0].arguments, json({{"city", "Paris"}}));
  EXPECT_EQ(p.messages[3].role, "tool");
  EXPECT_EQ(p.messages[3].tool_call_id, "toolu_2");
  EXPECT_EQ(p.messages[3].name, "get_time");  // from the call it answers
  EXPECT_EQ(p.messages[3].content, "noon");
  EXPECT_EQ(p.messages[4].name, "get_weather");
  EXPECT_EQ(p.messages[4].content, "Error: storm");
  EXPECT_EQ(p.messages[5].role, "user");
  EXPECT_EQ(p.messages[5].content, "And tomorrow?");

  // The same chat as a count: the generation fields are not its to take.
  json count = body;
  for (const char* k : {"max_tokens", "stop_sequences", "temperature", "top_p", "top_k", "stream", "metadata"}) count.erase(k);
  EXPECT_EQ(anthropic_parse(count, true).gen.messages, p.messages);
  expect_invalid([&] { anthropic_parse(body, true); }, "is not a known parameter", "count_tokens with max_tokens");
  // tool_choice any / none, thinking disabled.
  json other = body;
  other["tool_choice"] = {{"type", "any"}};
  other["thinking"] = {{"type", "disabled"}};
  const AnthropicParams o = anthropic_parse(other, false);
  EXPECT_EQ(o.gen.forced_tool, "*");
  EXPECT_FALSE(o.thinking);
  EXPECT_EQ(o.gen.template_variables["enable_thinking"], false);
  other["tool_choice"] = {{"type", "none"}};
  EXPECT_TRUE(anthropic_parse(other, false).gen.tools.empty());
}

TEST(AnthropicParse, BadBodiesNameTheField) {
  const json good = json::parse(R"({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})");
  EXPECT_NO_THROW(anthropic_parse(good, false));
  struct Case {
    const char* patch;  // a JSON merge patch on the good body
    const char* needle;
  };
  const Case cases[] = {
      {R"({"model": null})", "'model' is required"},
      {R"({"max_tokens": null})", "'max_tokens' is required"},
      {R"({"max_tokens": 0})", "max_tokens"},
      {R"({"messages": []})", "at least one message"},
      {R"({"messages": "hi"})", "'messages' must be an array"},
      {R"({"messages": [{"role": "system", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": "x", "name": "n"}]})", "messages[0].name"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]})", "image block"},
      {R"({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]})",
       "belong to assistant turns"},
      {R"({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]})", "tool_use_id"},
      {R"({"messages": [{"role": "user", "content": [{"type": 7}]}]})", "\"type\""},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})", "prefilled"},
      {R"({"system": [{"type": 0.5, "text": "x"}]})", "system[0]"},
      {R"({"temperature": 1.5})", "temperature"},
      {R"({"stop_sequences": [""]})", "stop_sequences"},
      {R"({"tools": [{"name": "f"}]})", "input_schema"},
      {R"({"tools": [{"type": "bash_20250124", "name": "bash"}]})", "server tools"},
      {R"({"tools": [{"name": "bad name", "input_schema": {}}]})", "tools[0].function.name"},
      {R"({"tool_choice": {"type": "any"}})", "needs tools"},
      {R"({"tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "tool", "name": "g"}})", "not among the tools"},
      {R"({"thinking": {"type": "sometimes"}})", "thinking.type"},
      {R"({"colour": "red"})", "'colour'"},
  };
  for (const Case& c : cases) {
    json body = good;
    body.merge_patch(json::parse(c.patch));
    expect_invalid([&] { anthropic_parse(body, false); }, c.needle, c.patch);
  }
}

TEST(ResponsesParse, ItemsBecomeTheChatsMessages) {
  const json body = json::parse(R"({"model": "m", "instructions": "Be brief.", "max_output_tokens": 32,
    "input": [{"role": "developer", "content": "Use tools."},
              {"role": "user", "content": [{"type": "input_text", "text": "Weather"}, {"type": "input_text", "text": "?"}]},
              {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "Look."}]},
              {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
              {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
              {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
              {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
              {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "Sunny"}]}],
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
              {"type": "function", "name": "get_time"}],
    "tool_choice": {"type": "function", "name": "get_time"}, "temperature": 0.5, "top_p": 0.25, "stream": true,
    "truncation": "auto", "reasoning": {"effort": "none"}})");
  const ResponsesParams r = responses_parse(body);
  const GenerationParams& p = r.gen;
  EXPECT_EQ(p.max_tokens, 32);
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.truncate_history);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.25f);
  EXPECT_EQ(p.forced_tool, "get_time");
  EXPECT_EQ(p.template_variables["enable_thinking"], false);
  ASSERT_EQ(p.tools.size(), 2u);
  EXPECT_EQ(p.tools[1]["function"]["name"], "get_time");
  ASSERT_EQ(p.messages.size(), 6u);
  EXPECT_EQ(p.messages[0].role, "system");
  EXPECT_EQ(p.messages[0].content, "Be brief.");
  EXPECT_EQ(p.messages[1].role, "system");  // developer
  EXPECT_EQ(p.messages[2].content, "Weather?");
  const MessageParam& a = p.messages[3];
  EXPECT_EQ(a.role, "assistant");
  EXPECT_EQ(a.content, "Checking.");
  EXPECT_EQ(a.reasoning_content, "Look.");
  ASSERT_EQ(a.tool_calls.size(), 2u);  // both calls in the assistant's turn
  EXPECT_EQ(a.tool_calls[0].arguments, json({{"city", "Paris"}}));
  EXPECT_EQ(p.messages[4].role, "tool");
  EXPECT_EQ(p.messages[4].name, "get_time");
  EXPECT_EQ(p.messages[4].content, "noon");
  EXPECT_EQ(p.messages[5].tool_call_id, "call_1");
  EXPECT_EQ(p.messages[5].content, "Sunny");
  EXPECT_EQ(r.echo["instructions"], "Be brief.");
  EXPECT_EQ(r.echo["tool_choice"], body["tool_choice"]);
  // A string input is the user's turn.
  const ResponsesParams plain = responses_parse(json{{"model", "m"}, {"input", "hi"}});
  ASSERT_EQ(plain.gen.messages.size(), 1u);
  EXPECT_EQ(plain.gen.messages[0].role, "user");
  EXPECT_EQ(plain.gen.max_tokens, -1);
}

TEST(ResponsesParse, BadBodiesNameTheField) {
  const json good = json{{"model", "m"}, {"input", "hi"}};
  EXPECT_NO_THROW(responses_parse(good));
  struct Case {
    const char* patch;
    const char* needle;
  };
  const Case cases[] = {
      {R"({"model": null})", "'model' is required"},
      {R"({"input": null})", "'input' is required"},
      {R"({"input": 5})", "'input' must be"},
      {R"({"input": []})", "at least one item"},
      {R"({"input": [{"role": "assistant", "content": "x"}]})", "must end with something to answer"},
      {R"({"input": [{"role": "tool", "content": "x"}]})", "input[0].role"},
      {R"({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})", "input_file"},
      {R"({"input": [{"type": "item_reference", "id": "x"}]})", "item_reference"},
      {R"({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "nope"}]})", "arguments"},
      {R"({"input": [{"type": "function_call_output", "call_id": "c"}]})", "input[0].output"},
      {R"({"input": [{"type": "computer_call"}]})", "input[0].type"},
      {R"({"previous_response_id": 5})", "previous_response_id"},
      {R"({"previous_response_id": ""})", "previous_response_id"},
      {R"({"store": "yes"})", "store"},
      {R"({"background": true})", "background"},
      {R"({"temperature": 2.5})", "temperature"},
      {R"({"max_output_tokens": 0})", "max_output_tokens"},
      {R"({"tools": [{"type": "file_search"}]})", "built-in tools"},
      {R"({"tools": [{"type": "function", "name": "a b"}]})", "tools[0].function.name"},
      {R"({"tool_choice": "required"})", "needs tools"},
      {R"({"tool_choice": {"type": "function", "name": "g"}})", "tool_choice"},
      {R"({"text": {"format": {"type": "xml"}}})", "text.format.type"},
      {R"({"text": {"format": {"type": "json_schema", "schema": {}}}})", "text.format.name"},
      {R"({"reasoning": {"effort": "max"}})", "reasoning.effort"},
      {R"({"truncation": "sometimes"})", "truncation"},
      {R"({"colour": "red"})", "'colour'"},
  };
  for (const Case& c : cases) {
    json body = good;
    body.merge_patch(json::parse(c.patch));
    expect_invalid([&] { responses_parse(body); }, c.needle, c.patch);
  }
}

TEST(OllamaParse, NumKeepIsThePromptsKeptStart) {
  auto keep = [](const char* options) {
    return ollama_generation_parse(json::parse(std::string(R"({"model": "m", "prompt": "x", "options": )") + options + "}"),
                                   OllamaEndpoint::kGenerate)
        .gen;
  };
  EXPECT_EQ(keep("{}").prompt_keep, 4);  // Ollama's default
  EXPECT_TRUE(keep("{}").truncate_history);
  EXPECT_EQ(keep(R"({"num_keep": 0})").prompt_keep, 0);
  EXPECT_EQ(keep(R"({"num_keep": 24})").prompt_keep, 24);
  EXPECT_EQ(keep(R"({"num_keep": -1})").prompt_keep, 4);
  expect_invalid([&] { keep(R"({"num_keep": 1.5})"); }, "options.num_keep", "a float");
  expect_invalid([&] { keep(R"({"num_keep": -2})"); }, "options.num_keep", "below -1");
  // Not on OpenAI's endpoints, which refuse what does not fit.
  EXPECT_FALSE(generation_parse(json::parse(R"({"prompt": "x"})"), false).truncate_history);
}

TEST(EmbeddingParse, LlamaServerShape) {
  const EmbeddingParams a = embedding_parse(json::parse(R"({"content": ["a", "b"], "embd_normalize": 1})"), EmbeddingApi::kLlama);
  EXPECT_EQ(a.texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(a.p_norm, 1);
  EXPECT_FALSE(a.normalize);  // the handler applies p_norm
  EXPECT_TRUE(a.truncate);
  const EmbeddingParams b = embedding_parse(json::parse(R"({"input": [[101, 102]]})"), EmbeddingApi::kLlama);
  EXPECT_EQ(b.tokens, (std::vector<std::vector<int32_t>>{{101, 102}}));
  EXPECT_EQ(b.p_norm, 2);  // Euclidean by default
  expect_invalid([] { embedding_parse(json::parse(R"({})"), EmbeddingApi::kLlama); }, "'content' is required", "none");
  expect_invalid([] { embedding_parse(json::parse(R"({"content": "a", "embd_normalize": -2})"), EmbeddingApi::kLlama); },
                 "embd_normalize", "below -1");
  expect_invalid([] { embedding_parse(json::parse(R"({"content": "a", "normalize": true})"), EmbeddingApi::kLlama); },
                 "'normalize' is not a known parameter", "OpenAI's field");
}

TEST(LlamaCompletionParse, PromptsOfTextAndIds) {
  auto parts = [](const char* body) { return llama_completion_parse(json::parse(body), false).gen.prompt_parts; };
  EXPECT_EQ(parts(R"({"prompt": "Once"})"), (std::vector<PromptPart>{{-1, "Once"}}));
  EXPECT_EQ(parts(R"({"prompt": [1, 2, 3]})"), (std::vector<PromptPart>{{1, ""}, {2, ""}, {3, ""}}));
  EXPECT_EQ(parts(R"({"prompt": [1, "a", 2]})"), (std::vector<PromptPart>{{1, ""}, {-1, "a"}, {2, ""}}));
  // One prompt in a list of one.
  EXPECT_EQ(parts(R"({"prompt": ["Once"]})"), (std::vector<PromptPart>{{-1, "Once"}}));
  EXPECT_EQ(parts(R"({"prompt": [[5, "b"]]})"), (std::vector<PromptPart>{{5, ""}, {-1, "b"}}));
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": ["a", "b"]})"), false); },
                 "one prompt per request", "two prompts");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": [[1], [2]]})"), false); },
                 "one prompt per request", "two token prompts");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": [1, 2.5]})"), false); }, "prompt[1]",
                 "a float id");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": [1, -1]})"), false); }, "prompt[1]",
                 "a negative id");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": ""})"), false); }, "must not be empty",
                 "empty");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": {"x": 1}})"), false); }, "'prompt'",
                 "an object");
  expect_invalid([] { llama_completion_parse(json::parse(R"({})"), false); }, "'prompt' is required", "none");
}

TEST(LlamaCompletionParse, ReadsTheOptions) {
  const LlamaCompletionParams p = llama_completion_parse(
      json::parse(R"({"prompt": "x", "n_predict": 0, "temperature": -1, "top_k": -5, "top_p": 0.5, "min_p": 0.2,
          "repeat_penalty": 1.2, "repeat_last_n": -1, "seed": 42, "stop": ["a", ""], "n_probs": 3,
          "return_tokens": true, "stream": true, "cache_prompt": false, "logit_bias": [[7, 2.5], [9, false]],
          "response_fields": ["content", "timings/predicted_n"], "t_max_predict_ms": 250, "n_indent": 4,
          "id_slot": 1, "n_keep": -1, "mirostat": 0, "typical_p": 1.0, "grammar": ""})"),
      false);
  const GenerationParams& g = p.gen;
  EXPECT_EQ(g.max_tokens, 0);
  EXPECT_EQ(g.sampling.temperature, 0);  // below zero: greedy
  EXPECT_EQ(g.sampling.top_k, 0);        // below zero: off
  EXPECT_FLOAT_EQ(g.sampling.top_p, 0.5f);
  EXPECT_FLOAT_EQ(g.sampling.min_p, 0.2f);
  EXPECT_FLOAT_EQ(g.sampling.repeat_penalty, 1.2f);
  EXPECT_EQ(g.sampling.penalty_last_n, -1);
  EXPECT_EQ(g.sampling.seed, 42u);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"a", ""}));  // (an empty stop string stops nothing)
  EXPECT_TRUE(g.logprobs);
  EXPECT_EQ(g.top_logprobs, 3);
  EXPECT_EQ(p.n_probs, 3);
  EXPECT_TRUE(p.return_tokens);
  EXPECT_TRUE(g.stream);
  EXPECT_FALSE(g.cache_prompt);
  ASSERT_EQ(g.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(g.sampling.logit_bias[0], std::make_pair(7, 2.5f));
  EXPECT_EQ(g.sampling.logit_bias[1].first, 9);
  EXPECT_TRUE(std::isinf(g.sampling.logit_bias[1].second) && g.sampling.logit_bias[1].second < 0);  // false: banned
  EXPECT_EQ(p.response_fields, (std::vector<std::string>{"content", "timings/predicted_n"}));
  EXPECT_EQ(p.t_max_predict_ms, 250);
  EXPECT_EQ(p.n_indent, 4);
  // Defaults: -1 is until the context is full, seeds -1 and 2^32-1 are random.
  const LlamaCompletionParams d = llama_completion_parse(json::parse(R"({"prompt": "x", "seed": 4294967295})"), false);
  EXPECT_EQ(d.gen.max_tokens, -1);
  EXPECT_EQ(d.gen.sampling.seed, engine::kSeedRandom);
  EXPECT_FALSE(d.gen.logprobs);
  EXPECT_EQ(llama_completion_parse(json::parse(R"({"prompt": "x", "seed": -1})"), false).gen.sampling.seed,
            engine::kSeedRandom);
  // OpenAI's logit_bias object works too; max_tokens is n_predict's other name.
  const LlamaCompletionParams o =
      llama_completion_parse(json::parse(R"({"prompt": "x", "logit_bias": {"5": -1}, "max_tokens": 9})"), false);
  EXPECT_EQ(o.gen.sampling.logit_bias, (std::vector<std::pair<int32_t, float>>{{5, -1.0f}}));
  EXPECT_EQ(o.gen.max_tokens, 9);
}

TEST(LlamaCompletionParse, SamplersLeftOutAreOff) {
  auto sampling = [](const char* list) {
    return llama_completion_parse(json::parse(std::string(R"({"prompt": "x", "repeat_penalty": 1.3, "samplers": )") +
                                              list + "}"),
                                  false)
        .gen.sampling;
  };
  const engine::SamplerOptions all = sampling(R"(["penalties", "dry", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"])");
  const engine::SamplerOptions defaults;
  EXPECT_EQ(all.top_k, defaults.top_k);
  EXPECT_EQ(all.top_p, defaults.top_p);
  EXPECT_EQ(all.min_p, defaults.min_p);
  EXPECT_EQ(all.temperature, defaults.temperature);
  EXPECT_FLOAT_EQ(all.repeat_penalty, 1.3f);
  const engine::SamplerOptions some = sampling(R"(["top_k", "temperature"])");
  EXPECT_EQ(some.top_k, defaults.top_k);
  EXPECT_EQ(some.top_p, 1.0f);
  EXPECT_EQ(some.min_p, 0.0f);
  EXPECT_EQ(some.repeat_penalty, 1.0f);  // penalties left out
  const engine::SamplerOptions none = sampling(R"([])");
  EXPECT_EQ(none.top_k, 0);
  EXPECT_EQ(none.temperature, 1.0f);  // no temperature step: the plain distribution
  expect_invalid([&] { sampling(R"(["temperature", "top_k"])"); }, "in that order", "reordered");
  expect_invalid([&] { sampling(R"(["top_k", "top_k"])"); }, "again", "twice");
  EXPECT_FALSE(some.infill);
  const engine::SamplerOptions editor = sampling(R"(["top_k", "top_p", "infill"])");  // what llama.vim sends
  EXPECT_TRUE(editor.infill);
  EXPECT_EQ(editor.min_p, 0.0f);
  EXPECT_EQ(editor.temperature, 1.0f);
  expect_invalid([&] { sampling(R"(["infill", "top_k"])"); }, "in that order", "infill before top_k");
  expect_invalid([&] { sampling(R"(["mystery"])"); }, "not a sampler", "unknown");
  expect_invalid([&] { sampling(R"("top_k")"); }, "'samplers'", "a string");
}

TEST(LlamaCompletionParse, WhatTarsLacksIsRefusedUnlessOff) {
  for (const char* body : {R"({"prompt": "x", "mirostat": 2})", R"({"prompt": "x", "typical_p": 0.5})",
                           R"({"prompt": "x", "dry_multiplier": 0.8})", R"({"prompt": "x", "xtc_probability": 0.5})",
                           R"({"prompt": "x", "dynatemp_range": 0.5})", R"({"prompt": "x", "top_n_sigma": 1})",
                           R"({"prompt": "x", "min_keep": 5})", R"({"prompt": "x", "grammar": "root ::= \"a\""})",
                           R"({"prompt": "x", "post_sampling_probs": true})", R"({"prompt": "x", "lora": [{"id": 0}]})",
                           R"({"prompt": "x", "image_data": [{"data": "x"}]})", R"({"prompt": "x", "n_cmpl": 2})"}) {
    expect_invalid([&] { llama_completion_parse(json::parse(body), false); }, "'", body);
  }
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": "x", "mirostat": null, "wat": 1})"), false); },
                 "'wat' is not a known parameter", "unknown");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": "x", "logit_bias": [["Hi", 1]]})"), false); },
                 "token ids", "token text");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": "x", "logit_bias": [[1, true]]})"), false); },
                 "false", "true as a bias");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"prompt": "x", "input_prefix": "a"})"), false); },
                 "/infill", "infill field on /completion");
}

TEST(LlamaCompletionParse, Infill) {
  const LlamaCompletionParams p = llama_completion_parse(
      json::parse(R"({"input_prefix": "def f():\n", "input_suffix": "\nf()\n", "prompt": "  re",
          "input_extra": [{"filename": "a.py", "text": "A = 1\n"}, {"text": "B = 2\n"}], "n_predict": 16})"),
      true);
  EXPECT_TRUE(p.gen.fill);
  EXPECT_EQ(p.gen.prompt, "def f():\n");
  EXPECT_EQ(p.gen.suffix, "\nf()\n");
  EXPECT_EQ(p.gen.fill_middle, "  re");
  EXPECT_EQ(p.gen.fill_files, (std::vector<FillFile>{{"a.py", "A = 1\n"}, {"", "B = 2\n"}}));
  EXPECT_TRUE(p.gen.prompt_parts.empty());
  // Everything may be empty (the start of an empty file).
  EXPECT_TRUE(llama_completion_parse(json::parse(R"({})"), true).gen.fill);
  expect_invalid([] { llama_completion_parse(json::parse(R"({"input_prefix": 1})"), true); }, "'input_prefix'", "number");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"input_extra": [{"filename": "a"}]})"), true); },
                 "input_extra[0].text", "no text");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"input_extra": [{"text": "a", "x": 1}]})"), true); },
                 "input_extra[0].x", "unknown field");
  expect_invalid([] { llama_completion_parse(json::parse(R"({"input_extra": "a"})"), true); }, "'input_extra'",
                 "a string");
}

}  // namespace
}  // namespace tars::node
