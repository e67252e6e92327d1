// Writes a LLaMA-architecture GGUF model of a real shape with random weights
// (normal, never all zeros), in F16, with the project's own GGUF writer: the
// model bench/engine_bench.sh quantizes and measures. Speed does not depend
// on the values. The tokenizer is copied from a vocabulary-only GGUF
// (../shared/models/vocab/ggml-vocab-llama-spm.gguf: the 32000-token
// SentencePiece vocabulary TinyLlama uses), so the file loads like a real one.
//
//   bench_make_model OUT.gguf --vocab VOCAB.gguf [--shape 1.1b|7b] [--layers 22] [--seed 1]
//                    [--type F16|Q4_0|Q4_K_M|...]
//
// Default shape: TinyLlama-1.1B (dim 2048, 22 layers, 32 heads, 4 KV heads,
// FFN 5632, vocab 32000, context 2048).
//
// --type T (any `tars quantize` target but F16) writes that mix directly,
// for machines where quantizing a 7B F16 file would take too long (the
// k-quant row quantizers cost about 0.4-0.8 us per weight and thread): the
// tensor types come from the engine's own plan (quantize_plan, through the
// tests' sparse-file writer), and each matrix is a tile of 64 random rows
// quantized with the engine's quantize_row, repeated down the matrix. Speed
// does not depend on the values, so this file measures like a quantized one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/half.h"
#include "engine/quant.h"
#include "support/sparse_model.h"

namespace {

using tars::engine::GgufFile;
using tars::engine::GgufWriter;
using tars::engine::TensorType;

struct Shape {
  int dim = 2048, layers = 22, heads = 32, kv_heads = 4, ffn = 5632, ctx = 2048;
};

// splitmix64: a small, fast, well-mixed generator; one stream per tensor.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

// n normal values of standard deviation sd as F16, never exactly zero.
std::vector<uint16_t> normal_f16(size_t n, float sd, uint64_t seed) {
  std::vector<uint16_t> out(n);
  const int threads = 2;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Rng rng{seed * 1000003u + t};
      const size_t b = n * t / threads, e = n * (t + 1) / threads;
      for (size_t i = b; i < e; i += 2) {
        // Box-Muller: two normals from two uniforms.
        const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
        const double r = std::sqrt(-2.0 * std::log(u1)) * sd;
        const float v[2] = {static_cast<float>(r * std::cos(2 * M_PI * u2)),
                            static_cast<float>(r * std::sin(2 * M_PI * u2))};
        for (int k = 0; k < 2 && i + k < e; ++k) {
          uint16_t h = tars::engine::fp32_to_fp16(v[k]);
          if ((h & 0x7fff) == 0) h |= 0x0400;  // the smallest normal, with the sign
          out[i + k] = h;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return out;
}

// Fills the sparse file `out` (header and tensor table already there): every
// 1-D tensor 1.0, every matrix a tile of 64 quantized random rows repeated.
void fill_quantized(const std::string& out, uint64_t seed) {
  auto f = GgufFile::open(out);
  const int fd = ::open(out.c_str(), O_WRONLY);
  if (fd < 0) throw tars::Error(tars::ErrorCode::kIo, out + ": cannot open for writing");
  uint64_t tensor_seed = seed * 7919;
  for (const auto& t : f->tensors()) {
    const int64_t cols = static_cast<int64_t>(t.shape[0]);
    const int64_t rows = static_cast<int64_t>(t.n_elems) / cols;
    const int64_t tile = std::min<int64_t>(rows, 64);
    std::vector<float> x(static_cast<size_t>(cols * tile));
    if (rows == 1) {
      std::fill(x.begin(), x.end(), 1.0f);  // norms
    } else {
      const std::vector<uint16_t> h = normal_f16(x.size(), 0.02f, ++tensor_seed);
      for (size_t i = 0; i < x.size(); ++i) x[i] = tars::engine::fp16_to_fp32(h[i]);
    }
    const size_t rb = tars::engine::quant_row_bytes(t.type, cols);
    std::vector<uint8_t> bytes(rb * tile);
    for (int64_t r = 0; r < tile; ++r) {
      tars::engine::quantize_row(t.type, x.data() + r * cols, bytes.data() + r * rb, cols);
    }
    const uint64_t base = f->data_offset() + t.offset;
    for (int64_t r0 = 0; r0 < rows; r0 += tile) {
      const size_t n = rb * static_cast<size_t>(std::min(tile, rows - r0));
      if (::pwrite(fd, bytes.data(), n, static_cast<off_t>(base + rb * r0)) != static_cast<ssize_t>(n)) {
        ::close(fd);
        throw tars::Error(tars::ErrorCode::kIo, out + ": write failed");
      }
    }
  }
  ::close(fd);
}

int run(int argc, char** argv) {
  std::string out, vocab, type = "F16";
  Shape s;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw tars::Error(tars::ErrorCode::kInvalidArgument, a + " needs a value");
      return argv[++i];
    };
    if (a == "--vocab") vocab = next();
    else if (a == "--layers") s.layers = std::stoi(next());
    else if (a == "--shape") {
      std::string v = next();
      if (v == "7b") s = Shape{4096, 32, 32, 32, 11008, 4096};  // LLaMA-2-7B (issue 7's table)
      else if (v != "1.1b") throw tars::Error(tars::ErrorCode::kInvalidArgument, "--shape: 1.1b or 7b, got " + v);
    }
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--type") type = next();
    else if (a.rfind("--", 0) == 0) throw tars::Error(tars::ErrorCode::kInvalidArgument, "unknown option " + a);
    else out = a;
  }
  if (out.empty() || vocab.empty()) {
    std::fprintf(stderr, "usage: bench_make_model OUT.gguf --vocab VOCAB.gguf [--shape 1.1b|7b] [--layers N] [--seed S]\n");
    return 2;
  }
  if (type != "F16" && type != "f16") {
    tars::test::SparseModelSpec spec;
    spec.name = "random weights, " + type;
    spec.n_embd = s.dim;
    spec.n_layer = s.layers;
    spec.n_head = s.heads;
    spec.n_head_kv = s.kv_heads;
    spec.n_ff = s.ffn;
    spec.n_ctx = s.ctx;
    spec.quant = type;
    spec.vocab_from = vocab;
    std::fprintf(stderr, "writing %s (%s, %d layers, tiles of 64 quantized random rows)...\n", out.c_str(),
                 type.c_str(), s.layers);
    tars::test::write_sparse_model(spec, out);
    fill_quantized(out, seed);
    return 0;
  }
  auto voc = GgufFile::open(vocab);
  const auto* tokens = voc->get_string_array("tokenizer.ggml.tokens");
  if (!tokens) throw tars::Error(tars::ErrorCode::kCorruptData, vocab + ": no tokenizer.ggml.tokens");
  const int n_vocab = static_cast<int>(tokens->size());

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "TinyLlama-1.1B shape, random weights");
  w.set_u32("general.file_type", 1);  // mostly F16
  w.set_u32("llama.context_length", s.ctx);
  w.set_u32("llama.embedding_length", s.dim);
  w.set_u32("llama.block_count", s.layers);
  w.set_u32("llama.feed_forward_length", s.ffn);
  w.set_u32("llama.attention.head_count", s.heads);
  w.set_u32("llama.attention.head_count_kv", s.kv_heads);
  w.set_u32("llama.rope.dimension_count", s.dim / s.heads);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  for (const auto& [key, value] : voc->metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) w.set_value(key, value);
  }

  // The tensors stay in these buffers until write() streams them out.
  std::vector<std::vector<uint16_t>> f16;
  std::vector<std::vector<float>> f32;
  f16.reserve(4 + 7 * s.layers);
  f32.reserve(1 + 2 * s.layers);
  uint64_t tensor_seed = seed * 7919;
  auto matrix = [&](const std::string& name, int cols, int rows) {
    f16.push_back(normal_f16(static_cast<size_t>(cols) * rows, 0.02f, ++tensor_seed));
    const auto& v = f16.back();
    w.add_tensor_view(name, TensorType::kF16, {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)},
                      {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 2});
  };
  auto norm = [&](const std::string& name) {
    f32.emplace_back(s.dim, 1.0f);
    const auto& v = f32.back();
    w.add_tensor_view(name, TensorType::kF32, {static_cast<uint64_t>(s.dim)},
                      {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4});
  };
  const int kv = s.dim / s.heads * s.kv_heads;
  std::fprintf(stderr, "generating %d layers...\n", s.layers);
  matrix("token_embd.weight", s.dim, n_vocab);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    matrix(p + "attn_q.weight", s.dim, s.dim);
    matrix(p + "attn_k.weight", s.dim, kv);
    matrix(p + "attn_v.weight", s.dim, kv);
    matrix(p + "attn_output.weight", s.dim, s.dim);
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn_gate.weight", s.dim, s.ffn);
    matrix(p + "ffn_up.weight", s.dim, s.ffn);
    matrix(p + "ffn_down.weight", s.ffn, s.dim);
  }
  norm("output_norm.weight");
  matrix("output.weight", s.dim, n_vocab);
  std::fprintf(stderr, "writing %s...\n", out.c_str());
  w.write(out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_make_model: %s\n", e.what());
    return 1;
  }
}
