#pragma once
// Decoder models of the LLaMA family and their relatives, loaded from GGUF:
// llama (LLaMA 2/3, Mistral, TinyLlama), qwen2, phi2, stablelm.
//
// One forward pass serves them all; the architecture only decides which
// tensors exist and a few switches in ModelHParams (norm kind, rope pairing,
// parallel residual, activation). Model code calls only the Backend
// interface, so the same code runs on every backend.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace tars::engine {

class GgufFile;
class Tokenizer;

enum class NormKind { kRms, kLayer };
enum class FfnKind {
  kSwiGlu,  // down(silu(gate x) * up x): llama, qwen2, stablelm
  kGelu,    // down(gelu(up x + b)) + b: phi2
};

// Shapes and switches, read from `<arch>.*` metadata.
struct ModelHParams {
  std::string arch;        // general.architecture
  std::string name;        // general.name, if present
  int n_vocab = 0;         // rows of token_embd
  int n_ctx_train = 0;     // <arch>.context_length
  int n_embd = 0;          // <arch>.embedding_length: the residual width
  int n_layer = 0;         // <arch>.block_count
  int n_head = 0;          // <arch>.attention.head_count
  int n_head_kv = 0;       // <arch>.attention.head_count_kv (default n_head)
  int head_dim = 0;        // n_embd / n_head, or <arch>.attention.key_length
  int n_ff = 0;            // <arch>.feed_forward_length
  float norm_eps = 1e-5f;  // rms or layer-norm epsilon
  NormKind norm = NormKind::kRms;
  FfnKind ffn = FfnKind::kSwiGlu;
  bool parallel_residual = false;  // x + attn(n(x)) + ffn(n(x)) (phi2)
  RopeParams rope;                 // n_rot, pairing, base, scaling

  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
};

// One transformer block. Absent tensors have data == nullptr.
struct LayerWeights {
  Weight attn_norm, attn_norm_b;     // (n_embd)
  Weight wq, wk, wv;                 // (n_embd -> q_dim / kv_dim / kv_dim)
  Weight bq, bk, bv;                 // biases (qwen2, phi2, some stablelm)
  Weight wqkv, bqkv;                 // fused (n_embd -> q_dim + 2 kv_dim), phi2
  Weight wo, bo;                     // (q_dim -> n_embd)
  Weight ffn_norm, ffn_norm_b;       // (n_embd); absent with a parallel residual
  Weight ffn_gate, ffn_up, ffn_down; // (n_embd -> n_ff), (n_embd -> n_ff), (n_ff -> n_embd)
  Weight ffn_up_b, ffn_down_b;       // phi2
};

struct ModelWeights {
  Weight tok_embd;                   // (n_embd) x n_vocab rows
  Weight output_norm, output_norm_b; // (n_embd)
  Weight output, output_b;           // (n_embd -> n_vocab); tok_embd when tied
  std::vector<LayerWeights> layers;
  std::vector<float> rope_freq_factors;  // rope_freqs.weight (n_rot/2), Llama 3.1; empty if absent
};

// The context per slot when none is asked for: the trained context, at most
// 4096 tokens, as llama.cpp (llama-server -c) and Ollama (num_ctx) default.
// Llama 3.x trains for 131072: a KV cache that long is 14 GiB per slot for a
// 3B model, which would push it off a 6 GB card that holds it whole at 4096.
inline constexpr int kDefaultContext = 4096;
inline int default_context(int n_ctx_train) { return n_ctx_train < kDefaultContext ? n_ctx_train : kDefaultContext; }

struct ModelOptions {
  int n_ctx = 0;       // context per sequence slot; 0 = default_context(trained)
  int n_slots = 1;     // sequences held in the KV cache at once
  int max_batch = 512; // tokens per forward chunk (prompts longer are chunked)
  TensorType kv_type = TensorType::kF16;  // F16 (default) or F32 (exact comparisons)
};

// A batch of tokens from one or more sequences.
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> pos;   // position of each token in its sequence
  std::vector<int32_t> seq;   // sequence slot (0 .. n_slots-1)
  std::vector<uint8_t> want_logits;  // 1 where the caller needs this token's logits

  void add(int32_t token, int32_t position, int32_t slot, bool logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq.push_back(slot);
    want_logits.push_back(logits ? 1 : 0);
  }
  int size() const { return static_cast<int>(tokens.size()); }
};

// The backend buffers a model allocates besides its weights, per
// model_buffer_sizes. One function for Model::alloc_buffers and for the
// placement estimator (cluster/estimate.h), so the two cannot drift apart.
struct ModelBufferSizes {
  // Activation buffers for max_batch tokens, in floats (MemoryKind::kCompute).
  size_t x = 0;         // residual stream [B x n_embd]
  size_t h = 0;         // normed input [B x n_embd]
  size_t q = 0;         // [B x q_dim]
  size_t k = 0;         // [B x kv_dim]
  size_t v = 0;         // [B x kv_dim]
  size_t qkv = 0;       // fused projection [B x (q_dim + 2 kv_dim)]
  size_t att = 0;       // attention output [B x q_dim]
  size_t tmp = 0;       // [B x n_embd]
  size_t ff1 = 0;       // [B x n_ff]
  size_t ff2 = 0;       // [B x n_ff]
  size_t out_rows = 0;  // rows needing logits [B x n_embd]
  size_t logits = 0;    // [B x n_vocab]
  // KV cache (MemoryKind::kKvCache): bytes of one layer's K, and as many for
  // its V: n_slots x n_ctx x kv_dim x (2 for F16, 4 for F32).
  size_t kv_layer_bytes = 0;
  int n_layer = 0;      // layers, each with one K and one V buffer

  // Model::alloc_buffers's groups: the residual stream every part of a
  // (split) model holds, the layer buffers of a part with layers, and the
  // output rows and logits of the last part.
  size_t x_bytes() const { return x * sizeof(float); }
  size_t layer_bytes() const { return (h + q + k + v + qkv + att + tmp + ff1 + ff2) * sizeof(float); }
  size_t head_bytes() const { return (out_rows + logits) * sizeof(float); }
  size_t compute_bytes() const { return x_bytes() + layer_bytes() + head_bytes(); }
  size_t kv_bytes() const { return 2 * kv_layer_bytes * static_cast<size_t>(n_layer); }
};

// The sizes for `hp` (n_vocab filled in) and `options` with n_ctx already
// resolved (> 0; Model::load replaces 0 by default_context first).
ModelBufferSizes model_buffer_sizes(const ModelHParams& hp, const ModelOptions& options);

// Partial offload: a model's layers split over backends in order, e.g. the
// first 20 layers on a GPU and the rest on the CPU (--gpu-layers). Each part
// holds its layers' weights and KV cache and its own activation buffers; the
// first part also holds the token embeddings, the last the output norm and
// head (so a tied head is held by both). Between parts only the residual
// stream ([tokens x n_embd] floats) moves, through host memory.
struct ModelPart {
  Backend* backend = nullptr;
  int n_layers = -1;  // layers of this part; -1 = all the layers the parts before left
};

// What one part holds: its backend's own accounting (Backend::allocated), so
// a split's memory on each device is what the device really gave. Parts
// never share a backend, so the figures are the part's (as long as the
// backend serves only this model, as every node and CLI backend does).
struct ModelPartMemory {
  std::string backend;  // Backend::name()
  int first_layer = 0;
  int n_layers = 0;
  size_t weights = 0;
  size_t kv_cache = 0;
  size_t compute = 0;
};

// Reads hyper-parameters for the file's architecture. Throws
// tars::Error(kUnsupported) naming an architecture tars does not run, and
// kCorruptData naming a missing or inconsistent key.
ModelHParams model_read_hparams(const GgufFile& gguf);

class Model {
 public:
  // Loads `gguf` (which must outlive the model) onto `backend`. Throws
  // tars::Error naming the file and the problem (missing tensor, wrong shape).
  static std::unique_ptr<Model> load(std::shared_ptr<const GgufFile> gguf, Backend& backend,
                                     const ModelOptions& options);
  // The same over several backends (see ModelPart). Throws
  // kInvalidArgument when the parts' layer counts do not add up to the
  // model's (a last part with -1 takes what is left; a part may be empty)
  // or two parts share a backend.
  static std::unique_ptr<Model> load(std::shared_ptr<const GgufFile> gguf,
                                     std::vector<ModelPart> parts, const ModelOptions& options);
  ~Model();

  const ModelHParams& hparams() const { return hp_; }
  const ModelOptions& options() const { return opt_; }
  // The end of a "does not fit in the context" message: the context, and
  // when the model was trained for a longer one, that a larger ctx_size
  // would hold more (the default stops at kDefaultContext).
  std::string context_limit_text() const;
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The backend of the first part (the only one unless the model is split).
  Backend& backend() const { return *stages_.front().be; }
  // Memory of each part, in order.
  std::vector<ModelPartMemory> memory() const;

  // Runs the batch (in chunks of max_batch) and appends to `logits` one row
  // of n_vocab floats per token whose want_logits is set, in batch order.
  // Throws tars::Error(kInvalidArgument) for a token id, slot or position
  // out of range.
  void forward(const Batch& batch, std::vector<float>& logits);

 private:
  // One part of the model (see ModelPart) and its backend buffers.
  struct Stage {
    Backend* be = nullptr;
    int l0 = 0, l1 = 0;           // layers [l0, l1)
    bool first = false, last = false;
    // Activation buffers for max_batch tokens (backend memory).
    float* x = nullptr;     // residual stream [B x n_embd]
    float* h = nullptr;     // normed input [B x n_embd]
    float* q = nullptr;     // [B x q_dim]
    float* k = nullptr;     // [B x kv_dim]
    float* v = nullptr;     // [B x kv_dim]
    float* qkv = nullptr;   // fused projection [B x (q_dim + 2 kv_dim)]
    float* att = nullptr;   // attention output [B x q_dim]
    float* tmp = nullptr;   // [B x n_embd]
    float* ff1 = nullptr;   // [B x n_ff]
    float* ff2 = nullptr;   // [B x n_ff]
    float* out_rows = nullptr;  // last part: rows needing logits [B x n_embd]
    float* logits = nullptr;    // last part: [B x n_vocab]
    std::vector<void*> owned;   // every allocation of this part, freed in ~Model
  };

  Model(std::shared_ptr<const GgufFile> gguf, const ModelOptions& options);
  void load_weights();
  void alloc_buffers();
  void forward_chunk(const Batch& batch, int begin, int end, std::vector<float>& logits);
  // The chunk's operations up to the logits of `rows` in the last part's
  // buffer: everything but the download (what a recording may hold).
  void compute_chunk(const int32_t* tokens, int n, const BatchLayout& layout, const std::vector<int32_t>& rows);
  // One layer; pending_add: the previous layer left its last residual add
  // (x += tmp) to this one. Returns whether this layer left its own.
  bool forward_layer(Stage& s, int il, int n, const BatchLayout& layout, bool pending_add);
  // RMS or layer norm (the architecture's) in place over rows x n_embd on `be`.
  void norm(Backend& be, float* x, const Weight& w, const Weight& b, int rows) const;
  // out = norm of x (x unchanged); add_norm_to first adds a to x.
  void norm_to(Backend& be, const float* x, float* out, const Weight& w, const Weight& b, int rows) const;
  void add_norm_to(Backend& be, float* x, const float* a, float* out, const Weight& w, const Weight& b,
                   int rows) const;

  std::shared_ptr<const GgufFile> gguf_;
  ModelOptions opt_;
  ModelHParams hp_;
  ModelWeights w_;  // each weight loaded by the backend of the part holding it
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<KvLayer> kv_;      // per layer, on its part's backend
  std::vector<Stage> stages_;    // at least one
  std::vector<float> staging_;   // host copy of the residual between parts
};

}  // namespace tars::engine
