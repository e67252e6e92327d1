// The scalar level: plain C++ versions of every kernel. They define what the
// SIMD levels compute (same activation quantization to the bit, same integer
// block sums) and run on any CPU.
#include <cmath>
#include <cstring>

#include "engine/half.h"
#include "engine/kernels_internal.h"
#include "engine/quant.h"

namespace tars::engine::cpu {
namespace scalar {  // hides the public names of kernels_cpu.h (dot_f32, swiglu, ...)
namespace {

// ---- activation quantization -----------------------------------------------
//
// Q8_0 / Q8_1: d = max|x| / 127 rounded to FP16 (nearest), q = x * (1/d)
// rounded to nearest even and clamped to +-127. Q8_K: the same with a float
// d per 256 elements. The SIMD levels compute exactly these bits.

float absmax(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) {
    float a = std::fabs(x[i]);
    m = a > m ? a : m;  // NaN never wins
  }
  return m;
}

int8_t round_q8(float v) {
  v = std::fmax(-127.0f, std::fmin(127.0f, v));  // NaN -> 127, like the SIMD min/max order
  return static_cast<int8_t>(std::nearbyint(v));
}

// Quantizes 32 values with the FP16-rounded scale; returns its bits and the quant sum.
uint16_t quant_block_q8(const float* x, int8_t* qs, int* sum) {
  const uint16_t dh = fp32_to_fp16(absmax(x, kQuantBlock) / 127.0f);
  const float d = fp16_to_fp32(dh);
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  int s = 0;
  for (int j = 0; j < kQuantBlock; ++j) {
    qs[j] = round_q8(x[j] * id);
    s += qs[j];
  }
  *sum = s;
  return dh;
}

void quantize_act_q8_0(const float* x, void* vy, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  int sum;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) y[b].d = quant_block_q8(x + b * kQuantBlock, y[b].qs, &sum);
}

void quantize_act_q8_1(const float* x, void* vy, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(vy);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int sum;
    y[b].d = quant_block_q8(x + b * kQuantBlock, y[b].qs, &sum);
    y[b].s = fp32_to_fp16(fp16_to_fp32(y[b].d) * static_cast<float>(sum));
  }
}

void quantize_act_q8_k(const float* x, void* vy, int64_t n) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(vy);
  for (int64_t b = 0; b < n / kQuantSuper; ++b, x += kQuantSuper) {
    const float d = absmax(x, kQuantSuper) / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int j = 0; j < kQuantSuper; ++j) y[b].qs[j] = round_q8(x[j] * id);
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += y[b].qs[16 * g + l];
      y[b].bsums[g] = static_cast<int16_t>(s);
    }
  }
}

// ---- legacy dot products: sum over blocks of (dw * da) * isum -------------------

float vec_dot_q4_0_q8_0(const void* vw, const void* va, int64_t n) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += ((w[b].qs[j] & 15) - 8) * a[b].qs[j] + ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + 16];
    }
    sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_1 / Q5_1: y = d q + m, so w . a = dw da sum(q a) + m (da sum(a)) = ... + m * s.
float vec_dot_q4_1_q8_1(const void* vw, const void* va, int64_t n) {
  const BlockQ4_1* w = static_cast<const BlockQ4_1*>(vw);
  const BlockQ8_1* a = static_cast<const BlockQ8_1*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += (w[b].qs[j] & 15) * a[b].qs[j] + (w[b].qs[j] >> 4) * a[b].qs[j + 16];
    }
    sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum) +
           fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
  }
  return sum;
}

// The 5-bit quant j of a Q5 block (0..31).
int q5_value(const uint8_t* qs, const uint8_t* qh, int j) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  int lo = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
  return lo | static_cast<int>(((h >> j) & 1u) << 4);
}

float vec_dot_q5_0_q8_0(const void* vw, const void* va, int64_t n) {
  const BlockQ5_0* w = static_cast<const BlockQ5_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int isum = 0;
    for (int j = 0; j < 32; ++j) isum += (q5_value(w[b].qs, w[b].qh, j) - 16) * a[b].qs[j];
    sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum);
  }
  return sum;
}

float vec_dot_q5_1_q8_1(const void* vw, const void* va, int64_t n) {
  const BlockQ5_1* w = static_cast<const BlockQ5_1*>(vw);
  const BlockQ8_1* a = static_cast<const BlockQ8_1*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int isum = 0;
    for (int j = 0; j < 32; ++j) isum += q5_value(w[b].qs, w[b].qh, j) * a[b].qs[j];
    sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum) +
           fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
  }
  return sum;
}

float vec_dot_q8_0_q8_0(const void* vw, const void* va, int64_t n) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int isum = 0;
    for (int j = 0; j < 32; ++j) isum += w[b].qs[j] * a[b].qs[j];
    sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * static_cast<float>(isum);
  }
  return sum;
}

// ---- k-quant dot products: per super-block, integer sums scaled by the
// 6/8-bit sub-block scales, then (dw da) * isum - (dmin da) * msum -----------

void k_scale_min(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Shared by Q4_K and Q5_K: qh is null for Q4_K.
float dot_q45_k(const uint8_t* scales, const uint8_t* qs, const uint8_t* qh, float dw, float dmin,
                const BlockQ8_K& a) {
  int isum = 0, msum = 0;
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    k_scale_min(j, scales, &sc, &mn);
    const int c = j / 2, shift = (j % 2) * 4;
    int s = 0;
    for (int l = 0; l < 32; ++l) {
      int q = (qs[32 * c + l] >> shift) & 15;
      if (qh) q |= ((qh[l] >> j) & 1) << 4;
      s += q * a.qs[32 * j + l];
    }
    isum += sc * s;
    msum += mn * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
  }
  return dw * a.d * static_cast<float>(isum) - dmin * a.d * static_cast<float>(msum);
}

float vec_dot_q4_k_q8_k(const void* vw, const void* va, int64_t n) {
  const BlockQ4_K* w = static_cast<const BlockQ4_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantSuper; ++b) {
    sum += dot_q45_k(w[b].scales, w[b].qs, nullptr, fp16_to_fp32(w[b].d),
                     fp16_to_fp32(w[b].dmin), a[b]);
  }
  return sum;
}

float vec_dot_q5_k_q8_k(const void* vw, const void* va, int64_t n) {
  const BlockQ5_K* w = static_cast<const BlockQ5_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantSuper; ++b) {
    sum += dot_q45_k(w[b].scales, w[b].qs, w[b].qh, fp16_to_fp32(w[b].d),
                     fp16_to_fp32(w[b].dmin), a[b]);
  }
  return sum;
}

float vec_dot_q6_k_q8_k(const void* vw, const void* va, int64_t n) {
  const BlockQ6_K* w = static_cast<const BlockQ6_K*>(vw);
  const BlockQ8_K* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantSuper; ++b) {
    int isum = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      for (int part = 0; part < 4; ++part) {  // elements 128h + 32 part + l
        int s16[2] = {0, 0};
        for (int l = 0; l < 32; ++l) {
          const int byte = ql[l + 32 * (part % 2)];
          const int lo = part < 2 ? (byte & 15) : (byte >> 4);
          const int q = lo | (((qh[l] >> (2 * part)) & 3) << 4);
          s16[l / 16] += (q - 32) * a[b].qs[128 * h + 32 * part + l];
        }
        const int j = (128 * h + 32 * part) / 16;
        isum += w[b].scales[j] * s16[0] + w[b].scales[j + 1] * s16[1];
      }
    }
    sum += fp16_to_fp32(w[b].d) * a[b].d * static_cast<float>(isum);
  }
  return sum;
}

// ---- float weights -----------------------------------------------------------

float vec_dot_f32(const void* w, const void* a, int64_t n) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

float vec_dot_f16(const void* w, const void* a, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const float* y = static_cast<const float*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += fp16_to_fp32(x[i]) * y[i];
  return s;
}

float vec_dot_bf16(const void* w, const void* a, int64_t n) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const float* y = static_cast<const float*>(a);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += bf16_to_fp32(x[i]) * y[i];
  return s;
}

float dot_f32(const float* a, const float* b, int64_t n) { return vec_dot_f32(a, b, n); }

void axpy_f32(float s, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += s * x[i];
}

void axpy_f16(float s, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += s * fp16_to_fp32(x[i]);
}

void f16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

void f32_to_f16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

// exp(x) to about 2 ulp: x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor
// series to r^7, times 2^n. The SIMD levels evaluate the same formula.
float exp_approx(float x) {
  if (x < -87.0f) return 0.0f;
  x = std::fmin(x, 88.0f);
  const float n = std::nearbyint(x * 1.44269504f);
  float r = std::fma(n, -0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.0f / 5040;
  p = std::fma(p, r, 1.0f / 720);
  p = std::fma(p, r, 1.0f / 120);
  p = std::fma(p, r, 1.0f / 24);
  p = std::fma(p, r, 1.0f / 6);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  uint32_t bits = static_cast<uint32_t>(static_cast<int>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

void swiglu(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + exp_approx(-g[i])) * u[i];
}

float softmax_exp(float* x, int64_t n, float max) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = exp_approx(x[i] - max);
    sum += x[i];
  }
  return sum;
}

void scale_mul(float* x, float s, const float* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] * s * g[i];
}

void attn_group(const float* q, int group, int hd, const void* kp, const void* vp, int64_t stride, bool f16,
                int n_keys, float scale, float* scores, float* out, float* tmp) {
  auto row = [&](const void* base, int j) -> const float* {
    if (!f16) return static_cast<const float*>(base) + j * stride;
    f16_to_f32(static_cast<const uint16_t*>(base) + j * stride, tmp, hd);
    return tmp;
  };
  for (int j = 0; j < n_keys; ++j) {
    const float* k = row(kp, j);
    for (int h = 0; h < group; ++h) scores[h * n_keys + j] = dot_f32(q + h * hd, k, hd) * scale;
  }
  for (int h = 0; h < group; ++h) {
    float* sh = scores + h * n_keys;
    float mx = sh[0];
    for (int j = 1; j < n_keys; ++j) mx = std::fmax(mx, sh[j]);
    const float inv = 1.0f / softmax_exp(sh, n_keys, mx);
    for (int j = 0; j < n_keys; ++j) sh[j] *= inv;
  }
  std::memset(out, 0, sizeof(float) * group * hd);
  for (int j = 0; j < n_keys; ++j) {
    const float* v = row(vp, j);
    for (int h = 0; h < group; ++h) axpy_f32(scores[h * n_keys + j], v, out + h * hd, hd);
  }
}

KernelTable make_table() {
  KernelTable t{};
  t.isa = Isa::kScalar;
  auto slot = [](TensorType type) { return static_cast<int>(type); };
  t.vec_dot[slot(TensorType::kQ4_0)] = vec_dot_q4_0_q8_0;
  t.vec_dot[slot(TensorType::kQ4_1)] = vec_dot_q4_1_q8_1;
  t.vec_dot[slot(TensorType::kQ5_0)] = vec_dot_q5_0_q8_0;
  t.vec_dot[slot(TensorType::kQ5_1)] = vec_dot_q5_1_q8_1;
  t.vec_dot[slot(TensorType::kQ8_0)] = vec_dot_q8_0_q8_0;
  t.vec_dot[slot(TensorType::kQ4_K)] = vec_dot_q4_k_q8_k;
  t.vec_dot[slot(TensorType::kQ5_K)] = vec_dot_q5_k_q8_k;
  t.vec_dot[slot(TensorType::kQ6_K)] = vec_dot_q6_k_q8_k;
  t.vec_dot[slot(TensorType::kF32)] = vec_dot_f32;
  t.vec_dot[slot(TensorType::kF16)] = vec_dot_f16;
  t.vec_dot[slot(TensorType::kBF16)] = vec_dot_bf16;
  t.quantize_act[slot(TensorType::kQ8_0)] = quantize_act_q8_0;
  t.quantize_act[slot(TensorType::kQ8_1)] = quantize_act_q8_1;
  t.quantize_act[slot(TensorType::kQ8_K)] = quantize_act_q8_k;
  t.dot_f32 = dot_f32;
  t.axpy_f32 = axpy_f32;
  t.axpy_f16 = axpy_f16;
  t.f16_to_f32 = f16_to_f32;
  t.f32_to_f16 = f32_to_f16;
  t.swiglu = swiglu;
  t.softmax_exp = softmax_exp;
  t.scale_mul = scale_mul;
  t.attn_group = attn_group;
  return t;
}

}  // namespace
}  // namespace scalar

const KernelTable* kernel_table_scalar() {
  static const KernelTable table = scalar::make_table();
  return &table;
}

}  // namespace tars::engine::cpu
