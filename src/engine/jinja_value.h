#pragma once
// Values of the Jinja subset that renders chat templates (see jinja.h).
//
// A value behaves like the Python object Jinja would hold: undefined, None,
// bool, int (64-bit here; overflow is an error, not a wrap), float, str
// (UTF-8 bytes; lengths and indexes count code points), list, dict (string
// keys, insertion order kept), a namespace() object, or a macro.
//
// Lists and dicts are immutable once built (Hugging Face renders templates in
// an immutable sandbox, so no template can append to a list), which lets
// values share them through shared_ptr. A namespace is the one mutable
// object (`{% set ns.x = ... %}`); namespaces are owned by the render that
// made them (JinjaArena), so a namespace stored inside itself is no leak.
//
// Every structure a value can reach is at most kJinjaMaxValueDepth deep:
// printing, comparing and freeing values recurse, and a hostile template must
// not be able to build a list nested a million times and overflow the stack.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tars::engine {

struct JinjaMacro;  // jinja_ast.h
class JinjaValue;

inline constexpr int kJinjaMaxValueDepth = 64;
// Default cap on the text one value prints to (str, repr, JSON).
inline constexpr size_t kJinjaMaxPrintBytes = size_t{64} << 20;

using JinjaList = std::vector<JinjaValue>;
// Insertion-ordered string-keyed map; chat-template dicts are small, so a
// linear search beats hashing.
using JinjaDict = std::vector<std::pair<std::string, JinjaValue>>;

struct JinjaUndefined {
  std::string name;  // what was looked up ("message.tool_calls"), for error messages
};
struct JinjaNone {};

// A namespace() object: attributes that `set ns.attr = v` may change inside
// loops. Owned by the render's JinjaArena; values hold a plain pointer.
struct JinjaNamespace {
  JinjaDict attrs;
};

// A macro value: the definition in the template's syntax tree (which outlives
// every render).
struct JinjaMacroRef {
  const JinjaMacro* macro;
};

// A global function of the environment (range, namespace, raise_exception,
// strftime_now, ...) used as a value: `strftime_now is defined` is true, as in
// Hugging Face's environment.
struct JinjaFunction {
  std::string name;
};

// Work a render may still do: every node evaluated, loop iteration, and
// element or 16 bytes a builtin touches spends one unit. Comparisons of
// shared, deeply nested lists would otherwise be exponential.
class JinjaBudget {
 public:
  explicit JinjaBudget(uint64_t units) : left_(units), total_(units) {}
  // Throws tars::Error(kTooLarge) once the budget is spent.
  void spend(uint64_t units);
  uint64_t left() const { return left_; }

 private:
  uint64_t left_;
  uint64_t total_;
};

class JinjaValue {
 public:
  enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kMacro, kFunction };

  JinjaValue() : v_(JinjaUndefined{}) {}
  static JinjaValue undefined(std::string name = {}) { return JinjaValue(JinjaUndefined{std::move(name)}); }
  static JinjaValue none() { return JinjaValue(JinjaNone{}); }
  JinjaValue(bool b) : v_(b) {}
  JinjaValue(int64_t i) : v_(i) {}
  JinjaValue(int i) : v_(static_cast<int64_t>(i)) {}
  JinjaValue(double f) : v_(f) {}
  JinjaValue(std::string s) : v_(std::move(s)) {}
  JinjaValue(const char* s) : v_(std::string(s)) {}
  // Throw tars::Error(kTooLarge) when an element is nested too deeply.
  JinjaValue(JinjaList list);
  // A tuple: a list that prints as (a, b) and never equals a list, as in
  // Python ((1, 2) literals, dict items, dictsort pairs).
  static JinjaValue tuple(JinjaList list);
  JinjaValue(JinjaDict dict);
  JinjaValue(JinjaNamespace* ns) : v_(ns) {}
  JinjaValue(JinjaMacroRef m) : v_(m) {}
  explicit JinjaValue(JinjaUndefined u) : v_(std::move(u)) {}
  explicit JinjaValue(JinjaNone n) : v_(n) {}
  explicit JinjaValue(JinjaFunction f) : v_(std::move(f)) {}

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_undefined() const { return type() == Type::kUndefined; }
  bool is_none() const { return type() == Type::kNone; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_float() const { return type() == Type::kFloat; }
  // bool counts as a number, as in Python (True + 1 == 2).
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return type() == Type::kString; }
  bool is_list() const { return type() == Type::kList; }  // tuples included
  bool is_tuple() const { return tuple_; }
  bool is_dict() const { return type() == Type::kDict; }
  bool is_namespace() const { return type() == Type::kNamespace; }
  bool is_macro() const { return type() == Type::kMacro; }
  bool is_function() const { return type() == Type::kFunction; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;  // int or bool
  double as_double() const;  // int, bool or float
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const JinjaList& as_list() const { return *std::get<std::shared_ptr<const JinjaList>>(v_); }
  const JinjaDict& as_dict() const { return *std::get<std::shared_ptr<const JinjaDict>>(v_); }
  JinjaNamespace* as_namespace() const { return std::get<JinjaNamespace*>(v_); }
  const JinjaMacro* as_macro() const { return std::get<JinjaMacroRef>(v_).macro; }
  const std::string& function_name() const { return std::get<JinjaFunction>(v_).name; }
  const std::string& undefined_name() const { return std::get<JinjaUndefined>(v_).name; }

  // Nesting depth: 1 for scalars, namespaces, macros and functions; 1 + the deepest
  // element for lists and dicts.
  int depth() const { return depth_; }

  // Python truthiness: undefined, None, False, 0, 0.0, "", [] and {} are false.
  bool truthy() const;
  // The name Python would give the type ("str", "list", "NoneType"), for errors.
  const char* type_name() const;

 private:
  std::variant<JinjaUndefined, JinjaNone, bool, int64_t, double, std::string,
               std::shared_ptr<const JinjaList>, std::shared_ptr<const JinjaDict>,
               JinjaNamespace*, JinjaMacroRef, JinjaFunction>
      v_;
  int depth_ = 1;
  bool tuple_ = false;
};

// Looks `key` up in a dict; nullptr when absent.
const JinjaValue* jinja_dict_find(const JinjaDict& dict, std::string_view key);

// str(value) as Jinja prints it: "" for undefined, "None", "True", Python's
// shortest float repr ("1.0", "1e-05"), lists and dicts as Python's repr.
std::string jinja_to_string(const JinjaValue& v, size_t max_bytes = kJinjaMaxPrintBytes);
// repr(value): strings quoted ('a', with Python's escapes).
std::string jinja_repr(const JinjaValue& v, size_t max_bytes = kJinjaMaxPrintBytes);
// Python's repr of a float ("0.1", "1e+16", "inf", "nan").
std::string jinja_float_repr(double d);
// json.dumps(value, ensure_ascii=False) as Hugging Face's tojson filter calls
// it: separators ", " and ": " without indent, "," and ": " with it; keys in
// insertion order. indent < 0: none. Throws kUnsupported for an undefined
// value, a namespace or a macro (not JSON). All three printers throw
// kTooLarge once the text passes max_bytes.
std::string jinja_to_json(const JinjaValue& v, int indent, size_t max_bytes = kJinjaMaxPrintBytes);

// ==: numbers by value across int/float/bool, strings by bytes, lists and
// dicts element-wise; values of different kinds are unequal. Both compare
// functions spend one unit of `budget` per element visited (without one, a
// private budget of a million units bounds the call).
bool jinja_equal(const JinjaValue& a, const JinjaValue& b, JinjaBudget* budget = nullptr);
// a < b in Python's ordering of numbers, strings (by code point, which is
// UTF-8 byte order) and lists (element by element). Throws
// tars::Error(kUnsupported) for values Python cannot order ("'<' not
// supported between 'dict' and 'int'"). NaN is unordered: every comparison
// with it is false. Callers build <=, >, >= from this and jinja_equal.
bool jinja_less(const JinjaValue& a, const JinjaValue& b, JinjaBudget* budget = nullptr);

// Number of code points of a UTF-8 string (invalid bytes count one each).
size_t jinja_utf8_length(std::string_view s);
// Byte offset of each code point of `s` (invalid bytes count one each),
// then s.size(): code point i is s[off[i], off[i + 1]).
std::vector<size_t> jinja_utf8_offsets(std::string_view s);

}  // namespace tars::engine
