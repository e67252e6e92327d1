#pragma once
// Helpers of the kernel tests: random quantized rows of every weight and
// activation type (with unit or random scales), and an independent
// double-precision evaluation of what each dot product is defined to be.

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/half.h"
#include "engine/kernels_cpu.h"
#include "engine/quant.h"
#include "engine/tensor_type.h"

namespace tars::engine::test_kernels {

// The weight types with an integer dot product.
inline const std::vector<TensorType>& quant_weight_types() {
  static const std::vector<TensorType> v = {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0,
                                            TensorType::kQ5_1, TensorType::kQ8_0, TensorType::kQ4_K,
                                            TensorType::kQ5_K, TensorType::kQ6_K};
  return v;
}

inline std::string type_name(TensorType t) { return std::string(tensor_type_name(t)); }

// The levels this machine can run, scalar first.
inline std::vector<cpu::Isa> machine_levels() {
  std::vector<cpu::Isa> v;
  for (int i = 0; i <= static_cast<int>(cpu::isa_detected()); ++i) v.push_back(static_cast<cpu::Isa>(i));
  return v;
}

inline std::string level_name(cpu::Isa isa) { return std::string(cpu::isa_name(isa)); }

inline int64_t block_elems(TensorType t) { return quant_block_info(t).block_elems; }

// Random scale: 1 (unit), or a random positive FP16 value.
struct ScaleGen {
  bool unit;
  std::mt19937& rng;
  uint16_t h() {
    if (unit) return fp32_to_fp16(1.0f);
    std::uniform_real_distribution<float> u(0.002f, 0.2f);
    return fp32_to_fp16(u(rng));
  }
  float f() {
    if (unit) return 1.0f;
    std::uniform_real_distribution<float> u(0.002f, 0.2f);
    return u(rng);
  }
};

// A row of n elements of weight type t with random quants (every bit
// pattern the format allows; Q8_0 includes -128, which other quantizers may
// write) and unit or random scales.
inline std::vector<uint8_t> random_weight_row(TensorType t, int64_t n, bool unit_scales, std::mt19937& rng) {
  std::vector<uint8_t> row(quant_row_bytes(t, n));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : row) b = static_cast<uint8_t>(byte(rng));
  ScaleGen sg{unit_scales, rng};
  const int64_t nb = n / block_elems(t);
  for (int64_t i = 0; i < nb; ++i) {
    switch (t) {
      case TensorType::kQ4_0: reinterpret_cast<BlockQ4_0*>(row.data())[i].d = sg.h(); break;
      case TensorType::kQ4_1: {
        auto& b = reinterpret_cast<BlockQ4_1*>(row.data())[i];
        b.d = sg.h();
        b.m = unit_scales ? fp32_to_fp16(1.0f) : fp32_to_fp16(-0.5f * fp16_to_fp32(sg.h()) * 8);
        break;
      }
      case TensorType::kQ5_0: reinterpret_cast<BlockQ5_0*>(row.data())[i].d = sg.h(); break;
      case TensorType::kQ5_1: {
        auto& b = reinterpret_cast<BlockQ5_1*>(row.data())[i];
        b.d = sg.h();
        b.m = unit_scales ? fp32_to_fp16(1.0f) : fp32_to_fp16(-0.5f * fp16_to_fp32(sg.h()) * 16);
        break;
      }
      case TensorType::kQ8_0: reinterpret_cast<BlockQ8_0*>(row.data())[i].d = sg.h(); break;
      case TensorType::kQ4_K: {
        auto& b = reinterpret_cast<BlockQ4_K*>(row.data())[i];
        b.d = sg.h();
        b.dmin = sg.h();
        break;
      }
      case TensorType::kQ5_K: {
        auto& b = reinterpret_cast<BlockQ5_K*>(row.data())[i];
        b.d = sg.h();
        b.dmin = sg.h();
        break;
      }
      case TensorType::kQ6_K: reinterpret_cast<BlockQ6_K*>(row.data())[i].d = sg.h(); break;
      default: break;
    }
  }
  return row;
}

// A row of activation blocks (Q8_0, Q8_1, Q8_K) with quants in -max_q..max_q
// and consistent sums, unit or random scales.
inline std::vector<uint8_t> random_act_row(TensorType at, int64_t n, bool unit_scales, std::mt19937& rng,
                                           int max_q = 127) {
  std::vector<uint8_t> row(quant_row_bytes(at, n));
  std::uniform_int_distribution<int> q(-max_q, max_q);
  ScaleGen sg{unit_scales, rng};
  const int64_t nb = n / block_elems(at);
  for (int64_t i = 0; i < nb; ++i) {
    if (at == TensorType::kQ8_K) {
      auto& b = reinterpret_cast<BlockQ8_K*>(row.data())[i];
      b.d = sg.f();
      for (int g = 0; g < 16; ++g) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += (b.qs[16 * g + l] = static_cast<int8_t>(q(rng)));
        b.bsums[g] = static_cast<int16_t>(s);
      }
    } else if (at == TensorType::kQ8_1) {
      auto& b = reinterpret_cast<BlockQ8_1*>(row.data())[i];
      b.d = sg.h();
      int s = 0;
      for (auto& v : b.qs) s += (v = static_cast<int8_t>(q(rng)));
      b.s = fp32_to_fp16(fp16_to_fp32(b.d) * static_cast<float>(s));
    } else {
      auto& b = reinterpret_cast<BlockQ8_0*>(row.data())[i];
      b.d = sg.h();
      for (auto& v : b.qs) v = static_cast<int8_t>(q(rng));
    }
  }
  return row;
}

// ---- the definition, in double precision ---------------------------------------

// Weight element j of a row as (scale part, min part): w_j = a_j + b_j.
// Q4_1 / Q5_1 report their min separately (min_terms) because their dot
// product is defined with the activation block's stored sum s.
struct DoubleRow {
  std::vector<double> w;        // d*q (or d*sc*q - dmin*mn for the k-quants)
  std::vector<double> block_m;  // Q4_1 / Q5_1: m per block (else empty)
};

inline int q5(const uint8_t* qs, const uint8_t* qh, int j) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  const int lo = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
  return lo | static_cast<int>(((h >> j) & 1u) << 4);
}

inline DoubleRow weight_double(TensorType t, const uint8_t* row, int64_t n) {
  DoubleRow r;
  r.w.resize(n);
  const int64_t nb = n / block_elems(t);
  auto h = [](uint16_t v) { return static_cast<double>(fp16_to_fp32(v)); };
  for (int64_t i = 0; i < nb; ++i) {
    switch (t) {
      case TensorType::kQ4_0: {
        const auto& b = reinterpret_cast<const BlockQ4_0*>(row)[i];
        for (int j = 0; j < 32; ++j) r.w[32 * i + j] = h(b.d) * ((j < 16 ? b.qs[j] & 15 : b.qs[j - 16] >> 4) - 8);
        break;
      }
      case TensorType::kQ4_1: {
        const auto& b = reinterpret_cast<const BlockQ4_1*>(row)[i];
        for (int j = 0; j < 32; ++j) r.w[32 * i + j] = h(b.d) * (j < 16 ? b.qs[j] & 15 : b.qs[j - 16] >> 4);
        r.block_m.push_back(h(b.m));
        break;
      }
      case TensorType::kQ5_0: {
        const auto& b = reinterpret_cast<const BlockQ5_0*>(row)[i];
        for (int j = 0; j < 32; ++j) r.w[32 * i + j] = h(b.d) * (q5(b.qs, b.qh, j) - 16);
        break;
      }
      case TensorType::kQ5_1: {
        const auto& b = reinterpret_cast<const BlockQ5_1*>(row)[i];
        for (int j = 0; j < 32; ++j) r.w[32 * i + j] = h(b.d) * q5(b.qs, b.qh, j);
        r.block_m.push_back(h(b.m));
        break;
      }
      case TensorType::kQ8_0: {
        const auto& b = reinterpret_cast<const BlockQ8_0*>(row)[i];
        for (int j = 0; j < 32; ++j) r.w[32 * i + j] = h(b.d) * b.qs[j];
        break;
      }
      case TensorType::kQ4_K:
      case TensorType::kQ5_K: {
        const bool five = t == TensorType::kQ5_K;
        const uint8_t* base = row + i * (five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
        uint16_t d, dmin;
        std::memcpy(&d, base, 2);
        std::memcpy(&dmin, base + 2, 2);
        const uint8_t* sc = base + 4;
        const uint8_t* qh = five ? base + 16 : nullptr;
        const uint8_t* qs = base + (five ? 48 : 16);
        for (int j = 0; j < 8; ++j) {
          int s, m;
          if (j < 4) {
            s = sc[j] & 63;
            m = sc[j + 4] & 63;
          } else {
            s = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
            m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
          }
          for (int l = 0; l < 32; ++l) {
            int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
            if (five) q |= ((qh[l] >> j) & 1) << 4;
            r.w[256 * i + 32 * j + l] = h(d) * s * q - h(dmin) * m;
          }
        }
        break;
      }
      case TensorType::kQ6_K: {
        const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[i];
        for (int e = 0; e < 256; ++e) {
          const int half = e / 128, p = (e % 128) / 32, l = e % 32;
          const int byte = b.ql[64 * half + l + 32 * (p % 2)];
          const int lo = p < 2 ? (byte & 15) : (byte >> 4);
          const int q = lo | (((b.qh[32 * half + l] >> (2 * p)) & 3) << 4);
          r.w[256 * i + e] = h(b.d) * b.scales[e / 16] * (q - 32);
        }
        break;
      }
      default: break;
    }
  }
  return r;
}

// Activation values and per-32-block stored sums s (Q8_1).
struct DoubleAct {
  std::vector<double> a;
  std::vector<double> block_s;
};

inline DoubleAct act_double(TensorType at, const uint8_t* row, int64_t n) {
  DoubleAct r;
  r.a.resize(n);
  if (at == TensorType::kQ8_K) {
    for (int64_t i = 0; i < n / 256; ++i) {
      const auto& b = reinterpret_cast<const BlockQ8_K*>(row)[i];
      for (int j = 0; j < 256; ++j) r.a[256 * i + j] = static_cast<double>(b.d) * b.qs[j];
    }
  } else if (at == TensorType::kQ8_1) {
    for (int64_t i = 0; i < n / 32; ++i) {
      const auto& b = reinterpret_cast<const BlockQ8_1*>(row)[i];
      for (int j = 0; j < 32; ++j) r.a[32 * i + j] = static_cast<double>(fp16_to_fp32(b.d)) * b.qs[j];
      r.block_s.push_back(fp16_to_fp32(b.s));
    }
  } else {
    for (int64_t i = 0; i < n / 32; ++i) {
      const auto& b = reinterpret_cast<const BlockQ8_0*>(row)[i];
      for (int j = 0; j < 32; ++j) r.a[32 * i + j] = static_cast<double>(fp16_to_fp32(b.d)) * b.qs[j];
    }
  }
  return r;
}

// What vec_dot(w, a) is defined to be, in double; *abs_sum gets the sum of
// the magnitudes of its terms (the scale of float rounding errors).
inline double ref_dot(TensorType t, const uint8_t* w, const uint8_t* a, int64_t n, double* abs_sum) {
  TensorType at;
  cpu::vec_dot_act_type(t, &at);
  const DoubleRow dw = weight_double(t, w, n);
  const DoubleAct da = act_double(at, a, n);
  double s = 0, abs = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += dw.w[i] * da.a[i];
    abs += std::abs(dw.w[i] * da.a[i]);
  }
  for (size_t b = 0; b < dw.block_m.size(); ++b) {
    s += dw.block_m[b] * da.block_s[b];
    abs += std::abs(dw.block_m[b] * da.block_s[b]);
  }
  if (abs_sum) *abs_sum = abs;
  return s;
}

}  // namespace tars::engine::test_kernels
