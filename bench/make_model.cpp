// Writes a LLaMA-architecture GGUF model of a real shape with random weights
// (normal, never all zeros), in F16, with the project's own GGUF writer: the
// model bench/engine_bench.sh quantizes and measures. Speed does not depend
// on the values. The tokenizer is copied from a vocabulary-only GGUF
// (../shared/models/vocab/ggml-vocab-llama-spm.gguf: the 32000-token
// SentencePiece vocabulary TinyLlama uses), so the file loads like a real one.
//
//   bench_make_model OUT.gguf --vocab VOCAB.gguf [--shape 1.1b|7b] [--layers 22] [--seed 1]
//
// Default shape: TinyLlama-1.1B (dim 2048, 22 layers, 32 heads, 4 KV heads,
// FFN 5632, vocab 32000, context 2048).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/half.h"

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

int run(int argc, char** argv) {
  std::string out, vocab;
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
    else if (a.rfind("--", 0) == 0) throw tars::Error(tars::ErrorCode::kInvalidArgument, "unknown option " + a);
    else out = a;
  }
  if (out.empty() || vocab.empty()) {
    std::fprintf(stderr, "usage: bench_make_model OUT.gguf --vocab VOCAB.gguf [--shape 1.1b|7b] [--layers N] [--seed S]\n");
    return 2;
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
