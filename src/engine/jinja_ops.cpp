// Jinja operators, lookups, iteration and the render context's accounting,
// with Python's semantics (see jinja_builtins.h).

#include <cmath>
#include <limits>

#include "common/error.h"
#include "engine/jinja_builtins.h"

namespace tars::engine {

namespace {

[[noreturn]] void type_error(const std::string& msg) { throw Error(ErrorCode::kUnsupported, msg); }

[[noreturn]] void overflow(const std::string& op) {
  type_error("integer overflow in '" + op + "' (values beyond 64 bits are not supported)");
}

std::string undefined_label(const JinjaValue& v) {
  return v.undefined_name().empty() ? "a value" : "'" + v.undefined_name() + "'";
}

// Python's floor division and modulo on ints.
int64_t floor_div(int64_t a, int64_t b) {
  if (b == -1) {
    if (a == std::numeric_limits<int64_t>::min()) overflow("//");
    return -a;
  }
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod(int64_t a, int64_t b) {
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

JinjaValue repeat_string(JinjaContext& cx, const std::string& s, int64_t n) {
  if (n <= 0 || s.empty()) return JinjaValue(std::string());
  if (static_cast<uint64_t>(n) > cx.options.limits.max_value_bytes / s.size() + 1) {
    cx.charge_bytes(cx.options.limits.max_value_bytes + 1);  // throws
  }
  cx.charge_bytes(s.size() * static_cast<size_t>(n));
  std::string out;
  out.reserve(s.size() * static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out += s;
  return JinjaValue(std::move(out));
}

JinjaValue repeat_list(JinjaContext& cx, const JinjaList& l, int64_t n) {
  if (n <= 0 || l.empty()) return JinjaValue(JinjaList{});
  if (static_cast<uint64_t>(n) > cx.options.limits.max_list_items / l.size() + 1) {
    cx.charge_items(cx.options.limits.max_list_items + 1);  // throws
  }
  cx.charge_items(l.size() * static_cast<size_t>(n));
  JinjaList out;
  out.reserve(l.size() * static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), l.begin(), l.end());
  return JinjaValue(std::move(out));
}

JinjaValue int_pow(int64_t base, int64_t exp) {
  if (exp < 0) return JinjaValue(std::pow(static_cast<double>(base), static_cast<double>(exp)));
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, base, &result)) overflow("**");
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) overflow("**");
  }
  return JinjaValue(result);
}

JinjaValue arith(const std::string& op, const JinjaValue& a, const JinjaValue& b) {
  if (a.is_float() || b.is_float() || op == "/") {
    double x = a.as_double(), y = b.as_double();
    if (op == "+") return JinjaValue(x + y);
    if (op == "-") return JinjaValue(x - y);
    if (op == "*") return JinjaValue(x * y);
    if (op == "**") return JinjaValue(std::pow(x, y));
    if (y == 0) type_error("division by zero");
    if (op == "/") return JinjaValue(x / y);
    if (op == "//") return JinjaValue(std::floor(x / y));
    double r = std::fmod(x, y);  // %
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return JinjaValue(r);
  }
  int64_t x = a.as_int(), y = b.as_int(), r = 0;
  if (op == "+") {
    if (__builtin_add_overflow(x, y, &r)) overflow(op);
    return JinjaValue(r);
  }
  if (op == "-") {
    if (__builtin_sub_overflow(x, y, &r)) overflow(op);
    return JinjaValue(r);
  }
  if (op == "*") {
    if (__builtin_mul_overflow(x, y, &r)) overflow(op);
    return JinjaValue(r);
  }
  if (op == "**") return int_pow(x, y);
  if (y == 0) type_error("integer division or modulo by zero");
  if (op == "//") return JinjaValue(floor_div(x, y));
  return JinjaValue(floor_mod(x, y));  // %
}

bool is_ascii(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// Python's index normalisation for lists and strings of length n.
bool normalize_index(int64_t& i, size_t n) {
  if (i < 0) i += static_cast<int64_t>(n);
  return i >= 0 && static_cast<uint64_t>(i) < n;
}

}  // namespace

void JinjaContext::charge_bytes(size_t n) {
  if (n > options.limits.max_value_bytes) {
    throw Error(ErrorCode::kTooLarge, "a string built by the template is over the limit of " +
                                          std::to_string(options.limits.max_value_bytes) + " bytes");
  }
  budget.spend(1 + n / 16);
}

void JinjaContext::charge_items(size_t n) {
  if (n > options.limits.max_list_items) {
    throw Error(ErrorCode::kTooLarge, "a list built by the template is over the limit of " +
                                          std::to_string(options.limits.max_list_items) + " items");
  }
  budget.spend(1 + n);
}

JinjaValue JinjaContext::string(std::string s) {
  charge_bytes(s.size());
  return JinjaValue(std::move(s));
}

JinjaValue JinjaContext::list(JinjaList l) {
  charge_items(l.size());
  return JinjaValue(std::move(l));
}

JinjaNamespace* JinjaContext::new_namespace() {
  budget.spend(1);
  namespaces.emplace_back();
  return &namespaces.back();
}

void jinja_require_defined(const JinjaValue& v, const char* use) {
  if (v.is_undefined()) type_error(undefined_label(v) + " is undefined (" + use + ")");
}

JinjaValue jinja_binary(JinjaContext& cx, const std::string& op, const JinjaValue& a, const JinjaValue& b) {
  if (op == "~") {
    size_t max = cx.options.limits.max_value_bytes;
    std::string s = jinja_to_string(a, max);
    s += jinja_to_string(b, max);
    return cx.string(std::move(s));
  }
  jinja_require_defined(a, ("operand of '" + op + "'").c_str());
  jinja_require_defined(b, ("operand of '" + op + "'").c_str());
  if (a.is_number() && b.is_number()) return arith(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      cx.charge_bytes(a.as_string().size() + b.as_string().size());
      return JinjaValue(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      JinjaList l = a.as_list();
      l.insert(l.end(), b.as_list().begin(), b.as_list().end());
      JinjaValue r = cx.list(std::move(l));
      return a.is_tuple() && b.is_tuple() ? JinjaValue::tuple(JinjaList(r.as_list())) : r;
    }
    if (a.is_string()) {
      type_error(std::string("can only concatenate str (not '") + b.type_name() + "') to str");
    }
  }
  if (op == "*") {
    if (a.is_string() && (b.is_int() || b.is_bool())) return repeat_string(cx, a.as_string(), b.as_int());
    if (b.is_string() && (a.is_int() || a.is_bool())) return repeat_string(cx, b.as_string(), a.as_int());
    if (a.is_list() && (b.is_int() || b.is_bool())) return repeat_list(cx, a.as_list(), b.as_int());
    if (b.is_list() && (a.is_int() || a.is_bool())) return repeat_list(cx, b.as_list(), a.as_int());
  }
  if (op == "%" && a.is_string()) {
    type_error("printf-style '%' formatting of strings is not supported (use ~ or + to join strings)");
  }
  type_error("unsupported operand types for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

JinjaValue jinja_unary(const std::string& op, const JinjaValue& a) {
  jinja_require_defined(a, ("operand of unary '" + op + "'").c_str());
  if (!a.is_number()) type_error(std::string("bad operand type for unary ") + op + ": '" + a.type_name() + "'");
  if (op == "+") return a.is_bool() ? JinjaValue(a.as_int()) : a;
  if (a.is_float()) return JinjaValue(-a.as_double());
  if (a.as_int() == std::numeric_limits<int64_t>::min()) overflow("-");
  return JinjaValue(-a.as_int());
}

JinjaValue jinja_getattr(const JinjaValue& obj, const std::string& name) {
  jinja_require_defined(obj, ("reading ." + name).c_str());
  const JinjaValue* v = nullptr;
  if (obj.is_dict()) v = jinja_dict_find(obj.as_dict(), name);
  if (obj.is_namespace()) v = jinja_dict_find(obj.as_namespace()->attrs, name);
  return v != nullptr ? *v : JinjaValue::undefined(name);
}

JinjaValue jinja_getitem(JinjaContext& cx, const JinjaValue& obj, const JinjaValue& key) {
  jinja_require_defined(obj, "reading [...]");
  if (key.is_string()) return jinja_getattr(obj, key.as_string());
  if (key.is_int() || key.is_bool()) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const JinjaList& l = obj.as_list();
      if (normalize_index(i, l.size())) return l[static_cast<size_t>(i)];
    } else if (obj.is_string()) {
      const std::string& s = obj.as_string();
      cx.charge_bytes(s.size());
      if (is_ascii(s)) {
        if (normalize_index(i, s.size())) return JinjaValue(std::string(1, s[static_cast<size_t>(i)]));
      } else {
        std::vector<size_t> off = jinja_utf8_offsets(s);
        if (normalize_index(i, off.size() - 1)) {
          auto k = static_cast<size_t>(i);
          return JinjaValue(s.substr(off[k], off[k + 1] - off[k]));
        }
      }
    }
    return JinjaValue::undefined(std::string("[").append(std::to_string(key.as_int())).append("]"));
  }
  return JinjaValue::undefined(std::string("[").append(jinja_repr(key, 64)).append("]"));
}

JinjaValue jinja_slice(JinjaContext& cx, const JinjaValue& obj, const JinjaValue& start,
                       const JinjaValue& stop, const JinjaValue& step) {
  jinja_require_defined(obj, "slicing");
  auto bound = [](const JinjaValue& v, const char* what) -> const JinjaValue* {
    if (v.is_undefined() || v.is_none()) return nullptr;
    if (!v.is_int() && !v.is_bool()) {
      type_error(std::string("slice ") + what + " must be an integer, not '" + v.type_name() + "'");
    }
    return &v;
  };
  const JinjaValue* b = bound(start, "start");
  const JinjaValue* e = bound(stop, "stop");
  const JinjaValue* s = bound(step, "step");
  int64_t st = s ? s->as_int() : 1;
  if (st == 0) type_error("slice step cannot be zero");
  if (st == std::numeric_limits<int64_t>::min()) overflow("slice");

  std::vector<size_t> off;  // strings: code point offsets
  size_t n = 0;
  if (obj.is_list()) {
    n = obj.as_list().size();
  } else if (obj.is_string()) {
    cx.charge_bytes(obj.as_string().size());
    off = jinja_utf8_offsets(obj.as_string());
    n = off.size() - 1;
  } else {
    type_error(std::string("'") + obj.type_name() + "' object is not subscriptable with a slice");
  }
  // Python's slice.indices(n).
  auto len = static_cast<int64_t>(n);
  auto clamp = [&](const JinjaValue* v, int64_t dflt) {
    if (!v) return dflt;
    int64_t i = v->as_int();
    if (i < 0) {
      i = i < -len ? (st < 0 ? -1 : 0) : i + len;
    } else if (i >= len) {
      i = st < 0 ? len - 1 : len;
    }
    return i;
  };
  int64_t lo = clamp(b, st > 0 ? 0 : len - 1);
  int64_t hi = clamp(e, st > 0 ? len : -1);
  std::vector<size_t> picks;
  if (st > 0) {
    for (int64_t i = lo; i < hi; i += st) {
      picks.push_back(static_cast<size_t>(i));
      if (st > len) break;
    }
  } else {
    for (int64_t i = lo; i > hi; i += st) {
      picks.push_back(static_cast<size_t>(i));
      if (-st > len) break;
    }
  }
  if (obj.is_list()) {
    JinjaList out;
    out.reserve(picks.size());
    for (size_t i : picks) out.push_back(obj.as_list()[i]);
    return cx.list(std::move(out));
  }
  const std::string& text = obj.as_string();
  std::string out;
  for (size_t i : picks) out.append(text, off[i], off[i + 1] - off[i]);
  return cx.string(std::move(out));
}

bool jinja_contains(JinjaContext& cx, const JinjaValue& container, const JinjaValue& item) {
  switch (container.type()) {
    case JinjaValue::Type::kUndefined:
      return false;
    case JinjaValue::Type::kString:
      if (!item.is_string()) {
        type_error(std::string("'in <string>' requires a string as left operand, not '") + item.type_name() + "'");
      }
      cx.charge_bytes(container.as_string().size());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case JinjaValue::Type::kList:
      for (const auto& e : container.as_list()) {
        if (jinja_equal(e, item, &cx.budget)) return true;
      }
      return false;
    case JinjaValue::Type::kDict:
      return item.is_string() && jinja_dict_find(container.as_dict(), item.as_string()) != nullptr;
    case JinjaValue::Type::kNamespace:
      return item.is_string() && jinja_dict_find(container.as_namespace()->attrs, item.as_string()) != nullptr;
    default:
      type_error(std::string("argument of type '") + container.type_name() + "' is not iterable");
  }
}

JinjaList jinja_iterate(JinjaContext& cx, const JinjaValue& v) {
  switch (v.type()) {
    case JinjaValue::Type::kUndefined:
      return {};
    case JinjaValue::Type::kList:
      cx.charge_items(v.as_list().size());
      return v.as_list();
    case JinjaValue::Type::kDict: {
      cx.charge_items(v.as_dict().size());
      JinjaList keys;
      for (const auto& [k, e] : v.as_dict()) keys.emplace_back(k);
      return keys;
    }
    case JinjaValue::Type::kString: {
      // One value per code point: charged (and limited) as a list of that
      // many items, before any is made.
      const std::string& s = v.as_string();
      cx.charge_items(jinja_utf8_length(s));
      std::vector<size_t> off = jinja_utf8_offsets(s);
      JinjaList chars;
      chars.reserve(off.size() - 1);
      for (size_t i = 0; i + 1 < off.size(); ++i) chars.emplace_back(s.substr(off[i], off[i + 1] - off[i]));
      return chars;
    }
    default:
      type_error(std::string("'") + v.type_name() + "' object is not iterable");
  }
}

const JinjaValue* jinja_arg(const JinjaArgs& args, const JinjaKwargs& kwargs, size_t index, const char* name) {
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return index < args.size() ? &args[index] : nullptr;
}

void jinja_check_arity(const std::string& what, const JinjaArgs& args, size_t min, size_t max) {
  if (args.size() < min || args.size() > max) {
    std::string range = min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max);
    type_error(what + " takes " + range + " argument" + (max == 1 ? "" : "s") + ", got " +
               std::to_string(args.size()));
  }
}

const std::string& jinja_expect_string(const JinjaValue& v, const std::string& what) {
  if (!v.is_string()) type_error(what + " must be a string, not '" + v.type_name() + "'");
  return v.as_string();
}

int64_t jinja_expect_int(const JinjaValue& v, const std::string& what) {
  if (!v.is_int() && !v.is_bool()) type_error(what + " must be an integer, not '" + v.type_name() + "'");
  return v.as_int();
}

}  // namespace tars::engine
