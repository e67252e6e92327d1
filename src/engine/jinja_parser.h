#pragma once
// Jinja parser: tokens (jinja_lexer.h) -> syntax tree (jinja_ast.h).
//
// Grammar and precedence follow jinja2 (lowest first): `a if c else b`, or,
// and, not, comparisons (== != < <= > >= in, not in; chained), + -, ~,
// * / // %, **, unary - +, then postfix (.attr, [i], [a:b:c], call) with
// filters (|f) and tests (is [not] t) binding to the unary operand, so
// `a + b | trim` is `a + (b | trim)` and `not x is none` is `not (x is none)`.
//
// Statements: if/elif/else, for (several targets, `if` filter, else), set
// (names, namespace attributes, block form), macro, break/continue, filter
// blocks, and Hugging Face's {% generation %} (rendered as its body).
// Anything else ({% include %}, {% extends %}, {% call %}, ...) is refused.

#include <memory>
#include <string_view>

#include "engine/jinja_ast.h"

namespace tars::engine {

// A parsed template: the top-level statements.
struct JinjaProgram {
  JinjaBody body;
};

// Lexes and parses `source`. Throws tars::Error(kUnsupported) with
// "line N: <what>" for a syntax error, an unknown tag, or nesting deeper than
// the parser's limit (so no template can overflow the stack).
std::unique_ptr<JinjaProgram> jinja_parse(std::string_view source);

}  // namespace tars::engine
