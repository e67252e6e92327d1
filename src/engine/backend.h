#pragma once
// The compute backend: the one narrow interface between model code and the
// hardware. A backend is chosen once when a model is loaded (CPU always;
// CUDA when built and a device is present) and model code calls only these
// operations, on buffers the backend allocated: no #ifdef in model code.
//
// Conventions for every operation:
//   - Activations are float32, row-major: a matrix [n x d] is n rows of d
//     floats, one row per token. Pointers are backend memory (host memory
//     for the CPU backend, device memory for CUDA).
//   - Small per-token metadata (positions, sequence slots, token ids) is
//     passed as host arrays; a device backend copies what it needs.
//   - Weight matrices keep their file type (F32, F16, BF16, Q4_0, ...):
//     a Weight of shape [rows x cols] computes y = W x with x of length cols.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/tensor_type.h"

namespace tars::engine {

// A weight tensor as the backend holds it. GGUF shape {cols, rows}: cols is
// the row length (the input size of a matrix product), rows the output size.
// 1-D tensors (norm weights, biases) have rows == 1 and are always F32.
struct Weight {
  TensorType type = TensorType::kF32;
  int64_t cols = 0;
  int64_t rows = 0;
  const void* data = nullptr;  // backend memory; null = tensor absent
  explicit operator bool() const { return data != nullptr; }
};

// What memory is for, for honest accounting (the placement estimator is
// checked against these figures).
enum class MemoryKind { kWeights, kKvCache, kCompute };

// Rotary embedding: which elements of a head form a rotating pair.
enum class RopeMode {
  kNormal,  // adjacent pairs (2i, 2i+1): LLaMA as converted to GGUF
  kNeox,    // halves (i, i + n_rot/2): GPT-NeoX, Qwen2, Phi-2, StableLM
};

struct RopeParams {
  RopeMode mode = RopeMode::kNormal;
  int n_rot = 0;            // rotated dimensions per head (<= head_dim, even)
  float freq_base = 10000;  // theta
  float freq_scale = 1;     // linear scaling: position multiplied by this
  const float* freq_factors = nullptr;  // (n_rot/2) host array dividing each frequency, or null
};

// One layer's K and V cache: for each sequence slot, n_ctx rows of kv_dim
// values (kv_dim = n_kv_head * head_dim), in `type` (F16 or F32).
struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  TensorType type = TensorType::kF16;
  int n_ctx = 0;
  int kv_dim = 0;
};

// A batch's token layout, host arrays of n_tokens entries.
struct BatchLayout {
  int n_tokens = 0;
  const int32_t* pos = nullptr;  // position of each token in its sequence
  const int32_t* seq = nullptr;  // KV-cache slot of each token's sequence
};

struct AttentionParams {
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  float scale = 1;  // usually 1/sqrt(head_dim)
};

// Whole sequences packed back to back: the layout of an encoder batch (no KV
// cache, no padding). Sequence i is rows [start[i], start[i+1]) of every
// activation matrix; start is a host array of n_seqs + 1 offsets, start[0] = 0.
struct SeqLayout {
  int n_seqs = 0;
  const int32_t* start = nullptr;
  int n_tokens() const { return n_seqs > 0 ? start[n_seqs] : 0; }
};

// One product of Backend::matmul_many: y = W x (+ bias), y is [n x w->rows].
struct MatmulOut {
  const Weight* w = nullptr;
  float* y = nullptr;
  const Weight* bias = nullptr;  // null: none
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- memory -------------------------------------------------------------
  virtual void* alloc(size_t bytes, MemoryKind kind) = 0;
  virtual void free(void* p) = 0;
  // Bytes currently allocated for `kind` (mapped file weights the CPU
  // backend uses in place count as kWeights).
  virtual size_t allocated(MemoryKind kind) const = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, const void* src, size_t bytes) = 0;
  // Makes a weight usable by this backend. `host` points at the tensor's
  // bytes in the model file (memory-mapped); the CPU backend keeps using it,
  // others copy. 1-D F16/BF16 vectors are converted to F32.
  virtual Weight load_weight(TensorType type, int64_t cols, int64_t rows, const void* host) = 0;

  // ---- operations -----------------------------------------------------------
  // out[t] = row ids[t] of `table` (an embedding matrix of any type), as float.
  virtual void get_rows(const Weight& table, const int32_t* ids, int n, float* out) = 0;
  // y[t] = W x[t] (+ bias) for t < n. x is [n x W.cols], y is [n x W.rows].
  virtual void matmul(const Weight& w, const float* x, int n, float* y,
                      const Weight* bias = nullptr) = 0;
  // Several products of the same input x ([n x cols], every weight with
  // `cols` columns): Q/K/V, gate/up. A backend may run them as one job (the
  // CPU backend does for a decode step: one dispatch, one quantization of
  // x); by default they run one by one.
  virtual void matmul_many(const float* x, int n, const MatmulOut* outs, int count) {
    for (int i = 0; i < count; ++i) matmul(*outs[i].w, x, n, outs[i].y, outs[i].bias);
  }
  // In place over [n x d]: x = x / rms(x) * w.
  virtual void rms_norm(float* x, const Weight& w, int n, int d, float eps) = 0;
  // In place over [n x d]: x = (x - mean) / sd * w + b (b may be absent).
  virtual void layer_norm(float* x, const Weight& w, const Weight& b, int n, int d, float eps) = 0;
  // out = rms_norm of x (x unchanged), both [n x d]. A backend may fuse the
  // copy and the norm (one kernel on a GPU); the default is those two steps.
  virtual void rms_norm_to(const float* x, float* out, const Weight& w, int n, int d, float eps) {
    copy_cols(x, d, 0, d, n, out);
    rms_norm(out, w, n, d, eps);
  }
  // The residual add before a norm: x += a, then out = rms_norm of x.
  virtual void add_rms_norm_to(float* x, const float* a, float* out, const Weight& w, int n, int d, float eps) {
    add(x, a, static_cast<size_t>(n) * d);
    rms_norm_to(x, out, w, n, d, eps);
  }
  // Rotates the first n_rot dims of each of the n_heads heads of each token,
  // in place over [n x n_heads*head_dim], at the token's position.
  virtual void rope(float* x, const BatchLayout& b, int n_heads, int head_dim,
                    const RopeParams& p) = 0;
  // Stores the batch's k and v rows ([n x kv_dim]) into the cache at
  // (seq[t], pos[t]).
  virtual void kv_store(const KvLayer& kv, const float* k, const float* v,
                        const BatchLayout& b) = 0;
  // Both rotations and the cache store of an attention block: rope(q) over
  // n_head heads, rope(k) over n_head_kv heads (k rotated in place, as rope
  // leaves it), then kv_store(k, v). One kernel on a GPU; by default the
  // three steps.
  virtual void rope_store(float* q, float* k, const float* v, const KvLayer& kv, const BatchLayout& b, int n_head,
                          int n_head_kv, int head_dim, const RopeParams& p) {
    rope(q, b, n_head, head_dim, p);
    rope(k, b, n_head_kv, head_dim, p);
    kv_store(kv, k, v, b);
  }
  // Causal attention over the cache: token t's query heads (q is
  // [n x n_head*head_dim]) attend to positions 0..pos[t] of slot seq[t];
  // grouped-query: query head h uses KV head h / (n_head / n_head_kv).
  // out is [n x n_head*head_dim].
  virtual void attention(const float* q, const KvLayer& kv, const BatchLayout& b,
                         const AttentionParams& p, float* out) = 0;
  // a += b over n floats.
  virtual void add(float* a, const float* b, size_t n) = 0;
  // gate = silu(gate) * up over n floats.
  virtual void swiglu(float* gate, const float* up, size_t n) = 0;
  // The same over `rows` rows of `cols` (a feed-forward layer's batch): a
  // backend may use the shape (the CUDA backend writes a one-token row's
  // 8-bit form for the mat-vec after it).
  virtual void swiglu_rows(float* gate, const float* up, int rows, int64_t cols) {
    swiglu(gate, up, static_cast<size_t>(rows) * static_cast<size_t>(cols));
  }
  // x = gelu(x) (tanh approximation) over n floats.
  virtual void gelu(float* x, size_t n) = 0;
  // Copies `cols` columns starting at `col0` of each of the n rows of src
  // (row stride src_stride floats) to dst (row stride cols).
  virtual void copy_cols(const float* src, int src_stride, int col0, int cols, int n,
                         float* dst) = 0;
  // Copies rows: dst[i] = src[rows[i]] for rows of d floats (rows is host).
  virtual void gather_rows(const float* src, const int32_t* rows, int n, int d, float* dst) = 0;

  // ---- encoder operations (BERT) --------------------------------------------
  // Bidirectional attention within packed sequences: each token attends to
  // every token of its own sequence and to nothing else (what the padding mask
  // of a padded batch does, without computing the padding). q is
  // [n x n_head*head_dim], k and v [n x n_head_kv*head_dim], n = s.n_tokens();
  // out as q.
  virtual void attention_packed(const float* q, const float* k, const float* v,
                                const SeqLayout& s, const AttentionParams& p, float* out) = 0;
  // x = 0.5 x (1 + erf(x / sqrt 2)) over n floats: the exact GELU of BERT
  // ("gelu" in Hugging Face configs), not the tanh form of gelu().
  virtual void gelu_erf(float* x, size_t n) = 0;
  // out[i] = mean of the rows of sequence i of x ([n x d]); out is [n_seqs x d].
  virtual void seq_mean(const float* x, const SeqLayout& s, int d, float* out) = 0;

  // ---- recording (optional) ---------------------------------------------------
  // A backend may record the operations between capture_begin() and
  // capture_end() and run them as one unit (CUDA graphs: one launch instead
  // of hundreds). Between the two the caller issues operations only: no
  // alloc, free, upload or download, nothing whose result the host reads.
  // capture_begin: true when recording started (default: never; operations
  // then run as they come).
  virtual bool capture_begin() { return false; }
  // Ends a recording and runs it. false: the recording failed and NOTHING
  // ran; the caller issues the same operations again, and they run directly.
  virtual bool capture_end() { return true; }
  // Abandons a recording after an operation threw during it (nothing ran).
  virtual void capture_abort() {}
};

struct CpuBackendOptions {
  int n_threads = 0;  // 0 = the number of physical cores
  // Quantized weights: false (default) quantizes the activations to 8 bits
  // per product and runs integer block dot products (fast; logits move by a
  // few hundredths, as in other engines); true keeps activations in float
  // and dequantizes the weights (exact arithmetic, for comparisons with a
  // float reference). Float weights (F32/F16/BF16) always use float.
  bool exact_activations = false;
};

std::unique_ptr<Backend> backend_cpu_create(const CpuBackendOptions& options);

}  // namespace tars::engine
