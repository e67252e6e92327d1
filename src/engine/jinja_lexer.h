#pragma once
// Jinja lexer: template source -> flat token list.
//
// It applies the whitespace rules of the environment Hugging Face renders
// chat templates in (jinja2 with trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False), so the parser never sees whitespace control:
//   - "\r\n" and "\r" become "\n", and one final newline of the source is
//     dropped;
//   - {%- / {{- / {#- strip all whitespace before the tag, -%} / -}} / -#}
//     all whitespace after it;
//   - trim_blocks: the first newline after a block or comment tag (%} #}) is
//     dropped, unless the tag ends with +%};
//   - lstrip_blocks: spaces and tabs between the start of a line and a block
//     or comment tag are dropped, unless the tag starts with {%+;
//   - {% raw %}...{% endraw %} becomes one text token;
//   - comments disappear.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tars::engine {

enum class JinjaTokenKind {
  kText,       // literal template text (already whitespace-processed)
  kExprOpen,   // {{
  kExprClose,  // }}
  kStmtOpen,   // {%
  kStmtClose,  // %}
  kName,       // identifier or keyword (if, for, in, not, and, true, none, ...)
  kString,     // string literal, escapes decoded
  kInt,        // integer literal (value in `int_value`)
  kFloat,      // float literal (value in `float_value`)
  kOp,         // operator or punctuation: + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
  kEnd,        // end of the template
};

struct JinjaToken {
  JinjaTokenKind kind;
  std::string text;      // kText: the text; kName: the name; kString: decoded value; kOp: the operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;          // 1-based source line where the token starts
};

// Tokenizes `source`. Throws tars::Error(kUnsupported) naming the line for an
// unclosed tag, comment or string, a character that is no Jinja token, or an
// integer literal that does not fit in 64 bits.
std::vector<JinjaToken> jinja_lex(std::string_view source);

}  // namespace tars::engine
