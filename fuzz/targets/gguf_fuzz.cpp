// libFuzzer target for the GGUF reader (and, through a round trip, the
// writer). For any input bytes:
//   - GgufFile::from_memory either throws tars::Error or returns a file whose
//     every key and tensor can be touched without leaving the input buffer
//     (AddressSanitizer checks every access: libFuzzer's buffer is exactly
//     `size` bytes);
//   - a file that parses can be copied through GgufWriter and parses again to
//     the same metadata and tensor bytes.
// Anything else (a crash, a sanitizer report, a broken invariant) aborts.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "engine/gguf.h"

using namespace tars::engine;

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "gguf_fuzz: invariant broken: %s\n", what);
  std::abort();
}

bool same_double(double a, double b) {
  // f32 values pass through double; a NaN may come back with another payload.
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

bool same(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (a.type == GgufValueType::kArray && a.elem_type != b.elem_type) return false;
  if (auto* x = std::get_if<double>(&a.value)) return same_double(*x, std::get<double>(b.value));
  if (auto* x = std::get_if<std::vector<double>>(&a.value)) {
    const auto& y = std::get<std::vector<double>>(b.value);
    if (x->size() != y.size()) return false;
    for (size_t i = 0; i < x->size(); ++i) {
      if (!same_double((*x)[i], y[i])) return false;
    }
    return true;
  }
  if (auto* x = std::get_if<GgufArray>(&a.value)) {
    const auto& y = std::get<GgufArray>(b.value);
    if (x->size() != y.size()) return false;
    for (size_t i = 0; i < x->size(); ++i) {
      if (!same((*x)[i], y[i])) return false;
    }
    return true;
  }
  if (auto* x = std::get_if<uint64_t>(&a.value)) return *x == std::get<uint64_t>(b.value);
  if (auto* x = std::get_if<int64_t>(&a.value)) return *x == std::get<int64_t>(b.value);
  if (auto* x = std::get_if<bool>(&a.value)) return *x == std::get<bool>(b.value);
  if (auto* x = std::get_if<std::string>(&a.value)) return *x == std::get<std::string>(b.value);
  if (auto* x = std::get_if<std::vector<std::string>>(&a.value)) {
    return *x == std::get<std::vector<std::string>>(b.value);
  }
  if (auto* x = std::get_if<std::vector<int64_t>>(&a.value)) {
    return *x == std::get<std::vector<int64_t>>(b.value);
  }
  if (auto* x = std::get_if<std::vector<uint64_t>>(&a.value)) {
    return *x == std::get<std::vector<uint64_t>>(b.value);
  }
  return false;
}

// Calls every typed accessor on a key: each returns or throws tars::Error.
void touch_key(const GgufFile& f, const std::string& key) {
  auto attempt = [](auto&& fn) {
    try {
      fn();
    } catch (const tars::Error&) {
    }
  };
  attempt([&] { (void)f.get_string(key); });
  attempt([&] { (void)f.get_u64(key); });
  attempt([&] { (void)f.get_i64(key); });
  attempt([&] { (void)f.get_f64(key); });
  attempt([&] { (void)f.get_bool(key); });
  attempt([&] { (void)f.get_string_array(key); });
  attempt([&] { (void)f.get_int_array(key); });
  attempt([&] { (void)f.get_uint_array(key); });
  attempt([&] { (void)f.get_float_array(key); });
  if (f.find(key) == nullptr) broken("find() misses a key listed in metadata()");
}

void check(const uint8_t* data, size_t size) {
  auto f = GgufFile::from_memory(data, size, "fuzz.gguf");
  for (const auto& [key, v] : f->metadata()) touch_key(*f, key);

  volatile uint8_t sink = 0;
  for (const auto& t : f->tensors()) {
    if (t.n_bytes == 0 || t.data < data || t.data + t.n_bytes > data + size) {
      broken("tensor data outside the input");
    }
    if ((t.data - data) % f->alignment() != 0) broken("tensor data not aligned");
    sink = sink + t.data[0] + t.data[t.n_bytes - 1];  // ASan checks both ends
    if (f->find_tensor(t.name) != &t) broken("find_tensor() disagrees with tensors()");
  }
  (void)sink;

  // Round trip through the writer.
  GgufWriter w;
  for (const auto& [key, v] : f->metadata()) w.set_value(key, v);  // never throws on read values
  for (const auto& t : f->tensors()) {
    w.add_tensor_view(t.name, t.type, t.shape, {t.data, t.n_bytes});
  }
  std::vector<uint8_t> bytes = w.to_bytes();
  auto g = GgufFile::from_memory(bytes.data(), bytes.size(), "fuzz-copy.gguf");
  if (g->alignment() != f->alignment()) broken("alignment changed in the round trip");
  if (g->metadata().size() != f->metadata().size()) broken("key count changed in the round trip");
  for (size_t i = 0; i < f->metadata().size(); ++i) {
    if (g->metadata()[i].first != f->metadata()[i].first) broken("key changed in the round trip");
    if (!same(g->metadata()[i].second, f->metadata()[i].second)) {
      broken("value changed in the round trip");
    }
  }
  if (g->tensors().size() != f->tensors().size()) broken("tensor count changed in the round trip");
  for (size_t i = 0; i < f->tensors().size(); ++i) {
    const auto& a = f->tensors()[i];
    const auto& b = g->tensors()[i];
    if (a.name != b.name || a.type != b.type || a.shape != b.shape || a.n_bytes != b.n_bytes ||
        std::memcmp(a.data, b.data, a.n_bytes) != 0) {
      broken("tensor changed in the round trip");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    check(data, size);
  } catch (const tars::Error& e) {
    // Only the reader may refuse (the first parse); the writer and the second
    // parse must accept what the reader accepted.
    const char* msg = e.what();
    if (std::strncmp(msg, "fuzz.gguf: ", 11) != 0) {
      std::fprintf(stderr, "gguf_fuzz: unexpected error: %s\n", msg);
      std::abort();
    }
    if (std::strchr(msg, '\n') != nullptr) broken("error message spans several lines");
  }
  return 0;
}
