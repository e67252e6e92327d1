// GGUF reading: maps the file, then parses and validates every byte it will
// ever hand out. The parser treats the file as hostile: every read is bounds
// checked against the file size before it happens, every count is checked
// against the bytes left before anything is allocated for it, and every size
// computation is checked for overflow. A failure throws
// tars::Error(kCorruptData, "<path>: <problem>") and never reads out of bounds.

#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>

#include "common/error.h"
#include "engine/gguf_cursor.h"
#include "engine/gguf_internal.h"

namespace tars::engine {

using namespace gguf_detail;

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8: return "u8";
    case GgufValueType::kI8: return "i8";
    case GgufValueType::kU16: return "u16";
    case GgufValueType::kI16: return "i16";
    case GgufValueType::kU32: return "u32";
    case GgufValueType::kI32: return "i32";
    case GgufValueType::kF32: return "f32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kU64: return "u64";
    case GgufValueType::kI64: return "i64";
    case GgufValueType::kF64: return "f64";
  }
  return "unknown";
}

namespace gguf_detail {

std::string hex_bytes(const uint8_t* p, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kHex[p[i] >> 4];
    s += kHex[p[i] & 15];
  }
  return s;
}

// Quoting keeps a hostile name from breaking the one-line message or
// flooding a log.
std::string quoted(std::string_view s) {
  std::string out = "'";
  size_t n = std::min<size_t>(s.size(), 120);
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (n < s.size()) out += "...";
  return out + "'";
}

std::string shape_str(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace gguf_detail

// ---- opening ----------------------------------------------------------------

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(ErrorCode::kIo, "cannot stat " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::kIo, "cannot read " + path + ": " +
                                    (S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file"));
  }
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    // Read-only private mapping: pages load on first touch, so opening a
    // large model costs nothing until its tensors are used. (If another
    // process truncates the file while it is mapped, touching the lost pages
    // raises SIGBUS; no reader can fully guard against that.)
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw Error(ErrorCode::kIo, "cannot map " + path + ": " + std::strerror(err));
    }
    f->base_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  }
  ::close(fd);  // the mapping keeps the file alive
  f->parse();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::from_memory(const uint8_t* data, size_t size,
                                                const std::string& name) {
  if (data == nullptr && size != 0) {
    throw Error(ErrorCode::kInvalidArgument, name + ": null buffer of size " + std::to_string(size));
  }
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->base_ = data;
  f->size_ = size;
  f->parse();
  return f;
}

GgufFile::~GgufFile() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

// ---- parsing ----------------------------------------------------------------

void GgufFile::parse() {
  Cursor c(base_, size_, path_);
  if (size_ == 0) c.fail("file is empty (0 bytes), not a GGUF file");
  if (size_ < 4) c.fail("file is too short (" + std::to_string(size_) + " bytes) to be a GGUF file");
  if (std::memcmp(base_, kMagic, 4) != 0) {
    // The pre-GGUF formats wrote their magic as a little-endian u32.
    static const char* kOld[] = {"lmgg", "fmgg", "tjgg"};
    for (const char* m : kOld) {
      if (std::memcmp(base_, m, 4) == 0) {
        c.fail("an old GGML/GGJT model file, not GGUF; convert it to GGUF with a current converter");
      }
    }
    c.fail("not a GGUF file (first bytes " + hex_bytes(base_, 4) + ", expected 47 47 55 46 'GGUF')");
  }
  c.set_item("in the header");
  c.read<uint32_t>("the magic");

  uint32_t version = c.read<uint32_t>("the GGUF version");
  if (version == 1) {
    c.fail("GGUF version 1 is not supported (it is obsolete); convert the model again with a current converter");
  }
  if (version != 2 && version != 3) {
    // A big-endian file stores 3 as bytes 00 00 00 03.
    uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3) {
      c.fail("big-endian GGUF file (version " + std::to_string(swapped) +
             "); tars reads only little-endian GGUF files");
    }
    c.fail("unsupported GGUF version " + std::to_string(version) + " (tars reads versions 2 and 3)");
  }
  version_ = version;

  uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  uint64_t n_kv = c.read<uint64_t>("the metadata entry count");
  // Every entry takes some bytes: refuse counts the rest of the file cannot
  // hold before looping over them (a count of 2^60 must not spin or allocate).
  const uint64_t kMinKv = 8 + 4 + 1;                // key length, type, 1-byte value
  const uint64_t kMinTensor = 8 + 4 + 8 + 4 + 8;    // name length, n_dims, 1 dim, type, offset
  if (n_kv > c.remaining() / kMinKv) {
    c.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " +
           std::to_string(c.remaining()) +
           " bytes after the header (the file is truncated or corrupt)");
  }
  if (n_tensors > c.remaining() / kMinTensor ||
      n_tensors * kMinTensor + n_kv * kMinKv > c.remaining()) {
    c.fail("tensor count " + std::to_string(n_tensors) + " (with " + std::to_string(n_kv) +
           " metadata entries) cannot fit in the " + std::to_string(c.remaining()) +
           " bytes after the header (the file is truncated or corrupt)");
  }

  // Metadata.
  for (uint64_t i = 0; i < n_kv; ++i) {
    c.set_item("metadata entry #" + std::to_string(i));
    std::string key = c.read_string("the name of");
    c.set_item("metadata key " + quoted(key));
    if (kv_index_.count(key)) c.fail("duplicate " + c.item());
    GgufValueType type = read_type(c, "the type of");
    GgufValue v = read_value(c, type);
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufValueType::kU32) {
      c.fail(std::string("general.alignment has type ") + gguf_value_type_name(a->type) +
             ", expected u32");
    }
    uint64_t al = std::get<uint64_t>(a->value);
    if (al == 0 || (al & (al - 1)) != 0) {
      c.fail("general.alignment = " + std::to_string(al) + " is not a power of two");
    }
    alignment_ = al;
  } else {
    alignment_ = kDefaultAlignment;
  }

  // Tensor table.
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    c.set_item("tensor #" + std::to_string(i));
    t.name = c.read_string("the name of");
    c.set_item("tensor " + quoted(t.name));
    const std::string& what = c.item();
    if (tensor_index_.count(t.name)) c.fail("duplicate " + what);
    uint32_t n_dims = c.read<uint32_t>("the dimension count of");
    if (n_dims < 1 || n_dims > 4) {
      c.fail(what + " has " + std::to_string(n_dims) + " dimensions (GGUF allows 1 to 4)");
    }
    t.n_elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = c.read<uint64_t>("the shape of");
      t.shape.push_back(dim);
      if (dim == 0) c.fail(what + " has dimension " + std::to_string(d) + " of size 0");
      // ggml counts elements in int64: the product must fit in 63 bits.
      if (t.n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) {
        c.fail(what + " has an absurd shape " + shape_str(t.shape) +
               " (the element count overflows 63 bits)");
      }
      t.n_elems *= dim;
    }
    uint32_t type_num = c.read<uint32_t>("the type of");
    auto traits = tensor_type_traits(type_num);
    if (!traits) {
      std::string_view foreign = tensor_type_foreign_name(type_num);
      if (!foreign.empty()) {
        throw Error(ErrorCode::kUnsupported,
                    path_ + ": " + what + " has type " + std::string(foreign) + " (" +
                        std::to_string(type_num) + "), which tars cannot read");
      }
      c.fail(what + " has unknown tensor type number " + std::to_string(type_num));
    }
    t.type = static_cast<TensorType>(type_num);
    if (t.shape[0] % traits->block_elems != 0) {
      c.fail(what + " row length " + std::to_string(t.shape[0]) + " is not a multiple of the " +
             std::string(traits->name) + " block size " + std::to_string(traits->block_elems));
    }
    auto bytes = tensor_type_row_bytes(t.type, t.n_elems);
    if (!bytes) c.fail(what + " shape " + shape_str(t.shape) + ": byte size overflows");
    t.n_bytes = *bytes;
    t.offset = c.read<uint64_t>("the data offset of");
    if (t.offset % alignment_ != 0) {
      c.fail(what + " data offset " + std::to_string(t.offset) +
             " is not a multiple of the alignment " + std::to_string(alignment_));
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // Tensor data. (A file without tensors may end right after its metadata,
  // with no padding; data_offset may then lie past the end, harmlessly.)
  data_offset_ = align_up(c.pos(), alignment_);
  if (tensors_.empty()) return;
  if (data_offset_ > size_) {
    c.fail("file is truncated: tensor data would start at offset " + std::to_string(data_offset_) +
           " but the file ends at " + std::to_string(size_));
  }
  const uint64_t data_size = size_ - data_offset_;
  for (auto& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      // Report file offsets, saturating rather than overflowing.
      uint64_t at = t.offset > UINT64_MAX - data_offset_ ? UINT64_MAX : data_offset_ + t.offset;
      c.fail("tensor " + quoted(t.name) + " data [offset " + std::to_string(at) + ", " +
             std::to_string(t.n_bytes) + " bytes] lies past the end of the file (size " +
             std::to_string(size_) + ")");
    }
    t.data = base_ + data_offset_ + t.offset;
  }
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& a = tensors_[order[i - 1]];
    const auto& b = tensors_[order[i]];
    if (a.offset + a.n_bytes > b.offset) {
      c.fail("tensors " + quoted(a.name) + " [data offset " + std::to_string(a.offset) + ", " +
             std::to_string(a.n_bytes) + " bytes] and " + quoted(b.name) + " [data offset " +
             std::to_string(b.offset) + "] overlap");
    }
  }
}

}  // namespace tars::engine
