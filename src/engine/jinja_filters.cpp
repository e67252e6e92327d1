// Jinja filters and tests (the subset chat templates use), after jinja2's
// built-ins and Hugging Face's tojson. See jinja_builtins.h.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "common/error.h"
#include "engine/jinja_builtins.h"

namespace tars::engine {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error(ErrorCode::kUnsupported, msg); }

void no_kwargs_but(const std::string& what, const JinjaKwargs& kwargs, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : kwargs) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) fail(what + " has no argument '" + k + "'");
  }
}

bool arg_bool(const JinjaArgs& args, const JinjaKwargs& kwargs, size_t i, const char* name, bool dflt) {
  const JinjaValue* v = jinja_arg(args, kwargs, i, name);
  return v ? v->truthy() : dflt;
}

// value.a.b.0 as jinja2's attribute="a.b.0" reads it.
JinjaValue attr_path(JinjaContext& cx, const JinjaValue& v, const std::string& path) {
  JinjaValue cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && part.size() < 18 &&
                  std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = digits ? jinja_getitem(cx, cur, JinjaValue(static_cast<int64_t>(std::atoll(part.c_str()))))
                 : jinja_getattr(cur, part);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sort keys: numbers or strings, all of one kind, ordered totally (NaN
// last) so the sort is well defined whatever the data.
struct SortKey {
  bool is_string;
  double num;
  std::string str;
};

SortKey make_key(const JinjaValue& v, bool case_sensitive) {
  if (v.is_number()) return SortKey{false, v.as_double(), {}};
  if (v.is_string()) return SortKey{true, 0, case_sensitive ? v.as_string() : jinja_str_lower(v.as_string())};
  fail(std::string("cannot sort or compare values of type '") + v.type_name() +
       "' (only numbers and strings)");
}

bool key_less(const SortKey& a, const SortKey& b) {
  if (a.is_string) return a.str < b.str;
  if (std::isnan(a.num)) return false;
  if (std::isnan(b.num)) return true;
  return a.num < b.num;
}

// Keys of `items` (optionally through an attribute path), checked to be of one kind.
std::vector<SortKey> sort_keys(JinjaContext& cx, const JinjaList& items, const JinjaValue* attribute,
                               bool case_sensitive) {
  std::vector<SortKey> keys;
  keys.reserve(items.size());
  for (const auto& it : items) {
    JinjaValue k = attribute ? attr_path(cx, it, jinja_expect_string(*attribute, "attribute")) : it;
    keys.push_back(make_key(k, case_sensitive));
    if (keys.back().is_string != keys.front().is_string) fail("cannot sort a mix of strings and numbers");
  }
  cx.budget.spend(items.size() * 4);
  return keys;
}

JinjaList sorted(JinjaContext& cx, const JinjaList& items, const std::vector<SortKey>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reverse ? key_less(keys[b], keys[a]) : key_less(keys[a], keys[b]);
  });
  JinjaList out;
  out.reserve(items.size());
  for (size_t i : order) out.push_back(items[i]);
  return out;
}

int64_t to_int(const JinjaValue& v, int64_t dflt, int base) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_float()) {
    double d = std::trunc(v.as_double());
    if (!std::isfinite(d) || d < -9.2e18 || d > 9.2e18) return dflt;
    return static_cast<int64_t>(d);
  }
  if (v.is_string()) {
    std::string s = jinja_str_strip(v.as_string(), nullptr, true, true);
    if (s.empty()) return dflt;
    errno = 0;
    char* end = nullptr;
    long long r = std::strtoll(s.c_str(), &end, base);
    if (errno == 0 && end == s.c_str() + s.size()) return r;
    double d = std::strtod(s.c_str(), &end);  // jinja2 tries int(float(value)) next
    if (end == s.c_str() + s.size() && std::isfinite(d) && d > -9.2e18 && d < 9.2e18) {
      return static_cast<int64_t>(d);
    }
  }
  return dflt;
}

double to_float(const JinjaValue& v, double dflt) {
  if (v.is_number()) return v.as_double();
  if (v.is_string()) {
    std::string s = jinja_str_strip(v.as_string(), nullptr, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return d;
  }
  return dflt;
}

size_t length_of(const JinjaValue& v) {
  switch (v.type()) {
    case JinjaValue::Type::kUndefined: return 0;
    case JinjaValue::Type::kString: return jinja_utf8_length(v.as_string());
    case JinjaValue::Type::kList: return v.as_list().size();
    case JinjaValue::Type::kDict: return v.as_dict().size();
    default: fail(std::string("object of type '") + v.type_name() + "' has no len()");
  }
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// select/reject/selectattr/rejectattr: items whose test result == keep.
JinjaValue select_items(JinjaContext& cx, const JinjaValue& value, const JinjaArgs& args, size_t test_at,
                        const std::string* attribute, bool keep) {
  JinjaList out;
  for (const auto& item : jinja_iterate(cx, value)) {
    JinjaValue subject = attribute ? attr_path(cx, item, *attribute) : item;
    bool r;
    if (args.size() <= test_at) {
      r = subject.truthy();
    } else {
      const std::string& test = jinja_expect_string(args[test_at], "test name");
      JinjaArgs targs(args.begin() + static_cast<std::ptrdiff_t>(test_at) + 1, args.end());
      r = jinja_test(cx, test, subject, targs);
    }
    if (r == keep) out.push_back(item);
  }
  return cx.list(std::move(out));
}

}  // namespace

JinjaValue jinja_filter(JinjaContext& cx, const std::string& name, const JinjaValue& value,
                        const JinjaArgs& args, const JinjaKwargs& kwargs) {
  const std::string what = "filter '" + name + "'";
  const size_t max_bytes = cx.options.limits.max_value_bytes;
  auto str_of = [&](const JinjaValue& v) { return jinja_to_string(v, max_bytes); };

  if (name == "safe" || name == "string") {
    jinja_check_arity(what, args, 0, 0);
    return name == "safe" ? value : cx.string(str_of(value));
  }
  if (name == "trim") {
    jinja_check_arity(what, args, 0, 1);
    const JinjaValue* chars = jinja_arg(args, kwargs, 0, "chars");
    std::string c;
    if (chars && !chars->is_none()) c = jinja_expect_string(*chars, "trim chars");
    return cx.string(jinja_str_strip(str_of(value), chars && !chars->is_none() ? &c : nullptr, true, true));
  }
  if (name == "length" || name == "count") {
    jinja_check_arity(what, args, 0, 0);
    return JinjaValue(static_cast<int64_t>(length_of(value)));
  }
  if (name == "tojson") {
    no_kwargs_but(what, kwargs, {"indent", "ensure_ascii", "sort_keys", "separators"});
    jinja_check_arity(what, args, 0, 1);
    const JinjaValue* ind = jinja_arg(args, kwargs, 0, "indent");
    int indent = -1;
    if (ind && !ind->is_none()) {
      int64_t n = jinja_expect_int(*ind, "tojson indent");
      if (n < 0 || n > 16) fail("tojson indent must be 0 to 16, got " + std::to_string(n));
      indent = static_cast<int>(n);
    }
    for (const char* flag : {"ensure_ascii", "sort_keys"}) {
      const JinjaValue* f = jinja_arg({}, kwargs, 0, flag);
      if (f && f->truthy()) fail(std::string("tojson(") + flag + "=true) is not supported");
    }
    if (jinja_arg({}, kwargs, 0, "separators")) fail("tojson(separators=...) is not supported");
    return cx.string(jinja_to_json(value, indent, max_bytes));
  }
  if (name == "default" || name == "d") {
    jinja_check_arity(what, args, 0, 2);
    const JinjaValue* dflt = jinja_arg(args, kwargs, 0, "default_value");
    bool boolean = arg_bool(args, kwargs, 1, "boolean", false);
    bool use_default = value.is_undefined() || (boolean && !value.truthy());
    if (!use_default) return value;
    return dflt ? *dflt : JinjaValue(std::string());
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    jinja_check_arity(what, args, 0, 0);
    std::string s = str_of(value);
    if (name == "upper") return cx.string(jinja_str_upper(std::move(s)));
    if (name == "lower") return cx.string(jinja_str_lower(std::move(s)));
    if (name == "title") return cx.string(jinja_str_title(std::move(s)));
    return cx.string(jinja_str_capitalize(std::move(s)));
  }
  if (name == "items") {
    jinja_check_arity(what, args, 0, 0);
    if (value.is_undefined()) return JinjaValue(JinjaList{});
    if (!value.is_dict()) fail(std::string("filter 'items' needs a dict, not '") + value.type_name() + "'");
    JinjaList out;
    for (const auto& [k, v] : value.as_dict()) out.push_back(JinjaValue::tuple({JinjaValue(k), v}));
    return cx.list(std::move(out));
  }
  if (name == "list") {
    jinja_check_arity(what, args, 0, 0);
    return cx.list(jinja_iterate(cx, value));
  }
  if (name == "join") {
    jinja_check_arity(what, args, 0, 2);
    const JinjaValue* sep = jinja_arg(args, kwargs, 0, "d");
    const JinjaValue* attribute = jinja_arg(args, kwargs, 1, "attribute");
    std::string d = sep ? jinja_expect_string(*sep, "join separator") : "";
    std::string out;
    bool first = true;
    for (const auto& item : jinja_iterate(cx, value)) {
      if (!first) out += d;
      first = false;
      out += str_of(attribute ? attr_path(cx, item, jinja_expect_string(*attribute, "attribute")) : item);
      cx.charge_bytes(out.size());
    }
    return JinjaValue(std::move(out));
  }
  if (name == "first" || name == "last") {
    jinja_check_arity(what, args, 0, 0);
    JinjaList items = jinja_iterate(cx, value);
    if (items.empty()) return JinjaValue::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    jinja_check_arity(what, args, 0, 0);
    JinjaList items = jinja_iterate(cx, value);
    std::reverse(items.begin(), items.end());
    if (!value.is_string()) return cx.list(std::move(items));
    std::string out;
    for (const auto& c : items) out += c.as_string();
    return cx.string(std::move(out));
  }
  if (name == "replace") {
    jinja_check_arity(what, args, 2, 3);
    const JinjaValue* count = jinja_arg(args, kwargs, 2, "count");
    int64_t n = (count && !count->is_none()) ? jinja_expect_int(*count, "replace count") : -1;
    return cx.string(jinja_str_replace(cx, str_of(value), str_of(args[0]), str_of(args[1]), n));
  }
  if (name == "int") {
    jinja_check_arity(what, args, 0, 2);
    const JinjaValue* dflt = jinja_arg(args, kwargs, 0, "default");
    const JinjaValue* base = jinja_arg(args, kwargs, 1, "base");
    int64_t b = base ? jinja_expect_int(*base, "int base") : 10;
    if (b < 2 || b > 36) fail("int base must be 2 to 36");
    return JinjaValue(to_int(value, dflt ? jinja_expect_int(*dflt, "int default") : 0, static_cast<int>(b)));
  }
  if (name == "float") {
    jinja_check_arity(what, args, 0, 1);
    const JinjaValue* dflt = jinja_arg(args, kwargs, 0, "default");
    return JinjaValue(to_float(value, dflt && dflt->is_number() ? dflt->as_double() : 0.0));
  }
  if (name == "abs") {
    jinja_check_arity(what, args, 0, 0);
    if (!value.is_number()) fail(std::string("bad operand type for abs(): '") + value.type_name() + "'");
    if (value.is_float()) return JinjaValue(std::fabs(value.as_double()));
    if (value.as_int() == std::numeric_limits<int64_t>::min()) fail("integer overflow in abs()");
    return JinjaValue(value.as_int() < 0 ? -value.as_int() : value.as_int());
  }
  if (name == "round") {
    jinja_check_arity(what, args, 0, 2);
    if (!value.is_number()) fail(std::string("filter 'round' needs a number, not '") + value.type_name() + "'");
    const JinjaValue* prec = jinja_arg(args, kwargs, 0, "precision");
    const JinjaValue* method = jinja_arg(args, kwargs, 1, "method");
    int64_t p = prec ? jinja_expect_int(*prec, "round precision") : 0;
    if (p < -20 || p > 20) fail("round precision must be -20 to 20");
    std::string m = method ? jinja_expect_string(*method, "round method") : "common";
    double scale = std::pow(10.0, static_cast<double>(p));
    double x = value.as_double() * scale;
    if (m == "common") x = std::nearbyint(x);  // Python's round(): halves to even
    else if (m == "floor") x = std::floor(x);
    else if (m == "ceil") x = std::ceil(x);
    else fail("round method must be common, floor or ceil");
    return JinjaValue(x / scale);
  }
  if (name == "indent") {
    jinja_check_arity(what, args, 0, 3);
    const JinjaValue* width = jinja_arg(args, kwargs, 0, "width");
    bool first = arg_bool(args, kwargs, 1, "first", false);
    bool blank = arg_bool(args, kwargs, 2, "blank", false);
    std::string pad;
    if (width && width->is_string()) {
      pad = width->as_string();
    } else {
      int64_t w = width ? jinja_expect_int(*width, "indent width") : 4;
      if (w < 0 || w > 256) fail("indent width must be 0 to 256");
      pad.assign(static_cast<size_t>(w), ' ');
    }
    std::string s = str_of(value), out;
    size_t start = 0;
    bool line0 = true;
    while (start <= s.size()) {
      size_t nl = s.find('\n', start);
      std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      bool add = (line0 ? first : true) && (blank || !line.empty());
      if (add) out += pad;
      out += line;
      cx.charge_bytes(out.size());
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      line0 = false;
    }
    return JinjaValue(std::move(out));
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    jinja_check_arity(what, args, 0, 0);
    return cx.string(html_escape(str_of(value)));
  }
  if (name == "wordcount") {
    jinja_check_arity(what, args, 0, 0);
    return JinjaValue(static_cast<int64_t>(jinja_str_split(str_of(value), nullptr, -1).size()));
  }
  if (name == "attr") {
    jinja_check_arity(what, args, 1, 1);
    return jinja_getattr(value, jinja_expect_string(args[0], "attr name"));
  }
  if (name == "map") {
    const JinjaValue* attribute = jinja_arg({}, kwargs, 0, "attribute");
    JinjaList out;
    for (const auto& item : jinja_iterate(cx, value)) {
      if (attribute) {
        JinjaValue v = attr_path(cx, item, jinja_expect_string(*attribute, "attribute"));
        const JinjaValue* dflt = jinja_arg({}, kwargs, 0, "default");
        out.push_back(v.is_undefined() && dflt ? *dflt : v);
      } else {
        if (args.empty()) fail("filter 'map' needs a filter name or attribute=");
        JinjaArgs fargs(args.begin() + 1, args.end());
        out.push_back(jinja_filter(cx, jinja_expect_string(args[0], "map filter name"), item, fargs, {}));
      }
    }
    return cx.list(std::move(out));
  }
  if (name == "select" || name == "reject") {
    return select_items(cx, value, args, 0, nullptr, name == "select");
  }
  if (name == "selectattr" || name == "rejectattr") {
    if (args.empty()) fail("filter '" + name + "' needs an attribute name");
    std::string attribute = jinja_expect_string(args[0], "attribute");
    return select_items(cx, value, args, 1, &attribute, name == "selectattr");
  }
  if (name == "sort" || name == "unique" || name == "min" || name == "max") {
    no_kwargs_but(what, kwargs, {"reverse", "case_sensitive", "attribute"});
    bool reverse = name == "sort" && arg_bool(args, kwargs, 0, "reverse", false);
    bool case_sensitive = arg_bool(args, kwargs, name == "sort" ? 1 : 0, "case_sensitive", false);
    const JinjaValue* attribute = jinja_arg(args, kwargs, name == "sort" ? 2 : 1, "attribute");
    JinjaList items = jinja_iterate(cx, value);
    std::vector<SortKey> keys = sort_keys(cx, items, attribute, case_sensitive);
    if (name == "sort") return cx.list(sorted(cx, items, keys, reverse));
    if (name == "unique") {
      JinjaList out;
      std::vector<size_t> kept;
      for (size_t i = 0; i < items.size(); ++i) {
        bool seen = false;
        for (size_t j : kept) {
          cx.budget.spend(1);
          if (!key_less(keys[i], keys[j]) && !key_less(keys[j], keys[i])) seen = true;
        }
        if (!seen) {
          kept.push_back(i);
          out.push_back(items[i]);
        }
      }
      return cx.list(std::move(out));
    }
    if (items.empty()) return JinjaValue::undefined(name + "() of an empty sequence");
    size_t best = 0;
    for (size_t i = 1; i < items.size(); ++i) {
      bool better = name == "min" ? key_less(keys[i], keys[best]) : key_less(keys[best], keys[i]);
      if (better) best = i;
    }
    return items[best];
  }
  if (name == "dictsort") {
    no_kwargs_but(what, kwargs, {"case_sensitive", "by", "reverse"});
    if (!value.is_dict()) fail(std::string("filter 'dictsort' needs a dict, not '") + value.type_name() + "'");
    bool case_sensitive = arg_bool(args, kwargs, 0, "case_sensitive", false);
    const JinjaValue* by = jinja_arg(args, kwargs, 1, "by");
    bool reverse = arg_bool(args, kwargs, 2, "reverse", false);
    bool by_value = by && jinja_expect_string(*by, "dictsort by") == "value";
    JinjaList pairs, subjects;
    for (const auto& [k, v] : value.as_dict()) {
      pairs.push_back(JinjaValue::tuple({JinjaValue(k), v}));
      subjects.push_back(by_value ? v : JinjaValue(k));
    }
    std::vector<SortKey> keys = sort_keys(cx, subjects, nullptr, case_sensitive);
    return cx.list(sorted(cx, pairs, keys, reverse));
  }
  if (name == "sum") {
    no_kwargs_but(what, kwargs, {"attribute", "start"});
    const JinjaValue* attribute = jinja_arg(args, kwargs, 0, "attribute");
    const JinjaValue* start = jinja_arg(args, kwargs, 1, "start");
    JinjaValue total = start ? *start : JinjaValue(int64_t{0});
    for (const auto& item : jinja_iterate(cx, value)) {
      JinjaValue v = attribute ? attr_path(cx, item, jinja_expect_string(*attribute, "attribute")) : item;
      total = jinja_binary(cx, "+", total, v);
    }
    return total;
  }
  fail("unknown filter '" + name + "'");
}

bool jinja_test(JinjaContext& cx, const std::string& name, const JinjaValue& value, const JinjaArgs& args) {
  cx.budget.spend(1);
  const std::string what = "test '" + name + "'";
  using T = JinjaValue::Type;
  auto arity = [&](size_t n) { jinja_check_arity(what, args, n, n); };
  if (name == "defined") return arity(0), !value.is_undefined();
  if (name == "undefined") return arity(0), value.is_undefined();
  if (name == "none") return arity(0), value.is_none();
  if (name == "string") return arity(0), value.is_string();
  if (name == "boolean") return arity(0), value.is_bool();
  if (name == "true") return arity(0), value.is_bool() && value.as_bool();
  if (name == "false") return arity(0), value.is_bool() && !value.as_bool();
  if (name == "integer") return arity(0), value.is_int();
  if (name == "float") return arity(0), value.is_float();
  if (name == "number") return arity(0), value.is_number();
  if (name == "mapping") return arity(0), value.is_dict();
  if (name == "callable") return arity(0), value.is_macro() || value.is_function();
  if (name == "iterable") {
    arity(0);
    return value.is_list() || value.is_dict() || value.is_string() || value.is_undefined();
  }
  if (name == "sequence") {
    arity(0);
    return value.is_list() || value.is_dict() || value.is_string() || value.is_undefined();
  }
  if (name == "even" || name == "odd") {
    arity(0);
    if (!value.is_int() && !value.is_bool()) fail(what + " needs an integer, not '" + value.type_name() + "'");
    return (value.as_int() % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    arity(1);
    int64_t d = jinja_expect_int(args[0], "divisibleby argument");
    if (!value.is_int() && !value.is_bool()) fail(what + " needs an integer, not '" + value.type_name() + "'");
    if (d == 0) fail("divisibleby 0");
    return d == -1 || value.as_int() % d == 0;
  }
  if (name == "lower" || name == "upper") {
    arity(0);
    if (!value.is_string()) return false;
    const std::string& s = value.as_string();
    bool cased = false;
    for (char c : s) {
      bool lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
      if ((name == "lower" && up) || (name == "upper" && lo)) return false;
      cased = cased || lo || up;
    }
    return cased;
  }
  if (name == "eq" || name == "equalto" || name == "==") return arity(1), jinja_equal(value, args[0], &cx.budget);
  if (name == "ne" || name == "!=") return arity(1), !jinja_equal(value, args[0], &cx.budget);
  if (name == "lt" || name == "lessthan" || name == "<") return arity(1), jinja_less(value, args[0], &cx.budget);
  if (name == "gt" || name == "greaterthan" || name == ">") return arity(1), jinja_less(args[0], value, &cx.budget);
  if (name == "le" || name == "<=") {
    arity(1);
    return jinja_less(value, args[0], &cx.budget) || jinja_equal(value, args[0], &cx.budget);
  }
  if (name == "ge" || name == ">=") {
    arity(1);
    return jinja_less(args[0], value, &cx.budget) || jinja_equal(value, args[0], &cx.budget);
  }
  if (name == "in") return arity(1), jinja_contains(cx, args[0], value);
  if (name == "sameas") {
    arity(1);
    // Python's `is`: None, booleans and small values by identity; shared
    // lists and dicts compare equal here too.
    const JinjaValue& o = args[0];
    if (value.type() != o.type()) return false;
    if (value.type() == T::kList || value.type() == T::kDict) return &value == &o;
    return jinja_equal(value, o, &cx.budget);
  }
  if (name == "escaped") return arity(0), false;
  fail("unknown test '" + name + "'");
}

}  // namespace tars::engine
