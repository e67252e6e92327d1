#pragma once
// JSON mode: what keeps generated text a JSON object.
//
// JsonPrefix reads text a byte at a time and says whether it is still the
// beginning of a JSON object (RFC 8259) and whether the object is complete.
// Its state is a few dozen bytes and trivially copyable, so a sampler can try
// every token's bytes on a copy. Within the grammar it is stricter in four
// ways, so that every text it completes is one that JSON parsers read back
// and a model cannot run away outside a string:
//   - the top level is an object (OpenAI's json_object, Ollama's "json");
//   - objects and arrays nest at most kMaxDepth deep;
//   - the text begins with '{'; outside strings at most kMaxSpace blanks in a
//     row, with at most one line break among them and no carriage return;
//     a number has at most kMaxNumber characters and kMaxExponent exponent
//     digits (1e999 is JSON, but no double: parsers refuse it or give inf);
//   - strings are well-formed UTF-8 (RFC 3629), and \u escapes of UTF-16
//     surrogates (\uD800 to \uDFFF) are refused, since a lone one is not a
//     character.
//
// JsonConstraint applies it to tokens: a token is allowed when its bytes keep
// the text a prefix; the end of generation only once the object is complete.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/json_lex.h"
#include "engine/sampler.h"

namespace tars::engine {

class Tokenizer;

class JsonPrefix {
 public:
  static constexpr int kMaxDepth = 32;
  static constexpr int kMaxSpace = json_lex::kMaxSpace;
  static constexpr int kMaxNumber = json_lex::kMaxNumber;
  static constexpr int kMaxExponent = json_lex::kMaxExponent;  // digits: no number overflows a double

  // Reads the bytes; false when one of them cannot continue the text (the
  // state is then unspecified: try a copy).
  bool push(std::string_view bytes);
  bool push(unsigned char c);
  // A whole object has been read (nothing may follow).
  bool complete() const { return mode_ == Mode::kDone; }

 private:
  enum class Mode : uint8_t {
    kStart,       // before the top-level '{'
    kValue,       // a value must come
    kArrayFirst,  // after '[': a value or ']'
    kKeyOrEnd,    // after '{': a key or '}'
    kKey,         // after ',' in an object: a key
    kColon,       // after a key
    kAfter,       // after a value in a container: ',' or its closing bracket
    kString,
    kNumber,
    kLiteral,  // true, false, null
    kDone,
  };
  bool value_done();  // a value ended: kAfter, or kDone at the top
  bool start_value(unsigned char c);

  uint8_t stack_[kMaxDepth] = {};  // '{' or '[' per open container
  uint8_t depth_ = 0;
  Mode mode_ = Mode::kStart;
  bool key_ = false;        // the string being read is an object key
  uint8_t sub_ = 0;         // letters of a literal read
  uint8_t literal_ = 0;     // which literal
  json_lex::Blanks blanks_;
  json_lex::StringBody string_;
  json_lex::Number number_;
};

// A token constraint for the sampler (sampler.h) that keeps the generated
// text a JSON object, for the tokenizer's vocabulary: each token's bytes are
// its piece (control tokens have none and are refused, except those that end
// generation, which are allowed only once the object is complete).
class JsonConstraint final : public TokenConstraint {
 public:
  explicit JsonConstraint(const Tokenizer& tokenizer);
  bool allows(int32_t id) const override;
  void accept(int32_t id) override;
  bool complete() const { return state_.complete(); }

 private:
  const Tokenizer& tokenizer_;
  const std::vector<std::string>& pieces_;  // the tokenizer's, made once per model
  JsonPrefix state_;
};

}  // namespace tars::engine
