// Python methods of strings, dicts and lists as templates call them
// (message.content.strip(), d.items(), ...), Python string helpers, and the
// global functions of Hugging Face's template environment. See
// jinja_builtins.h.

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "common/error.h"
#include "engine/jinja_builtins.h"

namespace tars::engine {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error(ErrorCode::kUnsupported, msg); }

// One code point of a string: its value (0xFFFFFFFF for an invalid byte),
// byte offset and length.
struct CodePoint {
  uint32_t cp;
  size_t at;
  size_t len;
};

std::vector<CodePoint> decode(const std::string& s) {
  std::vector<CodePoint> out;
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      out.push_back({0xFFFFFFFFu, i, 1});
      ++i;
      continue;
    }
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back({cp, i, n});
    i += n;
  }
  return out;
}

// Python's str.isspace() code points.
bool py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool ascii_test(const std::string& s, bool (*pred)(char)) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), pred);
}

JinjaValue string_list(JinjaContext& cx, std::vector<std::string> parts) {
  JinjaList out;
  out.reserve(parts.size());
  for (auto& p : parts) out.emplace_back(std::move(p));
  return cx.list(std::move(out));
}

// startswith/endswith: a string or a tuple/list of strings.
bool affix_match(const std::string& s, const JinjaValue& arg, bool prefix) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (arg.is_list()) {
    for (const auto& a : arg.as_list()) {
      if (one(jinja_expect_string(a, "startswith/endswith argument"))) return true;
    }
    return false;
  }
  return one(jinja_expect_string(arg, "startswith/endswith argument"));
}

JinjaValue string_method(JinjaContext& cx, const std::string& s, const std::string& name, const JinjaArgs& args,
                         const JinjaKwargs& kwargs) {
  const std::string what = "str." + name + "()";
  cx.charge_bytes(s.size());
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    jinja_check_arity(what, args, 0, 1);
    std::string chars;
    bool has = !args.empty() && !args[0].is_none();
    if (has) chars = jinja_expect_string(args[0], what + " argument");
    return JinjaValue(jinja_str_strip(s, has ? &chars : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    jinja_check_arity(what, args, 1, 1);
    return JinjaValue(affix_match(s, args[0], name == "startswith"));
  }
  if (name == "split" || name == "rsplit") {
    jinja_check_arity(what, args, 0, 2);
    const JinjaValue* sep = jinja_arg(args, kwargs, 0, "sep");
    const JinjaValue* maxsplit = jinja_arg(args, kwargs, 1, "maxsplit");
    int64_t m = maxsplit ? jinja_expect_int(*maxsplit, "maxsplit") : -1;
    if (name == "rsplit" && m >= 0) fail("str.rsplit() with maxsplit is not supported");
    std::string sp;
    bool has = sep && !sep->is_none();
    if (has) sp = jinja_expect_string(*sep, "split separator");
    if (has && sp.empty()) fail("str.split(): empty separator");
    return string_list(cx, jinja_str_split(s, has ? &sp : nullptr, m));
  }
  if (name == "replace") {
    jinja_check_arity(what, args, 2, 3);
    int64_t n = args.size() > 2 ? jinja_expect_int(args[2], "replace count") : -1;
    return cx.string(jinja_str_replace(cx, s, jinja_expect_string(args[0], "replace old"),
                                       jinja_expect_string(args[1], "replace new"), n));
  }
  if (name == "upper") return jinja_check_arity(what, args, 0, 0), JinjaValue(jinja_str_upper(s));
  if (name == "lower") return jinja_check_arity(what, args, 0, 0), JinjaValue(jinja_str_lower(s));
  if (name == "title") return jinja_check_arity(what, args, 0, 0), JinjaValue(jinja_str_title(s));
  if (name == "capitalize") return jinja_check_arity(what, args, 0, 0), JinjaValue(jinja_str_capitalize(s));
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    jinja_check_arity(what, args, 1, 1);
    const std::string& sub = jinja_expect_string(args[0], what + " argument");
    size_t at = name == "rfind" ? s.rfind(sub) : s.find(sub);
    if (name == "count") {
      if (sub.empty()) return JinjaValue(static_cast<int64_t>(jinja_utf8_length(s) + 1));
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return JinjaValue(n);
    }
    if (at == std::string::npos) {
      if (name == "index") fail("str.index(): substring not found");
      return JinjaValue(int64_t{-1});
    }
    return JinjaValue(static_cast<int64_t>(jinja_utf8_length(std::string_view(s).substr(0, at))));
  }
  if (name == "join") {
    jinja_check_arity(what, args, 1, 1);
    std::string out;
    bool first = true;
    for (const auto& item : jinja_iterate(cx, args[0])) {
      if (!first) out += s;
      first = false;
      out += jinja_expect_string(item, "str.join() item");
      cx.charge_bytes(out.size());
    }
    return JinjaValue(std::move(out));
  }
  if (name == "splitlines") {
    jinja_check_arity(what, args, 0, 0);
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        lines.push_back(s.substr(start, i - start));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    }
    if (start < s.size()) lines.push_back(s.substr(start));
    return string_list(cx, std::move(lines));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    jinja_check_arity(what, args, 1, 1);
    const std::string& a = jinja_expect_string(args[0], what + " argument");
    bool prefix = name == "removeprefix";
    if (!affix_match(s, args[0], prefix)) return JinjaValue(s);
    return JinjaValue(prefix ? s.substr(a.size()) : s.substr(0, s.size() - a.size()));
  }
  if (name == "isdigit") return JinjaValue(ascii_test(s, [](char c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha") {
    return JinjaValue(ascii_test(s, [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }));
  }
  if (name == "isalnum") {
    return JinjaValue(ascii_test(s, [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    }));
  }
  if (name == "isspace") {
    auto cps = decode(s);
    return JinjaValue(!cps.empty() && std::all_of(cps.begin(), cps.end(), [](const CodePoint& c) {
      return py_space(c.cp);
    }));
  }
  if (name == "islower" || name == "isupper") {
    bool cased = false;
    for (char c : s) {
      bool lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
      if ((name == "islower" && up) || (name == "isupper" && lo)) return JinjaValue(false);
      cased = cased || lo || up;
    }
    return JinjaValue(cased);
  }
  if (name == "format") fail("str.format() is not supported (join strings with ~ or +)");
  fail("unknown string method '" + name + "()'");
}

JinjaValue dict_method(JinjaContext& cx, const JinjaDict& d, const std::string& name, const JinjaArgs& args) {
  const std::string what = "dict." + name + "()";
  if (name == "items" || name == "keys" || name == "values") {
    jinja_check_arity(what, args, 0, 0);
    JinjaList out;
    for (const auto& [k, v] : d) {
      if (name == "items") out.push_back(JinjaValue::tuple({JinjaValue(k), v}));
      else if (name == "keys") out.emplace_back(k);
      else out.push_back(v);
    }
    return cx.list(std::move(out));
  }
  if (name == "get") {
    jinja_check_arity(what, args, 1, 2);
    const JinjaValue* v = args[0].is_string() ? jinja_dict_find(d, args[0].as_string()) : nullptr;
    if (v) return *v;
    return args.size() > 1 ? args[1] : JinjaValue::none();
  }
  fail("unknown dict method '" + name + "()'" +
       (name == "update" || name == "pop" || name == "setdefault" ? " (templates cannot change a dict)" : ""));
}

// strftime_now: the directives chat templates use, formatted here so a
// template cannot hand arbitrary formats to the C library.
std::string format_time(const std::string& fmt, int64_t now_unix) {
  std::time_t t = now_unix >= 0 ? static_cast<std::time_t>(now_unix) : std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  static const char* const kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
  static const char* const kMonths[] = {"January", "February", "March", "April", "May", "June", "July",
                                        "August", "September", "October", "November", "December"};
  std::string out;
  auto num = [&](int v, int width, bool pad) {
    char buf[16];
    if (pad) {
      std::snprintf(buf, sizeof buf, "%0*d", width, v);
    } else {
      std::snprintf(buf, sizeof buf, "%d", v);
    }
    out += buf;
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) fail("strftime_now: format ends with '%'");
    bool pad = true;
    if (fmt[i] == '-') {  // glibc's "no padding" flag, which Python passes through
      pad = false;
      if (++i >= fmt.size()) fail("strftime_now: format ends with '%-'");
    }
    switch (fmt[i]) {
      case 'd': num(tm.tm_mday, 2, pad); break;
      case 'e': num(tm.tm_mday, 2, false); break;
      case 'm': num(tm.tm_mon + 1, 2, pad); break;
      case 'y': num(tm.tm_year % 100, 2, pad); break;
      case 'Y': num(tm.tm_year + 1900, 4, false); break;
      case 'H': num(tm.tm_hour, 2, pad); break;
      case 'I': num(tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12, 2, pad); break;
      case 'M': num(tm.tm_min, 2, pad); break;
      case 'S': num(tm.tm_sec, 2, pad); break;
      case 'j': num(tm.tm_yday + 1, 3, pad); break;
      case 'p': out += tm.tm_hour < 12 ? "AM" : "PM"; break;
      case 'A': out += kDays[tm.tm_wday % 7]; break;
      case 'a': out += std::string(kDays[tm.tm_wday % 7]).substr(0, 3); break;
      case 'B': out += kMonths[tm.tm_mon % 12]; break;
      case 'b':
      case 'h': out += std::string(kMonths[tm.tm_mon % 12]).substr(0, 3); break;
      case '%': out += '%'; break;
      default: fail(std::string("strftime_now: unsupported directive '%") + fmt[i] + "'");
    }
  }
  return out;
}

}  // namespace

std::string jinja_str_strip(const std::string& s, const std::string* chars, bool left, bool right) {
  std::vector<uint32_t> set;
  if (chars) {
    for (const auto& c : decode(*chars)) set.push_back(c.cp);
  }
  auto strip_me = [&](uint32_t cp) {
    if (!chars) return py_space(cp);
    return cp != 0xFFFFFFFFu && std::find(set.begin(), set.end(), cp) != set.end();
  };
  // Only the ends are decoded: the code point at a byte offset, and the
  // start of the code point that ends at one.
  auto at = [&](size_t i) { return decode(s.substr(i, std::min<size_t>(4, s.size() - i))).front(); };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      CodePoint c = at(b);
      if (!strip_me(c.cp)) break;
      b += c.len;
    }
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;  // back over continuation bytes to a lead byte, if it decodes to end at e
      while (start > b && e - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      CodePoint c = at(start);
      if (start + c.len != e) start = e - 1, c = CodePoint{0xFFFFFFFFu, 0, 1};  // invalid byte
      if (!strip_me(c.cp)) break;
      e = start;
    }
  }
  return s.substr(b, e - b);
}

std::string jinja_str_lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string jinja_str_upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

std::string jinja_str_title(std::string s) {
  bool prev_letter = false;
  for (char& c : s) {
    bool lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
    if (lo && !prev_letter) c = static_cast<char>(c - 'a' + 'A');
    if (up && prev_letter) c = static_cast<char>(c - 'A' + 'a');
    prev_letter = lo || up;
  }
  return s;
}

std::string jinja_str_capitalize(std::string s) {
  s = jinja_str_lower(std::move(s));
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::vector<std::string> jinja_str_split(const std::string& s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t at = s.find(*sep, start);
      if (at == std::string::npos) break;
      out.push_back(s.substr(start, at - start));
      start = at + sep->size();
    }
    out.push_back(s.substr(start));
    return out;
  }
  // Runs of whitespace separate; leading and trailing whitespace give nothing.
  std::vector<CodePoint> cps = decode(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && py_space(cps[i].cp)) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(s.substr(cps[i].at));  // Python keeps the remainder's trailing whitespace
      return out;
    }
    size_t j = i;
    while (j < cps.size() && !py_space(cps[j].cp)) ++j;
    size_t end = j < cps.size() ? cps[j].at : s.size();
    out.push_back(s.substr(cps[i].at, end - cps[i].at));
    i = j;
  }
  return out;
}

std::string jinja_str_replace(JinjaContext& cx, const std::string& s, const std::string& from,
                              const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every code point and at the end.
    int64_t n = 0;
    for (const auto& c : decode(s)) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      out.append(s, c.at, c.len);
      cx.charge_bytes(out.size());
    }
    if (count < 0 || n < count) out += to;
    cx.charge_bytes(out.size());
    return out;
  }
  size_t start = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t at = s.find(from, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += to;
    cx.charge_bytes(out.size());
    start = at + from.size();
    ++n;
  }
  out.append(s, start, std::string::npos);
  return out;
}

JinjaValue jinja_method(JinjaContext& cx, const JinjaValue& obj, const std::string& name, const JinjaArgs& args,
                        const JinjaKwargs& kwargs) {
  cx.budget.spend(1);
  jinja_require_defined(obj, ("calling ." + name + "()").c_str());
  if (obj.is_string()) return string_method(cx, obj.as_string(), name, args, kwargs);
  if (!kwargs.empty()) fail("method ." + name + "() takes no keyword arguments");
  if (obj.is_dict()) return dict_method(cx, obj.as_dict(), name, args);
  if (obj.is_namespace()) return dict_method(cx, obj.as_namespace()->attrs, name, args);
  if (obj.is_list()) {
    if (name == "count" || name == "index") {
      jinja_check_arity("list." + name + "()", args, 1, 1);
      const JinjaList& l = obj.as_list();
      int64_t n = 0;
      for (size_t i = 0; i < l.size(); ++i) {
        if (jinja_equal(l[i], args[0], &cx.budget)) {
          if (name == "index") return JinjaValue(static_cast<int64_t>(i));
          ++n;
        }
      }
      if (name == "index") fail("list.index(): value not in list");
      return JinjaValue(n);
    }
    fail("unknown list method '" + name + "()'" +
         (name == "append" || name == "pop" || name == "extend" || name == "insert"
              ? " (templates cannot change a list; build a new one with +)"
              : ""));
  }
  fail(std::string("'") + obj.type_name() + "' has no method '" + name + "()'");
}

bool jinja_is_global(const std::string& name) {
  return name == "range" || name == "namespace" || name == "dict" || name == "raise_exception" ||
         name == "strftime_now";
}

JinjaValue jinja_call_global(JinjaContext& cx, const std::string& name, const JinjaArgs& args,
                             const JinjaKwargs& kwargs) {
  cx.budget.spend(1);
  if (name == "raise_exception") {
    jinja_check_arity(name + "()", args, 1, 1);
    throw JinjaException(jinja_to_string(args[0], 4096));
  }
  if (name == "namespace" || name == "dict") {
    JinjaDict attrs;
    if (!args.empty()) {
      jinja_check_arity(name + "()", args, 0, 1);
      if (!args[0].is_dict()) fail(name + "() takes a dict or keyword arguments");
      attrs = args[0].as_dict();
    }
    for (const auto& [k, v] : kwargs) {
      bool replaced = false;
      for (auto& [ak, av] : attrs) {
        if (ak == k) {
          av = v;
          replaced = true;
        }
      }
      if (!replaced) attrs.emplace_back(k, v);
    }
    if (name == "dict") return JinjaValue(std::move(attrs));
    JinjaNamespace* ns = cx.new_namespace();
    ns->attrs = std::move(attrs);
    return JinjaValue(ns);
  }
  if (name == "range") {
    jinja_check_arity("range()", args, 1, 3);
    if (!kwargs.empty()) fail("range() takes no keyword arguments");
    int64_t start = 0, stop = 0, step = 1;
    if (args.size() == 1) {
      stop = jinja_expect_int(args[0], "range() argument");
    } else {
      start = jinja_expect_int(args[0], "range() start");
      stop = jinja_expect_int(args[1], "range() stop");
      if (args.size() == 3) step = jinja_expect_int(args[2], "range() step");
    }
    if (step == 0) fail("range() step must not be zero");
    // Count first (in wide arithmetic), so the limit applies before allocating.
    __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
    __int128 astep = step > 0 ? step : -static_cast<__int128>(step);
    __int128 n = span <= 0 ? 0 : (span + astep - 1) / astep;
    if (n > static_cast<__int128>(cx.options.limits.max_list_items)) {
      cx.charge_items(cx.options.limits.max_list_items + 1);  // throws
    }
    JinjaList out;
    out.reserve(static_cast<size_t>(n));
    for (__int128 i = 0; i < n; ++i) out.emplace_back(static_cast<int64_t>(start + i * step));
    return cx.list(std::move(out));
  }
  if (name == "strftime_now") {
    jinja_check_arity("strftime_now()", args, 1, 1);
    return cx.string(format_time(jinja_expect_string(args[0], "strftime_now() format"), cx.options.now_unix));
  }
  fail("unknown function '" + name + "()'");
}

}  // namespace tars::engine
