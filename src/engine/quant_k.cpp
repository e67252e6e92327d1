// k-quants: Q4_K, Q5_K, Q6_K (weights) and Q8_K (activations), super-blocks
// of 256 elements. Layouts are described in quant.h.
//
// Dequantization (bit-exact with GGUF files written by other tools; every
// product is exact, see quant_internal.h):
//   Q4_K / Q5_K: d1 = d * sc; m1 = dmin * mn; y = d1 * q - m1
//   Q6_K:        y = (d * scales[j]) * (q - 32)
//   Q8_K:        y = d * q
//
// Quantization (our own): each sub-block's scale (and min) is found by a
// small search that minimises the squared error, as the formats intend; the
// sub-block scales are then quantized to 6 or 8 bits against one FP16
// super-block scale, and finally every element is rounded to the nearest
// level of the *stored* (quantized) scale and min.

#include <cstring>

#include "engine/quant_internal.h"

namespace tars::engine::quant_detail {

namespace {

// ---- Q4_K / Q5_K scale packing ----

// Sub-block j's 6-bit scale and min from the 12 packed bytes.
void unpack_scale_min(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Inverse of unpack_scale_min for all 8 sub-blocks (values 0..63).
void pack_scales_mins(const uint8_t* sc, const uint8_t* mn, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4));
  }
}

// ---- sub-block fits ----

// Fits x[0..n) ~ s * q - m with q in 0..nmax, s >= 0 and m >= 0 (the formats
// store the min as an unsigned number that is subtracted), minimising the
// squared error. Candidates: grids over [min(0, min x), max x] with
// nmax - 1 ... nmax + 1 steps (tenths); for each, the rounded q are kept and
// (s, m) re-fitted by least squares. The best candidate wins.
void fit_scale_min(const float* x, int n, int nmax, float* s_out, float* m_out) {
  float lo = 0.0f, hi = -INFINITY;
  for (int i = 0; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  if (!(hi > lo)) {  // constant block (or NaN): x = -m exactly
    *s_out = 0.0f;
    *m_out = std::isfinite(lo) ? -lo : 0.0f;
    return;
  }
  double best_err = INFINITY;
  double best_s = (static_cast<double>(hi) - lo) / nmax, best_b = lo;
  for (int k = -10; k <= 10; ++k) {
    const double iscale = (nmax + 0.1 * k) / (static_cast<double>(hi) - lo);
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    int qv[kQuantSuper];
    for (int i = 0; i < n; ++i) {
      const int q = quant_round_clamp(static_cast<float>(iscale * (x[i] - lo)), 0, nmax);
      qv[i] = q;
      sq += q;
      sqq += static_cast<double>(q) * q;
      sx += x[i];
      sqx += q * static_cast<double>(x[i]);
    }
    // Least squares for x ~ s*q + b; b > 0 is not representable, so then
    // b = 0 and s fits alone.
    const double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double s = (n * sqx - sq * sx) / det;
    double b = (sqq * sx - sq * sqx) / det;
    if (b > 0) {
      b = 0;
      s = sqx / sqq;
    }
    if (s <= 0) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * qv[i] + b - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_s = s;
      best_b = b;
    }
  }
  *s_out = static_cast<float>(best_s);
  *m_out = static_cast<float>(-best_b);
}

// Fits x[0..n) ~ s * q with q in -32..31 (Q6_K), s of either sign,
// minimising the squared error. Candidates: the element of largest magnitude
// mapped to -(32 + k/10) or +(31 + k/10), k in -10..10; for each, s is
// re-fitted by least squares.
float fit_scale_symmetric(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f || !std::isfinite(amax)) return amax == 0.0f ? 0.0f : max / -32.0f;
  double best_err = INFINITY, best_s = max / -32.0;
  for (int side = 0; side < 2; ++side) {
    for (int k = -10; k <= 10; ++k) {
      const double target = side == 0 ? -(32 + 0.1 * k) : (31 + 0.1 * k);
      const double iscale = target / max;
      double sqq = 0, sqx = 0, sxx = 0;
      for (int i = 0; i < n; ++i) {
        const int q = quant_round_clamp(static_cast<float>(iscale * x[i]), -32, 31);
        sqq += static_cast<double>(q) * q;
        sqx += q * static_cast<double>(x[i]);
        sxx += static_cast<double>(x[i]) * x[i];
      }
      if (sqq <= 0) continue;
      const double err = sxx - sqx * sqx / sqq;  // residual of the least-squares s
      if (err < best_err) {
        best_err = err;
        best_s = sqx / sqq;
      }
    }
  }
  return static_cast<float>(best_s);
}

// Q4_K / Q5_K: 8 sub-blocks of 32. Writes the FP16 super-scales, packed
// 6-bit scales/mins and the quants (0..nmax) of the 256 elements to L.
void quantize_k_affine(const float* x, int nmax, uint16_t* dh, uint16_t* dminh,
                       uint8_t* scales, uint8_t* L) {
  float s[8], m[8];
  float max_s = 0.0f, max_m = 0.0f;
  for (int j = 0; j < 8; ++j) {
    fit_scale_min(x + 32 * j, 32, nmax, &s[j], &m[j]);
    if (s[j] > max_s) max_s = s[j];
    if (m[j] > max_m) max_m = m[j];
  }
  *dh = fp32_to_fp16(max_s / 63.0f);
  *dminh = fp32_to_fp16(max_m / 63.0f);
  const float d = fp16_to_fp32(*dh);
  const float dmin = fp16_to_fp32(*dminh);
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(d > 0.0f ? quant_round_clamp(s[j] / d, 0, 63) : 0);
    mn[j] = static_cast<uint8_t>(dmin > 0.0f ? quant_round_clamp(m[j] / dmin, 0, 63) : 0);
  }
  pack_scales_mins(sc, mn, scales);
  // Final quants against the stored scale and min, computed as the
  // dequantizer will: y = (d * sc) * q - (dmin * mn).
  for (int j = 0; j < 8; ++j) {
    const float d1 = d * static_cast<float>(sc[j]);
    const float m1 = dmin * static_cast<float>(mn[j]);
    for (int i = 0; i < 32; ++i) {
      const float v = x[32 * j + i];
      L[32 * j + i] = static_cast<uint8_t>(d1 > 0.0f ? quant_round_clamp((v + m1) / d1, 0, nmax) : 0);
    }
  }
}

// Low 4 bits of 256 quants into Q4_K/Q5_K order: qs[32c + l] holds element
// 64c + l (low nibble) and 64c + 32 + l (high nibble).
void pack_k_nibbles(const uint8_t* L, uint8_t* qs) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] =
          static_cast<uint8_t>((L[64 * c + l] & 0x0f) | ((L[64 * c + 32 + l] & 0x0f) << 4));
    }
  }
}

}  // namespace

// ---- dequantize ----

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int c = 0; c < 4; ++c, q += 32) {
      int sc, mn;
      unpack_scale_min(2 * c, x[i].scales, &sc, &mn);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(mn);
      unpack_scale_min(2 * c + 1, x[i].scales, &sc, &mn);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(mn);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int c = 0; c < 4; ++c, ql += 32) {
      int sc, mn;
      unpack_scale_min(2 * c, x[i].scales, &sc, &mn);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(mn);
      unpack_scale_min(2 * c + 1, x[i].scales, &sc, &mn);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(mn);
      const int b1 = 2 * c, b2 = 2 * c + 1;  // qh bit of each half-chunk
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] & 0x0f) | (((qh[l] >> b1) & 1) << 4);
        *y++ = d1 * static_cast<float>(q) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] >> 4) | (((qh[l] >> b2) & 1) << 4);
        *y++ = d2 * static_cast<float>(q) - m2;
      }
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8, y += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void dequantize_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQuantSuper) {
    for (int j = 0; j < kQuantSuper; ++j) y[j] = x[i].d * static_cast<float>(x[i].qs[j]);
  }
}

// ---- quantize ----

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[kQuantSuper];
  for (int64_t i = 0; i < nb; ++i, x += kQuantSuper) {
    quantize_k_affine(x, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    pack_k_nibbles(L, y[i].qs);
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[kQuantSuper];
  for (int64_t i = 0; i < nb; ++i, x += kQuantSuper) {
    quantize_k_affine(x, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
    pack_k_nibbles(L, y[i].qs);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        y[i].qh[l] |= static_cast<uint8_t>(((L[64 * c + l] >> 4) & 1) << (2 * c));
        y[i].qh[l] |= static_cast<uint8_t>(((L[64 * c + 32 + l] >> 4) & 1) << (2 * c + 1));
      }
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQuantSuper) {
    float s[16];
    float max_s = 0.0f, amax_s = 0.0f;
    for (int j = 0; j < 16; ++j) {
      s[j] = fit_scale_symmetric(x + 16 * j, 16);
      if (std::fabs(s[j]) > amax_s) {
        amax_s = std::fabs(s[j]);
        max_s = s[j];
      }
    }
    // The largest sub-block scale maps to -128, the int8 level with no
    // positive twin, so d carries that scale's sign.
    y[i].d = fp32_to_fp16(max_s / -128.0f);
    const float d = fp16_to_fp32(y[i].d);
    for (int j = 0; j < 16; ++j) {
      y[i].scales[j] = static_cast<int8_t>(d != 0.0f ? quant_round_clamp(s[j] / d, -128, 127) : 0);
    }
    uint8_t L[kQuantSuper];  // q + 32, 0..63
    for (int j = 0; j < 16; ++j) {
      const float s_eff = d * static_cast<float>(y[i].scales[j]);
      for (int l = 0; l < 16; ++l) {
        const float v = x[16 * j + l];
        L[16 * j + l] =
            static_cast<uint8_t>((s_eff != 0.0f ? quant_round_clamp(v / s_eff, -32, 31) : 0) + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const uint8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
        ql[l + 32] = static_cast<uint8_t>((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
        qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                     ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQuantSuper) {
    float amax = 0.0f;
    for (int j = 0; j < kQuantSuper; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    y[i].d = d;
    for (int j = 0; j < kQuantSuper; ++j) {
      y[i].qs[j] = static_cast<int8_t>(d != 0.0f ? quant_round_clamp(x[j] / d, -127, 127) : 0);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

}  // namespace tars::engine::quant_detail
