// Writes the seed corpus for gguf_fuzz: small valid GGUF files that between
// them use every metadata value type, nested arrays, every tensor type tars
// knows, several alignments and both readable versions, plus (when given the
// stories260K model) a copy of it and a small file with its real metadata
// layout.
//
//   make_gguf_seeds OUT_DIR [stories260K.gguf]

#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/gguf.h"

using namespace tars::engine;

namespace {

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

GgufValue array_of(GgufValueType et, decltype(GgufValue::value) v) {
  GgufValue a;
  a.type = GgufValueType::kArray;
  a.elem_type = et;
  a.value = std::move(v);
  return a;
}

GgufValue scalar_of(GgufValueType t, decltype(GgufValue::value) v) {
  GgufValue a;
  a.type = t;
  a.value = std::move(v);
  return a;
}

void save(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + dir + "/" + name);
}

void every_value_type(GgufWriter& w) {
  using T = GgufValueType;
  w.set_value("t.u8", scalar_of(T::kU8, uint64_t{200}));
  w.set_value("t.i8", scalar_of(T::kI8, int64_t{-100}));
  w.set_value("t.u16", scalar_of(T::kU16, uint64_t{60000}));
  w.set_value("t.i16", scalar_of(T::kI16, int64_t{-30000}));
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_f32("t.f32", 1.5f);
  w.set_bool("t.bool", true);
  w.set_string("t.string", "hello");
  w.set_u64("t.u64", 1ull << 50);
  w.set_value("t.i64", scalar_of(T::kI64, int64_t{-(1ll << 50)}));
  w.set_value("t.f64", scalar_of(T::kF64, 2.25));
  w.set_value("a.u8", array_of(T::kU8, std::vector<uint64_t>{1, 2, 3}));
  w.set_value("a.bool", array_of(T::kBool, std::vector<int64_t>{0, 1}));
  w.set_value("a.i16", array_of(T::kI16, std::vector<int64_t>{-1, 1}));
  w.set_value("a.u64", array_of(T::kU64, std::vector<uint64_t>{7}));
  w.set_value("a.f64", array_of(T::kF64, std::vector<double>{0.5}));
  w.set_i32_array("a.i32", {1, -2, 3});
  w.set_f32_array("a.f32", {0.25f, -4.0f});
  w.set_string_array("a.string", {"a", "", "bc"});
  w.set_value("a.nested",
              array_of(T::kArray, GgufArray{array_of(T::kU32, std::vector<uint64_t>{9}),
                                            array_of(T::kString, std::vector<std::string>{"x"})}));
}

void seeds(const std::string& dir) {
  {  // header only
    GgufWriter w;
    save(dir, "empty.gguf", w.to_bytes());
  }
  {  // every metadata value type, no tensors
    GgufWriter w;
    every_value_type(w);
    save(dir, "all_types.gguf", w.to_bytes());
  }
  {  // one tiny tensor of every type tars knows, at several alignments
    const struct {
      TensorType type;
      uint64_t row;
    } kinds[] = {{TensorType::kF32, 3},  {TensorType::kF16, 4},   {TensorType::kBF16, 2},
                 {TensorType::kQ4_0, 32}, {TensorType::kQ4_1, 32}, {TensorType::kQ5_0, 32},
                 {TensorType::kQ5_1, 32}, {TensorType::kQ8_0, 32}, {TensorType::kQ8_1, 32},
                 {TensorType::kQ2_K, 256}, {TensorType::kQ3_K, 256}, {TensorType::kQ4_K, 256},
                 {TensorType::kQ5_K, 256}, {TensorType::kQ6_K, 256}, {TensorType::kQ8_K, 256},
                 {TensorType::kI8, 5},    {TensorType::kI16, 3},   {TensorType::kI32, 2},
                 {TensorType::kI64, 1},   {TensorType::kF64, 1}};
    for (uint32_t alignment : {1u, 32u, 64u}) {
      GgufWriter w;
      w.set_string("general.architecture", "llama");
      if (alignment != 32) w.set_alignment(alignment);
      uint32_t i = 0;
      for (const auto& k : kinds) {
        auto bytes = tensor_type_row_bytes(k.type, k.row);
        w.add_tensor(std::string("t.") + std::string(tensor_type_name(k.type)), k.type, {k.row},
                     pattern(*bytes, ++i));
      }
      save(dir, "tensors_align" + std::to_string(alignment) + ".gguf", w.to_bytes());
    }
  }
  {  // shapes of 1 to 4 dimensions, and the same file as GGUF version 2
    GgufWriter w;
    w.set_u32("llama.block_count", 1);
    w.add_tensor("d1", TensorType::kF32, {2}, pattern(8, 1));
    w.add_tensor("d2", TensorType::kF16, {2, 3}, pattern(12, 2));
    w.add_tensor("d3", TensorType::kQ8_0, {32, 1, 2}, pattern(68, 3));
    w.add_tensor("d4", TensorType::kF32, {1, 2, 1, 2}, pattern(16, 4));
    auto bytes = w.to_bytes();
    save(dir, "shapes_v3.gguf", bytes);
    bytes[4] = 2;  // the version field; v2 and v3 share the layout
    save(dir, "shapes_v2.gguf", bytes);
  }
  {  // a vocabulary-only file, like the tokenizer fixtures
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab", "\xc4\xa0the"});
    w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 1});
    w.set_string_array("tokenizer.ggml.merges", {"a b"});
    w.set_u32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu);
    save(dir, "vocab.gguf", w.to_bytes());
  }
}

// A small file with the stories260K metadata keys and tensor names: arrays
// cut to 8 elements, tensors shrunk to 4 F32 values.
void stories_seeds(const std::string& dir, const std::string& stories) {
  std::filesystem::copy_file(stories, dir + "/stories260K.gguf",
                             std::filesystem::copy_options::overwrite_existing);
  auto f = GgufFile::open(stories);
  GgufWriter w;
  for (auto [key, v] : f->metadata()) {
    std::visit(
        [](auto& x) {
          using V = std::decay_t<decltype(x)>;
          if constexpr (!std::is_same_v<V, std::string> && requires { x.resize(0); }) {
            if (x.size() > 8) x.resize(8);
          }
        },
        v.value);
    w.set_value(key, v);
  }
  uint32_t i = 0;
  for (const auto& t : f->tensors()) {
    w.add_tensor(t.name, TensorType::kF32, {4}, pattern(16, ++i));
  }
  save(dir, "stories_small.gguf", w.to_bytes());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: make_gguf_seeds OUT_DIR [stories260K.gguf]\n");
    return 2;
  }
  try {
    std::filesystem::create_directories(argv[1]);
    seeds(argv[1]);
    if (argc == 3) stories_seeds(argv[1], argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_gguf_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
