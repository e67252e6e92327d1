// Structured output (engine/json_schema.h) against the outside truth: the
// Python `jsonschema` package (tests/support/json_schema_validate.py) and
// nlohmann/json's parser.
//   - Random walks through what SchemaPrefix allows, a byte at a time, always
//     reach a complete value (no dead ends), and every value they complete is
//     JSON that jsonschema finds valid.
//   - The same values re-serialized (keys in another order) are accepted.
//   - Mutations of them that SchemaPrefix completes are valid too.
//   - Constrained sampling over stories260K's real vocabulary ends only with
//     a valid value.
//   - Schemas it cannot enforce are refused with the place and the keyword.
#include "engine/json_schema.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "support/constrained_sampling.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

using nlohmann::json;

// The schemas the walks run over: each keyword this supports, nested.
const char* const kSchemas[] = {
    // A typical response format: required and optional properties of every type.
    R"({"type": "object", "properties": {
          "name": {"type": "string", "minLength": 1, "maxLength": 12},
          "age": {"type": "integer"},
          "score": {"type": "number"},
          "admin": {"type": "boolean"},
          "nickname": {"type": ["string", "null"]},
          "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "minItems": 1, "maxItems": 3},
          "color": {"enum": ["red", "green", "blue", 7, null]}},
        "required": ["name", "age", "tags"], "additionalProperties": false})",
    // Pydantic's shape: $defs, $ref, anyOf with null, titles and descriptions.
    R"({"$defs": {"Step": {"title": "Step", "type": "object",
                           "properties": {"explanation": {"type": "string", "title": "Explanation"},
                                          "output": {"type": "string"}},
                           "required": ["explanation", "output"]}},
        "title": "MathReasoning", "type": "object",
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
                       "final_answer": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}},
        "required": ["steps"]})",
    // Recursion: a tree.
    R"({"$defs": {"node": {"type": "object",
                           "properties": {"value": {"type": "integer"},
                                          "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
                           "required": ["value"]}},
        "$ref": "#/$defs/node"})",
    // Free-form values and additional properties with a schema.
    R"({"type": "object", "properties": {"id": {"const": "x-1"}},
        "additionalProperties": {"type": "number"}, "required": ["id"]})",
    R"({"type": "object", "properties": {"meta": {}, "data": true}})",
    // Tuples, and an array at the top.
    R"({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}, {"type": "boolean"}],
        "items": false, "minItems": 2})",
    R"({"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 4})",
    // Alternatives that begin alike (several readings at once).
    R"({"anyOf": [{"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                   "required": ["kind", "r"]},
                  {"type": "object", "properties": {"kind": {"const": "rect"}, "w": {"type": "integer"}, "h": {"type": "integer"}},
                   "required": ["kind", "w", "h"]}]})",
    R"({"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}, {"type": "array", "items": {"type": "null"}}]})",
    // A number at the top, an enum of numbers (one a prefix of another), keys with escapes.
    R"({"type": "number"})",
    R"({"enum": [1, 12, 1.5, "1"]})",
    R"({"type": "object", "properties": {"a\"b": {"type": "integer"}, "caf\u00e9": {"type": "string"}, "": {"type": "null"}},
        "required": ["a\"b", "caf\u00e9", ""]})",
    // Any JSON value at all.
    R"({})",
};

std::string validator_script() { return std::string(TARS_SOURCE_DIR) + "/tests/support/json_schema_validate.py"; }

// Runs jsonschema over (schema, text) pairs: "valid", "invalid" or "notjson" each.
std::vector<std::string> validate(const std::vector<std::pair<json, std::string>>& cases) {
  test::TempDir dir;
  {
    std::ofstream in(dir.file("cases.jsonl"));
    for (const auto& [schema, text] : cases) {
      in << json{{"schema", schema}, {"text", text}}.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    }
  }
  const std::string cmd = "python3 " + validator_script() + " " + dir.file("cases.jsonl") + " > " + dir.file("out.txt");
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd << " failed (python3-jsonschema is installed by scripts/setup.sh)";
  std::vector<std::string> out;
  std::istringstream lines(test::read_file(dir.file("out.txt")));
  for (std::string line; std::getline(lines, line);) out.push_back(line);
  EXPECT_EQ(out.size(), cases.size());
  out.resize(cases.size());
  return out;
}

bool whole(const std::shared_ptr<const JsonSchema>& schema, std::string_view text) {
  SchemaPrefix p(schema);
  return p.push(text) && p.complete();
}

// Words a model would write as one token: each property name with its
// closing quote, and each enum or const value.
void words_of(const json& schema, std::vector<std::string>& out) {
  if (schema.is_object()) {
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      if (it.key() == "properties" && it.value().is_object()) {
        for (auto p = it.value().begin(); p != it.value().end(); ++p) {
          const std::string quoted = json(p.key()).dump();
          out.push_back(quoted.substr(1));
        }
      }
      if (it.key() == "enum" && it.value().is_array()) {
        for (const json& v : it.value()) out.push_back(v.dump());
      }
      if (it.key() == "const") out.push_back(it.value().dump());
      words_of(it.value(), out);
    }
  } else if (schema.is_array()) {
    for (const json& v : schema) words_of(v, out);
  }
}

// A random walk: at each step a byte among those SchemaPrefix allows (leaning
// toward closing ones as the text grows), or now and then one of the schema's
// words when it is allowed, until the value is complete. Fails the test when
// no byte is allowed and the value is not complete.
std::string walk(const std::shared_ptr<const JsonSchema>& schema, const std::vector<std::string>& words,
                 std::mt19937& rng) {
  SchemaPrefix state(schema);
  SchemaPrefix trial(schema);
  std::string text;
  for (int step = 0; step < 4000; ++step) {
    if (!words.empty() && rng() % 100 < 30) {
      const std::string& w = words[rng() % words.size()];
      trial.assign(state);
      if (trial.push(w)) {
        EXPECT_TRUE(state.push(w));
        text += w;
        continue;
      }
    }
    std::vector<unsigned char> allowed;
    for (int b = 0; b < 256; ++b) {
      trial.assign(state);
      if (trial.push(static_cast<unsigned char>(b))) allowed.push_back(static_cast<unsigned char>(b));
    }
    if (state.complete() && (allowed.empty() || rng() % 3 == 0)) return text;
    if (allowed.empty()) {
      ADD_FAILURE() << "dead end after " << json(text).dump(-1, ' ', false, json::error_handler_t::replace);
      return text;
    }
    std::vector<unsigned char> closing;
    for (unsigned char b : allowed) {
      if (b == '}' || b == ']' || b == '"' || b == ',' || b == ':') closing.push_back(b);
    }
    const bool close =
        !closing.empty() && static_cast<int>(rng() % 100) < std::min(90, 10 + static_cast<int>(text.size()));
    const auto& from = close ? closing : allowed;
    const unsigned char b = from[rng() % from.size()];
    EXPECT_TRUE(state.push(b));
    text += static_cast<char>(b);
  }
  ADD_FAILURE() << "the walk did not end: " << text.substr(0, 200);
  return text;
}

TEST(JsonSchema, RandomWalksEndAndJsonschemaFindsEveryValueValid) {
  std::mt19937 rng(11);
  std::vector<std::pair<json, std::string>> cases;
  std::vector<std::string> reserialized;
  for (const char* text : kSchemas) {
    SCOPED_TRACE(text);
    const auto schema = JsonSchema::parse(text);
    const json doc = json::parse(text);
    std::vector<std::string> words;
    words_of(doc, words);
    for (int i = 0; i < 60; ++i) {
      const std::string value = walk(schema, words, rng);
      cases.emplace_back(doc, value);
      // Re-serialized by the parser (object keys sorted, so in another order
      // than written): still accepted.
      const json parsed = json::parse(value, nullptr, /*allow_exceptions=*/false);
      ASSERT_FALSE(parsed.is_discarded()) << value;
      const std::string again = parsed.dump();
      // (Unless the parser wrote a three-digit exponent, which the stricter
      // number rule refuses: 48613E98 comes back as 4.8613e+102.)
      if (std::regex_search(again, std::regex("[eE][+-]?[0-9]{3}"))) continue;
      EXPECT_TRUE(whole(schema, again)) << "written: " << value << "\nre-serialized, refused: " << again;
    }
  }
  const auto verdicts = validate(cases);
  int objects = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(verdicts[i], "valid") << "schema " << cases[i].first.dump() << "\nvalue " << cases[i].second;
    objects += cases[i].second.front() == '{';
  }
  EXPECT_GT(objects, 300);  // most walks were objects with properties, not trivial values
}

// Mutations of valid values (a byte deleted, inserted or replaced): whatever
// SchemaPrefix completes, jsonschema finds valid; both verdicts occur.
TEST(JsonSchema, WhatItCompletesAmongMutatedValuesIsValid) {
  std::mt19937 rng(23);
  const std::string alphabet = "{}[]\",:0123456789-.eEtrufalsn \n\\abxyz\xc3\xa9";
  std::vector<std::pair<json, std::string>> accepted;
  int refused = 0;
  for (const char* text : kSchemas) {
    const auto schema = JsonSchema::parse(text);
    const json doc = json::parse(text);
    std::vector<std::string> words;
    words_of(doc, words);
    for (int i = 0; i < 40; ++i) {
      std::string value = walk(schema, words, rng);
      for (int m = 0; m < 10; ++m) {
        std::string t = value;
        const size_t at = t.empty() ? 0 : rng() % t.size();
        const char c = alphabet[rng() % alphabet.size()];
        switch (rng() % 3) {
          case 0:
            if (!t.empty()) t.erase(at, 1);
            break;
          case 1:
            t.insert(t.begin() + static_cast<std::ptrdiff_t>(at), c);
            break;
          default:
            if (!t.empty()) t[at] = c;
            break;
        }
        if (whole(schema, t))
          accepted.emplace_back(doc, t);
        else
          ++refused;
      }
    }
  }
  const auto verdicts = validate(accepted);
  for (size_t i = 0; i < accepted.size(); ++i) {
    EXPECT_EQ(verdicts[i], "valid") << "schema " << accepted[i].first.dump() << "\naccepted " << accepted[i].second;
  }
  EXPECT_GT(accepted.size(), 200u);
  EXPECT_GT(refused, 1000);
}

TEST(JsonSchema, HandWrittenValuesAndWhereTheyStop) {
  const auto person = JsonSchema::parse(kSchemas[0]);
  EXPECT_TRUE(whole(person, R"({"name":"Ann","age":30,"tags":["a"]})"));
  EXPECT_TRUE(whole(person, R"({"tags": ["a", "bb"], "age": -3, "name": "Ann", "color": 7, "nickname": null})"));
  EXPECT_TRUE(whole(person, "{\n  \"name\": \"Ann\",\n  \"age\": 30,\n  \"tags\": [\"a\"]\n}"));
  EXPECT_FALSE(whole(person, R"({"name":"Ann","age":30})"));                           // tags required
  EXPECT_FALSE(whole(person, R"({"name":"Ann","age":30.5,"tags":["a"]})"));            // an integer
  EXPECT_FALSE(whole(person, R"({"name":"","age":30,"tags":["a"]})"));                 // minLength
  EXPECT_FALSE(whole(person, R"({"name":"Ann","age":30,"tags":[]})"));                 // minItems
  EXPECT_FALSE(whole(person, R"({"name":"Ann","age":30,"tags":["a","b","c","d"]})"));  // maxItems
  EXPECT_FALSE(whole(person, R"({"name":"Ann","age":30,"tags":["toolong"]})"));        // maxLength
  EXPECT_FALSE(whole(person, R"({"name":"Ann","age":30,"tags":["a"],"x":1})"));        // no other keys
  EXPECT_FALSE(whole(person, R"({"name":"Ann","name":"Bo","age":30,"tags":["a"]})"));  // once each
  EXPECT_FALSE(whole(person, R"({"name":"Ann","age":30,"tags":["a"],"color":"pink"})"));
  EXPECT_FALSE(whole(person, R"( {"name":"Ann","age":30,"tags":["a"]})"));  // nothing before the value
  // Where it stops: the first byte that cannot continue a valid value.
  SchemaPrefix p(person);
  EXPECT_TRUE(p.push(R"({"na)"));
  EXPECT_FALSE(SchemaPrefix(p).push('x'));  // no key begins "nax"
  EXPECT_TRUE(p.push(R"(me":"Ann","age":3)"));
  EXPECT_FALSE(SchemaPrefix(p).push('.'));
  EXPECT_FALSE(SchemaPrefix(p).push('}'));  // tags still due
  EXPECT_FALSE(p.complete());

  const auto top_number = JsonSchema::parse(R"({"type": "integer"})");
  EXPECT_TRUE(whole(top_number, "-120"));
  EXPECT_FALSE(whole(top_number, "1e5"));
  EXPECT_FALSE(whole(top_number, "12 "));  // nothing after the value
  const auto numbers = JsonSchema::parse(kSchemas[10]);
  EXPECT_TRUE(whole(numbers, "1"));
  EXPECT_TRUE(whole(numbers, "12"));
  EXPECT_TRUE(whole(numbers, "1.5"));
  EXPECT_TRUE(whole(numbers, "\"1\""));
  EXPECT_FALSE(whole(numbers, "1.0"));
  EXPECT_FALSE(whole(numbers, "123"));
  const auto shapes = JsonSchema::parse(kSchemas[7]);
  EXPECT_TRUE(whole(shapes, R"({"kind":"rect","w":2,"h":3})"));
  EXPECT_TRUE(whole(shapes, R"({"r":2.5,"kind":"circle"})"));
  EXPECT_FALSE(whole(shapes, R"({"kind":"rect","r":2})"));
  const auto tree = JsonSchema::parse(kSchemas[2]);
  EXPECT_TRUE(whole(tree, R"({"value":1,"children":[{"value":2,"children":[{"value":3}]},{"value":4}]})"));
  EXPECT_FALSE(whole(tree, R"({"value":1,"children":[{"value":2},{"value":3},{"value":4}]})"));
}

TEST(JsonSchema, RefusesWhatItCannotEnforceNamingThePlace) {
  auto refused = [](const std::string& text, const std::string& expected) {
    try {
      JsonSchema::parse(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  refused(R"({"type": "string", "pattern": "^a"})", "\"pattern\" is not supported");
  refused(R"({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}})",
          "#/properties/n\": \"minimum\" is not supported");
  refused(R"({"type": "array", "uniqueItems": true})", "uniqueItems");
  refused(R"({"$ref": "#/$defs/missing"})", "names nothing");
  refused(R"({"$ref": "https://example.com/s.json"})", "only references into the same schema");
  refused(R"({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})", "refers to itself");
  refused(R"({"anyOf": [{"$ref": "#"}, {"type": "null"}]})", "refers to itself");
  refused(R"(false)", "no value is valid");
  refused(R"({"type": "strin"})", "unknown type");
  refused(R"({"type": "object", "required": ["a"]})", "not in \"properties\"");
  refused(R"({"type": "string", "minLength": 3, "maxLength": 2})", "minLength above maxLength");
  refused(R"({"enum": []})", "non-empty");
  refused(R"({"type": "integer", "enum": ["a"]})", "no value of \"enum\"");
  refused(R"({"allOf": [{"type": "string"}, {"maxLength": 2}]})", "only with one schema");
  {
    // More alternatives than one place may hold, nested: refused; 64 are fine.
    json many = json::array(), inner = json::array();
    for (int i = 0; i < 40; ++i) many.push_back({{"const", i}});
    for (int i = 0; i < 25; ++i) inner.push_back({{"type", "array"}, {"maxItems", i}});
    many.push_back({{"anyOf", inner}});
    refused(json{{"anyOf", many}}.dump(), "more than 64 alternatives");
    inner.erase(inner.begin());
    many.back() = {{"anyOf", inner}};
    EXPECT_NO_THROW(JsonSchema::parse(json{{"anyOf", many}}.dump()));
  }
  refused(R"({"type": "object", "anyOf": [{"required": []}]})", "beside it");
  refused(R"({"type": "object", "properties": )", "not JSON");
  refused("1e999", "not JSON");  // a number past double: out_of_range, not parse_error (found by json_schema_fuzz)
  refused(std::string(100, '[') + std::string(100, ']'), "must be an object or a boolean");
  std::string deep = "{}";
  for (int i = 0; i < 80; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  refused(deep, "nested too deeply");
  // Annotations are not refused, and a recursive schema through a
  // container is fine.
  EXPECT_NO_THROW(JsonSchema::parse(R"({"title": "t", "description": "d", "format": "date-time", "type": "string",
                                        "examples": ["x"], "$schema": "https://json-schema.org/draft/2020-12/schema"})"));
  EXPECT_NO_THROW(JsonSchema::parse(R"({"type": "array", "items": {"$ref": "#"}})"));
}

// Constrained sampling over stories260K's vocabulary with random logits:
// whenever the end of generation is chosen, the text is valid.
TEST(SchemaConstraint, RandomLogitsOnARealVocabularyEndOnlyWithAValidValue) {
  auto file = GgufFile::open(test::fixture("stories260K/stories260K.gguf"));
  auto tok = Tokenizer::from_gguf(*file);
  std::mt19937 rng(5);
  std::vector<std::pair<json, std::string>> done;
  for (const char* text : {kSchemas[0], kSchemas[1], kSchemas[7]}) {
    const auto schema = JsonSchema::parse(text);
    for (int run = 0; run < 20; ++run) {
      const test::ConstrainedRun r =
          test::random_constrained_run(*tok, test::constrained_run_options(run, /*vary_top_k=*/true),
                                       std::make_unique<SchemaConstraint>(*tok, schema), rng, 400);
      if (!r.ended) continue;
      ASSERT_TRUE(r.complete_at_end) << r.text;
      done.emplace_back(json::parse(text), r.text);
    }
  }
  EXPECT_GT(done.size(), 20u);  // the seeds above do finish
  const auto verdicts = validate(done);
  for (size_t i = 0; i < done.size(); ++i) EXPECT_EQ(verdicts[i], "valid") << done[i].second;
}

}  // namespace
}  // namespace tars::engine
