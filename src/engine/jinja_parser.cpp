// Jinja parser (see jinja_parser.h): recursive descent over the token list.

#include "engine/jinja_parser.h"

#include <algorithm>
#include <initializer_list>
#include <vector>

#include "common/error.h"
#include "engine/jinja_lexer.h"

namespace tars::engine {

namespace {

// Parser recursion (nested parentheses, unary operators, blocks) beyond this
// is refused before it can exhaust the stack.
constexpr int kMaxParseDepth = 100;

using ExprPtr = std::unique_ptr<JinjaExpr>;
using T = JinjaTokenKind;

class Parser {
 public:
  explicit Parser(std::vector<JinjaToken> toks) : t_(std::move(toks)) {}

  std::unique_ptr<JinjaProgram> run() {
    auto prog = std::make_unique<JinjaProgram>();
    std::string end = parse_body(prog->body, {});
    (void)end;
    return prog;
  }

 private:
  // ---- token helpers -------------------------------------------------------
  const JinjaToken& cur() const { return t_[i_]; }
  const JinjaToken& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().kind == T::kOp && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == T::kName && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  static std::string describe(const JinjaToken& t) {
    switch (t.kind) {
      case T::kText: return "template text";
      case T::kExprOpen: return "'{{'";
      case T::kExprClose: return "'}}'";
      case T::kStmtOpen: return "'{%'";
      case T::kStmtClose: return "'%}'";
      case T::kName: return "'" + t.text + "'";
      case T::kString: return "a string";
      case T::kInt:
      case T::kFloat: return "number " + t.text;
      case T::kOp: return "'" + t.text + "'";
      case T::kEnd: return "the end of the template";
    }
    return "?";
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kUnsupported, "line " + std::to_string(cur().line) + ": " + what);
  }
  [[noreturn]] void fail_expected(const std::string& what) const {
    fail("expected " + what + ", found " + describe(cur()));
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail_expected(std::string("'") + op + "'");
  }
  void expect(T kind, const char* what) {
    if (cur().kind != kind) fail_expected(what);
    next();
  }
  std::string expect_name(const char* what) {
    if (cur().kind != T::kName) fail_expected(what);
    std::string n = cur().text;
    next();
    return n;
  }

  // RAII guard on parser recursion.
  struct Deeper {
    explicit Deeper(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxParseDepth) {
        p_.fail("the template nests blocks or expressions more than " + std::to_string(kMaxParseDepth) +
                " levels deep");
      }
    }
    ~Deeper() { --p_.depth_; }
    Parser& p_;
  };

  // ---- node construction ----------------------------------------------------
  ExprPtr node(JinjaExprKind kind, int line) {
    auto e = std::make_unique<JinjaExpr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  // Sets e->depth from its children; refuses trees deeper than the limit.
  ExprPtr seal(ExprPtr e) {
    int d = 0;
    for (const auto& a : e->args) {
      if (a) d = std::max(d, a->depth);
    }
    for (const auto& [k, a] : e->kwargs) d = std::max(d, a->depth);
    e->depth = d + 1;
    if (e->depth > kJinjaMaxAstDepth) {
      throw Error(ErrorCode::kUnsupported, "line " + std::to_string(e->line) +
                                               ": expression nested more than " +
                                               std::to_string(kJinjaMaxAstDepth) + " levels deep");
    }
    return e;
  }
  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, int line) {
    auto e = node(JinjaExprKind::kBinary, line);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return seal(std::move(e));
  }

  // ---- statements -----------------------------------------------------------
  // Parses statements until a {% <one of end_tags> ... or the end. Returns the
  // end tag's name with the tokens after it still to read ("" at the end of
  // the template, which is an error when end_tags is not empty).
  std::string parse_body(JinjaBody& body, std::initializer_list<const char*> end_tags) {
    Deeper guard(*this);
    while (true) {
      const JinjaToken& tok = cur();
      if (tok.kind == T::kEnd) {
        if (end_tags.size() != 0) {
          std::string want;
          for (const char* e : end_tags) want += std::string(want.empty() ? "" : " or ") + "{% " + e + " %}";
          fail("missing " + want + " (block opened at line " + std::to_string(block_line_) + ")");
        }
        return "";
      }
      if (tok.kind == T::kText) {
        auto s = std::make_unique<JinjaStmt>();
        s->kind = JinjaStmtKind::kText;
        s->line = tok.line;
        s->text = tok.text;
        body.push_back(std::move(s));
        next();
        continue;
      }
      if (tok.kind == T::kExprOpen) {
        auto s = std::make_unique<JinjaStmt>();
        s->kind = JinjaStmtKind::kPrint;
        s->line = tok.line;
        next();
        s->expr = parse_tuple_or_expr();
        expect(T::kExprClose, "'}}'");
        body.push_back(std::move(s));
        continue;
      }
      if (tok.kind != T::kStmtOpen) fail_expected("text, '{{' or '{%'");
      next();
      std::string tag = expect_name("a tag name after '{%'");
      for (const char* e : end_tags) {
        if (tag == e) return tag;
      }
      body.push_back(parse_statement(tag, tok.line));
    }
  }

  std::unique_ptr<JinjaStmt> parse_statement(const std::string& tag, int line) {
    auto s = std::make_unique<JinjaStmt>();
    s->line = line;
    int saved_block_line = block_line_;
    block_line_ = line;
    if (tag == "if") {
      parse_if(*s);
    } else if (tag == "for") {
      parse_for(*s);
    } else if (tag == "set") {
      parse_set(*s);
    } else if (tag == "macro") {
      parse_macro(*s);
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("{% " + tag + " %} outside a for loop");
      s->kind = tag == "break" ? JinjaStmtKind::kBreak : JinjaStmtKind::kContinue;
      expect(T::kStmtClose, "'%}'");
    } else if (tag == "filter") {
      s->kind = JinjaStmtKind::kFilterBlock;
      s->expr = parse_filter(nullptr);
      expect(T::kStmtClose, "'%}'");
      parse_body(s->body, {"endfilter"});
      expect(T::kStmtClose, "'%}'");
    } else if (tag == "generation") {
      // Hugging Face's marker for assistant tokens: renders as its body. A
      // filter block with no filter is exactly that.
      s->kind = JinjaStmtKind::kFilterBlock;
      expect(T::kStmtClose, "'%}'");
      parse_body(s->body, {"endgeneration"});
      expect(T::kStmtClose, "'%}'");
    } else if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else") {
      fail("'{% " + tag + " %}' does not close any open block");
    } else {
      fail("unsupported tag '{% " + tag + " %}' (this renderer knows if, for, set, macro, "
           "break, continue, filter, raw and generation)");
    }
    block_line_ = saved_block_line;
    return s;
  }

  void parse_if(JinjaStmt& s) {
    s.kind = JinjaStmtKind::kIf;
    JinjaIfBranch first;
    first.cond = parse_expression(true);
    expect(T::kStmtClose, "'%}'");
    std::string end = parse_body(first.body, {"elif", "else", "endif"});
    s.branches.push_back(std::move(first));
    while (end == "elif") {
      JinjaIfBranch b;
      b.cond = parse_expression(true);
      expect(T::kStmtClose, "'%}'");
      end = parse_body(b.body, {"elif", "else", "endif"});
      s.branches.push_back(std::move(b));
    }
    if (end == "else") {
      expect(T::kStmtClose, "'%}'");
      JinjaIfBranch b;
      parse_body(b.body, {"endif"});
      s.branches.push_back(std::move(b));
    }
    expect(T::kStmtClose, "'%}'");
  }

  void parse_for(JinjaStmt& s) {
    s.kind = JinjaStmtKind::kFor;
    bool paren = skip_op("(");
    do {
      s.targets.push_back(expect_name("a loop variable name"));
    } while (skip_op(","));
    if (paren) expect_op(")");
    if (!skip_name("in")) fail_expected("'in'");
    s.expr = parse_tuple_or_expr(false);
    if (skip_name("if")) s.cond = parse_expression(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    expect(T::kStmtClose, "'%}'");
    ++loop_depth_;
    std::string end = parse_body(s.body, {"else", "endfor"});
    --loop_depth_;
    if (end == "else") {
      expect(T::kStmtClose, "'%}'");
      parse_body(s.else_body, {"endfor"});
    }
    expect(T::kStmtClose, "'%}'");
  }

  void parse_set(JinjaStmt& s) {
    s.targets.push_back(expect_name("a variable name after 'set'"));
    if (skip_op(".")) {
      s.attr = expect_name("an attribute name");
    } else {
      while (skip_op(",")) s.targets.push_back(expect_name("a variable name"));
    }
    if (skip_op("=")) {
      s.kind = JinjaStmtKind::kSet;
      s.expr = parse_tuple_or_expr();
      expect(T::kStmtClose, "'%}'");
      return;
    }
    if (!s.attr.empty() || s.targets.size() != 1) fail_expected("'='");
    // Block set: {% set x %}...{% endset %} (a filter on it is not supported).
    s.kind = JinjaStmtKind::kSetBlock;
    expect(T::kStmtClose, "'%}' or '='");
    parse_body(s.body, {"endset"});
    expect(T::kStmtClose, "'%}'");
  }

  void parse_macro(JinjaStmt& s) {
    s.kind = JinjaStmtKind::kMacro;
    s.macro = std::make_unique<JinjaMacro>();
    JinjaMacro& m = *s.macro;
    m.line = s.line;
    m.name = expect_name("a macro name");
    expect_op("(");
    while (!is_op(")")) {
      m.params.push_back(expect_name("a parameter name"));
      m.defaults.push_back(skip_op("=") ? parse_expression(true) : nullptr);
      if (!skip_op(",")) break;
    }
    expect_op(")");
    expect(T::kStmtClose, "'%}'");
    int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot leave a macro
    parse_body(m.body, {"endmacro"});
    loop_depth_ = saved_loops;
    expect(T::kStmtClose, "'%}'");
  }

  // ---- expressions ----------------------------------------------------------
  // expr or expr, expr, ... (a tuple), as {{ }}, set and for accept.
  ExprPtr parse_tuple_or_expr(bool with_cond = true) {
    int line = cur().line;
    ExprPtr first = parse_expression(with_cond);
    if (!is_op(",")) return first;
    auto t = node(JinjaExprKind::kTuple, line);
    t->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().kind == T::kExprClose || cur().kind == T::kStmtClose || is_name("if")) break;
      t->args.push_back(parse_expression(with_cond));
    }
    return seal(std::move(t));
  }

  ExprPtr parse_expression(bool with_cond) {
    ExprPtr e = parse_or();
    while (with_cond && is_name("if")) {
      int line = cur().line;
      next();
      auto c = node(JinjaExprKind::kCond, line);
      ExprPtr cond = parse_or();
      ExprPtr other = skip_name("else") ? parse_expression(true) : nullptr;
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(other));
      e = seal(std::move(c));
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      int line = cur().line;
      next();
      e = binary("or", std::move(e), parse_and(), line);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      int line = cur().line;
      next();
      e = binary("and", std::move(e), parse_not(), line);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Deeper guard(*this);
      int line = cur().line;
      next();
      auto e = node(JinjaExprKind::kUnary, line);
      e->name = "not";
      e->args.push_back(parse_not());
      return seal(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<JinjaExpr> cmp;
    while (true) {
      std::string op;
      if (cur().kind == T::kOp && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                   cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().kind == T::kName && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(JinjaExprKind::kCompare, line);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    if (!cmp) return first;
    return seal(std::move(cmp));
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      int line = cur().line;
      next();
      e = binary(op, std::move(e), parse_concat(), line);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      int line = cur().line;
      next();
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      int line = cur().line;
      next();
      e = binary(op, std::move(e), parse_pow(), line);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      int line = cur().line;
      next();
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    Deeper guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      auto u = node(JinjaExprKind::kUnary, cur().line);
      u->name = cur().text;
      next();
      u->args.push_back(parse_unary(false));
      e = seal(std::move(u));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const JinjaToken& tok = cur();
    int line = tok.line;
    switch (tok.kind) {
      case T::kName: {
        const std::string& n = tok.text;
        auto lit = [&](JinjaValue v) {
          auto e = node(JinjaExprKind::kLiteral, line);
          e->value = std::move(v);
          next();
          return seal(std::move(e));
        };
        if (n == "true" || n == "True") return lit(JinjaValue(true));
        if (n == "false" || n == "False") return lit(JinjaValue(false));
        if (n == "none" || n == "None") return lit(JinjaValue::none());
        auto e = node(JinjaExprKind::kName, line);
        e->name = n;
        next();
        return seal(std::move(e));
      }
      case T::kString: {
        std::string s = tok.text;
        next();
        while (cur().kind == T::kString) {  // "a" "b" is "ab", as in Python
          s += cur().text;
          next();
        }
        auto e = node(JinjaExprKind::kLiteral, line);
        e->value = JinjaValue(std::move(s));
        return seal(std::move(e));
      }
      case T::kInt:
      case T::kFloat: {
        auto e = node(JinjaExprKind::kLiteral, line);
        e->value = tok.kind == T::kInt ? JinjaValue(tok.int_value) : JinjaValue(tok.float_value);
        next();
        return seal(std::move(e));
      }
      case T::kOp:
        if (tok.text == "(") return parse_paren();
        if (tok.text == "[") return parse_list();
        if (tok.text == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail_expected("an expression");
  }

  // ( ) | ( expr ) | ( expr , ... )
  ExprPtr parse_paren() {
    int line = cur().line;
    next();
    if (skip_op(")")) return seal(node(JinjaExprKind::kTuple, line));
    ExprPtr first = parse_expression(true);
    if (skip_op(")")) return first;
    auto t = node(JinjaExprKind::kTuple, line);
    t->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (is_op(")")) break;
      t->args.push_back(parse_expression(true));
    }
    expect_op(")");
    return seal(std::move(t));
  }

  ExprPtr parse_list() {
    auto e = node(JinjaExprKind::kList, cur().line);
    next();
    while (!is_op("]")) {
      e->args.push_back(parse_expression(true));
      if (!skip_op(",")) break;
    }
    expect_op("]");
    return seal(std::move(e));
  }

  ExprPtr parse_dict() {
    auto e = node(JinjaExprKind::kDict, cur().line);
    next();
    while (!is_op("}")) {
      e->args.push_back(parse_expression(true));
      expect_op(":");
      e->args.push_back(parse_expression(true));
      if (!skip_op(",")) break;
    }
    expect_op("}");
    return seal(std::move(e));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      int line = cur().line;
      if (is_op(".")) {
        next();
        if (cur().kind == T::kInt) {  // x.0 is x[0]
          auto idx = node(JinjaExprKind::kLiteral, line);
          idx->value = JinjaValue(cur().int_value);
          next();
          auto g = node(JinjaExprKind::kGetItem, line);
          g->args.push_back(std::move(e));
          g->args.push_back(seal(std::move(idx)));
          e = seal(std::move(g));
          continue;
        }
        auto g = node(JinjaExprKind::kGetAttr, line);
        g->name = expect_name("an attribute name after '.'");
        g->args.push_back(std::move(e));
        e = seal(std::move(g));
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target) {
    Deeper guard(*this);
    int line = cur().line;
    next();  // [
    ExprPtr parts[3];
    int n = 0;
    bool slice = false;
    while (true) {
      if (!is_op(":") && !is_op("]")) parts[n] = parse_expression(true);
      if (is_op(":")) {
        slice = true;
        if (n == 2) fail("a slice has at most two ':'");
        next();
        ++n;
        continue;
      }
      break;
    }
    expect_op("]");
    auto g = node(slice ? JinjaExprKind::kSlice : JinjaExprKind::kGetItem, line);
    g->args.push_back(std::move(target));
    if (slice) {
      for (auto& p : parts) g->args.push_back(std::move(p));
    } else {
      if (!parts[0]) fail("empty subscript '[]'");
      g->args.push_back(std::move(parts[0]));
    }
    return seal(std::move(g));
  }

  // Reads "(args, name=value)" into e->args (after what is already there) and e->kwargs.
  void parse_args(JinjaExpr& e) {
    Deeper guard(*this);
    expect_op("(");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
      if (cur().kind == T::kName && peek().kind == T::kOp && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail("a positional argument follows a keyword argument");
        e.args.push_back(parse_expression(true));
      }
      if (!skip_op(",")) break;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = node(JinjaExprKind::kCall, cur().line);
    c->args.push_back(std::move(callee));
    parse_args(*c);
    return seal(std::move(c));
  }

  // | name [(args)]   (`operand` nullptr for {% filter %} blocks)
  ExprPtr parse_filter(ExprPtr operand) {
    auto f = node(JinjaExprKind::kFilter, cur().line);
    f->name = expect_name("a filter name");
    while (is_op(".") && peek().kind == T::kName) {  // dotted filter names
      next();
      f->name += "." + cur().text;
      next();
    }
    f->args.push_back(std::move(operand));
    if (is_op("(")) parse_args(*f);
    return seal(std::move(f));
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_test(ExprPtr operand) {
    auto t = node(JinjaExprKind::kTest, cur().line);
    next();  // is
    if (skip_name("not")) t->negated = true;
    t->name = expect_name("a test name after 'is'");
    t->args.push_back(std::move(operand));
    if (is_op("(")) {
      parse_args(*t);
    } else if (starts_test_argument()) {
      Deeper guard(*this);
      t->args.push_back(parse_postfix(parse_primary()));
    }
    return seal(std::move(t));
  }

  // `x is divisibleby 3`: a test takes one argument without parentheses when
  // what follows can start one and is no keyword that continues the
  // expression.
  bool starts_test_argument() const {
    const JinjaToken& tok = cur();
    if (tok.kind == T::kString || tok.kind == T::kInt || tok.kind == T::kFloat) return true;
    if (tok.kind == T::kOp) return tok.text == "[" || tok.text == "{";
    if (tok.kind != T::kName) return false;
    static const char* const kKeywords[] = {"else", "or", "and", "is", "if", "in", "not", "for", "recursive"};
    // ("is" ends the argument: `x is a is b` tests the result again.)
    for (const char* k : kKeywords) {
      if (tok.text == k) return false;
    }
    return true;
  }

  std::vector<JinjaToken> t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  int block_line_ = 0;
};

}  // namespace

std::unique_ptr<JinjaProgram> jinja_parse(std::string_view source) {
  return Parser(jinja_lex(source)).run();
}

}  // namespace tars::engine
