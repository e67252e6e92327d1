#pragma once
// Structured output: what keeps generated text a JSON value that a JSON
// Schema accepts (OpenAI's response_format json_schema, Ollama's format with
// a schema, `tars run --json-schema`).
//
// JsonSchema::parse compiles a schema (JSON Schema 2020-12, the part that
// decides which texts are valid) into a table of nodes; SchemaPrefix reads
// text a byte at a time and says whether it is still the beginning of a value
// the schema accepts and whether that value is complete. Every text it
// completes validates against the schema; every text it accepts can still be
// completed (no dead ends), so a sampler constrained by it always has a
// token to choose.
//
// What a schema may say:
//   - type (a name or a list of names), enum, const, anyOf and oneOf (read
//     as anyOf: a text valid for several alternatives is accepted), allOf
//     with one schema, $ref to a place in the same document ("#/$defs/...",
//     "#/definitions/...", "#"; recursion is fine), true and {} (any value);
//   - objects: properties, required, additionalProperties (a schema, true or
//     false). Properties may come in any order, each at most once. An object
//     with properties and no additionalProperties takes only those (stricter
//     than JSON Schema's default, as OpenAI's strict mode);
//   - arrays: items, prefixItems, minItems, maxItems;
//   - strings: minLength, maxLength (in characters).
// Annotations are ignored (title, description, default, examples, format,
// $schema, $id, $comment...). The validation keywords it cannot enforce while
// the text is being written (pattern, minimum, maximum, multipleOf, not,
// if/then/else, uniqueItems, minProperties...) are refused with an error
// naming them, never ignored.
//
// The text follows JsonPrefix's stricter rules (json_prefix.h): no blanks
// before the value or after it, at most kMaxSpace blanks in a row with one
// line break, numbers up to kMaxNumber characters with kMaxExponent exponent
// digits, well-formed UTF-8, no \u escapes of surrogates, and nesting up to
// kMaxDepth. An integer has no fraction or exponent; a value of an enum or
// const is written as JSON's compact form of it (as nlohmann/json dumps it).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/json_lex.h"
#include "engine/sampler.h"

namespace tars::engine {

class Tokenizer;

class JsonSchema {
 public:
  static constexpr size_t kMaxNodes = 4096;
  static constexpr size_t kMaxProperties = 64;  // per object
  static constexpr size_t kMaxLiterals = 64;    // per enum
  // Kinds of value one place may hold (anyOf flattened, $refs followed):
  // each is tried on the first byte of a value there, so this bounds the
  // work per byte a schema can ask for.
  static constexpr size_t kMaxAlternatives = 64;
  static constexpr int kMaxNesting = 64;        // of the schema document itself

  // Compiles a schema given as JSON text. Throws tars::Error(kInvalidArgument)
  // naming the place in the schema (a JSON pointer) and what is wrong.
  // `lenient`: the keywords it cannot enforce are ignored instead of refused
  // (for a forced tool call, whose arguments the client checks anyway).
  static std::shared_ptr<const JsonSchema> parse(std::string_view text, bool lenient = false);

  enum class Kind : uint8_t { kObject, kArray, kString, kNumber, kLiteral, kAnyOf };
  struct Property {
    std::string key;  // the name as it is written between the quotes
    int node = -1;
  };
  struct Node {
    Kind kind = Kind::kAnyOf;
    // kObject
    std::vector<Property> properties;
    uint64_t required = 0;  // bit i: properties[i] is required
    int additional = -1;    // the node of other keys' values; -1: no other keys
    // kArray
    std::vector<int> prefix_items;
    int items = -1;  // the node of items after prefix_items; -1: none
    uint32_t min_items = 0, max_items = UINT32_MAX;
    // kString
    uint32_t min_length = 0, max_length = UINT32_MAX;
    // kNumber
    bool integer = false;
    // kLiteral: the texts allowed (enum, const, true/false/null)
    std::vector<std::string> literals;
    // kAnyOf
    std::vector<int> alternatives;
    // Every node: the nodes other than kAnyOf a value of it may be (an anyOf
    // flattened; the node itself otherwise).
    std::vector<int> leaves;
  };

  const std::vector<Node>& nodes() const { return nodes_; }
  int root() const { return root_; }

 private:
  friend class SchemaCompiler;
  std::vector<Node> nodes_;
  int root_ = 0;
};

class SchemaPrefix {
 public:
  static constexpr int kMaxDepth = 32;  // open objects, arrays and values
  static constexpr int kMaxSpace = json_lex::kMaxSpace;
  static constexpr int kMaxNumber = json_lex::kMaxNumber;
  static constexpr int kMaxExponent = json_lex::kMaxExponent;
  static constexpr size_t kMaxForks = 16;  // readings kept at once (anyOf)

  explicit SchemaPrefix(std::shared_ptr<const JsonSchema> schema);

  // Reads the bytes; false when one of them cannot continue the text (the
  // state is then unspecified: try a copy).
  bool push(std::string_view bytes);
  bool push(unsigned char c);
  // A whole value has been read: generation may end here.
  bool complete() const;

  // Copies another state of the same schema into this one, reusing this one's
  // memory (for trying tokens without allocating).
  void assign(const SchemaPrefix& other);

 private:
  struct Frame {
    uint64_t seen = 0;  // object: properties given
    uint64_t cand = 0;  // object key, literal: candidates still matching
    int32_t node = 0;
    uint32_t count = 0;  // array items, string characters, literal or key bytes read
    int16_t prop = -1;   // object: the property whose value is read (-1: another key)
    uint8_t phase = 0;
    bool operator==(const Frame&) const = default;
  };
  struct Reading {
    // The run of blanks, and the string or number being read (on top).
    json_lex::Blanks blanks;
    json_lex::StringBody string;
    json_lex::Number number;
    std::vector<Frame> frames;  // empty: the value is complete
    bool operator==(const Reading&) const = default;
  };

  void feed(Reading r, unsigned char c);  // appends what r becomes to next_
  bool finish(Reading& r) const;          // the top value ended
  bool start_child(Reading& r, int node) const;
  int item_node(const JsonSchema::Node& n, uint32_t index) const;
  bool can_end(const Reading& r) const;

  std::shared_ptr<const JsonSchema> schema_;
  const std::vector<JsonSchema::Node>* nodes_;
  std::vector<Reading> forks_;
  std::vector<Reading> next_;
};

// A token constraint for the sampler (sampler.h) that keeps the generated
// text a value the schema accepts, as JsonConstraint does for JSON mode; with
// `before` and `after`, the text is `before`, the value, then `after` (a
// forced tool call: "<tool_call>\n", the call's object, "\n</tool_call>"). A
// value with text after it must be one that closes itself (an object, an
// array or a string): once it is complete, what follows is `after`.
class SchemaConstraint final : public TokenConstraint {
 public:
  SchemaConstraint(const Tokenizer& tokenizer, std::shared_ptr<const JsonSchema> schema, std::string before = "",
                   std::string after = "");
  bool allows(int32_t id) const override;
  void accept(int32_t id) override;
  bool complete() const;

 private:
  bool advance(SchemaPrefix& value, size_t& before, size_t& after, std::string_view bytes) const;

  const Tokenizer& tokenizer_;
  const std::vector<std::string>& pieces_;
  std::string before_text_, after_text_;
  SchemaPrefix state_;
  size_t before_ = 0, after_ = 0;  // bytes of before_text_ / after_text_ read
  mutable SchemaPrefix trial_;
};

}  // namespace tars::engine
