#pragma once
// The bounds-checked cursor the GGUF reader parses with, and the reading of
// one metadata value (gguf_read_value.cpp). Not part of the public API.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/gguf_internal.h"

namespace tars::engine::gguf_detail {

// A bounds-checked cursor over the file image. It carries the item being
// read ("metadata key 'x'", "tensor 'y'") so that a failure says where; the
// `what` arguments ("the type of") are literals, so reading costs no
// allocations and the message is only built on failure.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  void set_item(std::string item) { item_ = std::move(item); }

  // Counts metadata array elements against kMaxMetadataElements.
  void count_elements(uint64_t n) {
    if (n > kMaxMetadataElements - elements_) {
      fail(item_ + " has an array of " + std::to_string(n) + " elements, which takes the file's " +
           "metadata past the limit of " + std::to_string(kMaxMetadataElements) +
           " array elements in all");
    }
    elements_ += n;
  }
  const std::string& item() const { return item_; }

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(ErrorCode::kCorruptData, path_ + ": " + problem);
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      fail("file is truncated: " + std::string(what) + " " + item_ + " needs " +
           std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
           " but the file ends at " + std::to_string(size_));
    }
  }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    need(8, what);
    uint64_t len = read<uint64_t>(what);
    if (len > remaining()) {
      fail(std::string(what) + " " + item_ + " is a string of length " + std::to_string(len) +
           " at offset " + std::to_string(pos_ - 8) + ", past the end of the file (size " +
           std::to_string(size_) + ")");
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
  std::string item_;
  uint64_t elements_ = 0;  // metadata array elements read so far
};

// Reads a u32 value type and checks that GGUF defines it.
GgufValueType read_type(Cursor& c, const char* what);
// Reads one value of `type` (arrays included, nested at most kMaxArrayDepth).
GgufValue read_value(Cursor& c, GgufValueType type);

}  // namespace tars::engine::gguf_detail
