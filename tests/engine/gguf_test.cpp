// GGUF reader and writer: byte layout against the specification, writer ->
// reader round trips, typed accessors, and a table of corrupt files that must
// each fail with kCorruptData and a message naming the problem.
//
// Corrupt files are built byte by byte with `Bytes` below (not with
// GgufWriter), so a bug shared by the writer and the reader cannot hide.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>

#include "common/error.h"
#include "engine/gguf.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

using test::TempDir;

// ---- helpers ----------------------------------------------------------------

// Little-endian byte builder for hand-made GGUF images.
struct Bytes {
  std::vector<uint8_t> b;
  Bytes& raw(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  template <class T>
  Bytes& put(T x) {
    return raw(&x, sizeof x);
  }
  Bytes& u8(uint8_t x) { return put(x); }
  Bytes& u32(uint32_t x) { return put(x); }
  Bytes& u64(uint64_t x) { return put(x); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    raw("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Bytes& kv_u32(const std::string& key, uint32_t v) {
    str(key);
    u32(4);
    return u32(v);
  }
  Bytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
  Bytes& pad(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& b) {
  return GgufFile::from_memory(b.data(), b.size(), "test.gguf");
}

// Parsing `b` must fail with `code`, a one-line message that starts with the
// file name and contains `needle`. Returns the message.
std::string expect_error(const std::vector<uint8_t>& b, const std::string& needle,
                         ErrorCode code = ErrorCode::kCorruptData) {
  try {
    parse(b);
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    EXPECT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nwanted: " << needle;
    return msg;
  }
  ADD_FAILURE() << "parsed without error; wanted an error containing: " << needle;
  return {};
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

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

// Deep equality; floats compare by value (every test value is exact in f32).
bool same(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (a.type == GgufValueType::kArray && a.elem_type != b.elem_type) return false;
  if (auto* x = std::get_if<GgufArray>(&a.value)) {
    const auto& y = std::get<GgufArray>(b.value);
    if (x->size() != y.size()) return false;
    for (size_t i = 0; i < x->size(); ++i) {
      if (!same((*x)[i], y[i])) return false;
    }
    return true;
  }
  return std::visit(
      [&](const auto& x) {
        using V = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<V, GgufArray>) {
          return false;  // handled above
        } else {
          return x == std::get<V>(b.value);
        }
      },
      a.value);
}

// ---- the writer's bytes, checked against the format by hand -----------------

TEST(GgufWriter, BytesMatchTheSpecification) {
  GgufWriter w;
  w.set_u32("n", 7);
  w.set_string("s", "hi");
  const float vals[3] = {1.0f, -2.0f, 0.5f};
  w.add_tensor("t", TensorType::kF32, {3},
               {reinterpret_cast<const uint8_t*>(vals), sizeof vals});
  w.add_tensor("u", TensorType::kI8, {2}, std::vector<uint8_t>{9, 8});

  Bytes e;
  e.header(3, 2, 2);
  e.kv_u32("n", 7);
  e.str("s").u32(8).str("hi");
  e.tensor("t", {3}, 0, 0);
  e.tensor("u", {2}, 24, 32);  // 12 bytes of t, padded to 32
  e.pad(32);
  e.raw(vals, sizeof vals).pad(32);
  e.u8(9).u8(8).pad(32);
  EXPECT_EQ(w.to_bytes(), e.b);
}

TEST(GgufWriter, WriteStreamsTheSameBytesToAFileViaATemporaryName) {
  TempDir dir;
  GgufWriter w;
  w.set_alignment(64);
  w.set_string("general.architecture", "llama");
  auto data = random_bytes(34 * 3, 1);
  w.add_tensor("q", TensorType::kQ8_0, {32, 3}, data);
  std::string path = dir.file("m.gguf");
  w.write(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::string on_disk = test::read_file(path);
  auto mem = w.to_bytes();
  ASSERT_EQ(on_disk.size(), mem.size());
  EXPECT_EQ(std::memcmp(on_disk.data(), mem.data(), mem.size()), 0);

  auto f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->file_size(), mem.size());
  const auto* t = f->find_tensor("q");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::memcmp(t->data, data.data(), data.size()), 0);
}

TEST(GgufWriter, WriteToAMissingDirectoryIsAnIoErrorAndLeavesNothing) {
  TempDir dir;
  GgufWriter w;
  w.set_u32("a", 1);
  std::string path = dir.file("no/such/dir/m.gguf");
  try {
    w.write(path);
    FAIL() << "write succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("m.gguf.tmp"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(GgufWriter, StreamedTensorsAreProducedAtWriteTime) {
  auto data = random_bytes(18 * 2, 7);
  int calls = 0;
  GgufWriter w;
  w.add_tensor("a", TensorType::kF32, {1}, std::vector<uint8_t>{1, 2, 3, 4});
  w.add_tensor_stream("s", TensorType::kQ4_0, {32, 2}, [&](std::span<uint8_t> out) {
    ++calls;
    ASSERT_EQ(out.size(), data.size());
    std::memcpy(out.data(), data.data(), data.size());
  });
  auto bytes = w.to_bytes();
  EXPECT_EQ(calls, 1);
  auto f = parse(bytes);
  const auto* t = f->find_tensor("s");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->n_bytes, data.size());
  EXPECT_EQ(std::memcmp(t->data, data.data(), data.size()), 0);

  // A producer that throws aborts write() and leaves no file behind.
  TempDir dir;
  GgufWriter bad;
  bad.add_tensor_stream("s", TensorType::kF32, {4}, [](std::span<uint8_t>) {
    throw Error(ErrorCode::kInternal, "producer failed");
  });
  EXPECT_THROW(bad.write(dir.file("bad.gguf")), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

// ---- round trips ------------------------------------------------------------

TEST(GgufRoundTrip, EveryMetadataValueType) {
  using T = GgufValueType;
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"u8", scalar(T::kU8, uint64_t{255})},
      {"i8", scalar(T::kI8, int64_t{-128})},
      {"u16", scalar(T::kU16, uint64_t{65535})},
      {"i16", scalar(T::kI16, int64_t{-32768})},
      {"u32", scalar(T::kU32, uint64_t{4294967295u})},
      {"i32", scalar(T::kI32, int64_t{-2147483647 - 1})},
      {"f32", scalar(T::kF32, double{-1.25f})},
      {"bool.t", scalar(T::kBool, true)},
      {"bool.f", scalar(T::kBool, false)},
      {"string", scalar(T::kString, std::string("h\xc3\xa9llo\0w", 8))},
      {"string.empty", scalar(T::kString, std::string())},
      {"u64", scalar(T::kU64, std::numeric_limits<uint64_t>::max())},
      {"i64", scalar(T::kI64, std::numeric_limits<int64_t>::min())},
      {"f64", scalar(T::kF64, 3.141592653589793)},
      {"a.u8", array(T::kU8, std::vector<uint64_t>{0, 1, 255})},
      {"a.i8", array(T::kI8, std::vector<int64_t>{-128, 0, 127})},
      {"a.u16", array(T::kU16, std::vector<uint64_t>{65535})},
      {"a.i16", array(T::kI16, std::vector<int64_t>{-32768, 32767})},
      {"a.u32", array(T::kU32, std::vector<uint64_t>{0xFFFFFFFFu, 0})},
      {"a.i32", array(T::kI32, std::vector<int64_t>{-1, 2, -3})},
      {"a.f32", array(T::kF32, std::vector<double>{0.5, -0.0, 1e30f})},
      {"a.bool", array(T::kBool, std::vector<int64_t>{1, 0, 1})},
      {"a.string", array(T::kString, std::vector<std::string>{"a", "", "\xe2\x96\x81the"})},
      {"a.u64", array(T::kU64, std::vector<uint64_t>{std::numeric_limits<uint64_t>::max()})},
      {"a.i64", array(T::kI64, std::vector<int64_t>{std::numeric_limits<int64_t>::min()})},
      {"a.f64", array(T::kF64, std::vector<double>{1e-300, -2.5})},
      {"a.empty", array(T::kI32, std::vector<int64_t>{})},
      {"a.nested",
       array(T::kArray, GgufArray{array(T::kI32, std::vector<int64_t>{1, 2}),
                                  array(T::kString, std::vector<std::string>{"x", "yz"}),
                                  array(T::kArray, GgufArray{array(T::kF32, std::vector<double>{4.0})}),
                                  array(T::kU8, std::vector<uint64_t>{})})},
  };
  GgufWriter w;
  for (auto& [k, v] : kv) w.set_value(k, v);
  w.set_i32_array("typed.i32", {5, -6});
  w.set_f32_array("typed.f32", {0.25f});
  w.set_string_array("typed.str", {"p", "q"});
  w.set_bool("typed.bool", true);
  w.set_f32("typed.f32s", 2.5f);
  w.set_i32("typed.i32s", -9);
  w.set_u64("typed.u64s", 1ull << 40);

  auto bytes = w.to_bytes();
  auto f = parse(bytes);
  EXPECT_EQ(f->version(), 3u);
  const auto& md = f->metadata();
  ASSERT_EQ(md.size(), kv.size() + 7);
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(md[i].first, kv[i].first);  // insertion order kept
    EXPECT_TRUE(same(md[i].second, kv[i].second)) << kv[i].first;
  }
  EXPECT_EQ(*f->get_int_array("typed.i32"), (std::vector<int64_t>{5, -6}));
  EXPECT_EQ(f->find("typed.i32")->elem_type, GgufValueType::kI32);
  EXPECT_EQ(*f->get_float_array("typed.f32"), (std::vector<double>{0.25}));
  EXPECT_EQ(*f->get_string_array("typed.str"), (std::vector<std::string>{"p", "q"}));
  EXPECT_TRUE(f->get_bool("typed.bool"));
  EXPECT_EQ(f->get_f64("typed.f32s"), 2.5);
  EXPECT_EQ(f->get_i64("typed.i32s"), -9);
  EXPECT_EQ(f->get_u64("typed.u64s"), 1ull << 40);
  EXPECT_TRUE(f->tensors().empty());

  // Copying every value into a second writer gives the same bytes again.
  GgufWriter w2;
  for (const auto& [k, v] : f->metadata()) w2.set_value(k, v);
  EXPECT_EQ(w2.to_bytes(), bytes);
}

TEST(GgufRoundTrip, TensorsOfSeveralTypesAndAlignments) {
  struct Spec {
    const char* name;
    TensorType type;
    std::vector<uint64_t> shape;
    size_t bytes;
  };
  const std::vector<Spec> specs = {
      {"f32", TensorType::kF32, {3, 2}, 24},
      {"f16", TensorType::kF16, {5}, 10},
      {"bf16", TensorType::kBF16, {7, 1, 1}, 14},
      {"q4_0", TensorType::kQ4_0, {64, 2}, 4 * 18},
      {"q8_0", TensorType::kQ8_0, {32}, 34},
      {"q4_k", TensorType::kQ4_K, {256}, 144},
      {"q5_k", TensorType::kQ5_K, {256, 1, 2}, 2 * 176},
      {"q6_k", TensorType::kQ6_K, {512, 2, 1, 1}, 4 * 210},
      {"i8", TensorType::kI8, {3}, 3},
  };
  for (uint32_t alignment : {1u, 8u, 32u, 64u, 4096u}) {
    SCOPED_TRACE("alignment " + std::to_string(alignment));
    GgufWriter w;
    w.set_string("general.name", "t");
    if (alignment != 32) w.set_alignment(alignment);
    std::vector<std::vector<uint8_t>> data;
    for (size_t i = 0; i < specs.size(); ++i) {
      data.push_back(random_bytes(specs[i].bytes, static_cast<uint32_t>(i + alignment)));
      if (i % 2) {
        w.add_tensor(specs[i].name, specs[i].type, specs[i].shape, data.back());
      } else {
        w.add_tensor_view(specs[i].name, specs[i].type, specs[i].shape, data.back());
      }
    }
    auto bytes = w.to_bytes();
    auto f = parse(bytes);
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->has("general.alignment"), alignment != 32);
    EXPECT_EQ(f->data_offset() % alignment, 0u);
    ASSERT_EQ(f->tensors().size(), specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      const GgufTensorInfo& t = f->tensors()[i];
      EXPECT_EQ(t.name, specs[i].name);
      EXPECT_EQ(t.type, specs[i].type);
      EXPECT_EQ(t.shape, specs[i].shape);
      EXPECT_EQ(t.n_bytes, specs[i].bytes);
      uint64_t n = 1;
      for (uint64_t d : specs[i].shape) n *= d;
      EXPECT_EQ(t.n_elems, n);
      EXPECT_EQ(t.offset % alignment, 0u);
      EXPECT_EQ(t.data, bytes.data() + f->data_offset() + t.offset);
      EXPECT_EQ(std::memcmp(t.data, data[i].data(), data[i].size()), 0) << t.name;
      EXPECT_EQ(f->find_tensor(specs[i].name), &t);
    }
  }
}

TEST(GgufWriter, SettingAKeyAgainReplacesItInPlace) {
  GgufWriter w;
  w.set_u32("a", 1);
  w.set_string("b", "x");
  w.set_u32("a", 2);
  auto f = parse(w.to_bytes());
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].first, "a");
  EXPECT_EQ(f->get_u64("a"), 2u);
}

TEST(GgufWriter, RefusesValuesAndTensorsItCannotWrite) {
  auto expect_invalid = [](auto&& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error; wanted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  GgufWriter w;
  using T = GgufValueType;
  expect_invalid([&] { w.set_value("k", scalar(T::kU8, uint64_t{300})); }, "does not fit in u8");
  expect_invalid([&] { w.set_value("k", scalar(T::kI32, uint64_t{3})); }, "int64_t");
  expect_invalid([&] { w.set_value("k", array(T::kBool, std::vector<int64_t>{2})); }, "not 0 or 1");
  expect_invalid([&] { w.set_value("k", array(T::kArray, GgufArray{scalar(T::kU8, uint64_t{1})})); },
                 "not an array");
  expect_invalid([&] { w.set_alignment(48); }, "power of two");
  expect_invalid([&] { w.set_u64("general.alignment", 64); }, "power of two");
  std::vector<uint8_t> d(18);
  expect_invalid([&] { w.add_tensor("t", TensorType::kQ4_0, {32}, std::vector<uint8_t>(17)); },
                 "needs 18");
  expect_invalid([&] { w.add_tensor("t", TensorType::kQ4_0, {16}, d); }, "block size 32");
  expect_invalid([&] { w.add_tensor("t", TensorType::kF32, {}, d); }, "0 dimensions");
  expect_invalid([&] { w.add_tensor("t", TensorType::kF32, {1, 0}, d); }, "size 0");
  expect_invalid([&] { w.add_tensor("t", static_cast<TensorType>(16), {1}, d); }, "unknown");
  w.add_tensor("t", TensorType::kQ4_0, {32}, d);
  expect_invalid([&] { w.add_tensor("t", TensorType::kQ4_0, {32}, d); }, "already");
}

// ---- typed accessors ----------------------------------------------------------

TEST(GgufFile, TypedAccessorsConvertOnlyWhatFits) {
  GgufWriter w;
  using T = GgufValueType;
  w.set_value("u8", scalar(T::kU8, uint64_t{200}));
  w.set_i32("neg", -5);
  w.set_value("big", scalar(T::kU64, uint64_t{1} << 63));
  w.set_f32("f", 0.5f);
  w.set_value("d", scalar(T::kF64, 0.1));
  w.set_string("s", "str");
  w.set_bool("b", true);
  w.set_value("bools", array(T::kBool, std::vector<int64_t>{0, 1}));
  w.set_value("u8s", array(T::kU8, std::vector<uint64_t>{7}));
  w.set_value("f64s", array(T::kF64, std::vector<double>{0.1}));
  auto f = parse(w.to_bytes());

  EXPECT_EQ(f->get_u64("u8"), 200u);
  EXPECT_EQ(f->get_i64("u8"), 200);
  EXPECT_EQ(f->get_i64("neg"), -5);
  EXPECT_EQ(f->get_u64("big"), uint64_t{1} << 63);
  EXPECT_EQ(f->get_f64("f"), 0.5);
  EXPECT_EQ(f->get_f64("d"), 0.1);
  EXPECT_EQ(f->get_string("s"), "str");
  EXPECT_TRUE(f->get_bool("b"));
  EXPECT_EQ(*f->get_int_array("bools"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(*f->get_uint_array("u8s"), (std::vector<uint64_t>{7}));
  EXPECT_EQ(*f->get_float_array("f64s"), (std::vector<double>{0.1}));
  EXPECT_EQ(f->opt_u64("missing"), std::nullopt);
  EXPECT_EQ(f->opt_string("missing"), std::nullopt);
  EXPECT_EQ(f->opt_f64("missing"), std::nullopt);
  EXPECT_EQ(f->opt_bool("missing"), std::nullopt);
  EXPECT_EQ(f->get_string_array("missing"), nullptr);
  EXPECT_EQ(f->get_int_array("missing"), nullptr);
  EXPECT_FALSE(f->has("missing"));
  EXPECT_TRUE(f->has("s"));

  auto expect_corrupt = [](auto&& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error; wanted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptData) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("test.gguf: ", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_corrupt([&] { f->get_u64("neg"); }, "'neg' = -5 is negative");
  expect_corrupt([&] { f->opt_u64("neg"); }, "negative");
  expect_corrupt([&] { f->get_i64("big"); }, "does not fit");
  expect_corrupt([&] { f->get_u64("missing"); }, "'missing' is missing");
  expect_corrupt([&] { f->get_string("u8"); }, "'u8' has type u8, expected string");
  expect_corrupt([&] { f->opt_string("u8"); }, "expected string");
  expect_corrupt([&] { f->get_u64("f"); }, "has type f32");
  expect_corrupt([&] { f->get_f64("u8"); }, "expected f32 or f64");
  expect_corrupt([&] { f->get_bool("u8"); }, "expected bool");
  expect_corrupt([&] { f->get_u64("b"); }, "has type bool");
  expect_corrupt([&] { f->get_int_array("u8s"); }, "array of u8");
  expect_corrupt([&] { f->get_uint_array("bools"); }, "array of bool");
  expect_corrupt([&] { f->get_float_array("s"); }, "has type string");
  expect_corrupt([&] { f->get_string_array("f64s"); }, "array of f64");
}

// ---- corrupt files -----------------------------------------------------------

// A small valid file whose last tensor ends exactly at the end of the file,
// so that every shorter prefix is invalid.
std::vector<uint8_t> small_valid_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "a", "bc"});
  w.set_f32_array("tokenizer.ggml.scores", {0.f, -1.f, -2.f});
  w.set_value("nested", array(GgufValueType::kArray,
                              GgufArray{array(GgufValueType::kI16, std::vector<int64_t>{1, 2})}));
  w.set_bool("flag", true);
  w.add_tensor("q", TensorType::kQ8_0, {32, 2}, random_bytes(68, 3));
  w.add_tensor("e", TensorType::kF32, {4, 2}, random_bytes(32, 4));
  return w.to_bytes();
}

TEST(GgufCorrupt, EveryTruncationGivesAClearError) {
  auto full = small_valid_file();
  auto f = parse(full);
  const auto& last = f->tensors().back();
  ASSERT_EQ(f->data_offset() + last.offset + last.n_bytes, full.size());

  const std::vector<std::string> problems = {"empty", "too short", "truncated", "past the end"};
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      parse(prefix);
      ADD_FAILURE() << "a " << n << "-byte prefix parsed";
    } catch (const Error& e) {
      std::string msg = e.what();
      ASSERT_EQ(e.code(), ErrorCode::kCorruptData) << n << ": " << msg;
      ASSERT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
      ASSERT_EQ(msg.find('\n'), std::string::npos) << msg;
      bool named = false;
      for (const auto& p : problems) named = named || msg.find(p) != std::string::npos;
      ASSERT_TRUE(named) << n << ": " << msg;
    }
  }
}

TEST(GgufCorrupt, RandomByteDamageNeverCrashes) {
  // Not a substitute for the fuzzer (fuzz/targets), but runs in every build.
  auto full = small_valid_file();
  std::mt19937 rng(42);
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    auto b = full;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    try {
      auto f = parse(b);
      ++parsed;
      for (const auto& t : f->tensors()) {
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.data + t.n_bytes, b.data() + b.size());
      }
    } catch (const Error& e) {
      ASSERT_TRUE(e.code() == ErrorCode::kCorruptData || e.code() == ErrorCode::kUnsupported)
          << e.what();
    }
  }
  EXPECT_GT(parsed, 0);  // damage to tensor data bytes leaves a valid file
}

TEST(GgufCorrupt, HeaderProblems) {
  auto good = small_valid_file();
  auto b = good;
  b[0] = 'X';
  expect_error(b, "not a GGUF file (first bytes 58 47 55 46");
  expect_error({'t', 'j', 'g', 'g', 1, 0, 0, 0}, "old GGML/GGJT");
  expect_error(Bytes().header(1, 0, 0).b, "GGUF version 1 is not supported");
  expect_error(Bytes().header(4, 0, 0).b, "unsupported GGUF version 4");
  expect_error(Bytes().header(0x03000000, 0, 0).b, "big-endian GGUF file");
  expect_error({}, "file is empty");
  expect_error({'G', 'G'}, "too short (2 bytes)");
  // Both versions 2 and 3 are read.
  EXPECT_EQ(parse(Bytes().header(2, 0, 0).b)->version(), 2u);
  EXPECT_EQ(parse(Bytes().header(3, 0, 0).b)->version(), 3u);
}

TEST(GgufCorrupt, AbsurdCounts) {
  expect_error(Bytes().header(3, 0, uint64_t{1} << 60).b, "metadata count 1152921504606846976 cannot fit");
  expect_error(Bytes().header(3, ~uint64_t{0}, 0).b, "tensor count 18446744073709551615");
  // The counts each fit alone but not together.
  auto b = Bytes().header(3, 1, 1).kv_u32("k", 1).b;  // 17 bytes follow; 13 + 32 needed
  expect_error(b, "cannot fit");
  // An array that claims more elements than the file can hold.
  expect_error(Bytes().header(3, 0, 1).str("a").u32(9).u32(5).u64(uint64_t{1} << 61).zeros(64).b,
               "metadata key 'a' claims an array of 2305843009213693952 i32 elements at offset 37");
  expect_error(Bytes().header(3, 0, 1).str("a").u32(9).u32(8).u64(~uint64_t{0}).zeros(64).b,
               "claims");
  // A string length past the end of the file (and one that overflows).
  expect_error(Bytes().header(3, 0, 1).str("k").u32(8).u64(1000).zeros(8).b,
               "is a string of length 1000");
  expect_error(Bytes().header(3, 0, 1).u64(~uint64_t{0}).zeros(16).b,
               "the name of metadata entry #0 is a string of length 18446744073709551615");
}

TEST(GgufCorrupt, MetadataProblems) {
  auto kv_file = [](const std::function<void(Bytes&)>& body, uint64_t n_kv = 1) {
    Bytes b;
    b.header(3, 0, n_kv);
    body(b);
    return b.b;
  };
  expect_error(kv_file([](Bytes& b) { b.str("k").u32(13).u32(0); }), "metadata key 'k' has unknown value type 13");
  expect_error(kv_file([](Bytes& b) { b.str("k").u32(9).u32(77).u64(0); }), "unknown value type 77");
  expect_error(kv_file([](Bytes& b) { b.kv_u32("k", 1).kv_u32("k", 2); }, 2), "duplicate metadata key 'k'");
  expect_error(kv_file([](Bytes& b) { b.str("k").u32(7).u8(2); }), "bool with byte value 2");
  expect_error(kv_file([](Bytes& b) { b.str("k").u32(9).u32(7).u64(2).u8(1).u8(5); }),
               "bool with byte value 5");
  expect_error(kv_file([](Bytes& b) { b.kv_u32("general.alignment", 48); }),
               "general.alignment = 48 is not a power of two");
  expect_error(kv_file([](Bytes& b) { b.kv_u32("general.alignment", 0); }), "not a power of two");
  expect_error(kv_file([](Bytes& b) { b.str("general.alignment").u32(10).u64(32); }),
               "general.alignment has type u64, expected u32");
  // Arrays nested 9 deep (the limit is 8).
  expect_error(kv_file([](Bytes& b) {
                 b.str("deep").u32(9);
                 for (int i = 0; i < 9; ++i) b.u32(9).u64(1);
                 b.u32(4).u64(0);
               }),
               "nests arrays deeper than 8 levels");
  // Eight levels are fine.
  auto ok = kv_file([](Bytes& b) {
    b.str("deep").u32(9);
    for (int i = 0; i < 7; ++i) b.u32(9).u64(1);
    b.u32(4).u64(1).u32(42);
  });
  auto ok_file = parse(ok);
  const GgufValue* v = ok_file->find("deep");
  ASSERT_NE(v, nullptr);
  for (int i = 0; i < 7; ++i) v = &std::get<GgufArray>(v->value).at(0);
  EXPECT_EQ(std::get<std::vector<uint64_t>>(v->value), (std::vector<uint64_t>{42}));
  // Metadata arrays are limited to 2^26 elements in all (memory bound), even
  // when the file does hold that many bytes.
  {
    Bytes big;
    big.header(3, 0, 1).str("big").u32(9).u32(0).u64((uint64_t{1} << 26) + 1);
    big.zeros((size_t{1} << 26) + 1);
    expect_error(big.b, "past the limit of 67108864 array elements");
  }
  // A key name with control bytes is quoted safely in the message.
  std::string msg = expect_error(kv_file([](Bytes& b) { b.str("a\nb").u32(13); }), "unknown value type");
  EXPECT_NE(msg.find("'a\\x0ab'"), std::string::npos) << msg;
}

// One tensor table with a data section, for the tensor cases below.
std::vector<uint8_t> tensor_file(const std::function<void(Bytes&)>& infos, uint64_t n_tensors,
                                 size_t data_bytes, uint32_t alignment = 32) {
  Bytes b;
  b.header(3, n_tensors, alignment == 32 ? 0 : 1);
  if (alignment != 32) b.kv_u32("general.alignment", alignment);
  infos(b);
  b.pad(alignment);
  b.zeros(data_bytes);
  return b.b;
}

TEST(GgufCorrupt, TensorProblems) {
  // Valid baseline: the same helper makes a file that parses.
  auto ok = parse(tensor_file([](Bytes& b) { b.tensor("w", {8, 2}, 0, 0); }, 1, 64));
  EXPECT_EQ(ok->tensors().at(0).n_bytes, 64u);

  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {8, 2}, 0, 0); }, 1, 63),
               "tensor 'w' data [offset ");
  std::string msg = expect_error(tensor_file([](Bytes& b) { b.tensor("blk.0.attn_q.weight", {16}, 0, 4096); }, 1, 64),
                                 "lies past the end of the file (size ");
  EXPECT_NE(msg.find("tensor 'blk.0.attn_q.weight' data [offset "), std::string::npos) << msg;
  EXPECT_NE(msg.find(", 64 bytes]"), std::string::npos) << msg;
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {1}, 0, ~uint64_t{0} - 31); }, 1, 64),
               "lies past the end");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0); }, 1, 64),
               "absurd shape [1099511627776, 1099511627776]");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {uint64_t{1} << 31, uint64_t{1} << 31}, 28, 0); }, 1, 64),
               "byte size overflows");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {1ull << 20, 1ull << 20}, 0, 0); }, 1, 64),
               "lies past the end");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {4, 0}, 0, 0); }, 1, 64), "dimension 1 of size 0");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {1, 1, 1, 1, 1}, 0, 0); }, 1, 64),
               "tensor 'w' has 5 dimensions (GGUF allows 1 to 4)");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {}, 0, 0); }, 1, 64), "has 0 dimensions");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {4}, 99, 0); }, 1, 64),
               "tensor 'w' has unknown tensor type number 99");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {256}, 16, 0); }, 1, 256),
               "tensor 'w' has type IQ2_XXS (16), which tars cannot read", ErrorCode::kUnsupported);
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {16}, 2, 0); }, 1, 64),
               "row length 16 is not a multiple of the Q4_0 block size 32");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {4}, 0, 16); }, 1, 64),
               "data offset 16 is not a multiple of the alignment 32");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {4}, 0, 8); }, 1, 64, 16),
               "not a multiple of the alignment 16");
  expect_error(tensor_file([](Bytes& b) { b.tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32); }, 2, 64),
               "duplicate tensor 'w'");
  expect_error(tensor_file([](Bytes& b) { b.tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32); }, 2, 64),
               "tensors 'a' [data offset 0, 64 bytes] and 'b' [data offset 32] overlap");
  // Overlap is found whatever the order of the table.
  expect_error(tensor_file([](Bytes& b) { b.tensor("b", {4}, 0, 32).tensor("a", {16}, 0, 0); }, 2, 64),
               "overlap");
  expect_error(tensor_file([](Bytes& b) { b.tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0); }, 2, 64),
               "overlap");
  // Tensor data would start past the end of the file.
  auto b = Bytes().header(3, 1, 0).tensor("w", {1}, 0, 0).b;
  expect_error(b, "tensor data would start at offset 64");
}

TEST(GgufFile, OpenReportsMissingAndEmptyFiles) {
  TempDir dir;
  try {
    GgufFile::open(dir.file("absent.gguf"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("absent.gguf"), std::string::npos);
  }
  try {
    GgufFile::open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos) << e.what();
  }
  test::write_file(dir.file("empty.gguf"), "");
  try {
    GgufFile::open(dir.file("empty.gguf"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptData);
    EXPECT_EQ(std::string(e.what()), dir.file("empty.gguf") + ": file is empty (0 bytes), not a GGUF file");
  }
}

TEST(TensorType, TraitsTable) {
  struct Row {
    uint32_t number;
    const char* name;
    uint32_t elems, bytes;
    bool supported;
  };
  // Numbering and block sizes of the GGUF specification (ggml_type).
  const Row rows[] = {
      {0, "F32", 1, 4, true},        {1, "F16", 1, 2, true},       {2, "Q4_0", 32, 18, true},
      {3, "Q4_1", 32, 20, true},     {6, "Q5_0", 32, 22, true},    {7, "Q5_1", 32, 24, true},
      {8, "Q8_0", 32, 34, true},     {9, "Q8_1", 32, 36, false},   {10, "Q2_K", 256, 84, false},
      {11, "Q3_K", 256, 110, false}, {12, "Q4_K", 256, 144, true}, {13, "Q5_K", 256, 176, true},
      {14, "Q6_K", 256, 210, true},  {15, "Q8_K", 256, 292, false}, {24, "I8", 1, 1, false},
      {25, "I16", 1, 2, false},      {26, "I32", 1, 4, false},     {27, "I64", 1, 8, false},
      {28, "F64", 1, 8, false},      {30, "BF16", 1, 2, true},
  };
  for (const Row& r : rows) {
    auto t = tensor_type_traits(r.number);
    ASSERT_TRUE(t) << r.name;
    EXPECT_EQ(t->name, r.name);
    EXPECT_EQ(t->block_elems, r.elems) << r.name;
    EXPECT_EQ(t->block_bytes, r.bytes) << r.name;
    EXPECT_EQ(t->supported, r.supported) << r.name;
    EXPECT_EQ(tensor_type_name(static_cast<TensorType>(r.number)), r.name);
    EXPECT_EQ(tensor_type_from_name(r.name), static_cast<TensorType>(r.number));
    EXPECT_EQ(tensor_type_row_bytes(static_cast<TensorType>(r.number), 2 * r.elems), 2 * r.bytes);
    if (r.elems > 1) {
      EXPECT_EQ(tensor_type_row_bytes(static_cast<TensorType>(r.number), r.elems + 1), std::nullopt);
    }
  }
  int known = 0;
  for (uint32_t n = 0; n < 64; ++n) known += tensor_type_traits(n).has_value();
  EXPECT_EQ(known, 20);
  EXPECT_EQ(tensor_type_traits(16), std::nullopt);
  EXPECT_EQ(tensor_type_foreign_name(16), "IQ2_XXS");
  EXPECT_EQ(tensor_type_foreign_name(0), "");
  EXPECT_EQ(tensor_type_foreign_name(1000), "");
  EXPECT_EQ(tensor_type_from_name("q4_k"), TensorType::kQ4_K);
  EXPECT_EQ(tensor_type_from_name("Q4_K_M"), std::nullopt);
  EXPECT_EQ(tensor_type_row_bytes(TensorType::kF64, ~uint64_t{0} / 4), std::nullopt);
}

}  // namespace
}  // namespace tars::engine
