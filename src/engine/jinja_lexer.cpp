// Jinja lexer (see jinja_lexer.h for the whitespace rules it applies).

#include "engine/jinja_lexer.h"

#include <cstdlib>

#include "common/error.h"

namespace tars::engine {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

[[noreturn]] void fail(int line, const std::string& what) {
  throw Error(ErrorCode::kUnsupported, "line " + std::to_string(line) + ": " + what);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// How the previous tag ended, which decides how the next text starts.
struct CloseInfo {
  bool strip = false;      // -%} -}} -#}: drop all leading whitespace
  bool trim_line = false;  // %} #} under trim_blocks: drop one leading newline
};

// How the next tag starts, which decides how the text before it ends.
struct OpenInfo {
  bool strip = false;   // {%- {{- {#-
  bool lstrip = false;  // a block or comment tag without {%+ (lstrip_blocks)
};

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(std::move(src)) {}

  std::vector<JinjaToken> run() {
    size_t pos = 0;
    while (pos < s_.size()) {
      size_t tag = find_tag(pos);
      size_t text_end = tag == std::string::npos ? s_.size() : tag;
      if (tag == std::string::npos) {
        emit_text(pos, text_end, OpenInfo{});
        break;
      }
      char kind = s_[tag + 1];
      char flag = tag + 2 < s_.size() ? s_[tag + 2] : '\0';
      OpenInfo open;
      open.strip = flag == '-';
      open.lstrip = (kind == '%' || kind == '#') && flag != '+';
      emit_text(pos, text_end, open);
      advance_lines(pos, tag);
      size_t body = tag + 2 + ((flag == '-' || (flag == '+' && kind != '{')) ? 1 : 0);
      if (kind == '#') {
        pos = lex_comment(tag, body);
      } else {
        pos = lex_tag(kind, body);
      }
    }
    out_.push_back(JinjaToken{JinjaTokenKind::kEnd, "", 0, 0, line_});
    return std::move(out_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < s_.size(); ++i) {
      if (s_[i] == '{' && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void advance_lines(size_t from, size_t to) {
    for (size_t i = from; i < to && i < s_.size(); ++i) {
      if (s_[i] == '\n') ++line_;
    }
  }

  // Emits s_[begin, end) as text after the whitespace rules.
  void emit_text(size_t begin, size_t end, const OpenInfo& next) {
    int start_line = line_;
    std::string_view t(s_.data() + begin, end - begin);
    if (prev_.strip) {
      size_t k = 0;
      while (k < t.size() && is_space(t[k])) ++k;
      t.remove_prefix(k);
    } else if (prev_.trim_line && !t.empty() && t[0] == '\n') {
      t.remove_prefix(1);
    }
    if (next.strip) {
      while (!t.empty() && is_space(t.back())) t.remove_suffix(1);
    } else if (next.lstrip) {
      size_t nl = t.rfind('\n');
      size_t from = nl == std::string_view::npos ? 0 : nl + 1;
      bool blank = true;
      for (size_t k = from; k < t.size(); ++k) {
        if (t[k] != ' ' && t[k] != '\t') blank = false;
      }
      // Only a tag at the start of a line: after a newline in this text, or
      // (no newline here) when the previous tag's end left us at a line start.
      if (blank && (nl != std::string_view::npos || line_starting_)) t = t.substr(0, from);
    }
    if (!t.empty()) out_.push_back(JinjaToken{JinjaTokenKind::kText, std::string(t), 0, 0, start_line});
    prev_ = CloseInfo{};
  }

  // Records how a tag ended at s_[close_begin, after) with flag `flag`
  // ('-', '+' or '\0') and whether it was a block/comment tag.
  size_t finish_tag(size_t after, char flag, bool block) {
    prev_.strip = flag == '-';
    prev_.trim_line = block && flag != '+';
    // Jinja's lstrip_blocks treats a tag as starting a line when whatever the
    // previous tag's end consumed ends in a newline.
    line_starting_ = false;
    if (prev_.strip) {
      size_t k = after;
      while (k < s_.size() && is_space(s_[k])) ++k;
      line_starting_ = k > after && s_[k - 1] == '\n';
    } else if (prev_.trim_line) {
      line_starting_ = after < s_.size() && s_[after] == '\n';
    }
    return after;
  }

  size_t lex_comment(size_t tag, size_t body) {
    int open_line = line_;
    size_t end = s_.find("#}", body);
    if (end == std::string::npos) fail(open_line, "comment '{#' is never closed with '#}'");
    char flag = (end > body && (s_[end - 1] == '-' || s_[end - 1] == '+')) ? s_[end - 1] : '\0';
    advance_lines(tag, end + 2);
    return finish_tag(end + 2, flag, true);
  }

  // Lexes the inside of a {{ }} or {% %} tag starting at `pos`.
  size_t lex_tag(char kind, size_t pos) {
    int open_line = line_;
    bool expr = kind == '{';
    size_t first_token = out_.size();
    out_.push_back(JinjaToken{expr ? JinjaTokenKind::kExprOpen : JinjaTokenKind::kStmtOpen,
                              expr ? "{{" : "{%", 0, 0, line_});
    int depth = 0;  // open brackets: a '}}' inside a dict literal does not close
    while (true) {
      while (pos < s_.size() && is_space(s_[pos])) {
        if (s_[pos] == '\n') ++line_;
        ++pos;
      }
      if (pos >= s_.size()) {
        fail(open_line, std::string("tag '") + (expr ? "{{" : "{%") + "' is never closed");
      }
      if (depth <= 0) {
        const char* close = expr ? "}}" : "%}";
        char flag = '\0';
        size_t at = pos;
        if ((s_[pos] == '-' || (!expr && s_[pos] == '+')) && s_.compare(pos + 1, 2, close) == 0) {
          flag = s_[pos];
          at = pos + 1;
        }
        if (s_.compare(at, 2, close) == 0) {
          out_.push_back(JinjaToken{expr ? JinjaTokenKind::kExprClose : JinjaTokenKind::kStmtClose,
                                    close, 0, 0, line_});
          size_t after = finish_tag(at + 2, flag, !expr);
          if (!expr && out_.size() == first_token + 3 && out_[first_token + 1].kind == JinjaTokenKind::kName &&
              out_[first_token + 1].text == "raw") {
            out_.resize(first_token);
            return lex_raw(after, open_line);
          }
          return after;
        }
      }
      pos = lex_token(pos, depth);
    }
  }

  // {% raw %} ... {% endraw %}: the text between is output as it is.
  size_t lex_raw(size_t pos, int open_line) {
    size_t search = pos;
    while (true) {
      size_t tag = s_.find("{%", search);
      if (tag == std::string::npos) fail(open_line, "'{% raw %}' has no '{% endraw %}'");
      size_t k = tag + 2;
      char open_flag = (k < s_.size() && (s_[k] == '-' || s_[k] == '+')) ? s_[k] : '\0';
      if (open_flag) ++k;
      while (k < s_.size() && is_space(s_[k])) ++k;
      if (s_.compare(k, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      k += 6;
      while (k < s_.size() && is_space(s_[k])) ++k;
      char close_flag = '\0';
      if (k < s_.size() && (s_[k] == '-' || s_[k] == '+')) close_flag = s_[k++];
      if (s_.compare(k, 2, "%}") != 0) {
        search = tag + 2;
        continue;
      }
      OpenInfo open;
      open.strip = open_flag == '-';
      open.lstrip = open_flag != '+';
      emit_text(pos, tag, open);
      advance_lines(pos, k + 2);
      return finish_tag(k + 2, close_flag, true);
    }
  }

  size_t lex_token(size_t pos, int& depth) {
    char c = s_[pos];
    if (is_name_start(c)) {
      size_t e = pos;
      while (e < s_.size() && is_name_char(s_[e])) ++e;
      out_.push_back(JinjaToken{JinjaTokenKind::kName, s_.substr(pos, e - pos), 0, 0, line_});
      return e;
    }
    if (is_digit(c)) return lex_number(pos);
    if (c == '\'' || c == '"') return lex_string(pos);
    static const char* const kOps2[] = {"**", "//", "==", "!=", "<=", ">="};
    for (const char* op : kOps2) {
      if (s_.compare(pos, 2, op) == 0) {
        out_.push_back(JinjaToken{JinjaTokenKind::kOp, op, 0, 0, line_});
        return pos + 2;
      }
    }
    static const std::string kOps1 = "+-*/%~<>=()[]{},.:|";
    if (kOps1.find(c) != std::string::npos) {
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') --depth;
      out_.push_back(JinjaToken{JinjaTokenKind::kOp, std::string(1, c), 0, 0, line_});
      return pos + 1;
    }
    auto uc = static_cast<unsigned char>(c);
    std::string shown = (uc >= 0x21 && uc < 0x7F) ? std::string(1, c) : "byte " + std::to_string(uc);
    fail(line_, "unexpected character '" + shown + "' inside a tag");
  }

  size_t lex_number(size_t pos) {
    size_t e = pos;
    while (e < s_.size() && is_digit(s_[e])) ++e;
    bool is_float = false;
    if (e + 1 < s_.size() && s_[e] == '.' && is_digit(s_[e + 1])) {
      is_float = true;
      ++e;
      while (e < s_.size() && is_digit(s_[e])) ++e;
    }
    if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
      size_t k = e + 1;
      if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) ++k;
      if (k < s_.size() && is_digit(s_[k])) {
        is_float = true;
        e = k;
        while (e < s_.size() && is_digit(s_[e])) ++e;
      }
    }
    std::string text = s_.substr(pos, e - pos);
    JinjaToken t{is_float ? JinjaTokenKind::kFloat : JinjaTokenKind::kInt, text, 0, 0, line_};
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      uint64_t v = 0;
      for (char d : text) {
        if (v > (static_cast<uint64_t>(INT64_MAX) - static_cast<uint64_t>(d - '0')) / 10) {
          fail(line_, "integer literal " + text.substr(0, 40) + " does not fit in 64 bits");
        }
        v = v * 10 + static_cast<uint64_t>(d - '0');
      }
      t.int_value = static_cast<int64_t>(v);
    }
    out_.push_back(std::move(t));
    return e;
  }

  size_t lex_string(size_t pos) {
    char q = s_[pos];
    int start_line = line_;
    std::string v;
    size_t i = pos + 1;
    while (true) {
      if (i >= s_.size()) fail(start_line, "string literal is never closed");
      char c = s_[i];
      if (c == q) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        v += c;
        ++i;
        continue;
      }
      if (i + 1 >= s_.size()) fail(start_line, "string literal is never closed");
      char e = s_[i + 1];
      i += 2;
      switch (e) {
        case 'n': v += '\n'; break;
        case 't': v += '\t'; break;
        case 'r': v += '\r'; break;
        case '\\': v += '\\'; break;
        case '\'': v += '\''; break;
        case '"': v += '"'; break;
        case 'a': v += '\a'; break;
        case 'b': v += '\b'; break;
        case 'f': v += '\f'; break;
        case 'v': v += '\v'; break;
        case '\n': ++line_; break;  // backslash-newline continues the line
        case 'x':
        case 'u':
        case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            int h = i < s_.size() ? hex_value(s_[i]) : -1;
            if (h < 0) fail(line_, std::string("bad \\") + e + " escape in a string literal");
            cp = cp * 16 + static_cast<uint32_t>(h);
            ++i;
          }
          append_utf8(v, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // octal, up to three digits
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < s_.size() && s_[i] >= '0' && s_[i] <= '7'; ++k) {
              cp = cp * 8 + static_cast<uint32_t>(s_[i++] - '0');
            }
            append_utf8(v, cp);
          } else {  // Python keeps unknown escapes as they are
            v += '\\';
            v += e;
          }
      }
    }
    out_.push_back(JinjaToken{JinjaTokenKind::kString, std::move(v), 0, 0, start_line});
    return i + 1;
  }

  std::string s_;
  std::vector<JinjaToken> out_;
  CloseInfo prev_;
  bool line_starting_ = true;
  int line_ = 1;
};

std::string normalize_newlines(std::string_view src) {
  std::string s;
  s.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      s += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      s += src[i];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();  // keep_trailing_newline=False
  return s;
}

}  // namespace

std::vector<JinjaToken> jinja_lex(std::string_view source) {
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace tars::engine
