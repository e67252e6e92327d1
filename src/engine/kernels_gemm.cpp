// The level-independent half of the packed products (kernels_cpu.h): the
// activation layout, and the dispatch to the level's packers and tiles
// (kernels_avx512_gemm.cpp). Weight repacking: kernels_repack.cpp.
#include <cstring>
#include <vector>

#include "common/error.h"
#include "engine/half.h"
#include "engine/kernels_internal.h"
#include "engine/kernels_panel.h"
#include "engine/quant.h"

namespace tars::engine::cpu {

const KernelTable& active_table();  // kernels_cpu.cpp

bool panel_q_available(TensorType w) {
  PanelLayout l;
  return active_table().panel_q_run != nullptr && panel_layout(w, &l);
}

bool gemm_f_available() { return active_table().gemm_f_run != nullptr; }

bool panel_f_available(TensorType w) {
  return active_table().panel_f_run != nullptr &&
         (w == TensorType::kF32 || w == TensorType::kF16 || w == TensorType::kBF16);
}

size_t panel_f_bytes(TensorType w, int64_t cols) {
  return static_cast<size_t>(cols) * kGemmRows * (w == TensorType::kF32 ? 4 : 2);
}

void panel_f_pack(TensorType w, const void* rows, size_t row_bytes, int n_rows, int64_t cols, void* panel) {
  TARS_CHECK(n_rows >= 1 && n_rows <= kGemmRows);
  const size_t elem = w == TensorType::kF32 ? 4 : 2;
  uint8_t* out = static_cast<uint8_t*>(panel);
  std::memset(out, 0, panel_f_bytes(w, cols));  // missing rows: zeros
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* src = static_cast<const uint8_t*>(rows) + r * row_bytes;
    for (int64_t i = 0; i < cols; ++i) std::memcpy(out + (i * kGemmRows + r) * elem, src + i * elem, elem);
  }
}

void panel_f_run(TensorType w, const void* panel, int64_t k, const float* x, int64_t x_stride, int n, int n_rows,
                 const float* bias, float* y, int64_t y_stride) {
  active_table().panel_f_run(w, panel, k, x, x_stride, n, n_rows, bias, y, y_stride);
}

namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

struct ActsLayout {
  int block;
  int64_t nb;                          // blocks per token
  int tile;                            // tokens per tile (GemmActs::tile)
  int n8;                              // tokens rounded up to whole tiles
  size_t qs_bytes, f_bytes, i_bytes;   // each array, 64-aligned
};

ActsLayout acts_layout(TensorType w, int64_t k, int n, int* offset) {
  PanelLayout l;
  TARS_CHECK(panel_layout(w, &l));
  if (offset) *offset = l.offset;
  ActsLayout a;
  a.block = l.act_block;
  a.nb = k / l.act_block;
  a.tile = n == 1 ? 1 : kGemmActTile;
  a.n8 = (n + a.tile - 1) / a.tile * a.tile;
  a.qs_bytes = align64(static_cast<size_t>(a.n8) * k);
  a.f_bytes = align64(static_cast<size_t>(a.n8) * a.nb * sizeof(float));
  a.i_bytes = align64(static_cast<size_t>(a.n8) * a.nb * sizeof(int32_t));
  return a;
}

}  // namespace

size_t gemm_acts_bytes(TensorType w, int64_t k, int n) {
  const ActsLayout a = acts_layout(w, k, n, nullptr);
  return a.qs_bytes + 2 * a.f_bytes + a.i_bytes;
}

GemmActs gemm_acts_build(TensorType w, const void* act, size_t act_row_bytes, int64_t k, int n, int t0,
                         int t1, void* scratch) {
  int offset;
  const ActsLayout l = acts_layout(w, k, n, &offset);
  uint8_t* base = static_cast<uint8_t*>(scratch);
  int8_t* qs = reinterpret_cast<int8_t*>(base);
  float* d = reinterpret_cast<float*>(base + l.qs_bytes);
  float* s = reinterpret_cast<float*>(base + l.qs_bytes + l.f_bytes);
  int32_t* corr = reinterpret_cast<int32_t*>(base + l.qs_bytes + 2 * l.f_bytes);
  TensorType at;
  TARS_CHECK(vec_dot_act_type(w, &at));
  const int T = l.tile;
  const int L = l.block;
  // Token t's block b: quants at qs + ((tile*nb + b) * L/4 + g) * 4T + 4 lane
  // (group g of 4), scalars at index (tile*nb + b) * T + lane.
  auto put = [&](int t, int64_t b, const int8_t* q, float dv, float sv, int32_t cv) {
    const int64_t tile_block = static_cast<int64_t>(t / T) * l.nb + b;
    int8_t* dst = qs + tile_block * L * T + 4 * (t % T);
    if (T == 1) std::memcpy(dst, q, L);  // one token: the block's quants as they are
    else for (int g = 0; g < L / 4; ++g) std::memcpy(dst + 4 * T * g, q + 4 * g, 4);
    d[tile_block * T + t % T] = dv;
    s[tile_block * T + t % T] = sv;
    corr[tile_block * T + t % T] = cv;
  };
  for (int t = t0; t < t1; ++t) {
    const uint8_t* row = static_cast<const uint8_t*>(act) + static_cast<size_t>(t) * act_row_bytes;
    if (at == TensorType::kQ8_K) {
      const BlockQ8_K* b = reinterpret_cast<const BlockQ8_K*>(row);
      const int per = kQuantSuper / L;  // blocks per super-block (8 or 16)
      const int groups = L / 16;        // bsums per block (2 or 1)
      for (int64_t sb = 0; sb < k / kQuantSuper; ++sb) {
        for (int j = 0; j < per; ++j) {
          int sum = 0;
          for (int g = 0; g < groups; ++g) sum += b[sb].bsums[j * groups + g];
          put(t, sb * per + j, b[sb].qs + j * L, b[sb].d, b[sb].d * static_cast<float>(sum), -offset * sum);
        }
      }
    } else {
      const bool q81 = at == TensorType::kQ8_1;
      const size_t bsz = q81 ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
      for (int64_t j = 0; j < l.nb; ++j) {
        const uint8_t* blk = row + j * bsz;
        uint16_t dh, sh = 0;
        std::memcpy(&dh, blk, 2);
        if (q81) std::memcpy(&sh, blk + 2, 2);
        const int8_t* bq = reinterpret_cast<const int8_t*>(blk + (q81 ? 4 : 2));
        int sum = 0;
        for (int e = 0; e < 32; ++e) sum += bq[e];
        const float dv = fp16_to_fp32(dh);
        put(t, j, bq, dv, q81 ? fp16_to_fp32(sh) : dv * static_cast<float>(sum), -offset * sum);
      }
    }
  }
  // The last tile's padding lanes stay as they are: a tile of C < 8 tokens
  // reads lanes 0 .. C-1 only.
  GemmActs a;
  a.k = k;
  a.block = L;
  a.tile = T;
  a.qs = qs;
  a.d = d;
  a.s = s;
  a.corr = corr;
  return a;
}

GemmActs gemm_acts_from(const GemmActs& a, int t0) {
  TARS_CHECK(t0 % a.tile == 0);
  const int64_t nb = a.k / a.block;
  GemmActs r = a;
  r.qs = a.qs + static_cast<int64_t>(t0) * a.k;
  r.d = a.d + t0 * nb;
  r.s = a.s + t0 * nb;
  r.corr = a.corr + t0 * nb;
  return r;
}

size_t gemm_f_panel_bytes(int64_t k) { return static_cast<size_t>(k) * kGemmRows * sizeof(float); }

void gemm_f_pack(TensorType w, const void* rows, size_t row_bytes, int n_rows, int64_t k, void* panel) {
  const KernelTable& t = active_table();
  TARS_CHECK(t.gemm_f_pack_f32 && n_rows >= 1 && n_rows <= kGemmRows);
  if (w == TensorType::kF32) {
    t.gemm_f_pack_f32(static_cast<const float*>(rows), row_bytes, n_rows, k, panel);
  } else if (w == TensorType::kF16) {
    t.gemm_f_pack_f16(static_cast<const uint16_t*>(rows), row_bytes, n_rows, k, panel);
  } else {
    // Any other type: the reference dequantization, then the F32 packer.
    static thread_local std::vector<float> tmp;
    tmp.resize(static_cast<size_t>(n_rows) * k);
    for (int r = 0; r < n_rows; ++r) {
      dequantize_row(w, static_cast<const uint8_t*>(rows) + r * row_bytes, tmp.data() + r * k, k);
    }
    t.gemm_f_pack_f32(tmp.data(), k * sizeof(float), n_rows, k, panel);
  }
}

void panel_q_run(TensorType w, const void* panel, const GemmActs& a, int n, int n_rows, const float* bias,
                 float* y, int64_t y_stride) {
  active_table().panel_q_run(w, panel, a, n, n_rows, bias, y, y_stride);
}

void gemm_f_run(const void* panel, int64_t k, const float* x, int64_t x_stride, int n, int n_rows,
                const float* bias, float* y, int64_t y_stride) {
  active_table().gemm_f_run(panel, k, x, x_stride, n, n_rows, bias, y, y_stride);
}

}  // namespace tars::engine::cpu
