// The request-body parsers (node/request_params.h): what they accept, and
// that every bad body is a tars::Error(kInvalidArgument) naming the field,
// never a json exception (which the HTTP layer would turn into a 500).
// fuzz/targets/requests_fuzz.cpp searches the same property at random; the
// cases below are the ones it found, kept as plain tests.
#include <gtest/gtest.h>

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
  EXPECT_EQ(p.messages[0].first, "system");  // developer is system
  EXPECT_EQ(p.messages[1].second, "ab");     // text parts joined
  EXPECT_EQ(p.max_tokens, 8);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_EQ(p.sampling.top_k, 40);
  EXPECT_EQ(p.sampling.seed, 7u);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
  EXPECT_EQ(p.top_logprobs, 3);

  const GenerationParams b = generation_parse(
      json::parse(R"({"prompt": "x", "logit_bias": {"15": -100, "7": 2.5}, "response_format": {"type": "text"},
                      "best_of": 1, "suffix": ""})"),
      false);
  ASSERT_EQ(b.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(b.sampling.logit_bias[0], (std::pair<int32_t, float>{15, -100.0f}));  // keys in the object's order
  EXPECT_EQ(b.sampling.logit_bias[1], (std::pair<int32_t, float>{7, 2.5f}));

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
      {R"({"prompt": "x", "frobnicate": 1})", false, "frobnicate"},
      {R"({"prompt": "x", "logit_bias": [[1, 2]]})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"a1": 2}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"-1": 2}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"99999999999": 2}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"1": 101}})", false, "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"1": "up"}})", false, "logit_bias"},
      // accepted by OpenAI, not done by tars: refused, never ignored
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})", true,
       "response_format"},
      {R"({"prompt": "x", "response_format": "json"})", false, "response_format"},
      {R"({"prompt": "x", "suffix": "end"})", false, "suffix"},
      {R"({"prompt": "x", "best_of": 2})", false, "best_of"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})", true, "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function"}})", true, "tool_choice"},
  };
  for (const auto& c : cases) {
    expect_invalid([&] { generation_parse(json::parse(c.body), c.chat); }, c.needle, c.body);
  }
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

}  // namespace
}  // namespace tars::node
