// GgufFile lookups and typed metadata accessors. A value converts only when
// nothing is lost (integers between integer types when they fit, f32/f64);
// anything else is a kCorruptData error naming the key and both types.

#include <limits>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/gguf_internal.h"

namespace tars::engine {

using namespace gguf_detail;

// ---- lookups ----------------------------------------------------------------

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const GgufValue& v,
                             const char* wanted) {
  std::string have = gguf_value_type_name(v.type);
  if (v.type == GgufValueType::kArray) have += std::string(" of ") + gguf_value_type_name(v.elem_type);
  throw Error(ErrorCode::kCorruptData,
              path + ": metadata key " + quoted(key) + " has type " + have + ", expected " + wanted);
}

// The integer value of `v` if it is of an integer type and fits in Out.
template <class Out>
std::optional<Out> as_integer(const GgufValue& v) {
  if (storage_of(v.type) == Storage::kUnsigned) {
    uint64_t x = std::get<uint64_t>(v.value);
    if (x > static_cast<uint64_t>(std::numeric_limits<Out>::max())) return std::nullopt;
    return static_cast<Out>(x);
  }
  if (storage_of(v.type) == Storage::kSigned) {
    int64_t x = std::get<int64_t>(v.value);
    if (x < 0 && !std::numeric_limits<Out>::is_signed) return std::nullopt;
    return static_cast<Out>(x);
  }
  return std::nullopt;
}

bool is_integer(const GgufValue& v) {
  Storage s = storage_of(v.type);
  return s == Storage::kUnsigned || s == Storage::kSigned;
}

}  // namespace

std::optional<std::string> GgufFile::opt_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::kString) wrong_type(path_, key, *v, "string");
  return std::get<std::string>(v->value);
}

std::optional<uint64_t> GgufFile::opt_u64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer(*v)) wrong_type(path_, key, *v, "an unsigned integer");
  auto x = as_integer<uint64_t>(*v);
  if (!x) {
    throw Error(ErrorCode::kCorruptData, path_ + ": metadata key " + quoted(key) + " = " +
                                             std::to_string(std::get<int64_t>(v->value)) +
                                             " is negative, expected an unsigned integer");
  }
  return x;
}

int64_t GgufFile::get_i64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error(ErrorCode::kCorruptData, path_ + ": metadata key " + quoted(key) + " is missing");
  if (!is_integer(*v)) wrong_type(path_, key, *v, "an integer");
  auto x = as_integer<int64_t>(*v);
  if (!x) {
    throw Error(ErrorCode::kCorruptData, path_ + ": metadata key " + quoted(key) + " = " +
                                             std::to_string(std::get<uint64_t>(v->value)) +
                                             " does not fit in a signed 64-bit integer");
  }
  return *x;
}

std::optional<double> GgufFile::opt_f64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (storage_of(v->type) != Storage::kFloat) wrong_type(path_, key, *v, "f32 or f64");
  return std::get<double>(v->value);
}

std::optional<bool> GgufFile::opt_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::kBool) wrong_type(path_, key, *v, "bool");
  return std::get<bool>(v->value);
}

namespace {
template <class T>
T required(const std::optional<T>& v, const std::string& path, std::string_view key) {
  if (!v) throw Error(ErrorCode::kCorruptData, path + ": metadata key " + quoted(key) + " is missing");
  return *v;
}
}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
  return required(opt_string(key), path_, key);
}
uint64_t GgufFile::get_u64(std::string_view key) const { return required(opt_u64(key), path_, key); }
double GgufFile::get_f64(std::string_view key) const { return required(opt_f64(key), path_, key); }
bool GgufFile::get_bool(std::string_view key) const { return required(opt_bool(key), path_, key); }

const std::vector<std::string>* GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::kArray || v->elem_type != GgufValueType::kString) {
    wrong_type(path_, key, *v, "array of string");
  }
  return &std::get<std::vector<std::string>>(v->value);
}

const std::vector<int64_t>* GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  Storage s = storage_of(v->elem_type);
  if (v->type != GgufValueType::kArray || (s != Storage::kSigned && s != Storage::kBool)) {
    wrong_type(path_, key, *v, "array of signed integers or bools");
  }
  return &std::get<std::vector<int64_t>>(v->value);
}

const std::vector<uint64_t>* GgufFile::get_uint_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::kArray || storage_of(v->elem_type) != Storage::kUnsigned) {
    wrong_type(path_, key, *v, "array of unsigned integers");
  }
  return &std::get<std::vector<uint64_t>>(v->value);
}

const std::vector<double>* GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::kArray || storage_of(v->elem_type) != Storage::kFloat) {
    wrong_type(path_, key, *v, "array of f32 or f64");
  }
  return &std::get<std::vector<double>>(v->value);
}

}  // namespace tars::engine
