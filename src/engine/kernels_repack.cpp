// Repacking quantized rows into row-interleaved panels (layouts in
// kernels_panel.h). Plain C++: it runs once per weight matrix, at the first
// product the backend computes with it.
#include <cstring>

#include "common/error.h"
#include "engine/kernels_cpu.h"
#include "engine/kernels_panel.h"
#include "engine/quant.h"

namespace tars::engine::cpu {

bool panel_layout(TensorType t, PanelLayout* out) {
  switch (t) {
    case TensorType::kQ4_0: *out = {32, 288, 8, 32}; return true;
    case TensorType::kQ4_1: *out = {32, 320, 0, 32}; return true;
    case TensorType::kQ5_0: *out = {32, 352, 16, 32}; return true;
    case TensorType::kQ5_1: *out = {32, 384, 0, 32}; return true;
    case TensorType::kQ8_0: *out = {32, 544, 128, 32}; return true;
    case TensorType::kQ4_K: *out = {256, 2368, 0, 32}; return true;
    case TensorType::kQ5_K: *out = {256, 2880, 0, 32}; return true;
    case TensorType::kQ6_K: *out = {256, 3360, 32, 16}; return true;
    default: return false;
  }
}

namespace {

constexpr int R = kGemmRows;

void put16(uint8_t* o, int r, uint16_t v) { std::memcpy(o + 2 * r, &v, 2); }
void put4(uint8_t* o, int r, const uint8_t* src) { std::memcpy(o + 4 * r, src, 4); }

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Sets bits 4r..4r+3 of mask to the 4 bits of `nibble`.
void or_mask(uint8_t* mask8, int r, uint32_t nibble) {
  uint64_t m;
  std::memcpy(&m, mask8, 8);
  m |= static_cast<uint64_t>(nibble & 15u) << (4 * r);
  std::memcpy(mask8, &m, 8);
}

// The unit u of row r: the bytes of its block (legacy) or super-block (k).
template <class Block>
const Block& unit(const uint8_t* row, int64_t u) {
  return reinterpret_cast<const Block*>(row)[u];
}

void pack_unit(TensorType t, const uint8_t* const* rows, int n_rows, int64_t u, uint8_t* o) {
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* row = rows[r];
    switch (t) {
      case TensorType::kQ4_0: {
        const auto& b = unit<BlockQ4_0>(row, u);
        put16(o, r, b.d);
        for (int m = 0; m < 4; ++m) put4(o + 32 + 64 * m, r, b.qs + 4 * m);
        break;
      }
      case TensorType::kQ4_1: {
        const auto& b = unit<BlockQ4_1>(row, u);
        put16(o, r, b.d);
        put16(o + 32, r, b.m);
        for (int m = 0; m < 4; ++m) put4(o + 64 + 64 * m, r, b.qs + 4 * m);
        break;
      }
      case TensorType::kQ5_0:
      case TensorType::kQ5_1: {
        const bool has_min = t == TensorType::kQ5_1;
        const uint8_t* blk = row + u * (has_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0));
        uint16_t d, m = 0;
        std::memcpy(&d, blk, 2);
        if (has_min) std::memcpy(&m, blk + 2, 2);
        const uint8_t* qh = blk + (has_min ? 4 : 2);
        const uint8_t* qs = qh + 4;
        const int h_off = has_min ? 64 : 32, qs_off = h_off + 64;
        put16(o, r, d);
        if (has_min) put16(o + 32, r, m);
        const uint32_t bits = load_u32(qh);
        for (int g = 0; g < 8; ++g) or_mask(o + h_off + 8 * g, r, bits >> (4 * g));
        for (int mm = 0; mm < 4; ++mm) put4(o + qs_off + 64 * mm, r, qs + 4 * mm);
        break;
      }
      case TensorType::kQ8_0: {
        const auto& b = unit<BlockQ8_0>(row, u);
        put16(o, r, b.d);
        for (int g = 0; g < 8; ++g) {
          uint8_t q[4];
          for (int i = 0; i < 4; ++i) q[i] = static_cast<uint8_t>(b.qs[4 * g + i] + 128);
          put4(o + 32 + 64 * g, r, q);
        }
        break;
      }
      case TensorType::kQ4_K:
      case TensorType::kQ5_K: {
        const bool five = t == TensorType::kQ5_K;
        const uint8_t* blk = row + u * (five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
        uint16_t d, dmin;
        std::memcpy(&d, blk, 2);
        std::memcpy(&dmin, blk + 2, 2);
        const uint8_t* sc = blk + 4;
        const uint8_t* qh = five ? blk + 16 : nullptr;
        const uint8_t* qs = blk + (five ? 48 : 16);
        put16(o, r, d);
        put16(o + 32, r, dmin);
        for (int j = 0; j < 8; ++j) {
          int s, m;
          if (j < 4) {
            s = sc[j] & 63;
            m = sc[j + 4] & 63;
          } else {
            s = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
            m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
          }
          o[64 + 16 * j + r] = static_cast<uint8_t>(s);
          o[192 + 16 * j + r] = static_cast<uint8_t>(m);
        }
        for (int c = 0; c < 4; ++c) {
          for (int g = 0; g < 8; ++g) put4(o + 320 + 64 * (8 * c + g), r, qs + 32 * c + 4 * g);
        }
        if (five) {
          for (int j = 0; j < 8; ++j) {
            for (int g = 0; g < 8; ++g) {
              uint32_t nib = 0;
              for (int i = 0; i < 4; ++i) nib |= ((qh[4 * g + i] >> j) & 1u) << i;
              or_mask(o + 2368 + 8 * (8 * j + g), r, nib);
            }
          }
        }
        break;
      }
      case TensorType::kQ6_K: {
        const auto& b = unit<BlockQ6_K>(row, u);
        put16(o, r, b.d);
        for (int j = 0; j < 16; ++j) o[32 + 16 * j + r] = static_cast<uint8_t>(b.scales[j]);
        for (int h = 0; h < 2; ++h) {
          for (int lg = 0; lg < 8; ++lg) {
            for (int s = 0; s < 2; ++s) put4(o + 288 + 64 * ((8 * h + lg) * 2 + s), r, b.ql + 64 * h + 32 * s + 4 * lg);
            put4(o + 288 + 2048 + 64 * (8 * h + lg), r, b.qh + 32 * h + 4 * lg);
          }
        }
        break;
      }
      default: break;
    }
  }
}

}  // namespace

size_t panel_q_bytes(TensorType t, int64_t cols) {
  PanelLayout l;
  if (!panel_layout(t, &l)) return 0;
  return static_cast<size_t>(cols / l.unit_elems) * l.unit_bytes;
}

void panel_q_pack(TensorType t, const void* src, size_t row_bytes, int n_rows, int64_t cols, void* dst) {
  PanelLayout l;
  TARS_CHECK(panel_layout(t, &l) && n_rows >= 1 && n_rows <= R && cols % l.unit_elems == 0);
  const uint8_t* rows[R];
  for (int r = 0; r < n_rows; ++r) rows[r] = static_cast<const uint8_t*>(src) + r * row_bytes;
  uint8_t* o = static_cast<uint8_t*>(dst);
  const int64_t units = cols / l.unit_elems;
  for (int64_t u = 0; u < units; ++u, o += l.unit_bytes) {
    std::memset(o, 0, l.unit_bytes);  // missing rows: zero scales and quants
    pack_unit(t, rows, n_rows, u, o);
  }
}

}  // namespace tars::engine::cpu
