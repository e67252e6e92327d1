#include "engine/json_prefix.h"

#include "engine/tokenizer.h"

namespace tars::engine {
namespace {

using json_lex::blank;

constexpr const char* kLiterals[] = {"true", "false", "null"};

}  // namespace

bool JsonPrefix::push(std::string_view bytes) {
  for (char c : bytes) {
    if (!push(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool JsonPrefix::value_done() {
  mode_ = depth_ == 0 ? Mode::kDone : Mode::kAfter;
  return true;
}

bool JsonPrefix::start_value(unsigned char c) {
  blanks_.reset();
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
      string_.reset();
      return true;
    case 't':
    case 'f':
    case 'n':
      mode_ = Mode::kLiteral;
      literal_ = c == 't' ? 0 : c == 'f' ? 1 : 2;
      sub_ = 1;
      return true;
    default:
      if (!number_.start(c)) return false;
      mode_ = Mode::kNumber;
      return true;
  }
}

bool JsonPrefix::push(unsigned char c) {
  switch (mode_) {
    case Mode::kStart:
      return c == '{' && start_value(c);  // the text begins with the object
    case Mode::kValue:
      if (blank(c)) return blanks_.push(c);
      return start_value(c);
    case Mode::kArrayFirst:
      if (blank(c)) return blanks_.push(c);
      if (c == ']') {
        blanks_.reset();
        --depth_;
        return value_done();
      }
      return start_value(c);
    case Mode::kKeyOrEnd:
    case Mode::kKey:
      if (blank(c)) return blanks_.push(c);
      blanks_.reset();
      if (c == '"') {
        mode_ = Mode::kString;
        key_ = true;
        string_.reset();
        return true;
      }
      if (c == '}' && mode_ == Mode::kKeyOrEnd) {
        --depth_;
        return value_done();
      }
      return false;
    case Mode::kColon:
      if (blank(c)) return blanks_.push(c);
      blanks_.reset();
      if (c != ':') return false;
      mode_ = Mode::kValue;
      return true;
    case Mode::kAfter: {
      if (blank(c)) return blanks_.push(c);
      blanks_.reset();
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
      switch (string_.push(c)) {
        case json_lex::StringBody::kBad:
          return false;
        case json_lex::StringBody::kEnd:
          if (key_) {
            mode_ = Mode::kColon;
            return true;
          }
          return value_done();
        default:
          return true;
      }
    case Mode::kNumber:
      switch (number_.push(c, /*integer=*/false)) {
        case json_lex::Number::kBad:
          return false;
        case json_lex::Number::kMore:
          return true;
        case json_lex::Number::kEnded:
          // The number ended (in a state where it may); c comes after it.
          value_done();
          return push(c);
      }
      return false;
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
