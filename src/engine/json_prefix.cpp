#include "engine/json_prefix.h"

#include "engine/tokenizer.h"

namespace tars::engine {
namespace {

// Number states: what has been read of
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
enum : uint8_t { kMinus, kZero, kInt, kDot, kFrac, kExpMark, kExpSign, kExp };

bool digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool hex(unsigned char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool whitespace(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }  // JSON's

constexpr const char* kLiterals[] = {"true", "false", "null"};

}  // namespace

bool JsonPrefix::push(std::string_view bytes) {
  for (char c : bytes) {
    if (!push(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool JsonPrefix::space(unsigned char c) {
  // A run of blanks, with at most one line break (as pretty-printed JSON has
  // between two tokens): a model cannot fill its budget with whitespace.
  if (c == '\n') {
    if (newline_) return false;
    newline_ = true;
  } else if (c != ' ' && c != '\t') {
    return false;
  }
  if (spaces_ >= kMaxSpace) return false;
  ++spaces_;
  return true;
}

bool JsonPrefix::value_done() {
  mode_ = depth_ == 0 ? Mode::kDone : Mode::kAfter;
  return true;
}

bool JsonPrefix::start_value(unsigned char c) {
  spaces_ = 0;
  newline_ = false;
  switch (c) {
    case '{':
    case '[':
      if (depth_ >= kMaxDepth) return false;
      stack_[depth_++] = c;
      mode_ = c == '{' ? Mode::kKeyOrEnd : Mode::kArrayFirst;
      return true;
    case '"':
      mode_ = Mode::kString;
      key_ = false;
      return true;
    case 't':
    case 'f':
    case 'n':
      mode_ = Mode::kLiteral;
      literal_ = c == 't' ? 0 : c == 'f' ? 1 : 2;
      sub_ = 1;
      return true;
    default:
      if (c != '-' && !digit(c)) return false;
      mode_ = Mode::kNumber;
      sub_ = c == '-' ? kMinus : c == '0' ? kZero : kInt;
      length_ = 1;
      return true;
  }
}

bool JsonPrefix::push(unsigned char c) {
  switch (mode_) {
    case Mode::kStart:
      return c == '{' && start_value(c);  // the text begins with the object
    case Mode::kValue:
      if (whitespace(c)) return space(c);
      return start_value(c);
    case Mode::kArrayFirst:
      if (whitespace(c)) return space(c);
      if (c == ']') {
        spaces_ = 0;
        newline_ = false;
        --depth_;
        return value_done();
      }
      return start_value(c);
    case Mode::kKeyOrEnd:
    case Mode::kKey:
      if (whitespace(c)) return space(c);
      spaces_ = 0;
      newline_ = false;
      if (c == '"') {
        mode_ = Mode::kString;
        key_ = true;
        return true;
      }
      if (c == '}' && mode_ == Mode::kKeyOrEnd) {
        --depth_;
        return value_done();
      }
      return false;
    case Mode::kColon:
      if (whitespace(c)) return space(c);
      spaces_ = 0;
      newline_ = false;
      if (c != ':') return false;
      mode_ = Mode::kValue;
      return true;
    case Mode::kAfter: {
      if (whitespace(c)) return space(c);
      spaces_ = 0;
      newline_ = false;
      const uint8_t open = stack_[depth_ - 1];
      if (c == ',') {
        mode_ = open == '{' ? Mode::kKey : Mode::kValue;
        return true;
      }
      if ((c == '}' && open == '{') || (c == ']' && open == '[')) {
        --depth_;
        return value_done();
      }
      return false;
    }
    case Mode::kString:
      if (utf8_left_ > 0) {
        if (c < utf8_lo_ || c > utf8_hi_) return false;
        --utf8_left_;
        utf8_lo_ = 0x80;
        utf8_hi_ = 0xBF;
        return true;
      }
      if (c == '"') {
        if (key_) {
          mode_ = Mode::kColon;
          return true;
        }
        return value_done();
      }
      if (c == '\\') {
        mode_ = Mode::kEscape;
        return true;
      }
      if (c < 0x20) return false;  // control characters must be escaped
      if (c < 0x80) return true;
      {
        // A UTF-8 lead byte (RFC 3629: no overlong forms, no surrogates,
        // nothing past U+10FFFF).
        int length = 0;
        if (!utf8_lead(c, length, utf8_lo_, utf8_hi_)) return false;
        utf8_left_ = static_cast<uint8_t>(length - 1);
        return true;
      }
    case Mode::kEscape:
      if (c == 'u') {
        mode_ = Mode::kUnicode;
        sub_ = 0;
        return true;
      }
      if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't') {
        return false;
      }
      mode_ = Mode::kString;
      return true;
    case Mode::kUnicode:
      if (!hex(c)) return false;
      if (sub_ == 0) surrogate_ = c == 'd' || c == 'D';
      if (sub_ == 1 && surrogate_ && !(c >= '0' && c <= '7')) return false;  // \uD800..\uDFFF
      if (++sub_ == 4) mode_ = Mode::kString;
      return true;
    case Mode::kNumber: {
      bool more = false;
      switch (sub_) {
        case kMinus:
          if (digit(c))
            sub_ = c == '0' ? kZero : kInt, more = true;
          else
            return false;
          break;
        case kZero:
        case kInt:
          if (digit(c) && sub_ == kInt)
            more = true;
          else if (c == '.')
            sub_ = kDot, more = true;
          else if (c == 'e' || c == 'E')
            sub_ = kExpMark, exp_digits_ = 0, more = true;
          break;
        case kDot:
          if (!digit(c)) return false;
          sub_ = kFrac, more = true;
          break;
        case kFrac:
          if (digit(c))
            more = true;
          else if (c == 'e' || c == 'E')
            sub_ = kExpMark, exp_digits_ = 0, more = true;
          break;
        case kExpMark:
          if (c == '+' || c == '-')
            sub_ = kExpSign, more = true;
          else if (digit(c))
            sub_ = kExp, exp_digits_ = 1, more = true;
          else
            return false;
          break;
        case kExpSign:
          if (!digit(c)) return false;
          sub_ = kExp, exp_digits_ = 1, more = true;
          break;
        case kExp:
          if (digit(c)) {
            if (++exp_digits_ > kMaxExponent) return false;
            more = true;
          }
          break;
      }
      if (more) return ++length_ <= kMaxNumber;
      // The number ended (in a state where it may); c comes after it.
      value_done();
      return push(c);
    }
    case Mode::kLiteral: {
      const char* word = kLiterals[literal_];
      if (c != static_cast<unsigned char>(word[sub_])) return false;
      if (word[++sub_] == '\0') return value_done();
      return true;
    }
    case Mode::kDone:
      return false;
  }
  return false;
}

JsonConstraint::JsonConstraint(const Tokenizer& tokenizer) : tokenizer_(tokenizer), pieces_(tokenizer.pieces()) {}

bool JsonConstraint::allows(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return false;
  if (tokenizer_.is_end_of_generation(id)) return state_.complete();
  const std::string& piece = pieces_[id];
  if (piece.empty()) return false;  // no progress (control and empty tokens)
  JsonPrefix trial = state_;
  return trial.push(piece);
}

void JsonConstraint::accept(int32_t id) {
  if (id >= 0 && static_cast<size_t>(id) < pieces_.size() && !tokenizer_.is_end_of_generation(id)) {
    state_.push(pieces_[id]);
  }
}

}  // namespace tars::engine
