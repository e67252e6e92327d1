#pragma once
// Syntax tree of a parsed Jinja template (jinja_parser.h builds it,
// jinja_eval.cpp walks it). Plain structs; each node owns its children.
//
// The parser bounds the tree's depth (kJinjaMaxAstDepth), so walking and
// freeing it recursively cannot overflow the stack whatever the source.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/jinja_value.h"

namespace tars::engine {

inline constexpr int kJinjaMaxAstDepth = 200;

enum class JinjaExprKind {
  kLiteral,  // `value`
  kName,     // variable `name`
  kList,     // [args...]
  kTuple,    // (args...,): a list that prints as a list too
  kDict,     // {args[0]: args[1], args[2]: args[3], ...}
  kGetAttr,  // args[0].name
  kGetItem,  // args[0][args[1]]
  kSlice,    // args[0][args[1]:args[2]:args[3]]; an omitted part is nullptr
  kCall,     // args[0](args[1...], kwargs...)
  kFilter,   // args[0] | name(args[1...], kwargs...); args[0] is nullptr in {% filter %}
  kTest,     // args[0] is [not] name(args[1...])
  kUnary,    // name ("-", "+", "not") args[0]
  kBinary,   // args[0] name args[1]; name is + - * / // % ** ~ and or
  kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ...; ops are == != < <= > >= in notin
  kCond,     // args[0] if args[1] else args[2]; args[2] nullptr when there is no else
};

struct JinjaExpr {
  JinjaExprKind kind;
  int line = 0;                    // source line, for error messages
  JinjaValue value;                // kLiteral
  std::string name;                // kName, kGetAttr, kFilter, kTest: the name; kUnary/kBinary: the operator
  std::vector<std::string> ops;    // kCompare: the operators between operands
  std::vector<std::unique_ptr<JinjaExpr>> args;  // operands, as described per kind
  std::vector<std::pair<std::string, std::unique_ptr<JinjaExpr>>> kwargs;  // kCall, kFilter: name=value
  bool negated = false;            // kTest: `is not`
  int depth = 1;                   // 1 + the deepest child
};

struct JinjaStmt;
using JinjaBody = std::vector<std::unique_ptr<JinjaStmt>>;

// {% macro name(params, with=defaults) %} body {% endmacro %}
struct JinjaMacro {
  std::string name;
  std::vector<std::string> params;
  std::vector<std::unique_ptr<JinjaExpr>> defaults;  // (params.size()); nullptr: required
  JinjaBody body;
  int line = 0;
};

enum class JinjaStmtKind {
  kText,         // literal `text`
  kPrint,        // {{ expr }}
  kIf,           // {% if %}: `branches`, the last one's condition nullptr for {% else %}
  kFor,          // {% for targets in expr [if cond] %} body {% else %} else_body {% endfor %}
  kSet,          // {% set targets = expr %} or {% set targets[0].attr = expr %}
  kSetBlock,     // {% set targets[0] %} body {% endset %}
  kMacro,        // {% macro %}: `macro`
  kBreak,        // {% break %}
  kContinue,     // {% continue %}
  kFilterBlock,  // {% filter name(args) %} body {% endfilter %}: `expr` is the filter (kFilter, args[0] nullptr)
};

struct JinjaIfBranch {
  std::unique_ptr<JinjaExpr> cond;  // nullptr: else
  JinjaBody body;
};

struct JinjaStmt {
  JinjaStmtKind kind;
  int line = 0;
  std::string text;                    // kText
  std::unique_ptr<JinjaExpr> expr;     // kPrint, kSet: the value; kFor: the iterable; kFilterBlock: the filter
  std::vector<JinjaIfBranch> branches; // kIf
  std::vector<std::string> targets;    // kFor: loop variables; kSet/kSetBlock: names assigned
  std::string attr;                    // kSet: `set targets[0].attr = ...` (namespace attribute), else ""
  std::unique_ptr<JinjaExpr> cond;     // kFor: the `if` filter, or nullptr
  JinjaBody body;                      // kFor, kSetBlock, kFilterBlock
  JinjaBody else_body;                 // kFor: rendered when nothing was iterated
  std::unique_ptr<JinjaMacro> macro;   // kMacro
};

}  // namespace tars::engine
