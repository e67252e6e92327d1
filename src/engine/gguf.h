#pragma once
// GGUF v2/v3 reading and writing.
//
// File layout (little-endian):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | u64 dims[n_dims] | u32 type | u64 offset }
//   padding to `general.alignment` (default 32)
//   tensor data; each tensor's offset is relative to the start of this section
//   and a multiple of the alignment. (A file without tensors may end right
//   after its metadata, as vocabulary-only files do.)
// A string is u64 length + bytes (no terminator). dims are innermost first
// (dims[0] is the row length).
//
// GgufFile memory-maps the file and validates everything before it hands out
// a pointer: every offset and size lies inside the file, sizes agree with
// type and shape, no arithmetic overflows, types are known, no duplicate keys
// or tensor names, no overlapping tensors, arrays nested at most 8 deep. Any
// failure throws tars::Error(kCorruptData, "<path>: <problem>"), one line.
// The one exception: a tensor of a type GGUF defines but tars has no layout
// for (IQ2_XXS, TQ1_0, ...) throws kUnsupported, since the file is valid.
// Versions 2 and 3 are read (same layout); v1 and big-endian files are
// refused with a message saying so.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/tensor_type.h"

namespace tars::engine {

// The metadata value types of GGUF (gguf_type).
enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6,
  kBool = 7, kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// "u8", "string", "array", ...; "unknown" for a number outside the enum.
const char* gguf_value_type_name(GgufValueType type);

// One metadata value. Arrays hold elements of one type; an array of strings
// is kept as std::vector<std::string>, an array of numbers as the matching
// std::vector. Nested arrays are legal in the format and kept as
// std::vector<GgufValue>.
//
// Which alternative holds the value, by `type` (and `elem_type` for arrays):
//   u8 u16 u32 u64 -> uint64_t          array of them -> std::vector<uint64_t>
//   i8 i16 i32 i64 -> int64_t           array of them -> std::vector<int64_t>
//   bool           -> bool              array of bool -> std::vector<int64_t> (0/1)
//   f32 f64        -> double            array of them -> std::vector<double>
//   string         -> std::string       array of them -> std::vector<std::string>
//   array of arrays -> GgufArray, each element of type kArray with its own elem_type.
// GgufWriter::set_value refuses a value whose alternative does not match.
struct GgufValue;
using GgufArray = std::vector<GgufValue>;
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem_type = GgufValueType::kU8;  // for kArray
  std::variant<uint64_t, int64_t, double, bool, std::string,
               std::vector<std::string>, std::vector<int64_t>,
               std::vector<uint64_t>, std::vector<double>, GgufArray>
      value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // innermost first; shape[0] is the row length
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;          // from the start of the data section
  uint64_t n_elems = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // n_bytes at this address: inside the mapping
                                  // (open) or the caller's buffer (from_memory)
};

class GgufFile {
 public:
  // Maps and validates `path`. Throws tars::Error (kIo when it cannot be
  // opened, kCorruptData when it is not a valid GGUF file).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses a GGUF image held in memory (fuzzing, tests). `name` appears in
  // error messages. The bytes must outlive the object.
  static std::unique_ptr<GgufFile> from_memory(const uint8_t* data, size_t size,
                                               const std::string& name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }  // start of tensor data

  // Metadata, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed accessors. The get_* forms throw kCorruptData when the key is
  // missing or of an incompatible type (any integer type converts to another
  // integer type when the value fits; f32/f64 convert to each other).
  std::string get_string(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  double get_f64(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::optional<std::string> opt_string(std::string_view key) const;
  std::optional<uint64_t> opt_u64(std::string_view key) const;
  std::optional<double> opt_f64(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  // (The opt_* forms return nullopt only when the key is absent; a key that
  // is present with an incompatible type throws like get_*: a wrong type is
  // a broken file, not a missing setting.)
  // Arrays; nullptr when the key is absent, throws when it is not such an array.
  const std::vector<std::string>* get_string_array(std::string_view key) const;
  const std::vector<int64_t>* get_int_array(std::string_view key) const;    // signed ints, bools
  const std::vector<uint64_t>* get_uint_array(std::string_view key) const;  // unsigned ints
  const std::vector<double>* get_float_array(std::string_view key) const;   // f32, f64

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  void parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file. Used by `tars quantize` and by tests that make
// models. Keys keep insertion order; setting a key again replaces its value
// (in its first position). Bad arguments (a value that does not match its
// type, a tensor whose bytes do not match its shape, a duplicate tensor name)
// throw tars::Error(kInvalidArgument).
//
// Memory: add_tensor copies the bytes, so the writer holds the model once;
// add_tensor_view keeps only a pointer. write() streams header, metadata and
// then each tensor straight to the file, so the output is never built in
// memory (a 2 GB model written from views costs no extra 2 GB).
class GgufWriter {
 public:
  void set_string(const std::string& key, const std::string& v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  // Any value, as read from a GgufFile (copying metadata between files).
  void set_value(const std::string& key, const GgufValue& v);
  void set_alignment(uint32_t alignment);  // also sets general.alignment

  // Adds a tensor; `data` must hold exactly the bytes its type and shape need.
  // The bytes are copied.
  void add_tensor(const std::string& name, TensorType type,
                  const std::vector<uint64_t>& shape, std::span<const uint8_t> data);
  // The same without the copy: `data` must stay valid until the last write()
  // or to_bytes() (e.g. it points into a GgufFile mapping or a buffer the
  // caller owns).
  void add_tensor_view(const std::string& name, TensorType type,
                       const std::vector<uint64_t>& shape, std::span<const uint8_t> data);

  // Fills `out` (exactly the tensor's bytes) with a tensor's data.
  using Producer = std::function<void(std::span<uint8_t> out)>;
  // A tensor whose bytes are made only when write() or to_bytes() reaches it
  // (tars quantize converts each tensor there, so the converted model never
  // sits in memory whole: only one tensor at a time). `produce` is called once
  // per write()/to_bytes(), in tensor order, from the calling thread; it must
  // fill every byte, and whatever it throws aborts the write (no file is left).
  void add_tensor_stream(const std::string& name, TensorType type,
                         const std::vector<uint64_t>& shape, Producer produce);

  // Writes the file (to a temporary name, then renamed into place). Throws
  // tars::Error(kIo) on failure.
  void write(const std::string& path) const;
  // The same bytes, in memory.
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<uint64_t> shape;
    std::vector<uint8_t> owned;      // the copy add_tensor makes (empty for a view)
    std::span<const uint8_t> view;   // the caller's bytes (add_tensor_view)
    Producer produce{};              // add_tensor_stream: makes the bytes at write time
    size_t produce_bytes = 0;        // how many bytes `produce` fills
    std::span<const uint8_t> bytes() const { return owned.empty() ? view : owned; }
    size_t size() const { return produce ? produce_bytes : bytes().size(); }
  };
  // Every setter ends here: checks the value, keeps general.alignment and
  // alignment_ in step, replaces or appends.
  void put(const std::string& key, GgufValue v);
  void check_new_tensor(const std::string& name, TensorType type,
                        const std::vector<uint64_t>& shape, size_t n_bytes) const;
  // count_only: emit(nullptr, n) for streamed tensors instead of producing
  // them (to_bytes() sizes its buffer first).
  template <class Emit> void emit_all(Emit&& emit, bool count_only = false) const;

  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace tars::engine
