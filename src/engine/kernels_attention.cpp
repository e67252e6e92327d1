// Attention of the CPU backend (kernels_ops.h): one job per (token, KV
// head), each running the token's query heads of that group together so a
// key or value row is converted from F16 once for all of them.
#include <vector>

#include "engine/kernels_internal.h"
#include "engine/kernels_ops.h"

namespace tars::engine::cpu {

const KernelTable& active_table();  // kernels_cpu.cpp

void attention(ThreadPool& pool, const float* q, const KvLayer& kv, const BatchLayout& b,
               const AttentionParams& p, float* out) {
  const int hd = p.head_dim, group = p.n_head / p.n_head_kv;
  const bool f16 = kv.type == TensorType::kF16;
  const size_t elem = f16 ? 2 : 4;
  // The SIMD levels work on whole vectors of 8; other head sizes run scalar.
  const KernelTable& t = hd % 8 == 0 ? active_table() : *kernel_table_scalar();
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
      const size_t first = (static_cast<size_t>(b.seq[tok]) * kv.n_ctx * kv.kv_dim + static_cast<size_t>(g) * hd) * elem;
      const size_t head0 = (static_cast<size_t>(tok) * p.n_head + static_cast<size_t>(g) * group) * hd;
      t.attn_group(q + head0, group, hd, static_cast<const uint8_t*>(kv.k) + first,
                   static_cast<const uint8_t*>(kv.v) + first, kv.kv_dim, f16, n_keys, p.scale,
                   scores.data(), out + head0, tmp.data());
    }
  };
  if (work < (1 << 16) || jobs == 1) run(0, jobs);
  else pool.parallel_for_dynamic(jobs, 1, run);
}

}  // namespace tars::engine::cpu
