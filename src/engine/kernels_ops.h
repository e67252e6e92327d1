#pragma once
// The CPU backend's heavy operations, split over the thread pool: matrix
// products (quantized activations + integer block dots, or float) and
// attention over the KV cache. backend_cpu.cpp calls these; kernels_cpu.h
// has the per-row kernels they are made of.

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/backend.h"
#include "engine/thread_pool.h"

namespace tars::engine::cpu {

// Buffers reused from one product to the next (one set per backend; the
// backend runs one operation at a time).
struct MatmulScratch {
  std::vector<uint8_t> act;     // the activation rows as Q8_0 / Q8_1 / Q8_K blocks
  std::vector<uint8_t> packed;  // the same in the packed product's layout (GemmActs)
  std::vector<uint8_t> many;    // matmul_many: both, per weight type of the group
};

// Weights repacked into row-interleaved panels (kernels_panel.h for the
// quantized types; F32/F16/BF16 as k vectors of 16 values), once per weight
// matrix, at the first product that can use them. Keyed by
// the weight's data pointer: a backend's weights stay where they were
// loaded for its lifetime. Panels live in large arenas backed by 2 MiB pages
// where the OS offers them (transparent huge pages): decode streams every
// weight once per token, and with 4 KiB pages the TLB would miss on every
// page.
class PanelCache {
 public:
  PanelCache() = default;
  ~PanelCache();
  PanelCache(const PanelCache&) = delete;
  PanelCache& operator=(const PanelCache&) = delete;

  // The panels of w (panel p at p * panel_q_bytes(w.type, w.cols)), packed
  // now if they are not yet; null when the active level has no packed
  // product for w.type (or memory ran out: the caller falls back).
  const uint8_t* get(ThreadPool& pool, const Weight& w);
  // Bytes of panels held, and bytes of the file's weights they replace
  // (those are no longer read).
  size_t packed_bytes() const;
  size_t replaced_bytes() const;

 private:
  struct Entry {
    uint8_t* mem = nullptr;
    size_t bytes = 0, replaced = 0;
  };
  uint8_t* arena_alloc(size_t bytes);

  mutable std::mutex mu_;
  std::unordered_map<const void*, Entry> entries_;
  std::vector<uint8_t*> arenas_;   // each kArenaBytes or larger, 2 MiB aligned
  size_t arena_used_ = 0;          // bytes used of the last arena
  size_t arena_size_ = 0;          // its size
};

// Quantized weights in exact mode: below this many tokens they run row by
// row (dequantized rows, float dots); from it on, through float panels
// dequantized per product.
inline constexpr int kGemmMinTokens = 4;

// y[t] = W x[t] (+ bias) for t < n; x is [n x w.cols], y is [n x w.rows].
// exact: keep float activations for quantized weights (see CpuBackendOptions).
void matmul(ThreadPool& pool, MatmulScratch& scratch, PanelCache& panels, const Weight& w, const float* x,
            int n, float* y, const float* bias, bool exact);

// One product of matmul_many: y = W x (+ bias), y is [n x w->rows].
struct MatmulPart {
  const Weight* w;
  float* y;
  const float* bias;  // null: none
};

// The products parts[0..count) of one input x ([n x cols], the same cols for
// every weight), as matmul would compute each. Decode-sized n with packed
// quantized weights runs them as one job over the pool: x quantized once
// per weight type, every panel of every weight in one guided loop (one
// dispatch instead of count, and no thread idles at each product's end).
void matmul_many(ThreadPool& pool, MatmulScratch& scratch, PanelCache& panels, const float* x, int n,
                 const MatmulPart* parts, int count, bool exact);

// Causal attention over the cache, as Backend::attention.
void attention(ThreadPool& pool, const float* q, const KvLayer& kv, const BatchLayout& b,
               const AttentionParams& p, float* out);

}  // namespace tars::engine::cpu
