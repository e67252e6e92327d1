#pragma once
// The lexical pieces of JSON that JSON mode (json_prefix.h) and structured
// output (json_schema.h) read a byte at a time, with the same stricter rules
// in both: runs of blanks, the inside of a string, a number. Each is a few
// trivially copyable bytes, so that readers can be copied per token tried.

#include <cstdint>

#include "engine/tokenizer.h"  // utf8_lead

namespace tars::engine::json_lex {

inline constexpr int kMaxSpace = 20;    // blanks in a row outside strings
inline constexpr int kMaxNumber = 64;   // characters of a number
inline constexpr int kMaxExponent = 2;  // digits of its exponent: no number overflows a double

inline bool digit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool hex(unsigned char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
// JSON's whitespace (RFC 8259).
inline bool blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A run of blanks between two tokens: spaces and tabs, at most kMaxSpace in a
// row with at most one line break among them and no carriage return (as
// pretty-printed JSON has; a model cannot fill its budget with whitespace).
struct Blanks {
  uint8_t spaces = 0;
  bool newline = false;

  // `c` is a blank: false when the run may not take it.
  bool push(unsigned char c) {
    if (c == '\n') {
      if (newline) return false;
      newline = true;
    } else if (c != ' ' && c != '\t') {
      return false;
    }
    if (spaces >= kMaxSpace) return false;
    ++spaces;
    return true;
  }
  void reset() { *this = Blanks{}; }
  bool operator==(const Blanks&) const = default;
};

// The inside of a string, after its opening quote: escapes, well-formed
// UTF-8 (RFC 3629), no control characters, no \u escapes of UTF-16
// surrogates (\uD800 to \uDFFF: a lone one is not a character).
struct StringBody {
  enum Result : int { kBad = -1, kWithin = 0, kChar = 1, kEnd = 2 };

  uint8_t state = kPlain;
  uint8_t hex_read = 0;
  bool surrogate = false;
  uint8_t utf8_left = 0, utf8_lo = 0x80, utf8_hi = 0xBF;

  // kBad: not allowed; kWithin: allowed, within a character; kChar: allowed,
  // a character begins; kEnd: the closing quote.
  int push(unsigned char c) {
    switch (state) {
      case kEscape:
        if (c == 'u') {
          state = kUnicode;
          hex_read = 0;
          return kWithin;
        }
        if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't') {
          return kBad;
        }
        state = kPlain;
        return kWithin;
      case kUnicode:
        if (!hex(c)) return kBad;
        if (hex_read == 0) surrogate = c == 'd' || c == 'D';
        if (hex_read == 1 && surrogate && !(c >= '0' && c <= '7')) return kBad;  // \uD800..\uDFFF
        if (++hex_read == 4) state = kPlain;
        return kWithin;
      default:
        break;
    }
    if (utf8_left > 0) {
      if (c < utf8_lo || c > utf8_hi) return kBad;
      --utf8_left;
      utf8_lo = 0x80;
      utf8_hi = 0xBF;
      return kWithin;
    }
    if (c == '"') return kEnd;
    if (c == '\\') {
      state = kEscape;
      return kChar;
    }
    if (c < 0x20) return kBad;  // control characters must be escaped
    if (c < 0x80) return kChar;
    int length = 0;
    if (!utf8_lead(c, length, utf8_lo, utf8_hi)) return kBad;
    utf8_left = static_cast<uint8_t>(length - 1);
    return kChar;
  }
  // Between characters (the next byte may be the closing quote).
  bool between_characters() const { return state == kPlain && utf8_left == 0; }
  void reset() { *this = StringBody{}; }
  bool operator==(const StringBody&) const = default;

 private:
  enum : uint8_t { kPlain, kEscape, kUnicode };
};

// A number, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, of at most
// kMaxNumber characters and kMaxExponent exponent digits; an integer has no
// fraction or exponent.
struct Number {
  enum Step { kBad, kMore, kEnded };

  uint8_t state = kMinus;
  uint8_t length = 0;
  uint8_t exp_digits = 0;

  // The first character: false unless '-' or a digit.
  bool start(unsigned char c) {
    if (c != '-' && !digit(c)) return false;
    state = c == '-' ? kMinus : c == '0' ? kZero : kInt;
    length = 1;
    exp_digits = 0;
    return true;
  }
  // The next character: kMore (part of the number), kEnded (not part of it,
  // and the number may end before it: read it after the number), kBad.
  Step push(unsigned char c, bool integer) {
    bool more = false;
    switch (state) {
      case kMinus:
        if (!digit(c)) return kBad;
        state = c == '0' ? kZero : kInt;
        more = true;
        break;
      case kZero:
      case kInt:
        if (digit(c)) {
          if (state == kZero) return kBad;  // 01
          more = true;
        } else if (c == '.' && !integer) {
          state = kDot;
          more = true;
        } else if ((c == 'e' || c == 'E') && !integer) {
          state = kExpMark;
          exp_digits = 0;
          more = true;
        }
        break;
      case kDot:
        if (!digit(c)) return kBad;
        state = kFrac;
        more = true;
        break;
      case kFrac:
        if (digit(c)) {
          more = true;
        } else if (c == 'e' || c == 'E') {
          state = kExpMark;
          exp_digits = 0;
          more = true;
        }
        break;
      case kExpMark:
        if (c == '+' || c == '-') {
          state = kExpSign;
        } else if (digit(c)) {
          state = kExp;
          exp_digits = 1;
        } else {
          return kBad;
        }
        more = true;
        break;
      case kExpSign:
        if (!digit(c)) return kBad;
        state = kExp;
        exp_digits = 1;
        more = true;
        break;
      case kExp:
        if (digit(c)) {
          if (++exp_digits > kMaxExponent) return kBad;
          more = true;
        }
        break;
    }
    if (more) return ++length <= kMaxNumber ? kMore : kBad;
    return may_end() ? kEnded : kBad;
  }
  bool may_end() const { return state == kZero || state == kInt || state == kFrac || state == kExp; }
  bool operator==(const Number&) const = default;

 private:
  // What has been read.
  enum : uint8_t { kMinus, kZero, kInt, kDot, kFrac, kExpMark, kExpSign, kExp };
};

}  // namespace tars::engine::json_lex
