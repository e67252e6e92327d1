// The packed products of the AVX-512 level.
//
// Integer products read weights repacked into row-interleaved panels
// (kernels_panel.h): one 64-byte vector holds 4 consecutive quant codes of
// each of 16 rows, so vpdpbusd of it with 4 quants of one token (broadcast)
// adds 16 partial dot products at once, and a block's int32 sums need one
// conversion and one FMA per 16 outputs. Tokens are processed in register
// tiles of up to 8, each block's weight vectors unpacked once per tile.
//
// Float products (F32/F16/BF16 weights, exact mode) pack each panel per
// product by gathering its rows: k vectors of 16 floats.
//
// Compiled with the AVX-512 flags; everything but avx512_fill_gemm has
// internal linkage (see kernels_internal.h).
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_*), falsely.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "engine/quant.h"

namespace tars::engine::cpu {
namespace avx512_gemm {  // hides the public gemm_* names of kernels_cpu.h
namespace {

constexpr int R = kGemmRows;
static_assert(R == 16, "one 512-bit vector per group of 4 quants");

// Gathers one dword per row at (row start + offset); rows past n_rows read 0.
struct RowGather {
  __m512i idx;
  __mmask16 mask;
  const uint8_t* base;

  RowGather(const void* w, size_t row_bytes, int n_rows)
      : idx(_mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                               _mm512_set1_epi32(static_cast<int>(row_bytes)))),
        mask(static_cast<__mmask16>((1u << n_rows) - 1)),
        base(static_cast<const uint8_t*>(w)) {}

  __m512i at(int64_t offset) const {
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, idx, base + offset, 1);
  }
};

inline __m512i bytes(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }
inline __m512i srl(__m512i v, int n) { return _mm512_srl_epi32(v, _mm_cvtsi32_si128(n)); }
inline __m512i low_nibbles(__m512i v) { return _mm512_and_si512(v, bytes(0x0f)); }
inline __m512i high_nibbles(__m512i v) { return _mm512_and_si512(srl(v, 4), bytes(0x0f)); }
// FP16 in the low / high half of each dword -> float.
inline __m512 half_lo(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
inline __m512 half_hi(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(srl(v, 16))); }

// ---- float panels packed per product (exact mode, the encoder) -------------------

void gemm_f_pack_f32(const float* w, size_t row_bytes, int n_rows, int64_t k, void* out) {
  const RowGather g(w, row_bytes, n_rows);
  float* p = static_cast<float*>(out);
  for (int64_t i = 0; i < k; ++i) _mm512_storeu_ps(p + R * i, _mm512_castsi512_ps(g.at(4 * i)));
}

void gemm_f_pack_f16(const uint16_t* w, size_t row_bytes, int n_rows, int64_t k, void* out) {
  const RowGather g(w, row_bytes, n_rows);
  float* p = static_cast<float*>(out);
  int64_t i = 0;
  for (; i + 2 <= k; i += 2) {
    const __m512i v = g.at(2 * i);
    _mm512_storeu_ps(p + R * i, half_lo(v));
    _mm512_storeu_ps(p + R * (i + 1), half_hi(v));
  }
  if (i < k) {  // odd k: the last element alone (a dword would read past the row)
    for (int r = 0; r < R; ++r) {
      float v = 0.0f;
      if (r < n_rows) {
        uint16_t h;
        std::memcpy(&h, reinterpret_cast<const uint8_t*>(w) + r * row_bytes + 2 * i, 2);
        v = _cvtsh_ss(h);
      }
      p[R * i + r] = v;
    }
  }
}

// ---- products ---------------------------------------------------------------------------

inline void store_rows(float* y, __m512 v, int n_rows, const float* bias) {
  const __mmask16 m = static_cast<__mmask16>((1u << n_rows) - 1);
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
  if (n_rows == R) _mm512_storeu_ps(y, v);
  else _mm512_mask_storeu_ps(y, m, v);
}

// ---- integer products on panels ---------------------------------------------------

#define TARS_INLINE inline __attribute__((always_inline))

inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
inline __m512 half16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// 16 unsigned / signed bytes -> 16 floats.
inline __m512 u8x16(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 i8x16(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __mmask64 mask64(const uint8_t* p) {
  uint64_t m;
  std::memcpy(&m, p, 8);
  return static_cast<__mmask64>(m);
}
// Software prefetch of the panel stream: the weights come from memory once
// per product (decode), and the hardware prefetchers alone leave the core
// waiting. Each step prefetches as many bytes as it consumes, into L2 from
// kAhead further on and into L1 from kNear further on. Measured on Zen 4
// (bench_matmul_bench, the 32000-row output matrix, one token): L2 alone
// took Q4_K from 11 to 19 GB/s, L1 as well to 25 GB/s; prefetching into L1
// only, from further ahead, stalls on the full miss queue.
constexpr int64_t kAhead = 12288;
constexpr int64_t kNear = 2048;
TARS_INLINE void prefetch_ahead(const uint8_t* p, size_t unit_bytes) {
  for (size_t off = 0; off < unit_bytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p + kAhead + off), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(p + kNear + off), _MM_HINT_T0);
  }
}

// Adds 16 to the bytes whose bit is set (the 5th bit of Q5 codes).
inline __m512i add_bit4(__m512i g, const uint8_t* mask) {
  return _mm512_mask_add_epi8(g, mask64(mask), g, bytes(16));
}

// Up to 8 tokens of one activation tile (GemmActs layout) and their
// accumulators; block() consumes one activation block against its weight
// vectors. Each token's values sit at a constant offset from the tile's
// base, so the broadcasts need no per-token pointer.
typedef int32_t i32_alias __attribute__((may_alias));
constexpr int kT = kGemmActTile;

template <int C, int TW>
struct Tile {
  const int8_t* qs;
  const float* d;
  const float* s;
  const int32_t* corr;
  int64_t L;
  __m512 acc[C];

  TARS_INLINE explicit Tile(const GemmActs& a) : qs(a.qs), d(a.d), s(a.s), corr(a.corr), L(a.block) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  }

  // Activation block ab (L = 4 NG quants) against group vectors g, with the
  // 16 rows' block scales sc (and mins mn).
  template <int NG, bool kMin>
  TARS_INLINE void block(const __m512i* g, __m512 sc, __m512 mn, int64_t ab) {
    const int8_t* q = qs + ab * L * TW;
    const int64_t i = ab * TW;
    // With few tokens the vpdpbusd chain of one block would be serial: split
    // it in two (even and odd groups) to overlap their latencies.
    constexpr int kChains = C < 4 ? 2 : 1;
    __m512i ia[kChains][C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      ia[0][c] = _mm512_set1_epi32(corr[i + c]);
      if constexpr (kChains == 2) ia[1][c] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int gi = 0; gi < NG; ++gi) {
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        const int32_t av = *reinterpret_cast<const i32_alias*>(q + 4 * TW * gi + 4 * c);
        __m512i& x = ia[gi % kChains][c];
        x = _mm512_dpbusd_epi32(x, g[gi], _mm512_set1_epi32(av));
      }
    }
    if constexpr (kChains == 2) {
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) ia[0][c] = _mm512_add_epi32(ia[0][c], ia[1][c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[0][c]), _mm512_mul_ps(sc, _mm512_set1_ps(d[i + c])), acc[c]);
      if constexpr (kMin) acc[c] = _mm512_fmadd_ps(mn, _mm512_set1_ps(s[i + c]), acc[c]);
    }
  }
};

// Low and high nibbles of 4 qs vectors -> the 8 group vectors of a 32-block.
TARS_INLINE void nibble_groups(const uint8_t* qs, __m512i* g) {
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    const __m512i v = load64(qs + 64 * m);
    g[m] = low_nibbles(v);
    g[m + 4] = high_nibbles(v);
  }
}

template <int C, int TW>
TARS_INLINE void run_legacy(TensorType t, const uint8_t* p, int64_t units, Tile<C, TW>& tile) {
  __m512i g[8];
  const __m512 none = _mm512_setzero_ps();
  switch (t) {
    case TensorType::kQ4_0:
      for (int64_t u = 0; u < units; ++u, p += 288) {
        prefetch_ahead(p, 288);
        nibble_groups(p + 32, g);
        tile.template block<8, false>(g, half16(p), none, u);
      }
      break;
    case TensorType::kQ4_1:
      for (int64_t u = 0; u < units; ++u, p += 320) {
        prefetch_ahead(p, 320);
        nibble_groups(p + 64, g);
        tile.template block<8, true>(g, half16(p), half16(p + 32), u);
      }
      break;
    case TensorType::kQ5_0:
      for (int64_t u = 0; u < units; ++u, p += 352) {
        prefetch_ahead(p, 352);
        nibble_groups(p + 96, g);
#pragma GCC unroll 8
        for (int gi = 0; gi < 8; ++gi) g[gi] = add_bit4(g[gi], p + 32 + 8 * gi);
        tile.template block<8, false>(g, half16(p), none, u);
      }
      break;
    case TensorType::kQ5_1:
      for (int64_t u = 0; u < units; ++u, p += 384) {
        prefetch_ahead(p, 384);
        nibble_groups(p + 128, g);
#pragma GCC unroll 8
        for (int gi = 0; gi < 8; ++gi) g[gi] = add_bit4(g[gi], p + 64 + 8 * gi);
        tile.template block<8, true>(g, half16(p), half16(p + 32), u);
      }
      break;
    case TensorType::kQ8_0:
      for (int64_t u = 0; u < units; ++u, p += 544) {
        prefetch_ahead(p, 544);
#pragma GCC unroll 8
        for (int gi = 0; gi < 8; ++gi) g[gi] = load64(p + 32 + 64 * gi);
        tile.template block<8, false>(g, half16(p), none, u);
      }
      break;
    default: break;
  }
}

template <int C, int TW>
TARS_INLINE void run_q45_k(bool five, const uint8_t* p, int64_t units, Tile<C, TW>& tile) {
  const size_t unit_bytes = five ? 2880 : 2368;
  __m512i g[8];
  for (int64_t u = 0; u < units; ++u, p += unit_bytes) {
    const __m512 d = half16(p), dmin = half16(p + 32);
    for (int j = 0; j < 8; ++j) {  // sub-block j: chunk j/2, low or high nibbles
      prefetch_ahead(p + j * (unit_bytes / 8), unit_bytes / 8);  // spread over the unit
      const uint8_t* qs = p + 320 + 64 * 8 * (j / 2);
#pragma GCC unroll 8
      for (int gi = 0; gi < 8; ++gi) {
        const __m512i v = load64(qs + 64 * gi);
        g[gi] = j % 2 ? high_nibbles(v) : low_nibbles(v);
        if (five) g[gi] = add_bit4(g[gi], p + 2368 + 8 * (8 * j + gi));
      }
      const __m512 sc = _mm512_mul_ps(d, u8x16(p + 64 + 16 * j));
      const __m512 mn = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin, u8x16(p + 192 + 16 * j)));
      tile.template block<8, true>(g, sc, mn, 8 * u + j);
    }
  }
}

// Q6_K: the two parts p and p+2 share ql bytes (low / high nibbles).
template <int C, int TW>
TARS_INLINE void run_q6_k(const uint8_t* p, int64_t units, Tile<C, TW>& tile) {
  __m512i ga[4], gb[4];
  const __m512 none = _mm512_setzero_ps();
  const __m512i hi2 = bytes(0x30);
  for (int64_t u = 0; u < units; ++u, p += 3360) {
    const __m512 d = half16(p);
    for (int h = 0; h < 2; ++h) {
      for (int half = 0; half < 2; ++half) {
        for (int pp = 0; pp < 2; ++pp) {  // parts pp (low nibbles) and pp + 2 (high)
          prefetch_ahead(p + 420 * (4 * h + 2 * half + pp), 420);  // 3360 / 8, spread over the unit
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            const int lg = 4 * half + i;
            const __m512i ql = load64(p + 288 + 64 * ((8 * h + lg) * 2 + pp));
            const __m512i qh = load64(p + 288 + 2048 + 64 * (8 * h + lg));
            // high bits of part p: (qh >> 2p) & 3, moved to bits 4-5
            const __m512i ha = pp == 0 ? _mm512_slli_epi16(qh, 4) : _mm512_slli_epi16(qh, 2);
            const __m512i hb = pp == 0 ? qh : _mm512_srli_epi16(qh, 2);
            ga[i] = _mm512_or_si512(low_nibbles(ql), _mm512_and_si512(ha, hi2));
            gb[i] = _mm512_or_si512(high_nibbles(ql), _mm512_and_si512(hb, hi2));
          }
          const int ja = 8 * h + 2 * pp + half, jb = ja + 4;
          tile.template block<4, false>(ga, _mm512_mul_ps(d, i8x16(p + 32 + 16 * ja)), none, 16 * u + ja);
          tile.template block<4, false>(gb, _mm512_mul_ps(d, i8x16(p + 32 + 16 * jb)), none, 16 * u + jb);
        }
      }
    }
  }
}

// TW: tokens per activation tile (GemmActs::tile).
template <int C, int TW = kT>
void q_tile(TensorType t, const uint8_t* panel, const GemmActs& a, int t0, int n_rows, const float* bias,
            float* y, int64_t ys) {
  Tile<C, TW> tile(gemm_acts_from(a, t0));
  switch (t) {
    case TensorType::kQ4_K: run_q45_k<C, TW>(false, panel, a.k / 256, tile); break;
    case TensorType::kQ5_K: run_q45_k<C, TW>(true, panel, a.k / 256, tile); break;
    case TensorType::kQ6_K: run_q6_k<C, TW>(panel, a.k / 256, tile); break;
    default: run_legacy<C, TW>(t, panel, a.k / 32, tile); break;
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) store_rows(y + (t0 + c) * ys, tile.acc[c], n_rows, bias);
}

constexpr int kTileQ = kGemmActTile;  // tokens per integer tile

void panel_q_run(TensorType t, const void* panel, const GemmActs& a, int n, int n_rows, const float* bias,
                 float* y, int64_t ys) {
  const uint8_t* p = static_cast<const uint8_t*>(panel);
  if (a.tile == 1) {  // one token, its activations contiguous (decode)
    if (n == 1) q_tile<1, 1>(t, p, a, 0, n_rows, bias, y, ys);
    return;
  }
  int t0 = 0;
  for (; t0 + kTileQ <= n; t0 += kTileQ) q_tile<kTileQ>(t, p, a, t0, n_rows, bias, y, ys);
  switch (n - t0) {
    case 1: q_tile<1>(t, p, a, t0, n_rows, bias, y, ys); break;
    case 2: q_tile<2>(t, p, a, t0, n_rows, bias, y, ys); break;
    case 3: q_tile<3>(t, p, a, t0, n_rows, bias, y, ys); break;
    case 4: q_tile<4>(t, p, a, t0, n_rows, bias, y, ys); break;
    case 5: q_tile<5>(t, p, a, t0, n_rows, bias, y, ys); break;
    case 6: q_tile<6>(t, p, a, t0, n_rows, bias, y, ys); break;
    case 7: q_tile<7>(t, p, a, t0, n_rows, bias, y, ys); break;
    default: break;
  }
}

// Element i of the 16 rows of a float panel: F32, F16 or BF16 values.
template <TensorType T>
TARS_INLINE __m512 panel_row(const uint8_t* p, int64_t i) {
  if constexpr (T == TensorType::kF32) {
    return _mm512_loadu_ps(p + 64 * i);
  } else if constexpr (T == TensorType::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i)));
  } else {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
}

// C tokens against one float panel. With few tokens the FMA chains would be
// serial over k: then four independent chains take turns.
template <TensorType T, int C>
void f_tile(const uint8_t* panel, int64_t k, const float* x, int64_t xs, int t0, int n_rows, const float* bias,
            float* y, int64_t ys) {
  constexpr int kChains = C < 4 ? 4 : 1;
  const float* xc[C];
  __m512 acc[kChains][C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    xc[c] = x + (t0 + c) * xs;
    for (int h = 0; h < kChains; ++h) acc[h][c] = _mm512_setzero_ps();
  }
  int64_t i = 0;
  for (; i + kChains <= k; i += kChains) {
#pragma GCC unroll 4
    for (int h = 0; h < kChains; ++h) {
      const __m512 w = panel_row<T>(panel, i + h);
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) acc[h][c] = _mm512_fmadd_ps(w, _mm512_set1_ps(xc[c][i + h]), acc[h][c]);
    }
  }
  for (; i < k; ++i) {
    const __m512 w = panel_row<T>(panel, i);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[0][c] = _mm512_fmadd_ps(w, _mm512_set1_ps(xc[c][i]), acc[0][c]);
  }
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    for (int h = 1; h < kChains; ++h) acc[0][c] = _mm512_add_ps(acc[0][c], acc[h][c]);
    store_rows(y + (t0 + c) * ys, acc[0][c], n_rows, bias);
  }
}

constexpr int kTileF = 12;  // tokens per float tile

template <TensorType T>
void f_run(const uint8_t* p, int64_t k, const float* x, int64_t xs, int n, int n_rows, const float* bias, float* y,
           int64_t ys) {
  int t = 0;
  for (; t + kTileF <= n; t += kTileF) f_tile<T, kTileF>(p, k, x, xs, t, n_rows, bias, y, ys);
  switch (n - t) {
    case 1: f_tile<T, 1>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 2: f_tile<T, 2>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 3: f_tile<T, 3>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 4: f_tile<T, 4>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 5: f_tile<T, 5>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 6: f_tile<T, 6>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 7: f_tile<T, 7>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 8: f_tile<T, 8>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 9: f_tile<T, 9>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 10: f_tile<T, 10>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    case 11: f_tile<T, 11>(p, k, x, xs, t, n_rows, bias, y, ys); break;
    default: break;
  }
}

void gemm_f_run(const void* vp, int64_t k, const float* x, int64_t xs, int n, int n_rows, const float* bias,
                float* y, int64_t ys) {
  f_run<TensorType::kF32>(static_cast<const uint8_t*>(vp), k, x, xs, n, n_rows, bias, y, ys);
}

void panel_f_run(TensorType t, const void* vp, int64_t k, const float* x, int64_t xs, int n, int n_rows,
                 const float* bias, float* y, int64_t ys) {
  const uint8_t* p = static_cast<const uint8_t*>(vp);
  switch (t) {
    case TensorType::kF32: f_run<TensorType::kF32>(p, k, x, xs, n, n_rows, bias, y, ys); break;
    case TensorType::kF16: f_run<TensorType::kF16>(p, k, x, xs, n, n_rows, bias, y, ys); break;
    case TensorType::kBF16: f_run<TensorType::kBF16>(p, k, x, xs, n, n_rows, bias, y, ys); break;
    default: break;
  }
}

}  // namespace
}  // namespace avx512_gemm

void avx512_fill_gemm(KernelTable& t) {
  t.panel_q_run = avx512_gemm::panel_q_run;
  t.gemm_f_pack_f32 = avx512_gemm::gemm_f_pack_f32;
  t.gemm_f_pack_f16 = avx512_gemm::gemm_f_pack_f16;
  t.gemm_f_run = avx512_gemm::gemm_f_run;
  t.panel_f_run = avx512_gemm::panel_f_run;
}

}  // namespace tars::engine::cpu

#else
namespace tars::engine::cpu {
void avx512_fill_gemm(KernelTable&) {}
}  // namespace tars::engine::cpu
#endif
