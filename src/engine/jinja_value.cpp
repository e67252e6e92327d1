// Jinja values: construction, truthiness, printing (str, repr, JSON) and
// comparison, with Python's semantics. See jinja_value.h.

#include "engine/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"

namespace tars::engine {

namespace {

int max_depth(const JinjaList& list) {
  int d = 0;
  for (const auto& v : list) d = std::max(d, v.depth());
  return d;
}

int max_depth(const JinjaDict& dict) {
  int d = 0;
  for (const auto& [k, v] : dict) d = std::max(d, v.depth());
  return d;
}

void check_depth(int depth) {
  if (depth > kJinjaMaxValueDepth) {
    throw Error(ErrorCode::kTooLarge, "a list or dict is nested more than " +
                                          std::to_string(kJinjaMaxValueDepth) + " levels deep");
  }
}

// Length of the UTF-8 sequence that starts at s[i], or 1 for an invalid byte.
size_t utf8_seq_len(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}

// Code points Python's repr() escapes besides ASCII controls: C1 controls
// and the common non-printing spaces and format characters (an approximation
// of str.isprintable(); exotic ones print as they are).
bool repr_escapes(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) ||
         (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x2064) || cp == 0x3000 || cp == 0xFEFF;
}

void append_repr_string(std::string& out, const std::string& s) {
  // Python picks single quotes unless the text has ' and no ".
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  out += q;
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      size_t n = utf8_seq_len(s, i);
      uint32_t cp = n == 1 ? 0xFFFFFFFFu : n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu) : (c & 0x07u);
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
      if (n > 1 && repr_escapes(cp)) {
        char buf[12];
        std::snprintf(buf, sizeof buf, cp <= 0xFF ? "\\x%02x" : "\\u%04x", cp);
        out += buf;
      } else {
        out.append(s, i, n);
      }
      i += n - 1;
      continue;
    }
    if (ch == q || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += q;
}

void append_repr(std::string& out, const JinjaValue& v, int depth, size_t max_bytes);

void check_size(const std::string& out, size_t max_bytes) {
  if (out.size() > max_bytes) {
    throw Error(ErrorCode::kTooLarge,
                "a value printed as text is over the limit of " + std::to_string(max_bytes) + " bytes");
  }
}

void append_str(std::string& out, const JinjaValue& v, int depth, size_t max_bytes) {
  if (depth > kJinjaMaxValueDepth) {
    throw Error(ErrorCode::kTooLarge, "a value is nested too deeply to print");
  }
  using T = JinjaValue::Type;
  switch (v.type()) {
    case T::kUndefined:
      return;
    case T::kNone:
      out += "None";
      return;
    case T::kBool:
      out += v.as_bool() ? "True" : "False";
      return;
    case T::kInt:
      out += std::to_string(v.as_int());
      return;
    case T::kFloat:
      out += jinja_float_repr(v.as_double());
      return;
    case T::kString:
      out += v.as_string();
      return;
    case T::kList: {
      out += v.is_tuple() ? '(' : '[';
      bool first = true;
      for (const auto& e : v.as_list()) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, e, depth + 1, max_bytes);
        check_size(out, max_bytes);
      }
      if (v.is_tuple() && v.as_list().size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      return;
    }
    case T::kDict:
    case T::kNamespace: {
      const JinjaDict& d = v.is_dict() ? v.as_dict() : v.as_namespace()->attrs;
      out += v.is_dict() ? "{" : "<Namespace {";
      bool first = true;
      for (const auto& [k, e] : d) {
        if (!first) out += ", ";
        first = false;
        append_repr_string(out, k);
        out += ": ";
        append_repr(out, e, depth + 1, max_bytes);
        check_size(out, max_bytes);
      }
      out += v.is_dict() ? "}" : "}>";
      return;
    }
    case T::kMacro:
      out += "<Macro>";
      return;
    case T::kFunction:
      out += "<built-in function " + v.function_name() + ">";
      return;
  }
}

void append_repr(std::string& out, const JinjaValue& v, int depth, size_t max_bytes) {
  if (v.is_string()) {
    append_repr_string(out, v.as_string());
  } else if (v.is_undefined()) {
    out += "Undefined";
  } else {
    append_str(out, v, depth, max_bytes);
  }
}

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;  // ensure_ascii=False: UTF-8 passes through
        }
    }
  }
  out += '"';
}

void append_json(std::string& out, const JinjaValue& v, int indent, int level, size_t max_bytes) {
  if (level > kJinjaMaxValueDepth) {
    throw Error(ErrorCode::kTooLarge, "a value is nested too deeply for tojson");
  }
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(lvl), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  using T = JinjaValue::Type;
  switch (v.type()) {
    case T::kNone:
      out += "null";
      return;
    case T::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case T::kInt:
      out += std::to_string(v.as_int());
      return;
    case T::kFloat: {
      double d = v.as_double();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d > 0 ? "Infinity" : "-Infinity";
      } else {
        out += jinja_float_repr(d);
      }
      return;
    }
    case T::kString:
      append_json_string(out, v.as_string());
      return;
    case T::kList: {
      const auto& list = v.as_list();
      if (list.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < list.size(); ++i) {
        if (i > 0) out += item_sep;
        newline(level + 1);
        append_json(out, list[i], indent, level + 1, max_bytes);
        check_size(out, max_bytes);
      }
      newline(level);
      out += ']';
      return;
    }
    case T::kDict:
    case T::kNamespace: {
      const JinjaDict& d = v.is_dict() ? v.as_dict() : v.as_namespace()->attrs;
      if (v.is_namespace()) {
        throw Error(ErrorCode::kUnsupported, "tojson: a namespace() object is not JSON");
      }
      if (d.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < d.size(); ++i) {
        if (i > 0) out += item_sep;
        newline(level + 1);
        append_json_string(out, d[i].first);
        out += ": ";
        append_json(out, d[i].second, indent, level + 1, max_bytes);
        check_size(out, max_bytes);
      }
      newline(level);
      out += '}';
      return;
    }
    case T::kUndefined:
      throw Error(ErrorCode::kUnsupported,
                  "tojson: '" + v.undefined_name() + "' is undefined and has no JSON form");
    case T::kMacro:
    case T::kFunction:
      throw Error(ErrorCode::kUnsupported, "tojson: a function is not JSON");
  }
}

// Python orders values of these kinds against each other.
enum class OrderKind { kNumber, kString, kList, kOther };

OrderKind order_kind(const JinjaValue& v) {
  if (v.is_number()) return OrderKind::kNumber;
  if (v.is_string()) return OrderKind::kString;
  if (v.is_list()) return OrderKind::kList;
  return OrderKind::kOther;
}

bool less_at(const JinjaValue& a, const JinjaValue& b, int depth, JinjaBudget& budget) {
  budget.spend(1);
  if (depth > kJinjaMaxValueDepth) throw Error(ErrorCode::kTooLarge, "values nested too deeply to compare");
  OrderKind ka = order_kind(a);
  if (ka == OrderKind::kOther || ka != order_kind(b)) {
    throw Error(ErrorCode::kUnsupported, std::string("'<' is not supported between '") +
                                             a.type_name() + "' and '" + b.type_name() + "'");
  }
  switch (ka) {
    case OrderKind::kNumber:
      if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
      return a.as_int() < b.as_int();
    case OrderKind::kString:
      return a.as_string() < b.as_string();  // byte order == code point order in UTF-8
    case OrderKind::kList: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
        if (less_at(x[i], y[i], depth + 1, budget)) return true;
        if (less_at(y[i], x[i], depth + 1, budget)) return false;
      }
      return x.size() < y.size();
    }
    case OrderKind::kOther:
      break;
  }
  return false;
}

bool equal_at(const JinjaValue& a, const JinjaValue& b, int depth, JinjaBudget& budget) {
  budget.spend(1);
  if (depth > kJinjaMaxValueDepth) throw Error(ErrorCode::kTooLarge, "values nested too deeply to compare");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.type() != b.type()) return false;
  using T = JinjaValue::Type;
  switch (a.type()) {
    case T::kUndefined:
    case T::kNone:
      return true;
    case T::kString:
      return a.as_string() == b.as_string();
    case T::kList: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (a.is_tuple() != b.is_tuple() || x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equal_at(x[i], y[i], depth + 1, budget)) return false;
      }
      return true;
    }
    case T::kDict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        const JinjaValue* w = jinja_dict_find(y, k);
        if (w == nullptr || !equal_at(v, *w, depth + 1, budget)) return false;
      }
      return true;
    }
    case T::kNamespace:
      return a.as_namespace() == b.as_namespace();
    case T::kMacro:
      return a.as_macro() == b.as_macro();
    case T::kFunction:
      return a.function_name() == b.function_name();
    default:
      return false;
  }
}

}  // namespace

JinjaValue::JinjaValue(JinjaList list) {
  int d = 1 + max_depth(list);
  check_depth(d);
  v_ = std::make_shared<const JinjaList>(std::move(list));
  depth_ = d;
}

JinjaValue::JinjaValue(JinjaDict dict) {
  int d = 1 + max_depth(dict);
  check_depth(d);
  v_ = std::make_shared<const JinjaDict>(std::move(dict));
  depth_ = d;
}

JinjaValue JinjaValue::tuple(JinjaList list) {
  JinjaValue v(std::move(list));
  v.tuple_ = true;
  return v;
}

int64_t JinjaValue::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<int64_t>(v_);
}

double JinjaValue::as_double() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

bool JinjaValue::truthy() const {
  switch (type()) {
    case Type::kUndefined:
    case Type::kNone:
      return false;
    case Type::kBool:
      return as_bool();
    case Type::kInt:
      return as_int() != 0;
    case Type::kFloat:
      return as_double() != 0.0;
    case Type::kString:
      return !as_string().empty();
    case Type::kList:
      return !as_list().empty();
    case Type::kDict:
      return !as_dict().empty();
    case Type::kNamespace:
    case Type::kMacro:
    case Type::kFunction:
      return true;
  }
  return false;
}

const char* JinjaValue::type_name() const {
  switch (type()) {
    case Type::kUndefined: return "Undefined";
    case Type::kNone: return "NoneType";
    case Type::kBool: return "bool";
    case Type::kInt: return "int";
    case Type::kFloat: return "float";
    case Type::kString: return "str";
    case Type::kList: return "list";
    case Type::kDict: return "dict";
    case Type::kNamespace: return "Namespace";
    case Type::kMacro: return "Macro";
    case Type::kFunction: return "builtin_function_or_method";
  }
  return "?";
}

const JinjaValue* jinja_dict_find(const JinjaDict& dict, std::string_view key) {
  for (const auto& [k, v] : dict) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string jinja_to_string(const JinjaValue& v, size_t max_bytes) {
  if (v.is_string()) return v.as_string();
  std::string out;
  append_str(out, v, 0, max_bytes);
  check_size(out, max_bytes);
  return out;
}

std::string jinja_repr(const JinjaValue& v, size_t max_bytes) {
  std::string out;
  append_repr(out, v, 0, max_bytes);
  check_size(out, max_bytes);
  return out;
}

std::string jinja_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // The shortest %.Ne form that reads back as the same double (Python's repr).
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  // buf: [-]D[.DDD]e(+|-)XX
  std::string s(buf);
  bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  size_t epos = s.find('e');
  int exp = std::atoi(s.c_str() + epos + 1);
  std::string digits;
  for (size_t i = 0; i < epos; ++i) {
    if (s[i] != '.') digits += s[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp) + 1) + "." +
             digits.substr(static_cast<size_t>(exp) + 1);
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out.append(".").append(digits, 1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += ebuf;
  }
  return out;
}

std::string jinja_to_json(const JinjaValue& v, int indent, size_t max_bytes) {
  std::string out;
  append_json(out, v, indent, 0, max_bytes);
  check_size(out, max_bytes);
  return out;
}

void JinjaBudget::spend(uint64_t units) {
  if (units > left_) {
    left_ = 0;
    throw Error(ErrorCode::kTooLarge, "the template did more than " + std::to_string(total_) +
                                          " steps of work (a loop that does not end, or values too large)");
  }
  left_ -= units;
}

namespace {
constexpr uint64_t kPrivateCompareBudget = 1000000;
}  // namespace

bool jinja_equal(const JinjaValue& a, const JinjaValue& b, JinjaBudget* budget) {
  if (budget != nullptr) return equal_at(a, b, 0, *budget);
  JinjaBudget own(kPrivateCompareBudget);
  return equal_at(a, b, 0, own);
}

bool jinja_less(const JinjaValue& a, const JinjaValue& b, JinjaBudget* budget) {
  if (budget != nullptr) return less_at(a, b, 0, *budget);
  JinjaBudget own(kPrivateCompareBudget);
  return less_at(a, b, 0, own);
}

size_t jinja_utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += utf8_seq_len(s, i)) ++n;
  return n;
}

std::vector<size_t> jinja_utf8_offsets(std::string_view s) {
  std::vector<size_t> off;
  for (size_t i = 0; i < s.size(); i += utf8_seq_len(s, i)) off.push_back(i);
  off.push_back(s.size());
  return off;
}

}  // namespace tars::engine
