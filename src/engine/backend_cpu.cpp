// The CPU backend: host memory, a thread pool, and the kernels of
// kernels_cpu.h / kernels_ops.h (SIMD level chosen at run time). Weights are
// used in place from the mapped file.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/half.h"
#include "engine/kernels_cpu.h"
#include "engine/kernels_encoder.h"
#include "engine/kernels_ops.h"
#include "engine/quant.h"
#include "engine/rope_table.h"
#include "engine/thread_pool.h"

namespace tars::engine {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& o)
      : options_(o), pool_(o.n_threads > 0 ? o.n_threads : physical_core_count()) {}

  ~CpuBackend() override {
    for (auto& [p, a] : allocations_) std::free(p);
  }

  std::string name() const override { return "cpu"; }

  void* alloc(size_t bytes, MemoryKind kind) override {
    size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw Error(ErrorCode::kUnavailable, "out of memory allocating " + std::to_string(bytes) + " bytes");
    std::memset(p, 0, rounded);
    std::lock_guard<std::mutex> lock(mu_);
    allocations_[p] = {bytes, kind};
    bytes_[static_cast<int>(kind)] += bytes;
    return p;
  }

  void free(void* p) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = allocations_.find(p);
    TARS_CHECK(it != allocations_.end());
    bytes_[static_cast<int>(it->second.kind)] -= it->second.bytes;
    allocations_.erase(it);
    std::free(p);
  }

  size_t allocated(MemoryKind kind) const override {
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = bytes_[static_cast<int>(kind)];
    }
    // Repacked weights replace the file's bytes of those matrices.
    if (kind == MemoryKind::kWeights) n = n - panels_.replaced_bytes() + panels_.packed_bytes();
    return n;
  }

  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }

  Weight load_weight(TensorType type, int64_t cols, int64_t rows, const void* host) override {
    Weight w{type, cols, rows, host};
    if (rows == 1 && type != TensorType::kF32) {
      float* f = static_cast<float*>(alloc(cols * sizeof(float), MemoryKind::kWeights));
      dequantize_row(type, host, f, cols);
      w = {TensorType::kF32, cols, 1, f};
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      bytes_[static_cast<int>(MemoryKind::kWeights)] += quant_row_bytes(type, cols) * rows;
    }
    return w;
  }

  void get_rows(const Weight& table, const int32_t* ids, int n, float* out) override {
    size_t row_bytes = quant_row_bytes(table.type, table.cols);
    for (int t = 0; t < n; ++t) {
      TARS_CHECK(ids[t] >= 0 && ids[t] < table.rows);
      const uint8_t* src = static_cast<const uint8_t*>(table.data) + row_bytes * ids[t];
      float* dst = out + static_cast<size_t>(t) * table.cols;
      if (table.type == TensorType::kF16) {
        cpu::f16_to_f32_row(reinterpret_cast<const uint16_t*>(src), dst, table.cols);
      } else {
        dequantize_row(table.type, src, dst, table.cols);
      }
    }
  }

  void matmul(const Weight& w, const float* x, int n, float* y, const Weight* bias) override {
    cpu::matmul(pool_, scratch_, panels_, w, x, n, y, bias ? static_cast<const float*>(bias->data) : nullptr,
                options_.exact_activations);
  }

  void matmul_many(const float* x, int n, const MatmulOut* outs, int count) override {
    cpu::MatmulPart parts[kMaxParts];
    if (count > kMaxParts) {
      Backend::matmul_many(x, n, outs, count);
      return;
    }
    for (int i = 0; i < count; ++i) {
      parts[i] = {outs[i].w, outs[i].y, outs[i].bias ? static_cast<const float*>(outs[i].bias->data) : nullptr};
    }
    cpu::matmul_many(pool_, scratch_, panels_, x, n, parts, count, options_.exact_activations);
  }

  void rms_norm(float* x, const Weight& w, int n, int d, float eps) override {
    const float* g = static_cast<const float*>(w.data);
    for_rows(n, d, [&](int64_t t) {
      float* r = x + t * d;
      const float ss = cpu::dot_f32(r, r, d);
      cpu::scale_mul(r, static_cast<float>(1.0 / std::sqrt(static_cast<double>(ss) / d + eps)), g, d);
    });
  }

  void layer_norm(float* x, const Weight& w, const Weight& b, int n, int d, float eps) override {
    const float* g = static_cast<const float*>(w.data);
    const float* bb = b ? static_cast<const float*>(b.data) : nullptr;
    for_rows(n, d, [&](int64_t t) {
      float* r = x + t * d;
      double mean = 0;
      for (int i = 0; i < d; ++i) mean += r[i];
      mean /= d;
      double var = 0;
      for (int i = 0; i < d; ++i) var += (r[i] - mean) * (r[i] - mean);
      var /= d;
      float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
      for (int i = 0; i < d; ++i) {
        float v = static_cast<float>(r[i] - mean) * inv * g[i];
        r[i] = bb ? v + bb[i] : v;
      }
    });
  }

  void rope(float* x, const BatchLayout& b, int n_heads, int head_dim,
            const RopeParams& p) override {
    const int half = p.n_rot / 2;
    rope_.update(b.pos, b.n_tokens, p);
    for_rows(b.n_tokens, static_cast<int64_t>(n_heads) * head_dim, [&](int64_t t) {
      const float* cs = rope_.cos().data() + t * half;
      const float* sn = rope_.sin().data() + t * half;
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_dim;
        if (p.mode == RopeMode::kNormal) {
          for (int i = 0; i < half; ++i) {
            const float x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = x0 * cs[i] - x1 * sn[i];
            v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
          }
        } else {
          for (int i = 0; i < half; ++i) {
            const float x0 = v[i], x1 = v[i + half];
            v[i] = x0 * cs[i] - x1 * sn[i];
            v[i + half] = x0 * sn[i] + x1 * cs[i];
          }
        }
      }
    });
  }

  void kv_store(const KvLayer& kv, const float* k, const float* v, const BatchLayout& b) override {
    for (int t = 0; t < b.n_tokens; ++t) {
      TARS_CHECK(b.pos[t] >= 0 && b.pos[t] < kv.n_ctx);
      size_t row = static_cast<size_t>(b.seq[t]) * kv.n_ctx + b.pos[t];
      const float* ks = k + static_cast<size_t>(t) * kv.kv_dim;
      const float* vs = v + static_cast<size_t>(t) * kv.kv_dim;
      if (kv.type == TensorType::kF32) {
        std::memcpy(static_cast<float*>(kv.k) + row * kv.kv_dim, ks, kv.kv_dim * sizeof(float));
        std::memcpy(static_cast<float*>(kv.v) + row * kv.kv_dim, vs, kv.kv_dim * sizeof(float));
      } else {
        cpu::f32_to_f16_row(ks, static_cast<uint16_t*>(kv.k) + row * kv.kv_dim, kv.kv_dim);
        cpu::f32_to_f16_row(vs, static_cast<uint16_t*>(kv.v) + row * kv.kv_dim, kv.kv_dim);
      }
    }
  }

  void attention(const float* q, const KvLayer& kv, const BatchLayout& b,
                 const AttentionParams& p, float* out) override {
    cpu::attention(pool_, q, kv, b, p, out);
  }

  void add(float* a, const float* b, size_t n) override {
    for_chunks(n, [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) a[i] += b[i];
    });
  }

  void swiglu(float* gate, const float* up, size_t n) override {
    for_chunks(n, [&](size_t i0, size_t i1) { cpu::swiglu(gate + i0, up + i0, i1 - i0); });
  }

  void gelu(float* x, size_t n) override {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    for (size_t i = 0; i < n; ++i) {
      float v = x[i];
      x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
    }
  }

  void copy_cols(const float* src, int src_stride, int col0, int cols, int n, float* dst) override {
    for (int t = 0; t < n; ++t) {
      std::memcpy(dst + static_cast<size_t>(t) * cols,
                  src + static_cast<size_t>(t) * src_stride + col0, cols * sizeof(float));
    }
  }

  void gather_rows(const float* src, const int32_t* rows, int n, int d, float* dst) override {
    for (int i = 0; i < n; ++i) {
      std::memcpy(dst + static_cast<size_t>(i) * d, src + static_cast<size_t>(rows[i]) * d,
                  d * sizeof(float));
    }
  }

  // Encoder operations: kernels_encoder.cpp.
  void attention_packed(const float* q, const float* k, const float* v, const SeqLayout& s,
                        const AttentionParams& p, float* out) override {
    cpu::attention_packed(pool_, q, k, v, s, p, out);
  }

  void gelu_erf(float* x, size_t n) override {
    for_chunks(n, [&](size_t i0, size_t i1) { cpu::gelu_erf(x + i0, static_cast<int64_t>(i1 - i0)); });
  }

  void seq_mean(const float* x, const SeqLayout& s, int d, float* out) override {
    cpu::seq_mean(x, s, d, out);
  }

 private:
  struct Allocation {
    size_t bytes;
    MemoryKind kind;
  };
  // fn(t) for each of n rows of `width` floats, over the pool when the work
  // is worth a dispatch (a decode step's single rows are not).
  template <class F>
  void for_rows(int64_t n, int64_t width, F&& fn) {
    if (n * width < kParallelMin) {
      for (int64_t t = 0; t < n; ++t) fn(t);
      return;
    }
    pool_.parallel_for(n, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) fn(t);
    });
  }

  // fn(i0, i1) over [0, n) in chunks, over the pool when n is large.
  template <class F>
  void for_chunks(size_t n, F&& fn) {
    if (n < static_cast<size_t>(kParallelMin)) {
      fn(size_t{0}, n);
      return;
    }
    pool_.parallel_for(static_cast<int64_t>(n), 1024, [&](int64_t i0, int64_t i1) {
      fn(static_cast<size_t>(i0), static_cast<size_t>(i1));
    });
  }

  static constexpr int64_t kParallelMin = 1 << 15;  // floats below which ops stay on one thread
  static constexpr int kMaxParts = 8;                // products matmul_many fuses at most

  CpuBackendOptions options_;
  ThreadPool pool_;
  cpu::MatmulScratch scratch_;
  cpu::PanelCache panels_;  // repacked quantized weights (kernels_panel.h)
  RopeTable rope_;  // the current batch's rotary cos/sin
  mutable std::mutex mu_;
  std::unordered_map<void*, Allocation> allocations_;
  size_t bytes_[3] = {0, 0, 0};
};

}  // namespace

std::unique_ptr<Backend> backend_cpu_create(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace tars::engine
