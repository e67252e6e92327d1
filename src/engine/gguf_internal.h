#pragma once
// Facts about GGUF value types that the reader (gguf.cpp) and the writer
// (gguf_writer.cpp) share. Not part of the public API.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf.h"

namespace tars::engine::gguf_detail {

// Both sides copy integers with memcpy in host order; GGUF files (as tars
// reads and writes them) are little-endian.
static_assert(std::endian::native == std::endian::little,
              "the GGUF reader and writer assume a little-endian host");

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kWriteVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
// Arrays of arrays are legal; a file that nests them deeper than this is
// refused (bounds recursion on hostile input; no real file nests at all).
constexpr int kMaxArrayDepth = 8;
// Metadata array elements in one file, all arrays together. Each element is
// held in 8 to 32 bytes of memory even when it takes 1 byte of file, so this
// bounds what a hostile file can make the reader allocate (about 2 GB at
// worst). Real files hold under a million (Llama 3: 128k tokens, 128k token
// types, 280k merges).
constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 26;

// How a value of a type is held in GgufValue (see gguf.h).
enum class Storage { kUnsigned, kSigned, kBool, kFloat, kString, kArray, kUnknown };

inline Storage storage_of(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kU16:
    case GgufValueType::kU32: case GgufValueType::kU64: return Storage::kUnsigned;
    case GgufValueType::kI8: case GgufValueType::kI16:
    case GgufValueType::kI32: case GgufValueType::kI64: return Storage::kSigned;
    case GgufValueType::kBool: return Storage::kBool;
    case GgufValueType::kF32: case GgufValueType::kF64: return Storage::kFloat;
    case GgufValueType::kString: return Storage::kString;
    case GgufValueType::kArray: return Storage::kArray;
  }
  return Storage::kUnknown;
}

inline bool type_known(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufValueType::kF64);
}

// Bytes of one scalar in the file; 0 for string and array (variable size).
inline size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kString: case GgufValueType::kArray: return 0;
  }
  return 0;
}

// The fewest bytes one value of the type takes in a file: a string is at
// least its u64 length, an array at least its u32 type and u64 count. Used to
// refuse counts that cannot fit in what is left of the file.
inline uint64_t min_encoded_size(GgufValueType t) {
  if (t == GgufValueType::kString) return 8;
  if (t == GgufValueType::kArray) return 12;
  return scalar_size(t);
}

// Smallest and largest value of an integer type (as int64 / uint64).
inline int64_t signed_min(GgufValueType t) {
  switch (t) {
    case GgufValueType::kI8: return INT8_MIN;
    case GgufValueType::kI16: return INT16_MIN;
    case GgufValueType::kI32: return INT32_MIN;
    default: return INT64_MIN;
  }
}
inline int64_t signed_max(GgufValueType t) {
  switch (t) {
    case GgufValueType::kI8: return INT8_MAX;
    case GgufValueType::kI16: return INT16_MAX;
    case GgufValueType::kI32: return INT32_MAX;
    default: return INT64_MAX;
  }
}
inline uint64_t unsigned_max(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: return UINT8_MAX;
    case GgufValueType::kU16: return UINT16_MAX;
    case GgufValueType::kU32: return UINT32_MAX;
    default: return UINT64_MAX;
  }
}

// Message helpers (gguf.cpp).
// A name from the file, quoted for a one-line message: printable ASCII as is,
// other bytes as \xNN, cut after 120 bytes.
std::string quoted(std::string_view s);
std::string hex_bytes(const uint8_t* p, size_t n);  // "47 47 55 46"
std::string shape_str(const std::vector<uint64_t>& shape);  // "[64, 512]"

// Throws tars::Error(kInvalidArgument, "GGUF metadata key '<key>': ...") when
// `v` cannot be written as it claims (gguf_value_check.cpp).
void check_value(const std::string& key, const GgufValue& v, int depth);

inline uint64_t align_up(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

}  // namespace tars::engine::gguf_detail
