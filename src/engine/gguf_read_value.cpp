// Reading metadata values: scalars, strings and (nested) arrays, each count
// checked against the bytes left before anything is allocated for it.

#include <string>
#include <vector>

#include "engine/gguf_cursor.h"

namespace tars::engine::gguf_detail {

namespace {

// Reads one scalar of type `t` (not string/array) into its storage form.
template <class Out>
Out read_scalar(Cursor& c, GgufValueType t, const char* what);

template <>
uint64_t read_scalar<uint64_t>(Cursor& c, GgufValueType t, const char* what) {
  switch (t) {
    case GgufValueType::kU8: return c.read<uint8_t>(what);
    case GgufValueType::kU16: return c.read<uint16_t>(what);
    case GgufValueType::kU32: return c.read<uint32_t>(what);
    default: return c.read<uint64_t>(what);
  }
}

template <>
int64_t read_scalar<int64_t>(Cursor& c, GgufValueType t, const char* what) {
  switch (t) {
    case GgufValueType::kI8: return c.read<int8_t>(what);
    case GgufValueType::kI16: return c.read<int16_t>(what);
    case GgufValueType::kI32: return c.read<int32_t>(what);
    case GgufValueType::kBool: {
      // Read as a byte, never as bool: any other byte value in a bool is UB.
      uint8_t b = c.read<uint8_t>(what);
      if (b > 1) {
        c.fail(c.item() + " holds a bool with byte value " + std::to_string(b) + " (must be 0 or 1)");
      }
      return b;
    }
    default: return c.read<int64_t>(what);
  }
}

template <>
double read_scalar<double>(Cursor& c, GgufValueType t, const char* what) {
  if (t == GgufValueType::kF32) return c.read<float>(what);
  return c.read<double>(what);
}

template <class Elem>
std::vector<Elem> read_scalar_array(Cursor& c, GgufValueType et, uint64_t n) {
  std::vector<Elem> v;
  v.reserve(n);  // n was checked against the bytes left: bounded by the file size
  for (uint64_t i = 0; i < n; ++i) v.push_back(read_scalar<Elem>(c, et, "an element of"));
  return v;
}

GgufValue read_array(Cursor& c, int depth) {
  if (depth >= kMaxArrayDepth) {
    c.fail(c.item() + " nests arrays deeper than " + std::to_string(kMaxArrayDepth) + " levels");
  }
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.elem_type = read_type(c, "the element type of");
  uint64_t n = c.read<uint64_t>("the element count of");
  uint64_t min_size = min_encoded_size(v.elem_type);
  if (n > c.remaining() / min_size) {
    c.fail(c.item() + " claims an array of " + std::to_string(n) + " " +
           gguf_value_type_name(v.elem_type) + " elements at offset " +
           std::to_string(c.pos() - 12) + ", more than the " + std::to_string(c.remaining()) +
           " bytes left in the file can hold (the file is truncated or corrupt)");
  }
  c.count_elements(n);
  switch (storage_of(v.elem_type)) {
    case Storage::kUnsigned:
      v.value = read_scalar_array<uint64_t>(c, v.elem_type, n);
      break;
    case Storage::kSigned:
    case Storage::kBool:
      v.value = read_scalar_array<int64_t>(c, v.elem_type, n);
      break;
    case Storage::kFloat:
      v.value = read_scalar_array<double>(c, v.elem_type, n);
      break;
    case Storage::kString: {
      std::vector<std::string> s;
      s.reserve(n);
      for (uint64_t i = 0; i < n; ++i) s.push_back(c.read_string("an element of"));
      v.value = std::move(s);
      break;
    }
    case Storage::kArray: {
      GgufArray a;
      a.reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.push_back(read_array(c, depth + 1));
      v.value = std::move(a);
      break;
    }
    case Storage::kUnknown:
      c.fail(c.item() + " has an unknown element type");
  }
  return v;
}

}  // namespace

GgufValueType read_type(Cursor& c, const char* what) {
  uint32_t t = c.read<uint32_t>(what);
  if (!type_known(t)) {
    c.fail(c.item() + " has unknown value type " + std::to_string(t) + " (GGUF defines 0 to 12)");
  }
  return static_cast<GgufValueType>(t);
}


GgufValue read_value(Cursor& c, GgufValueType type) {
  GgufValue v;
  v.type = type;
  switch (storage_of(type)) {
    case Storage::kUnsigned: v.value = read_scalar<uint64_t>(c, type, "the value of"); break;
    case Storage::kSigned: v.value = read_scalar<int64_t>(c, type, "the value of"); break;
    case Storage::kBool: v.value = read_scalar<int64_t>(c, type, "the value of") != 0; break;
    case Storage::kFloat: v.value = read_scalar<double>(c, type, "the value of"); break;
    case Storage::kString: v.value = c.read_string("the value of"); break;
    case Storage::kArray: return read_array(c, 0);
    case Storage::kUnknown: c.fail(c.item() + " has an unknown value type");
  }
  return v;
}

}  // namespace tars::engine::gguf_detail
