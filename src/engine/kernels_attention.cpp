// Attention of the CPU backend (kernels_ops.h). Prompts: one job per (block
// of consecutive tokens, KV head) where the level has attn_tile (a running
// softmax over key blocks for all the block's query rows at once). Decode
// and other levels: one job per (token, KV head), the token's query heads of
// that group together, so a key or value row is converted from F16 once for
// all of them.
#include <vector>

#include "engine/kernels_internal.h"
#include "engine/kernels_ops.h"

namespace tars::engine::cpu {

const KernelTable& active_table();  // kernels_cpu.cpp

namespace {

// A run of batch tokens that attn_tile can take together: same sequence,
// consecutive positions.
struct TokenRun {
  int t0, nt;
};

std::vector<TokenRun> tile_runs(const BatchLayout& b, int max_tokens) {
  std::vector<TokenRun> runs;
  for (int t = 0; t < b.n_tokens;) {
    int e = t + 1;
    while (e < b.n_tokens && e - t < max_tokens && b.seq[e] == b.seq[t] && b.pos[e] == b.pos[e - 1] + 1) ++e;
    runs.push_back({t, e - t});
    t = e;
  }
  return runs;
}

}  // namespace

void attention(ThreadPool& pool, const float* q, const KvLayer& kv, const BatchLayout& b,
               const AttentionParams& p, float* out) {
  const int hd = p.head_dim, group = p.n_head / p.n_head_kv;
  const bool f16 = kv.type == TensorType::kF16;
  const size_t elem = f16 ? 2 : 4;
  const int64_t q_stride = static_cast<int64_t>(p.n_head) * hd;
  // Offset of KV head g of token tok's sequence, in bytes.
  auto kv_first = [&](int tok, int g) {
    return (static_cast<size_t>(b.seq[tok]) * kv.n_ctx * kv.kv_dim + static_cast<size_t>(g) * hd) * elem;
  };

  // Prompts: blocks of consecutive tokens at once, where the level can.
  const KernelTable& active = active_table();
  if (active.attn_tile && b.n_tokens > 1 && hd % 16 == 0 && hd <= 256 && group <= kAttnTileRows) {
    const std::vector<TokenRun> runs = tile_runs(b, kAttnTileRows / group);
    const int64_t jobs = static_cast<int64_t>(runs.size()) * p.n_head_kv;
    pool.parallel_for_dynamic(jobs, 1, [&](int64_t j0, int64_t j1) {
      static thread_local std::vector<float> scratch;
      if (scratch.size() < attn_tile_scratch(hd)) scratch.resize(attn_tile_scratch(hd));
      for (int64_t job = j0; job < j1; ++job) {
        const TokenRun& r = runs[job / p.n_head_kv];
        const int g = static_cast<int>(job % p.n_head_kv);
        const size_t first = kv_first(r.t0, g);
        const size_t head0 = static_cast<size_t>(r.t0) * q_stride + static_cast<size_t>(g) * group * hd;
        active.attn_tile(q + head0, q_stride, r.nt, group, hd, b.pos + r.t0,
                         static_cast<const uint8_t*>(kv.k) + first, static_cast<const uint8_t*>(kv.v) + first,
                         kv.kv_dim, f16, p.scale, out + head0, q_stride, scratch.data());
      }
    });
    return;
  }

  // One token at a time (decode): its query heads of each group together.
  // The SIMD levels work on whole vectors of 8; other head sizes run scalar.
  const KernelTable& t = hd % 8 == 0 ? active : *kernel_table_scalar();
  const int64_t jobs = static_cast<int64_t>(b.n_tokens) * p.n_head_kv;
  // Tiny attention (a small model's decode step) stays on this thread.
  const int64_t work = jobs * group * hd * (b.pos[b.n_tokens - 1] + 1);
  const auto run = [&](int64_t j0, int64_t j1) {
    static thread_local std::vector<float> scores, tmp;
    if (tmp.size() < static_cast<size_t>(kAttnKeyBlock) * hd) tmp.resize(static_cast<size_t>(kAttnKeyBlock) * hd);
    for (int64_t job = j0; job < j1; ++job) {
      const int tok = static_cast<int>(job / p.n_head_kv), g = static_cast<int>(job % p.n_head_kv);
      const int n_keys = b.pos[tok] + 1;
      if (scores.size() < static_cast<size_t>(group) * n_keys) scores.resize(static_cast<size_t>(group) * n_keys);
      const size_t first = kv_first(tok, g);
      const size_t head0 = static_cast<size_t>(tok) * q_stride + static_cast<size_t>(g) * group * hd;
      t.attn_group(q + head0, group, hd, static_cast<const uint8_t*>(kv.k) + first,
                   static_cast<const uint8_t*>(kv.v) + first, kv.kv_dim, f16, n_keys, p.scale,
                   scores.data(), out + head0, tmp.data());
    }
  };
  if (work < (1 << 16) || jobs == 1) run(0, jobs);
  else pool.parallel_for_dynamic(jobs, 1, run);
}

}  // namespace tars::engine::cpu
