#pragma once
// Jinja builtins (internal to the renderer): filters and tests
// (jinja_filters.cpp), methods of strings, dicts and lists, and the global
// functions (jinja_methods.cpp). Each either returns a value or throws
// tars::Error(kUnsupported) naming what is wrong, and spends the render's
// budget in proportion to the work it does.

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "engine/jinja.h"
#include "engine/jinja_value.h"

namespace tars::engine {

using JinjaArgs = std::vector<JinjaValue>;
using JinjaKwargs = std::vector<std::pair<std::string, JinjaValue>>;

// What builtins need from the render they run in.
struct JinjaContext {
  JinjaContext(const JinjaOptions& o) : options(o), budget(o.limits.max_steps) {}

  const JinjaOptions& options;
  JinjaBudget budget;
  std::deque<JinjaNamespace> namespaces;  // every namespace() of this render

  // Charges the budget for a string of n bytes and checks it against
  // max_value_bytes (kTooLarge).
  void charge_bytes(size_t n);
  // Same for a list of n elements against max_list_items.
  void charge_items(size_t n);
  // charge_bytes, then wraps.
  JinjaValue string(std::string s);
  // charge_items, then wraps.
  JinjaValue list(JinjaList l);
  JinjaNamespace* new_namespace();
};

// Filters: `value | name(args, kwargs)`.
JinjaValue jinja_filter(JinjaContext& cx, const std::string& name, const JinjaValue& value,
                        const JinjaArgs& args, const JinjaKwargs& kwargs);
// Tests: `value is name(args)`.
bool jinja_test(JinjaContext& cx, const std::string& name, const JinjaValue& value, const JinjaArgs& args);
// obj.name(args, kwargs) for a string, dict or list.
JinjaValue jinja_method(JinjaContext& cx, const JinjaValue& obj, const std::string& name,
                        const JinjaArgs& args, const JinjaKwargs& kwargs);
// A global function: range, namespace, dict, raise_exception, strftime_now.
// Throws kUnsupported naming an unknown function.
JinjaValue jinja_call_global(JinjaContext& cx, const std::string& name, const JinjaArgs& args,
                             const JinjaKwargs& kwargs);
// Whether `name` is a global function jinja_call_global knows.
bool jinja_is_global(const std::string& name);

// Python's `item in container` (substring, element, key). Undefined
// containers hold nothing; others are an error.
bool jinja_contains(JinjaContext& cx, const JinjaValue& container, const JinjaValue& item);
// Elements a for loop or a filter walks: a list's elements, a dict's keys, a
// string's characters; undefined gives none. Others: kUnsupported.
JinjaList jinja_iterate(JinjaContext& cx, const JinjaValue& v);

// Operators and lookups (jinja_ops.cpp), with Python's semantics; errors
// (type errors, undefined operands, division by zero, 64-bit overflow) are
// kUnsupported with Python's wording.
// op: + - * / // % ** ~
JinjaValue jinja_binary(JinjaContext& cx, const std::string& op, const JinjaValue& a, const JinjaValue& b);
// op: - +
JinjaValue jinja_unary(const std::string& op, const JinjaValue& a);
// obj.name: a dict's key or a namespace's attribute; undefined when absent.
JinjaValue jinja_getattr(const JinjaValue& obj, const std::string& name);
// obj[key]: list and string indexes (negative from the end), dict keys;
// undefined when absent.
JinjaValue jinja_getitem(JinjaContext& cx, const JinjaValue& obj, const JinjaValue& key);
// obj[start:stop:step] of a list or string; each bound may be none/undefined.
JinjaValue jinja_slice(JinjaContext& cx, const JinjaValue& obj, const JinjaValue& start,
                       const JinjaValue& stop, const JinjaValue& step);
// Throws kUnsupported "'<name>' is undefined" when v is undefined.
void jinja_require_defined(const JinjaValue& v, const char* use);

// Python string helpers (jinja_methods.cpp). Whitespace is Python's
// str.isspace() set (ASCII and Unicode spaces); case mapping is ASCII only.
// str.strip/lstrip/rstrip: `chars` nullptr strips whitespace.
std::string jinja_str_strip(const std::string& s, const std::string* chars, bool left, bool right);
std::string jinja_str_lower(std::string s);
std::string jinja_str_upper(std::string s);
std::string jinja_str_title(std::string s);
std::string jinja_str_capitalize(std::string s);
// str.split(sep, maxsplit): sep nullptr splits on runs of whitespace.
std::vector<std::string> jinja_str_split(const std::string& s, const std::string* sep, int64_t maxsplit);
// str.replace(old, new, count): count < 0 replaces all.
std::string jinja_str_replace(JinjaContext& cx, const std::string& s, const std::string& from,
                              const std::string& to, int64_t count);

// Helpers shared by the builtins.
// The keyword argument `name`, else positional `index`, else nullptr.
const JinjaValue* jinja_arg(const JinjaArgs& args, const JinjaKwargs& kwargs, size_t index, const char* name);
// Checks an argument count: throws kUnsupported "<what> takes a to b arguments".
void jinja_check_arity(const std::string& what, const JinjaArgs& args, size_t min, size_t max);
// The string a string-typed argument holds; kUnsupported naming `what` otherwise.
const std::string& jinja_expect_string(const JinjaValue& v, const std::string& what);
int64_t jinja_expect_int(const JinjaValue& v, const std::string& what);

}  // namespace tars::engine
