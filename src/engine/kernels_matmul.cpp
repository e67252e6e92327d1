// Matrix products of the CPU backend (kernels_ops.h).
//
// Quantized weights, fast mode: the n activation rows are quantized once to
// the weight type's activation blocks (Q8_0 / Q8_1 / Q8_K); then
//   - where the level has packed products (AVX-512): threads take panels of
//     the weight repacked once (PanelCache) and run each against every token
//     in register tiles (panel_q_run), decode (one token) included; a
//     decode step's products are memory-bound and take their panels in
//     guided chunks (long contiguous runs first), and matmul_many runs the
//     products of one input (Q/K/V, gate/up) as one such job;
//   - elsewhere: threads take chunks of weight rows and each output is one
//     vec_dot of a weight row with an activation row.
// Float weights (F32/F16/BF16) use float activations: panels of their own
// type cached like the quantized ones at the avx512 level, vec_dot per row
// elsewhere. Quantized weights in exact mode (float activations): float
// panels dequantized per product from kGemmMinTokens tokens on, else
// dequantized rows and float dots.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "engine/kernels_cpu.h"
#include "engine/kernels_ops.h"
#include "engine/kernels_panel.h"
#include "engine/quant.h"

namespace tars::engine::cpu {
namespace {

constexpr int64_t kRowGrain = 32;  // weight rows per chunk in the row-by-row path

// Panels gather rows with 32-bit offsets: rows must be closer than 2^27 bytes.
bool panel_rows_ok(size_t row_bytes) { return row_bytes < (size_t{1} << 27); }

// Products this small (multiply-adds) run on the calling thread: waking the
// pool costs more than the work (tiny models, a decode step's small heads).
constexpr int64_t kSerialWork = 1 << 16;

// pool.parallel_for_dynamic, or one call on this thread when `serial`.
template <class F>
void split(ThreadPool& pool, bool serial, int64_t n, int64_t grain, F&& fn) {
  if (serial) fn(int64_t{0}, n);
  else pool.parallel_for_dynamic(n, grain, fn);
}

// Tokens per block of a packed product: as many as keep the block's
// activations (elem_bytes per element) within about 256 KiB (half an L2), a
// multiple of `multiple`.
int token_block(int64_t k, int n, int elem_bytes, int multiple) {
  int64_t tb = (int64_t{256} << 10) / std::max<int64_t>(k * elem_bytes, 1);
  tb = std::max<int64_t>(multiple, tb / multiple * multiple);
  return static_cast<int>(std::min<int64_t>(tb, n));
}

// fn(p) for each of n_panels panels of panel_bytes each, over the pool in
// guided chunks (ThreadPool::parallel_for_guided): one pass over weights
// that come from memory (a decode step) streams long contiguous runs per
// thread, which the prefetchers follow, and the threads end within about
// kGuidedMinBytes of work of each other.
constexpr size_t kGuidedMinBytes = size_t{48} << 10, kGuidedMaxBytes = size_t{512} << 10;
template <class F>
void panels_guided(ThreadPool& pool, bool serial, int64_t n_panels, size_t panel_bytes, F&& fn) {
  const auto body = [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) fn(p);
  };
  if (serial) body(0, n_panels);
  else {
    const size_t pb = std::max<size_t>(panel_bytes, 1);
    pool.parallel_for_guided(n_panels, static_cast<int64_t>(kGuidedMinBytes / pb),
                             static_cast<int64_t>(kGuidedMaxBytes / pb), body);
  }
}

// Runs fn(t0, nt, p) for every token block [t0, t0+nt) of tb tokens and
// every panel p, over the pool. Work items are (token block, chunk of
// panels), token blocks outermost, so that a token block's activations stay
// in L2 while every panel streams past them once (instead of all the
// activations streaming past every panel). Chunks: a few per thread and
// token block (each costs an atomic increment the threads share), at least
// 2 panels. With one token block (decode) the product is memory-bound:
// guided chunks (panels_guided) instead.
template <class F>
void for_panels(ThreadPool& pool, bool serial, int n, int64_t rows, int tb, size_t panel_bytes, F&& fn) {
  const int64_t n_panels = (rows + kGemmRows - 1) / kGemmRows;
  const int64_t n_tb = (n + tb - 1) / tb;
  if (n_tb == 1) {
    panels_guided(pool, serial, n_panels, panel_bytes, [&](int64_t p) { fn(0, n, p); });
    return;
  }
  const int64_t per_chunk = std::max<int64_t>(2, n_panels / (8 * pool.size()));
  const int64_t n_chunks = (n_panels + per_chunk - 1) / per_chunk;
  split(pool, serial, n_tb * n_chunks, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t wi = w0; wi < w1; ++wi) {
      const int t0 = static_cast<int>(wi / n_chunks) * tb;
      const int nt = std::min(tb, n - t0);
      const int64_t p0 = (wi % n_chunks) * per_chunk, p1 = std::min(n_panels, p0 + per_chunk);
      for (int64_t p = p0; p < p1; ++p) fn(t0, nt, p);
    }
  });
}

uint8_t* grow(std::vector<uint8_t>& v, size_t bytes) {
  if (v.size() < bytes) v.resize(bytes);
  return v.data();
}

bool is_float_type(TensorType t) {
  return t == TensorType::kF32 || t == TensorType::kF16 || t == TensorType::kBF16;
}

void matmul_quant(ThreadPool& pool, MatmulScratch& s, PanelCache& panels, const Weight& w, TensorType at,
                  const float* x, int n, float* y, const float* bias) {
  const int64_t k = w.cols, rows = w.rows;
  const size_t row_bytes = quant_row_bytes(w.type, k);
  const size_t arow = quant_row_bytes(at, k);
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  const QuantizeActFn quantize = quantize_act_fn(at);
  const bool serial = k * rows * n < kSerialWork;
  const uint8_t* packed = panels.get(pool, w);

  uint8_t* act = grow(s.act, arow * n);
  uint8_t* acts_mem = packed ? grow(s.packed, gemm_acts_bytes(w.type, k, n)) : nullptr;
  const auto quantize_rows = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) quantize(x + t * k, act + t * arow, k);
    if (packed) gemm_acts_build(w.type, act, arow, k, n, static_cast<int>(t0), static_cast<int>(t1), acts_mem);
  };
  if (serial || n == 1) quantize_rows(0, n);
  else pool.parallel_for(n, 1, quantize_rows);

  if (packed) {
    const GemmActs acts = gemm_acts_build(w.type, act, arow, k, n, 0, 0, acts_mem);
    const size_t panel_bytes = panel_q_bytes(w.type, k);
    // Token blocks keep their int8 activations within about 256 KiB (half an
    // L2), in whole 8-token tiles.
    const int tb = token_block(k, n, 1, kGemmActTile);
    for_panels(pool, serial, n, rows, tb, panel_bytes, [&](int t0, int nt, int64_t p) {
      const int64_t r0 = p * kGemmRows;
      const int nr = static_cast<int>(std::min<int64_t>(kGemmRows, rows - r0));
      panel_q_run(w.type, packed + p * panel_bytes, gemm_acts_from(acts, t0), nt, nr, bias ? bias + r0 : nullptr,
                  y + t0 * rows + r0, rows);
    });
    return;
  }
  const VecDotFn dot = vec_dot_fn(w.type);
  split(pool, serial, rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = wdata + r * row_bytes;
      const float b = bias ? bias[r] : 0.0f;
      for (int t = 0; t < n; ++t) y[t * rows + r] = dot(wr, act + t * arow, k) + b;
    }
  });
}

void matmul_float(ThreadPool& pool, PanelCache& panels, const Weight& w, const float* x, int n, float* y,
                  const float* bias) {
  const int64_t k = w.cols, rows = w.rows;
  const size_t row_bytes = quant_row_bytes(w.type, k);
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  const bool serial = k * rows * n < kSerialWork;

  // Float weights with cached panels (the avx512 level): every token count.
  if (const uint8_t* packed = is_float_type(w.type) ? panels.get(pool, w) : nullptr) {
    const size_t panel_bytes = panel_f_bytes(w.type, k);
    const int tb = token_block(k, n, sizeof(float), 1);
    for_panels(pool, serial, n, rows, tb, panel_bytes, [&](int t0, int nt, int64_t p) {
      const int64_t r0 = p * kGemmRows;
      const int nr = static_cast<int>(std::min<int64_t>(kGemmRows, rows - r0));
      panel_f_run(w.type, packed + p * panel_bytes, k, x + t0 * k, k, nt, nr, bias ? bias + r0 : nullptr,
                  y + t0 * rows + r0, rows);
    });
    return;
  }

  if (n >= kGemmMinTokens && gemm_f_available() && panel_rows_ok(row_bytes)) {
    const size_t panel_bytes = gemm_f_panel_bytes(k);
    const int64_t n_panels = (rows + kGemmRows - 1) / kGemmRows;
    split(pool, serial, n_panels, 1, [&](int64_t p0, int64_t p1) {
      static thread_local std::vector<uint8_t> panel;
      uint8_t* pp = grow(panel, panel_bytes);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t r0 = p * kGemmRows;
        const int nr = static_cast<int>(std::min<int64_t>(kGemmRows, rows - r0));
        gemm_f_pack(w.type, wdata + r0 * row_bytes, row_bytes, nr, k, pp);
        gemm_f_run(pp, k, x, k, n, nr, bias ? bias + r0 : nullptr, y + r0, rows);
      }
    });
    return;
  }
  if (is_float_type(w.type)) {
    const VecDotFn dot = vec_dot_fn(w.type);
    split(pool, serial, rows, kRowGrain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* wr = wdata + r * row_bytes;
        const float b = bias ? bias[r] : 0.0f;
        for (int t = 0; t < n; ++t) y[t * rows + r] = dot(wr, x + t * k, k) + b;
      }
    });
    return;
  }
  // Quantized weights with float activations: dequantize a few rows at a
  // time (reference dequantization), then float dots.
  constexpr int64_t kTile = 16;
  split(pool, serial, rows, kTile, [&](int64_t c0, int64_t c1) {
    static thread_local std::vector<float> tile;
    if (tile.size() < static_cast<size_t>(kTile * k)) tile.resize(kTile * k);
    for (int64_t r0 = c0; r0 < c1; r0 += kTile) {  // the serial path gets every row at once
      const int64_t r1 = std::min(c1, r0 + kTile);
      for (int64_t r = r0; r < r1; ++r) dequantize_row(w.type, wdata + r * row_bytes, tile.data() + (r - r0) * k, k);
      for (int t = 0; t < n; ++t) {
        for (int64_t r = r0; r < r1; ++r) {
          y[t * rows + r] = dot_f32(tile.data() + (r - r0) * k, x + t * k, k) + (bias ? bias[r] : 0.0f);
        }
      }
    }
  });
}

}  // namespace

PanelCache::~PanelCache() {
  for (uint8_t* a : arenas_) std::free(a);
}

uint8_t* PanelCache::arena_alloc(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20, kArenaBytes = size_t{64} << 20;
  bytes = (bytes + 63) / 64 * 64;
  if (arenas_.empty() || arena_used_ + bytes > arena_size_) {
    const size_t size = std::max(kArenaBytes, (bytes + kHuge - 1) / kHuge * kHuge);
    uint8_t* a = static_cast<uint8_t*>(std::aligned_alloc(kHuge, size));
    if (!a) return nullptr;
#if defined(MADV_HUGEPAGE)
    madvise(a, size, MADV_HUGEPAGE);  // pages are only backed once touched
#endif
    arenas_.push_back(a);
    arena_used_ = 0;
    arena_size_ = size;
  }
  uint8_t* p = arenas_.back() + arena_used_;
  arena_used_ += bytes;
  return p;
}

const uint8_t* PanelCache::get(ThreadPool& pool, const Weight& w) {
  if (w.rows < 1) return nullptr;
  PanelLayout l;
  const bool quant = panel_q_available(w.type) && panel_layout(w.type, &l) && w.cols % l.unit_elems == 0;
  if (!quant && !panel_f_available(w.type)) return nullptr;
  const size_t row_bytes = quant_row_bytes(w.type, w.cols);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(w.data);
  if (it != entries_.end()) return it->second.mem;
  const size_t panel_bytes = quant ? panel_q_bytes(w.type, w.cols) : panel_f_bytes(w.type, w.cols);
  const int64_t n_panels = (w.rows + kGemmRows - 1) / kGemmRows;
  Entry e;
  e.bytes = panel_bytes * n_panels;
  e.replaced = row_bytes * w.rows;
  e.mem = arena_alloc(e.bytes);
  if (!e.mem) return nullptr;  // out of memory: the row-by-row path still works
  const uint8_t* src = static_cast<const uint8_t*>(w.data);
  pool.parallel_for_dynamic(n_panels, 8, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kGemmRows;
      const int nr = static_cast<int>(std::min<int64_t>(kGemmRows, w.rows - r0));
      uint8_t* dst = e.mem + p * panel_bytes;
      if (quant) panel_q_pack(w.type, src + r0 * row_bytes, row_bytes, nr, w.cols, dst);
      else panel_f_pack(w.type, src + r0 * row_bytes, row_bytes, nr, w.cols, dst);
    }
  });
  entries_[w.data] = e;
  return e.mem;
}

size_t PanelCache::packed_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [key, e] : entries_) n += e.bytes;
  return n;
}

size_t PanelCache::replaced_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [key, e] : entries_) n += e.replaced;
  return n;
}

void matmul(ThreadPool& pool, MatmulScratch& scratch, PanelCache& panels, const Weight& w, const float* x,
            int n, float* y, const float* bias, bool exact) {
  if (n <= 0 || w.rows <= 0) return;
  TensorType at;
  if (!exact && !is_float_type(w.type) && vec_dot_act_type(w.type, &at) && vec_dot_fn(w.type)) {
    matmul_quant(pool, scratch, panels, w, at, x, n, y, bias);
  } else {
    matmul_float(pool, panels, w, x, n, y, bias);
  }
}

void matmul_many(ThreadPool& pool, MatmulScratch& scratch, PanelCache& panels, const float* x, int n,
                 const MatmulPart* parts, int count, bool exact) {
  if (n <= 0 || count <= 0) return;
  // One job for decode-sized batches (one token tile) of packed quantized
  // weights with the same columns; anything else one product at a time.
  struct Group {
    const uint8_t* packed = nullptr;
    size_t panel_bytes = 0;
    int64_t first_panel = 0;  // index of this weight's first panel in the joint loop
    int acts_of = 0;          // the part whose activations this one uses (same weight type)
    size_t acts_offset = 0;   // of its activation blocks, then its GemmActs layout, in scratch.many
    GemmActs acts;
  };
  constexpr int kMaxParts = 8;
  bool fuse = !exact && n <= kGemmActTile && count > 1 && count <= kMaxParts;
  const int64_t k = fuse ? parts[0].w->cols : 0;
  Group g[kMaxParts];
  int64_t n_panels = 0, work = 0;
  size_t scratch_bytes = 0, weight_bytes = 0;
  for (int i = 0; fuse && i < count; ++i) {
    const Weight& w = *parts[i].w;
    TensorType at;
    if (w.cols != k || w.rows < 1 || is_float_type(w.type) || !vec_dot_act_type(w.type, &at) ||
        !vec_dot_fn(w.type) || !(g[i].packed = panels.get(pool, w))) {
      fuse = false;
      break;
    }
    g[i].panel_bytes = panel_q_bytes(w.type, k);
    g[i].first_panel = n_panels;
    n_panels += (w.rows + kGemmRows - 1) / kGemmRows;
    weight_bytes += g[i].panel_bytes * ((w.rows + kGemmRows - 1) / kGemmRows);
    work += k * w.rows * n;
    g[i].acts_of = i;
    for (int j = 0; j < i; ++j) {
      if (parts[j].w->type == w.type) {
        g[i].acts_of = j;
        break;
      }
    }
    if (g[i].acts_of == i) {
      g[i].acts_offset = scratch_bytes;
      scratch_bytes += (quant_row_bytes(at, k) * n + gemm_acts_bytes(w.type, k, n) + 63) / 64 * 64;
    }
  }
  if (!fuse) {
    for (int i = 0; i < count; ++i) matmul(pool, scratch, panels, *parts[i].w, x, n, parts[i].y, parts[i].bias, exact);
    return;
  }

  // The activations, once per weight type, on this thread (n is small).
  uint8_t* mem = grow(scratch.many, scratch_bytes);
  for (int i = 0; i < count; ++i) {
    if (g[i].acts_of != i) {
      g[i].acts = g[g[i].acts_of].acts;
      continue;
    }
    const TensorType wt = parts[i].w->type;
    TensorType at;
    vec_dot_act_type(wt, &at);
    const size_t arow = quant_row_bytes(at, k);
    uint8_t* act = mem + g[i].acts_offset;
    uint8_t* acts_mem = act + arow * n;
    const QuantizeActFn quantize = quantize_act_fn(at);
    for (int t = 0; t < n; ++t) quantize(x + t * k, act + t * arow, k);
    gemm_acts_build(wt, act, arow, k, n, 0, n, acts_mem);
    g[i].acts = gemm_acts_build(wt, act, arow, k, n, 0, 0, acts_mem);
  }

  // Every panel of every weight in one guided loop.
  panels_guided(pool, work < kSerialWork, n_panels, weight_bytes / n_panels, [&](int64_t q) {
    int i = count - 1;
    while (g[i].first_panel > q) --i;
    const Weight& w = *parts[i].w;
    const int64_t p = q - g[i].first_panel, r0 = p * kGemmRows;
    const int nr = static_cast<int>(std::min<int64_t>(kGemmRows, w.rows - r0));
    panel_q_run(w.type, g[i].packed + p * g[i].panel_bytes, g[i].acts, n, nr,
                parts[i].bias ? parts[i].bias + r0 : nullptr, parts[i].y + r0, w.rows);
  });
}

}  // namespace tars::engine::cpu
