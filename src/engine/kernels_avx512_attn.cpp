// Attention for a block of query tokens at once (prompt processing) on the
// AVX-512 level: the "flash attention" scheme on the CPU. For one KV head and
// up to kAttnTileRows query rows (tokens x the query heads sharing the KV
// head), keys and values are taken a block at a time, converted from F16
// once for all rows, and folded into a running softmax: scores, running
// max, running sum and output are kept with the query rows across the
// vector lanes (transposed), so every product is a broadcast FMA over 16
// rows and no horizontal sums are needed.
//
// Compiled with the AVX-512 flags; everything but avx512_fill_attn has
// internal linkage (see kernels_internal.h).
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_*), falsely.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstring>

namespace tars::engine::cpu {
namespace avx512_attn {  // hides the public names of kernels_cpu.h
namespace {

constexpr int KB = kAttnKeyBlock;  // keys per block
constexpr int MR = kAttnTileRows;  // query rows at most (a multiple of 16)
constexpr int MV = MR / 16;        // row vectors at most

// exp(x), the formula of kernels_scalar.cpp's exp_approx on 16 lanes.
inline __m512 exp16(__m512 x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_NLT_UQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_maskz_mov_ps(keep, _mm512_mul_ps(p, _mm512_castsi512_ps(e)));
}

// Rows j0 .. j0+nj of a K or V slice as floats (stride hd) in dst.
void rows_f32(const void* base, int64_t stride, bool f16, int j0, int nj, int hd, float* dst) {
  for (int j = 0; j < nj; ++j) {
    if (f16) {
      const uint16_t* s = static_cast<const uint16_t*>(base) + (j0 + j) * stride;
      for (int i = 0; i < hd; i += 16) {
        _mm512_storeu_ps(dst + j * hd + i,
                         _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
      }
    } else {
      std::memcpy(dst + j * hd, static_cast<const float*>(base) + (j0 + j) * stride, sizeof(float) * hd);
    }
  }
}

// St[j][rows] += scores of keys j (two at a time) against the rows of Qt.
template <int V>
void scores(const float* qt, const float* kf, int nj, int hd, float* st) {
  int j = 0;
  for (; j + 2 <= nj; j += 2) {
    __m512 a0[V], a1[V];
    for (int v = 0; v < V; ++v) a0[v] = a1[v] = _mm512_setzero_ps();
    const float* k0 = kf + j * hd;
    const float* k1 = k0 + hd;
    for (int d = 0; d < hd; ++d) {
      const __m512 b0 = _mm512_set1_ps(k0[d]), b1 = _mm512_set1_ps(k1[d]);
      for (int v = 0; v < V; ++v) {
        const __m512 q = _mm512_loadu_ps(qt + d * MR + 16 * v);
        a0[v] = _mm512_fmadd_ps(b0, q, a0[v]);
        a1[v] = _mm512_fmadd_ps(b1, q, a1[v]);
      }
    }
    for (int v = 0; v < V; ++v) {
      _mm512_storeu_ps(st + j * MR + 16 * v, a0[v]);
      _mm512_storeu_ps(st + (j + 1) * MR + 16 * v, a1[v]);
    }
  }
  for (; j < nj; ++j) {
    __m512 a0[V];
    for (int v = 0; v < V; ++v) a0[v] = _mm512_setzero_ps();
    const float* k0 = kf + j * hd;
    for (int d = 0; d < hd; ++d) {
      const __m512 b0 = _mm512_set1_ps(k0[d]);
      for (int v = 0; v < V; ++v) a0[v] = _mm512_fmadd_ps(b0, _mm512_loadu_ps(qt + d * MR + 16 * v), a0[v]);
    }
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(st + j * MR + 16 * v, a0[v]);
  }
}

// Ot[d][rows] += sum_j Vf[j][d] * St[j][rows], two dimensions at a time.
template <int V>
void weighted_values(const float* st, const float* vf, int nj, int hd, float* ot) {
  for (int d = 0; d < hd; d += 2) {
    __m512 a0[V], a1[V];
    for (int v = 0; v < V; ++v) {
      a0[v] = _mm512_loadu_ps(ot + d * MR + 16 * v);
      a1[v] = _mm512_loadu_ps(ot + (d + 1) * MR + 16 * v);
    }
    for (int j = 0; j < nj; ++j) {
      const __m512 b0 = _mm512_set1_ps(vf[j * hd + d]), b1 = _mm512_set1_ps(vf[j * hd + d + 1]);
      for (int v = 0; v < V; ++v) {
        const __m512 p = _mm512_loadu_ps(st + j * MR + 16 * v);
        a0[v] = _mm512_fmadd_ps(b0, p, a0[v]);
        a1[v] = _mm512_fmadd_ps(b1, p, a1[v]);
      }
    }
    for (int v = 0; v < V; ++v) {
      _mm512_storeu_ps(ot + d * MR + 16 * v, a0[v]);
      _mm512_storeu_ps(ot + (d + 1) * MR + 16 * v, a1[v]);
    }
  }
}

template <int V>
void tile(const float* q, int64_t q_stride, int nt, int group, int hd, const int32_t* pos, const void* kp,
          const void* vp, int64_t kv_stride, bool f16, float scale, float* out, int64_t out_stride,
          float* scratch) {
  float* qt = scratch;               // [hd][MR]  queries, transposed, pre-scaled
  float* ot = qt + hd * MR;          // [hd][MR]  output accumulators, transposed
  float* st = ot + hd * MR;          // [KB][MR]  scores / weights of one key block
  float* kf = st + KB * MR;          // [KB][hd]  keys of the block as float
  float* vf = kf + KB * hd;          // [KB][hd]  values of the block as float
  alignas(64) float mrow[MR], lrow[MR];
  alignas(64) int32_t rpos[MR];
  const int m = nt * group;
  for (int r = 0; r < V * 16; ++r) {
    const int t = r < m ? r / group : nt - 1;  // padding rows repeat the last token
    rpos[r] = pos[t];
    mrow[r] = -INFINITY;
    lrow[r] = 0.0f;
    const float* qr = q + t * q_stride + (r < m ? r % group : 0) * hd;
    for (int d = 0; d < hd; ++d) qt[d * MR + r] = qr[d] * scale;
  }
  for (int i = 0; i < hd * MR; ++i) ot[i] = 0.0f;
  const int max_pos = pos[nt - 1], min_pos = pos[0];
  for (int j0 = 0; j0 <= max_pos; j0 += KB) {
    const int nj = max_pos + 1 - j0 < KB ? max_pos + 1 - j0 : KB;
    rows_f32(kp, kv_stride, f16, j0, nj, hd, kf);
    scores<V>(qt, kf, nj, hd, st);
    if (j0 + nj - 1 > min_pos) {  // causal mask: key j0+j is hidden from rows at earlier positions
      for (int j = 0; j < nj; ++j) {
        const __m512i key = _mm512_set1_epi32(j0 + j);
        for (int v = 0; v < V; ++v) {
          const __mmask16 hide = _mm512_cmpgt_epi32_mask(key, _mm512_load_si512(rpos + 16 * v));
          float* s = st + j * MR + 16 * v;
          _mm512_storeu_ps(s, _mm512_mask_mov_ps(_mm512_loadu_ps(s), hide, _mm512_set1_ps(-INFINITY)));
        }
      }
    }
    // Running softmax: new max, rescale of what came before, weights.
    for (int v = 0; v < V; ++v) {
      __m512 mx = _mm512_load_ps(mrow + 16 * v);
      for (int j = 0; j < nj; ++j) mx = _mm512_max_ps(mx, _mm512_loadu_ps(st + j * MR + 16 * v));
      const __m512 c = exp16(_mm512_sub_ps(_mm512_load_ps(mrow + 16 * v), mx));
      __m512 sum = _mm512_setzero_ps();
      for (int j = 0; j < nj; ++j) {
        float* s = st + j * MR + 16 * v;
        const __m512 p = exp16(_mm512_sub_ps(_mm512_loadu_ps(s), mx));
        _mm512_storeu_ps(s, p);
        sum = _mm512_add_ps(sum, p);
      }
      _mm512_store_ps(lrow + 16 * v, _mm512_fmadd_ps(_mm512_load_ps(lrow + 16 * v), c, sum));
      _mm512_store_ps(mrow + 16 * v, mx);
      for (int d = 0; d < hd; ++d) {
        float* o = ot + d * MR + 16 * v;
        _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), c));
      }
    }
    rows_f32(vp, kv_stride, f16, j0, nj, hd, vf);
    weighted_values<V>(st, vf, nj, hd, ot);
  }
  for (int r = 0; r < m; ++r) {
    const float inv = 1.0f / lrow[r];
    float* o = out + (r / group) * out_stride + (r % group) * hd;
    for (int d = 0; d < hd; ++d) o[d] = ot[d * MR + r] * inv;
  }
}

void attn_tile(const float* q, int64_t q_stride, int nt, int group, int hd, const int32_t* pos, const void* k,
               const void* v, int64_t kv_stride, bool f16, float scale, float* out, int64_t out_stride,
               float* scratch) {
  switch ((nt * group + 15) / 16) {
    case 1: tile<1>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
    case 2: tile<2>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
    case 3: tile<3>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
    case 4: tile<4>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
    case 5: tile<5>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
    case 6: tile<6>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
    case 7: tile<7>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
    default: tile<8>(q, q_stride, nt, group, hd, pos, k, v, kv_stride, f16, scale, out, out_stride, scratch); break;
  }
}

}  // namespace
}  // namespace avx512_attn

void avx512_fill_attn(KernelTable& t) { t.attn_tile = avx512_attn::attn_tile; }

}  // namespace tars::engine::cpu

#else
namespace tars::engine::cpu {
void avx512_fill_attn(KernelTable&) {}
}  // namespace tars::engine::cpu
#endif
