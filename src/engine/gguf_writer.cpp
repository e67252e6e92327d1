// GGUF writing (v3, little-endian). The layout is computed up front (tensor
// offsets from sizes and alignment); the bytes are then produced once, in
// order, through an `emit(pointer, size)` callback, which write() sends to a
// file and to_bytes() to a vector. Nothing but the metadata is ever
// serialised into memory by write().

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/gguf_internal.h"

namespace tars::engine {

using namespace gguf_detail;

namespace {

// Little-endian serialisation through an emit callback; counts the bytes so
// padding can be computed.
template <class Emit>
struct Out {
  Emit& emit;
  uint64_t pos = 0;  // bytes emitted so far

  void raw(const void* p, uint64_t n) {
    if (n == 0) return;
    emit(static_cast<const uint8_t*>(p), n);
    pos += n;
  }
  template <class T>
  void put(T x) {
    raw(&x, sizeof x);
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    raw(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t kZeros[256] = {};
    uint64_t n = align_up(pos, alignment) - pos;
    while (n > 0) {
      uint64_t k = n < sizeof kZeros ? n : sizeof kZeros;
      raw(kZeros, k);
      n -= k;
    }
  }
  void put_unsigned(GgufValueType t, uint64_t x) {
    switch (t) {
      case GgufValueType::kU8: put<uint8_t>(static_cast<uint8_t>(x)); break;
      case GgufValueType::kU16: put<uint16_t>(static_cast<uint16_t>(x)); break;
      case GgufValueType::kU32: put<uint32_t>(static_cast<uint32_t>(x)); break;
      default: put<uint64_t>(x); break;
    }
  }
  void put_signed(GgufValueType t, int64_t x) {
    switch (t) {
      case GgufValueType::kI8: put<int8_t>(static_cast<int8_t>(x)); break;
      case GgufValueType::kI16: put<int16_t>(static_cast<int16_t>(x)); break;
      case GgufValueType::kI32: put<int32_t>(static_cast<int32_t>(x)); break;
      case GgufValueType::kBool: put<uint8_t>(static_cast<uint8_t>(x)); break;
      default: put<int64_t>(x); break;
    }
  }
  void put_float(GgufValueType t, double x) {
    if (t == GgufValueType::kF32) {
      put<float>(static_cast<float>(x));
    } else {
      put<double>(x);
    }
  }
  // The value without its type tag (the caller writes the tag where the
  // format has one: before a key's value, not before array elements).
  void put_value(const GgufValue& v) {
    switch (storage_of(v.type)) {
      case Storage::kUnsigned: put_unsigned(v.type, std::get<uint64_t>(v.value)); return;
      case Storage::kSigned: put_signed(v.type, std::get<int64_t>(v.value)); return;
      case Storage::kBool: put<uint8_t>(std::get<bool>(v.value) ? 1 : 0); return;
      case Storage::kFloat: put_float(v.type, std::get<double>(v.value)); return;
      case Storage::kString: put_string(std::get<std::string>(v.value)); return;
      case Storage::kArray: break;
      case Storage::kUnknown: return;  // refused by check_value
    }
    put<uint32_t>(static_cast<uint32_t>(v.elem_type));
    const GgufValueType et = v.elem_type;
    switch (storage_of(et)) {
      case Storage::kUnsigned: {
        const auto& a = std::get<std::vector<uint64_t>>(v.value);
        put<uint64_t>(a.size());
        for (uint64_t x : a) put_unsigned(et, x);
        return;
      }
      case Storage::kSigned:
      case Storage::kBool: {
        const auto& a = std::get<std::vector<int64_t>>(v.value);
        put<uint64_t>(a.size());
        for (int64_t x : a) put_signed(et, x);
        return;
      }
      case Storage::kFloat: {
        const auto& a = std::get<std::vector<double>>(v.value);
        put<uint64_t>(a.size());
        for (double x : a) put_float(et, x);
        return;
      }
      case Storage::kString: {
        const auto& a = std::get<std::vector<std::string>>(v.value);
        put<uint64_t>(a.size());
        for (const auto& s : a) put_string(s);
        return;
      }
      case Storage::kArray: {
        const auto& a = std::get<GgufArray>(v.value);
        put<uint64_t>(a.size());
        for (const auto& e : a) put_value(e);
        return;
      }
      case Storage::kUnknown: return;
    }
  }
};

GgufValue scalar(GgufValueType t, decltype(GgufValue::value) x) {
  GgufValue v;
  v.type = t;
  v.value = std::move(x);
  return v;
}

template <class Vec>
GgufValue array(GgufValueType et, Vec x) {
  GgufValue v;
  v.type = GgufValueType::kArray;
  v.elem_type = et;
  v.value = std::move(x);
  return v;
}

}  // namespace

// ---- metadata ---------------------------------------------------------------

void GgufWriter::put(const std::string& key, GgufValue v) {
  check_value(key, v, 0);
  if (key == "general.alignment") {
    uint64_t a = v.type == GgufValueType::kU32 ? std::get<uint64_t>(v.value) : 0;
    if (a == 0 || (a & (a - 1)) != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "GGUF metadata key 'general.alignment' must be a u32 power of two");
    }
    alignment_ = static_cast<uint32_t>(a);
  }
  for (auto& [k, old] : kv_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
  put(key, scalar(GgufValueType::kString, v));
}
void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  put(key, scalar(GgufValueType::kU32, uint64_t{v}));
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  put(key, scalar(GgufValueType::kI32, int64_t{v}));
}
void GgufWriter::set_u64(const std::string& key, uint64_t v) {
  put(key, scalar(GgufValueType::kU64, v));
}
void GgufWriter::set_f32(const std::string& key, float v) {
  put(key, scalar(GgufValueType::kF32, double{v}));
}
void GgufWriter::set_bool(const std::string& key, bool v) {
  put(key, scalar(GgufValueType::kBool, v));
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  put(key, array(GgufValueType::kString, v));
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  put(key, array(GgufValueType::kI32, std::vector<int64_t>(v.begin(), v.end())));
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  put(key, array(GgufValueType::kF32, std::vector<double>(v.begin(), v.end())));
}
void GgufWriter::set_value(const std::string& key, const GgufValue& v) { put(key, v); }

void GgufWriter::set_alignment(uint32_t alignment) { set_u32("general.alignment", alignment); }

// ---- tensors ----------------------------------------------------------------

void GgufWriter::check_new_tensor(const std::string& name, TensorType type,
                                  const std::vector<uint64_t>& shape, size_t n_bytes) const {
  auto fail = [&](const std::string& problem) {
    throw Error(ErrorCode::kInvalidArgument, "GGUF tensor '" + name + "': " + problem);
  };
  auto traits = tensor_type_traits(static_cast<uint32_t>(type));
  if (!traits) fail("unknown tensor type " + std::to_string(static_cast<uint32_t>(type)));
  if (shape.empty() || shape.size() > 4) {
    fail(std::to_string(shape.size()) + " dimensions (GGUF allows 1 to 4)");
  }
  uint64_t n = 1;
  for (uint64_t d : shape) {
    if (d == 0) fail("a dimension of size 0");
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / d) {
      fail("the element count overflows");
    }
    n *= d;
  }
  if (shape[0] % traits->block_elems != 0) {
    fail("row length " + std::to_string(shape[0]) + " is not a multiple of the " +
         std::string(traits->name) + " block size " + std::to_string(traits->block_elems));
  }
  auto need = tensor_type_row_bytes(type, n);
  if (!need) fail("the byte size overflows");
  if (*need != n_bytes) {
    fail("data has " + std::to_string(n_bytes) + " bytes, but " + std::string(traits->name) +
         " with " + std::to_string(n) + " elements needs " + std::to_string(*need));
  }
  for (const auto& t : tensors_) {
    if (t.name == name) fail("a tensor of that name was already added");
  }
}

void GgufWriter::add_tensor(const std::string& name, TensorType type,
                            const std::vector<uint64_t>& shape, std::span<const uint8_t> data) {
  check_new_tensor(name, type, shape, data.size());
  Tensor t{name, type, shape, {}, {}, {}, 0};
  t.owned.assign(data.begin(), data.end());
  tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor_view(const std::string& name, TensorType type,
                                 const std::vector<uint64_t>& shape,
                                 std::span<const uint8_t> data) {
  check_new_tensor(name, type, shape, data.size());
  tensors_.push_back(Tensor{name, type, shape, {}, data, {}, 0});
}

void GgufWriter::add_tensor_stream(const std::string& name, TensorType type,
                                   const std::vector<uint64_t>& shape, Producer produce) {
  auto traits = tensor_type_traits(static_cast<uint32_t>(type));
  uint64_t n = 1;
  for (uint64_t d : shape) {
    n = d != 0 && n <= std::numeric_limits<uint64_t>::max() / d ? n * d : 0;
  }
  auto need = traits && n > 0 ? tensor_type_row_bytes(type, n) : std::nullopt;
  // A bad shape or type fails in check_new_tensor with its usual message.
  check_new_tensor(name, type, shape, need ? static_cast<size_t>(*need) : 0);
  if (!produce) {
    throw Error(ErrorCode::kInvalidArgument, "GGUF tensor '" + name + "': no producer given");
  }
  Tensor t{name, type, shape, {}, {}, {}, 0};
  t.produce = std::move(produce);
  t.produce_bytes = static_cast<size_t>(need.value_or(0));
  tensors_.push_back(std::move(t));
}

// ---- output -----------------------------------------------------------------

template <class Emit>
void GgufWriter::emit_all(Emit&& emit, bool count_only) const {
  Out<std::remove_reference_t<Emit>> out{emit};
  const uint64_t align = alignment_;
  out.raw(kMagic, 4);
  out.template put<uint32_t>(kWriteVersion);
  out.template put<uint64_t>(tensors_.size());
  out.template put<uint64_t>(kv_.size());
  for (const auto& [key, v] : kv_) {
    out.put_string(key);
    out.template put<uint32_t>(static_cast<uint32_t>(v.type));
    out.put_value(v);
  }
  uint64_t offset = 0;  // within the data section
  for (const auto& t : tensors_) {
    offset = align_up(offset, align);
    out.put_string(t.name);
    out.template put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (uint64_t d : t.shape) out.template put<uint64_t>(d);
    out.template put<uint32_t>(static_cast<uint32_t>(t.type));
    out.template put<uint64_t>(offset);
    offset += t.size();
  }
  // The data section starts at the next multiple of the alignment; each
  // tensor is followed by padding to the next multiple (so each starts at
  // the offset given above). A file without tensors ends after its metadata,
  // as vocabulary-only files do.
  if (tensors_.empty()) return;
  out.pad_to(align);
  std::vector<uint8_t> produced;  // one streamed tensor at a time
  for (const auto& t : tensors_) {
    if (t.produce && count_only) {
      out.raw(nullptr, t.size());
    } else if (t.produce) {
      produced.assign(t.size(), 0);
      t.produce(std::span<uint8_t>(produced));
      out.raw(produced.data(), produced.size());
    } else {
      std::span<const uint8_t> b = t.bytes();
      out.raw(b.data(), b.size());
    }
    out.pad_to(align);
  }
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  uint64_t total = 0;
  emit_all([&](const uint8_t*, uint64_t n) { total += n; }, /*count_only=*/true);
  std::vector<uint8_t> bytes;
  bytes.reserve(total);
  emit_all([&](const uint8_t* p, uint64_t n) { bytes.insert(bytes.end(), p, p + n); });
  return bytes;
}

namespace {

// A file being written under a temporary name: removed unless committed.
class TempOutput {
 public:
  TempOutput(const std::string& path) : path_(path), tmp_(path + ".tmp") {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create " + tmp_);
    buf_.reserve(kBuffer);
  }
  ~TempOutput() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  // Small pieces are gathered into a buffer; big ones (tensor data) go to
  // the file directly, without a copy.
  void write(const uint8_t* p, uint64_t n) {
    if (buf_.size() + n > kBuffer) flush();
    if (n >= kBuffer) {
      write_all(p, n);
    } else {
      buf_.insert(buf_.end(), p, p + n);
    }
  }

  void commit() {
    flush();
    if (::fsync(fd_) != 0) fail("cannot sync " + tmp_);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("cannot close " + tmp_);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename " + tmp_ + " to " + path_);
    committed_ = true;
  }

 private:
  static constexpr size_t kBuffer = 1 << 20;

  [[noreturn]] void fail(const std::string& what) {
    throw Error(ErrorCode::kIo, what + ": " + std::strerror(errno));
  }
  void flush() {
    write_all(buf_.data(), buf_.size());
    buf_.clear();
  }
  void write_all(const uint8_t* p, uint64_t n) {
    while (n > 0) {
      size_t chunk = n < (size_t{1} << 30) ? static_cast<size_t>(n) : (size_t{1} << 30);
      ssize_t w = ::write(fd_, p, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w == 0) errno = EIO;
      if (w <= 0) fail("cannot write " + tmp_);
      p += w;
      n -= static_cast<uint64_t>(w);
    }
  }

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
  std::vector<uint8_t> buf_;
};

}  // namespace

void GgufWriter::write(const std::string& path) const {
  TempOutput out(path);
  emit_all([&](const uint8_t* p, uint64_t n) { out.write(p, n); });
  out.commit();
}

}  // namespace tars::engine
