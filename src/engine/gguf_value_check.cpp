// The writer's check of a GgufValue before it is stored: the variant
// alternative matches the declared type (see gguf.h), integers fit their
// type, bools are 0/1, nesting is bounded. Errors are kInvalidArgument: a
// value that does not match is the caller's mistake, not a corrupt file.

#include <string>
#include <vector>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/gguf_internal.h"

namespace tars::engine::gguf_detail {

namespace {

[[noreturn]] void bad_value(const std::string& key, const std::string& problem) {
  throw Error(ErrorCode::kInvalidArgument, "GGUF metadata key '" + key + "': " + problem);
}

template <class T>
bool holds(const GgufValue& v) {
  return std::holds_alternative<T>(v.value);
}

void check_unsigned(const std::string& key, GgufValueType t, uint64_t x) {
  if (x > unsigned_max(t)) {
    bad_value(key, std::to_string(x) + " does not fit in " + gguf_value_type_name(t));
  }
}
void check_signed(const std::string& key, GgufValueType t, int64_t x) {
  if (t == GgufValueType::kBool) {
    if (x != 0 && x != 1) bad_value(key, "bool array element " + std::to_string(x) + " is not 0 or 1");
    return;
  }
  if (x < signed_min(t) || x > signed_max(t)) {
    bad_value(key, std::to_string(x) + " does not fit in " + gguf_value_type_name(t));
  }
}

}  // namespace

// Checks that `v` can be written as it claims: the variant alternative
// matches the type (see gguf.h), integers fit, nesting is bounded.
void check_value(const std::string& key, const GgufValue& v, int depth) {
  if (!type_known(static_cast<uint32_t>(v.type))) bad_value(key, "unknown value type");
  const char* tname = gguf_value_type_name(v.type);
  switch (storage_of(v.type)) {
    case Storage::kUnsigned:
      if (!holds<uint64_t>(v)) bad_value(key, std::string(tname) + " value must be held as uint64_t");
      check_unsigned(key, v.type, std::get<uint64_t>(v.value));
      return;
    case Storage::kSigned:
      if (!holds<int64_t>(v)) bad_value(key, std::string(tname) + " value must be held as int64_t");
      check_signed(key, v.type, std::get<int64_t>(v.value));
      return;
    case Storage::kBool:
      if (!holds<bool>(v)) bad_value(key, "bool value must be held as bool");
      return;
    case Storage::kFloat:
      if (!holds<double>(v)) bad_value(key, std::string(tname) + " value must be held as double");
      return;
    case Storage::kString:
      if (!holds<std::string>(v)) bad_value(key, "string value must be held as std::string");
      return;
    case Storage::kArray:
      break;
    case Storage::kUnknown:
      bad_value(key, "unknown value type");
  }
  if (depth >= kMaxArrayDepth) {
    bad_value(key, "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
  }
  if (!type_known(static_cast<uint32_t>(v.elem_type))) bad_value(key, "unknown array element type");
  const char* ename = gguf_value_type_name(v.elem_type);
  switch (storage_of(v.elem_type)) {
    case Storage::kUnsigned:
      if (!holds<std::vector<uint64_t>>(v)) {
        bad_value(key, std::string("array of ") + ename + " must be held as std::vector<uint64_t>");
      }
      for (uint64_t x : std::get<std::vector<uint64_t>>(v.value)) check_unsigned(key, v.elem_type, x);
      return;
    case Storage::kSigned:
    case Storage::kBool:
      if (!holds<std::vector<int64_t>>(v)) {
        bad_value(key, std::string("array of ") + ename + " must be held as std::vector<int64_t>");
      }
      for (int64_t x : std::get<std::vector<int64_t>>(v.value)) check_signed(key, v.elem_type, x);
      return;
    case Storage::kFloat:
      if (!holds<std::vector<double>>(v)) {
        bad_value(key, std::string("array of ") + ename + " must be held as std::vector<double>");
      }
      return;
    case Storage::kString:
      if (!holds<std::vector<std::string>>(v)) {
        bad_value(key, "array of string must be held as std::vector<std::string>");
      }
      return;
    case Storage::kArray:
      if (!holds<GgufArray>(v)) bad_value(key, "array of arrays must be held as GgufArray");
      for (const GgufValue& e : std::get<GgufArray>(v.value)) {
        if (e.type != GgufValueType::kArray) {
          bad_value(key, "an element of an array of arrays is not an array");
        }
        check_value(key, e, depth + 1);
      }
      return;
    case Storage::kUnknown:
      bad_value(key, "unknown array element type");
  }
}

}  // namespace tars::engine::gguf_detail
