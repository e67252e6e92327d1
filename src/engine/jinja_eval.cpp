// Jinja renderer: walks the syntax tree (jinja_ast.h) with jinja2's scoping
// rules. See jinja.h.
//
// Scopes: frame 0 holds the render's variables and the template's top-level
// `set`s; each for-loop iteration gets a fresh frame (so a `set` inside a loop
// is gone at the next iteration and after the loop, as in jinja2 -- which is
// why templates use namespace()); `if` opens no scope; a macro call gets a
// frame whose parent is frame 0.

#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/jinja.h"
#include "engine/jinja_ast.h"
#include "engine/jinja_builtins.h"
#include "engine/jinja_parser.h"

namespace tars::engine {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error(ErrorCode::kUnsupported, msg); }

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  Renderer(const JinjaOptions& options, const JinjaDict& context) : cx_(options) {
    frames_.push_back(Frame{context, 0});
    out_limit_ = options.limits.max_output_bytes;
  }

  std::string run(const JinjaBody& body) {
    std::string out;
    out_ = &out;
    render_body(body);
    return out;
  }

  int line() const { return line_; }

 private:
  struct Frame {
    JinjaDict vars;
    size_t parent;  // enclosing frame (frame 0 is its own parent)
  };

  // Pushes a frame for the lifetime of the guard.
  class FrameGuard {
   public:
    FrameGuard(Renderer& r, size_t parent) : r_(r), saved_(r.cur_) {
      r.frames_.push_back(Frame{{}, parent});
      r.cur_ = r.frames_.size() - 1;
    }
    ~FrameGuard() {
      r_.frames_.pop_back();
      r_.cur_ = saved_;
    }

   private:
    Renderer& r_;
    size_t saved_;
  };

  // Sends output to a fresh buffer (set blocks, macros, filter blocks) for
  // the lifetime of the guard.
  class Capture {
   public:
    explicit Capture(Renderer& r) : r_(r), saved_(r.out_), saved_limit_(r.out_limit_) {
      r.out_ = &buf_;
      r.out_limit_ = r.cx_.options.limits.max_value_bytes;
    }
    ~Capture() {
      r_.out_ = saved_;
      r_.out_limit_ = saved_limit_;
    }
    std::string take() { return std::move(buf_); }

   private:
    Renderer& r_;
    std::string* saved_;
    size_t saved_limit_;
    std::string buf_;
  };

  // ---- variables ------------------------------------------------------------
  const JinjaValue* lookup(const std::string& name) const {
    for (size_t f = cur_;; f = frames_[f].parent) {
      if (const JinjaValue* v = jinja_dict_find(frames_[f].vars, name)) return v;
      if (f == 0) return nullptr;
    }
  }

  void assign(const std::string& name, JinjaValue v) {
    JinjaDict& vars = frames_[cur_].vars;
    for (auto& [k, old] : vars) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }

  // Binds `names` to `v`, unpacking a list when there are several names.
  void assign_targets(const std::vector<std::string>& names, const JinjaValue& v) {
    if (names.size() == 1) {
      assign(names[0], v);
      return;
    }
    if (!v.is_list() || v.as_list().size() != names.size()) {
      fail("cannot unpack a '" + std::string(v.type_name()) + "' into " + std::to_string(names.size()) +
           " variables");
    }
    for (size_t i = 0; i < names.size(); ++i) assign(names[i], v.as_list()[i]);
  }

  // ---- output ---------------------------------------------------------------
  void emit(const std::string& s) {
    cx_.budget.spend(1 + s.size() / 16);
    out_->append(s);
    if (out_->size() > out_limit_) {
      throw Error(ErrorCode::kTooLarge,
                  "the rendered text is over the limit of " + std::to_string(out_limit_) + " bytes");
    }
  }

  // ---- statements -----------------------------------------------------------
  Flow render_body(const JinjaBody& body) {
    for (const auto& s : body) {
      Flow f = render_stmt(*s);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow render_stmt(const JinjaStmt& s) {
    line_ = s.line;
    cx_.budget.spend(1);
    switch (s.kind) {
      case JinjaStmtKind::kText:
        emit(s.text);
        return Flow::kNormal;
      case JinjaStmtKind::kPrint:
        emit(jinja_to_string(eval(*s.expr), cx_.options.limits.max_value_bytes));
        return Flow::kNormal;
      case JinjaStmtKind::kIf:
        for (const auto& b : s.branches) {
          if (!b.cond || eval(*b.cond).truthy()) return render_body(b.body);
        }
        return Flow::kNormal;
      case JinjaStmtKind::kFor:
        render_for(s);
        return Flow::kNormal;
      case JinjaStmtKind::kSet:
        render_set(s);
        return Flow::kNormal;
      case JinjaStmtKind::kSetBlock: {
        std::string text;
        {
          Capture cap(*this);
          render_body(s.body);
          text = cap.take();
        }
        assign(s.targets[0], JinjaValue(std::move(text)));
        return Flow::kNormal;
      }
      case JinjaStmtKind::kMacro:
        assign(s.macro->name, JinjaValue(JinjaMacroRef{s.macro.get()}));
        return Flow::kNormal;
      case JinjaStmtKind::kBreak:
        return Flow::kBreak;
      case JinjaStmtKind::kContinue:
        return Flow::kContinue;
      case JinjaStmtKind::kFilterBlock: {
        std::string text;
        {
          Capture cap(*this);
          Flow f = render_body(s.body);
          text = cap.take();
          if (f != Flow::kNormal) {
            emit_filtered(s, std::move(text));
            return f;
          }
        }
        emit_filtered(s, std::move(text));
        return Flow::kNormal;
      }
    }
    return Flow::kNormal;
  }

  void emit_filtered(const JinjaStmt& s, std::string text) {
    if (!s.expr) {  // {% generation %}
      emit(text);
      return;
    }
    JinjaArgs args;
    JinjaKwargs kwargs;
    eval_args(*s.expr, 1, args, kwargs);
    emit(jinja_to_string(jinja_filter(cx_, s.expr->name, JinjaValue(std::move(text)), args, kwargs),
                         cx_.options.limits.max_value_bytes));
  }

  void render_set(const JinjaStmt& s) {
    JinjaValue v = eval(*s.expr);
    if (s.attr.empty()) {
      assign_targets(s.targets, v);
      return;
    }
    const JinjaValue* target = lookup(s.targets[0]);
    if (target == nullptr || !target->is_namespace()) {
      fail("cannot set '" + s.targets[0] + "." + s.attr + "': '" + s.targets[0] +
           "' is not a namespace() object");
    }
    JinjaDict& attrs = target->as_namespace()->attrs;
    for (auto& [k, old] : attrs) {
      if (k == s.attr) {
        old = std::move(v);
        return;
      }
    }
    attrs.emplace_back(s.attr, std::move(v));
  }

  void render_for(const JinjaStmt& s) {
    JinjaList items = jinja_iterate(cx_, eval(*s.expr));
    if (s.cond) {  // {% for x in xs if cond %}: filter first, so loop.length counts what remains
      JinjaList kept;
      for (const auto& item : items) {
        FrameGuard frame(*this, cur_);
        assign_targets(s.targets, item);
        if (eval(*s.cond).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const size_t n = items.size();
    const size_t outer = cur_;
    for (size_t i = 0; i < n; ++i) {
      cx_.budget.spend(1);
      FrameGuard frame(*this, outer);
      assign_targets(s.targets, items[i]);
      auto idx = static_cast<int64_t>(i);
      auto len = static_cast<int64_t>(n);
      assign("loop", JinjaValue(JinjaDict{
                         {"index0", JinjaValue(idx)},
                         {"index", JinjaValue(idx + 1)},
                         {"revindex0", JinjaValue(len - idx - 1)},
                         {"revindex", JinjaValue(len - idx)},
                         {"first", JinjaValue(i == 0)},
                         {"last", JinjaValue(i + 1 == n)},
                         {"length", JinjaValue(len)},
                         {"depth", JinjaValue(int64_t{1})},
                         {"depth0", JinjaValue(int64_t{0})},
                         {"previtem", i > 0 ? items[i - 1] : JinjaValue::undefined("loop.previtem")},
                         {"nextitem", i + 1 < n ? items[i + 1] : JinjaValue::undefined("loop.nextitem")},
                     }));
      if (render_body(s.body) == Flow::kBreak) break;
    }
    if (n == 0) render_body(s.else_body);
  }

  // ---- expressions ----------------------------------------------------------
  void eval_args(const JinjaExpr& e, size_t first, JinjaArgs& args, JinjaKwargs& kwargs) {
    for (size_t i = first; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(*v));
  }

  JinjaValue eval(const JinjaExpr& e) {
    line_ = e.line;
    cx_.budget.spend(1);
    switch (e.kind) {
      case JinjaExprKind::kLiteral:
        return e.value;
      case JinjaExprKind::kName: {
        const JinjaValue* v = lookup(e.name);
        if (v) return *v;
        if (jinja_is_global(e.name)) return JinjaValue(JinjaFunction{e.name});
        return JinjaValue::undefined(e.name);
      }
      case JinjaExprKind::kList:
      case JinjaExprKind::kTuple: {
        JinjaList l;
        for (const auto& a : e.args) l.push_back(eval(*a));
        JinjaValue v = cx_.list(std::move(l));
        return e.kind == JinjaExprKind::kTuple ? JinjaValue::tuple(JinjaList(v.as_list())) : v;
      }
      case JinjaExprKind::kDict: {
        JinjaDict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          JinjaValue k = eval(*e.args[i]);
          if (!k.is_string()) fail(std::string("dict keys must be strings, not '") + k.type_name() + "'");
          JinjaValue v = eval(*e.args[i + 1]);
          bool replaced = false;
          for (auto& [dk, dv] : d) {
            if (dk == k.as_string()) {
              dv = v;
              replaced = true;
            }
          }
          if (!replaced) d.emplace_back(k.as_string(), std::move(v));
        }
        return JinjaValue(std::move(d));
      }
      case JinjaExprKind::kGetAttr:
        return jinja_getattr(eval(*e.args[0]), e.name);
      case JinjaExprKind::kGetItem: {
        JinjaValue obj = eval(*e.args[0]);
        return jinja_getitem(cx_, obj, eval(*e.args[1]));
      }
      case JinjaExprKind::kSlice: {
        JinjaValue obj = eval(*e.args[0]);
        JinjaValue parts[3];
        for (int i = 0; i < 3; ++i) {
          if (e.args[1 + i]) parts[i] = eval(*e.args[1 + i]);
        }
        return jinja_slice(cx_, obj, parts[0], parts[1], parts[2]);
      }
      case JinjaExprKind::kCall:
        return eval_call(e);
      case JinjaExprKind::kFilter: {
        JinjaValue v = eval(*e.args[0]);
        JinjaArgs args;
        JinjaKwargs kwargs;
        eval_args(e, 1, args, kwargs);
        line_ = e.line;
        return jinja_filter(cx_, e.name, v, args, kwargs);
      }
      case JinjaExprKind::kTest: {
        JinjaValue v = eval(*e.args[0]);
        JinjaArgs args;
        JinjaKwargs kwargs;
        eval_args(e, 1, args, kwargs);
        if (!kwargs.empty()) fail("test '" + e.name + "' takes no keyword arguments");
        line_ = e.line;
        return JinjaValue(jinja_test(cx_, e.name, v, args) != e.negated);
      }
      case JinjaExprKind::kUnary: {
        JinjaValue v = eval(*e.args[0]);
        if (e.name == "not") return JinjaValue(!v.truthy());
        return jinja_unary(e.name, v);
      }
      case JinjaExprKind::kBinary: {
        JinjaValue a = eval(*e.args[0]);
        if (e.name == "and") return a.truthy() ? eval(*e.args[1]) : a;
        if (e.name == "or") return a.truthy() ? a : eval(*e.args[1]);
        JinjaValue b = eval(*e.args[1]);
        line_ = e.line;
        return jinja_binary(cx_, e.name, a, b);
      }
      case JinjaExprKind::kCompare:
        return JinjaValue(eval_compare(e));
      case JinjaExprKind::kCond:
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : JinjaValue::undefined("(if without else)");
    }
    return JinjaValue();
  }

  bool eval_compare(const JinjaExpr& e) {
    JinjaValue left = eval(*e.args[0]);
    for (size_t i = 0; i < e.ops.size(); ++i) {
      JinjaValue right = eval(*e.args[i + 1]);
      line_ = e.line;
      const std::string& op = e.ops[i];
      bool r;
      JinjaBudget* b = &cx_.budget;
      if (op == "==") r = jinja_equal(left, right, b);
      else if (op == "!=") r = !jinja_equal(left, right, b);
      else if (op == "<") r = jinja_less(left, right, b);
      else if (op == ">") r = jinja_less(right, left, b);
      else if (op == "<=") r = jinja_less(left, right, b) || jinja_equal(left, right, b);
      else if (op == ">=") r = jinja_less(right, left, b) || jinja_equal(left, right, b);
      else if (op == "in") r = jinja_contains(cx_, right, left);
      else r = !jinja_contains(cx_, right, left);  // notin
      if (!r) return false;
      left = std::move(right);
    }
    return true;
  }

  JinjaValue eval_call(const JinjaExpr& e) {
    const JinjaExpr& callee = *e.args[0];
    if (callee.kind == JinjaExprKind::kGetAttr) {  // obj.method(...)
      JinjaValue obj = eval(*callee.args[0]);
      JinjaArgs args;
      JinjaKwargs kwargs;
      eval_args(e, 1, args, kwargs);
      line_ = e.line;
      JinjaValue attr = obj.is_dict() || obj.is_namespace() ? jinja_getattr(obj, callee.name) : JinjaValue();
      if (attr.is_macro()) return call_macro(*attr.as_macro(), args, kwargs);
      return jinja_method(cx_, obj, callee.name, args, kwargs);
    }
    if (callee.kind == JinjaExprKind::kName) {
      const JinjaValue* found = lookup(callee.name);
      // A copy: evaluating the arguments may push frames and move frames_.
      JinjaValue v = found ? *found : JinjaValue::undefined(callee.name);
      JinjaArgs args;
      JinjaKwargs kwargs;
      eval_args(e, 1, args, kwargs);
      line_ = e.line;
      if (v.is_macro()) return call_macro(*v.as_macro(), args, kwargs);
      if (v.is_function()) return jinja_call_global(cx_, v.function_name(), args, kwargs);
      if (!v.is_undefined()) fail("'" + callee.name + "' (a " + v.type_name() + ") is not callable");
      if (jinja_is_global(callee.name)) return jinja_call_global(cx_, callee.name, args, kwargs);
      fail("unknown function '" + callee.name + "()'");
    }
    JinjaValue f = eval(callee);
    JinjaArgs args;
    JinjaKwargs kwargs;
    eval_args(e, 1, args, kwargs);
    line_ = e.line;
    if (f.is_macro()) return call_macro(*f.as_macro(), args, kwargs);
    if (f.is_function()) return jinja_call_global(cx_, f.function_name(), args, kwargs);
    fail(std::string("a '") + f.type_name() + "' is not callable");
  }

  JinjaValue call_macro(const JinjaMacro& m, const JinjaArgs& args, const JinjaKwargs& kwargs) {
    if (call_depth_ >= cx_.options.limits.max_call_depth) {
      throw Error(ErrorCode::kTooLarge, "macro '" + m.name + "' calls nest more than " +
                                            std::to_string(cx_.options.limits.max_call_depth) + " deep");
    }
    if (args.size() > m.params.size()) {
      fail("macro '" + m.name + "' takes " + std::to_string(m.params.size()) + " arguments, got " +
           std::to_string(args.size()));
    }
    for (const auto& [k, v] : kwargs) {
      if (std::find(m.params.begin(), m.params.end(), k) == m.params.end()) {
        fail("macro '" + m.name + "' has no parameter '" + k + "'");
      }
    }
    ++call_depth_;
    std::string text;
    {
      FrameGuard frame(*this, 0);
      assign(m.name, JinjaValue(JinjaMacroRef{&m}));  // lets a macro call itself
      for (size_t i = 0; i < m.params.size(); ++i) {
        const JinjaValue* kv = jinja_arg({}, kwargs, 0, m.params[i].c_str());
        if (kv) assign(m.params[i], *kv);
        else if (i < args.size()) assign(m.params[i], args[i]);
        else if (m.defaults[i]) assign(m.params[i], eval(*m.defaults[i]));
        else assign(m.params[i], JinjaValue::undefined(m.params[i]));
      }
      Capture cap(*this);
      render_body(m.body);
      text = cap.take();
    }
    --call_depth_;
    return JinjaValue(std::move(text));
  }

  JinjaContext cx_;
  std::vector<Frame> frames_;
  size_t cur_ = 0;
  std::string* out_ = nullptr;
  size_t out_limit_ = 0;
  int call_depth_ = 0;
  int line_ = 0;
};

}  // namespace

JinjaTemplate::JinjaTemplate(std::string_view source) : program_(jinja_parse(source)) {}
JinjaTemplate::~JinjaTemplate() = default;
JinjaTemplate::JinjaTemplate(JinjaTemplate&&) noexcept = default;
JinjaTemplate& JinjaTemplate::operator=(JinjaTemplate&&) noexcept = default;

std::string JinjaTemplate::render(const JinjaDict& context, const JinjaOptions& options) const {
  Renderer r(options, context);
  try {
    return r.run(program_->body);
  } catch (const JinjaException&) {
    throw;  // the template's own message, as it wrote it
  } catch (const Error& e) {
    throw Error(e.code(), "line " + std::to_string(r.line()) + ": " + e.what());
  }
}

}  // namespace tars::engine
