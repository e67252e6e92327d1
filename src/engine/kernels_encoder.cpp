// Encoder operations of the CPU backend (kernels_encoder.h).
#include "engine/kernels_encoder.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "engine/kernels_internal.h"

namespace tars::engine::cpu {

const KernelTable& active_table();  // kernels_cpu.cpp

namespace {

// Per token: one job per (token, KV head), the token's query heads of that
// group together, over the keys and values of its own sequence. The packed
// rows are laid out like a KV-cache slot (rows of kv_dim floats), which is
// what attn_group reads. Used where there is no packed float product.
void attention_by_token(ThreadPool& pool, const float* q, const float* k, const float* v,
                        const SeqLayout& s, const AttentionParams& p, float* out) {
  const int n = s.n_tokens();
  const int hd = p.head_dim, group = p.n_head / p.n_head_kv;
  const int64_t kv_dim = static_cast<int64_t>(p.n_head_kv) * hd;
  // The SIMD levels work on whole vectors of 8; other head sizes run scalar.
  const KernelTable& t = hd % 8 == 0 ? active_table() : *kernel_table_scalar();
  std::vector<int32_t> seq_of(n);  // each token's sequence
  for (int i = 0; i < s.n_seqs; ++i) std::fill(seq_of.begin() + s.start[i], seq_of.begin() + s.start[i + 1], i);
  const int64_t jobs = static_cast<int64_t>(n) * p.n_head_kv;
  pool.parallel_for_dynamic(jobs, 4, [&](int64_t j0, int64_t j1) {
    static thread_local std::vector<float> scores, tmp;
    if (tmp.size() < static_cast<size_t>(kAttnKeyBlock) * hd) tmp.resize(static_cast<size_t>(kAttnKeyBlock) * hd);
    for (int64_t job = j0; job < j1; ++job) {
      const int tok = static_cast<int>(job / p.n_head_kv), g = static_cast<int>(job % p.n_head_kv);
      const int sq = seq_of[tok];
      const int first = s.start[sq], n_keys = s.start[sq + 1] - first;
      if (scores.size() < static_cast<size_t>(group) * n_keys) scores.resize(static_cast<size_t>(group) * n_keys);
      const size_t kv0 = static_cast<size_t>(first) * kv_dim + static_cast<size_t>(g) * hd;
      const size_t head0 = (static_cast<size_t>(tok) * p.n_head + static_cast<size_t>(g) * group) * hd;
      t.attn_group(q + head0, group, hd, k + kv0, v + kv0, kv_dim, /*f16=*/false, n_keys, p.scale,
                   scores.data(), out + head0, tmp.data());
    }
  });
}

// Per (sequence, head), as two packed float products (the matmul kernels'
// gemm_f_pack / gemm_f_run): scores = Q K^T for all of the sequence's tokens
// at once, a softmax per row, then out = P V. Every token of an encoder
// input needs every key, so this reuses each key row L times from registers
// instead of once per query token; for 125-token passages it is several
// times faster than attention_by_token.
void attention_by_sequence(ThreadPool& pool, const float* q, const float* k, const float* v,
                           const SeqLayout& s, const AttentionParams& p, float* out) {
  const int hd = p.head_dim, group = p.n_head / p.n_head_kv;
  const int64_t q_dim = static_cast<int64_t>(p.n_head) * hd, kv_dim = static_cast<int64_t>(p.n_head_kv) * hd;
  const int64_t jobs = static_cast<int64_t>(s.n_seqs) * p.n_head;
  pool.parallel_for_dynamic(jobs, 1, [&](int64_t j0, int64_t j1) {
    static thread_local std::vector<float> panel, scores, vt;
    for (int64_t job = j0; job < j1; ++job) {
      const int sq = static_cast<int>(job / p.n_head), h = static_cast<int>(job % p.n_head);
      const int first = s.start[sq], L = s.start[sq + 1] - first;
      if (L == 0) continue;
      const float* qh = q + first * q_dim + static_cast<int64_t>(h) * hd;
      const float* kh = k + first * kv_dim + static_cast<int64_t>(h / group) * hd;
      const float* vh = v + first * kv_dim + static_cast<int64_t>(h / group) * hd;
      float* oh = out + first * q_dim + static_cast<int64_t>(h) * hd;
      panel.resize(gemm_f_panel_bytes(std::max(hd, L)) / sizeof(float));
      scores.resize(static_cast<size_t>(L) * L);
      vt.resize(static_cast<size_t>(hd) * L);
      // scores[t][j] = q_t . k_j: the keys are the "weight rows".
      for (int r0 = 0; r0 < L; r0 += kGemmRows) {
        const int nr = std::min(kGemmRows, L - r0);
        gemm_f_pack(TensorType::kF32, kh + r0 * kv_dim, kv_dim * sizeof(float), nr, hd, panel.data());
        gemm_f_run(panel.data(), hd, qh, q_dim, L, nr, nullptr, scores.data() + r0, L);
      }
      for (int t = 0; t < L; ++t) {
        float* row = scores.data() + static_cast<size_t>(t) * L;
        float mx = -INFINITY;
        for (int j = 0; j < L; ++j) mx = std::max(mx, row[j] *= p.scale);
        const float inv = 1.0f / softmax_exp(row, L, mx);
        for (int j = 0; j < L; ++j) row[j] *= inv;
      }
      // out[t][d] = sum_j P[t][j] v_j[d]: the rows of V^T are the weight rows.
      for (int j = 0; j < L; ++j) {
        for (int d = 0; d < hd; ++d) vt[static_cast<size_t>(d) * L + j] = vh[j * kv_dim + d];
      }
      for (int d0 = 0; d0 < hd; d0 += kGemmRows) {
        const int nr = std::min(kGemmRows, hd - d0);
        gemm_f_pack(TensorType::kF32, vt.data() + static_cast<size_t>(d0) * L, L * sizeof(float), nr, L,
                    panel.data());
        gemm_f_run(panel.data(), L, scores.data(), L, L, nr, nullptr, oh + d0, q_dim);
      }
    }
  });
}

}  // namespace

void attention_packed(ThreadPool& pool, const float* q, const float* k, const float* v,
                      const SeqLayout& s, const AttentionParams& p, float* out) {
  if (s.n_tokens() == 0) return;
  TARS_CHECK(p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0);
  for (int i = 0; i < s.n_seqs; ++i) TARS_CHECK(s.start[i] <= s.start[i + 1]);
  if (gemm_f_available()) {
    attention_by_sequence(pool, q, k, v, s, p, out);
  } else {
    attention_by_token(pool, q, k, v, s, p, out);
  }
}

// Compiled three times (the loader picks the widest the CPU has): this file is
// built for baseline x86-64, where the loop vectorizes only 4 wide, and GELU
// over the FFN width was 4.6% of a MiniLM pass that way (1.4% with AVX-512).
__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_erf(float* x, int64_t n) {
  // erf(a) ~ a P(u) / Q(u), u = a^2 / 16, for 0 <= a <= 4 (fitted by weighted
  // least squares for this project; erf(4) = 1 - 1.5e-8 rounds to 1, so
  // larger arguments are clamped). P(0) = 2 / sqrt(pi), the slope at 0.
  constexpr float p0 = 1.128379159f, p1 = 3.066715960f, p2 = 13.53016132f, p3 = 15.57826529f,
                  p4 = 18.53563182f, p5 = 2.098740991f;
  constexpr float q1 = 8.051132590f, q2 = 29.33084747f, q3 = 61.62792863f, q4 = 76.43753494f,
                  q5 = 39.30413187f;
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  constexpr uint32_t kFour = 0x40800000u;  // 4.0f; for a >= 0, float order is integer order
  constexpr uint32_t kOne = 0x3F800000u;   // 1.0f
  // Integer operations for the clamp and the sign: float comparisons may
  // trap, so the compiler would not vectorize a loop that has them.
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const uint32_t zb = std::bit_cast<uint32_t>(v * kInvSqrt2);
    const uint32_t sign = zb & 0x80000000u;
    const uint32_t ab = std::min(zb & 0x7FFFFFFFu, kFour);  // |z| clamped (NaN too: v carries it)
    const uint32_t big = 0u - static_cast<uint32_t>(ab == kFour);  // all ones where erf = 1
    const float a = std::bit_cast<float>(ab);
    const float u = a * a * 0.0625f;
    const float pp = ((((p5 * u + p4) * u + p3) * u + p2) * u + p1) * u + p0;
    const float qq = ((((q5 * u + q4) * u + q3) * u + q2) * u + q1) * u + 1.0f;
    const uint32_t eb = (std::bit_cast<uint32_t>(a * pp / qq) & ~big) | (kOne & big);
    const float e = std::bit_cast<float>(eb | sign);
    x[i] = 0.5f * v * (1.0f + e);
  }
}

void seq_mean(const float* x, const SeqLayout& s, int d, float* out) {
  std::vector<double> acc(d);
  for (int i = 0; i < s.n_seqs; ++i) {
    const int r0 = s.start[i], r1 = s.start[i + 1];
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int r = r0; r < r1; ++r) {
      const float* row = x + static_cast<size_t>(r) * d;
      for (int j = 0; j < d; ++j) acc[j] += row[j];
    }
    const double inv = r1 > r0 ? 1.0 / (r1 - r0) : 0.0;
    float* o = out + static_cast<size_t>(i) * d;
    for (int j = 0; j < d; ++j) o[j] = static_cast<float>(acc[j] * inv);
  }
}

}  // namespace tars::engine::cpu
