#pragma once
// Encoder models for embeddings: the BERT family (bert-base, all-MiniLM-L6-v2,
// BGE and other sentence-transformers models converted to GGUF as "bert").
//
// The network, as BERT defines it (post-LayerNorm blocks, every linear with a
// bias):
//   x = LayerNorm(tok_embd[id] + position_embd[pos] + token_types[0])
//   per block:  x = LayerNorm(x + Wo attention(Wq x + bq, Wk x + bk, Wv x + bv) + bo)
//               x = LayerNorm(x + W2 gelu(W1 x + b1) + b2)
// with bidirectional attention inside each input (no causal mask), GELU in
// its exact erf form (what Hugging Face's "gelu" is), then pooling over the
// input's tokens from bert.pooling_type: 0 none (one vector per token),
// 1 mean, 2 CLS (the first token), 4 rank (a classification head on the
// first token: cross-encoders, the rerankers). [CLS] and [SEP] count as
// tokens of the input for mean pooling, as in sentence-transformers.
//
// Token types: an input may give each token its type (segment) id; BERT
// cross-encoders read a pair as [CLS] query [SEP] (type 0) document [SEP]
// (type 1). Without types every token is type 0.
//
// The classification head (rank pooling), as BERT's pooler + classifier and
// RoBERTa's classification head are converted to GGUF:
//   h = tanh(cls.weight x + cls.bias)   (x: the input's first row)
//   y = cls.output.weight h + cls.output.bias
// A file with only cls.output has y = cls.output x + b (a single linear
// layer); one with only cls has y = h. It runs on the host, after the
// trunk: a few small matrices applied to one row per input.
//
// Batches are packed: several inputs run in one forward pass, back to back,
// with no padding (Backend::attention_packed keeps them apart). embed.h does
// the tokenizing, batching, truncation and normalisation around this class.
//
// Threads: forward() may be called from several threads; calls are
// serialized by a mutex inside (the activation buffers exist once). The
// backend must not run another model at the same time: give an encoder its
// own backend (the CPU backend's thread pool and scratch are not re-entrant).

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace tars::engine {

class GgufFile;
class Tokenizer;

// bert.pooling_type, numbered as GGUF files store it.
enum class PoolingType {
  kNone = 0,  // no pooling: one vector per token
  kMean = 1,  // mean over the input's tokens ([CLS] and [SEP] included)
  kCls = 2,   // the first token's vector ([CLS])
  kRank = 4,  // the classification head on the first token: n_cls_out scores per input
};
const char* pooling_type_name(PoolingType p);  // "none", "mean", "cls", "rank"

// Shapes and switches, from `bert.*` metadata and the tensor table.
struct EncoderHParams {
  std::string arch;          // general.architecture ("bert")
  std::string name;          // general.name, if present
  int n_vocab = 0;           // rows of token_embd
  int n_ctx_train = 0;       // bert.context_length: rows of position_embd, the longest input
  int n_embd = 0;            // bert.embedding_length: hidden size, the embedding dimension
  int n_layer = 0;           // bert.block_count
  int n_head = 0;            // bert.attention.head_count
  int head_dim = 0;          // n_embd / n_head
  int n_ff = 0;              // bert.feed_forward_length
  int n_token_types = 0;     // rows of token_types (2 in BERT)
  int n_cls_out = 0;         // outputs of the classification head (rank pooling; 1 for rerankers)
  float norm_eps = 1e-12f;   // bert.attention.layer_norm_epsilon
  PoolingType pooling = PoolingType::kMean;  // bert.pooling_type; mean when absent
};

// Reads the hyper-parameters of an encoder file. Throws tars::Error:
// kUnsupported for an architecture other than bert, a causal encoder or an
// unknown pooling type (naming the value); kCorruptData naming a missing or
// out-of-range key, or rank pooling without a classification head.
EncoderHParams encoder_read_hparams(const GgufFile& gguf);

// Whether the file holds a model for Encoder (its architecture is "bert"),
// so callers can pick Encoder or Model without catching errors.
bool encoder_is_encoder_file(const GgufFile& gguf);

// One block. All present in BERT files.
struct EncoderLayerWeights {
  Weight wq, bq, wk, bk, wv, bv;          // (n_embd -> n_embd), biases (n_embd)
  Weight wo, bo;                          // attention output (n_embd -> n_embd), (n_embd)
  Weight attn_out_norm, attn_out_norm_b;  // LayerNorm after attention + residual (n_embd)
  Weight ffn_up, ffn_up_b;                // (n_embd -> n_ff), (n_ff)
  Weight ffn_down, ffn_down_b;            // (n_ff -> n_embd), (n_embd)
  Weight out_norm, out_norm_b;            // LayerNorm after the FFN + residual (n_embd)
};

// The classification head, dequantized to float on the host (rank pooling).
// dense is absent (n_mid == 0) or n_mid x n_in; out is absent (only dense:
// its outputs are the scores) or n_out x (n_mid or n_in). Biases may be
// empty (zero).
struct EncoderHead {
  int n_in = 0, n_mid = 0, n_out = 0;
  std::vector<float> dense_w, dense_b, out_w, out_b;
  bool has_out() const { return !out_w.empty(); }
  // y (n_out floats) for one row x (n_in floats).
  void apply(const float* x, float* y) const;
};

struct EncoderWeights {
  Weight tok_embd;                  // token_embd: (n_embd) x n_vocab rows
  Weight type_embd;                 // token_types: (n_embd) x n_token_types rows
  Weight pos_embd;                  // position_embd: (n_embd) x n_ctx_train rows
  Weight embd_norm, embd_norm_b;    // token_embd_norm (n_embd)
  std::vector<EncoderLayerWeights> layers;
  EncoderHead head;                 // rank pooling only
};

struct EncoderOptions {
  // Tokens per forward pass, all packed inputs together (the activation
  // buffers are sized for it: about 17 KB per token for the MiniLM shape).
  // Default 2048: bench/embed_bench.cpp measured 512, 1024 and 2048 on the
  // MiniLM shape, and larger passes were faster (fewer thread-pool
  // dispatches per token, which matters most on a busy machine). Raised to
  // n_ctx_train when smaller, so any single input fits.
  int max_batch_tokens = 2048;
};

// The activation buffers an encoder allocates (MemoryKind::kCompute), in
// floats. One function for Encoder::alloc_buffers and the placement
// estimator (cluster/estimate.h). B = encoder_batch_tokens(hp, options).
struct EncoderBufferSizes {
  int batch_tokens = 0;  // B: max_batch_tokens raised to n_ctx_train
  size_t x = 0;          // residual stream [B x n_embd]
  size_t tmp = 0;        // [B x n_embd]
  size_t q = 0, k = 0, v = 0;  // [B x n_embd] each
  size_t att = 0;        // [B x n_embd]
  size_t ff = 0;         // [B x n_ff]
  size_t pooled = 0;     // [B x n_embd]
  size_t pos_type = 0;   // position + type-0 table [n_ctx_train x n_embd]
  size_t type_delta = 0; // each type's row less type 0's [n_token_types x n_embd]

  size_t compute_bytes() const {
    return (x + tmp + q + k + v + att + ff + pooled + pos_type + type_delta) * sizeof(float);
  }
};

// Tokens per forward pass: options.max_batch_tokens, raised to n_ctx_train so
// any single input fits.
int encoder_batch_tokens(const EncoderHParams& hp, const EncoderOptions& options);
EncoderBufferSizes encoder_buffer_sizes(const EncoderHParams& hp, const EncoderOptions& options);

class Encoder {
 public:
  // Loads `gguf` (which must outlive the encoder) onto `backend`. Throws
  // tars::Error naming the file and the problem (missing tensor, wrong shape).
  static std::unique_ptr<Encoder> load(std::shared_ptr<const GgufFile> gguf, Backend& backend,
                                       const EncoderOptions& options = {});
  ~Encoder();

  const EncoderHParams& hparams() const { return hp_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The most tokens one forward() call takes (options, raised to n_ctx_train).
  int max_batch_tokens() const { return max_batch_; }
  // The dimension of the output vectors (n_embd).
  int n_embd() const { return hp_.n_embd; }

  // Floats per input that forward() returns (pooled): n_embd, or
  // n_cls_out for rank pooling.
  int n_out() const { return hp_.pooling == PoolingType::kRank ? hp_.n_cls_out : hp_.n_embd; }

  // Runs whole inputs packed into one pass: input i is tokens[start[i] ..
  // start[i+1]) (start has n_inputs + 1 entries, start[0] == 0). `types`
  // is empty (every token type 0) or one type id per token. Returns the
  // pooled vectors, not normalised: n_inputs rows of n_out() floats (mean,
  // CLS, rank), or one row of n_embd per token in input order (pooling
  // none). Throws tars::Error(kInvalidArgument) for an empty input, one
  // longer than n_ctx_train, more than max_batch_tokens() tokens in all, a
  // token id outside the vocabulary or a type id outside the model's types.
  // Thread-safe (serialized).
  std::vector<float> forward(std::span<const int32_t> tokens, std::span<const int32_t> start,
                             std::span<const int32_t> types = {});

 private:
  Encoder(std::shared_ptr<const GgufFile> gguf, Backend& backend, const EncoderOptions& options);
  void load_weights();
  void load_head();
  void alloc_buffers();
  void check_batch(std::span<const int32_t> tokens, std::span<const int32_t> start,
                   std::span<const int32_t> types) const;

  std::shared_ptr<const GgufFile> gguf_;
  Backend& backend_;
  EncoderHParams hp_;
  EncoderWeights w_;
  std::unique_ptr<Tokenizer> tokenizer_;
  int max_batch_ = 0;
  std::mutex mu_;  // one forward pass at a time: the buffers below are shared
  // Backend memory, sized for max_batch_ tokens.
  float* pos_type_ = nullptr;  // position_embd[p] + token_types[0], [n_ctx_train x n_embd]
  float* type_delta_ = nullptr;  // token_types[t] - token_types[0], [n_token_types x n_embd]
  float* x_ = nullptr;         // residual stream [B x n_embd]
  float* tmp_ = nullptr;       // [B x n_embd]
  float* q_ = nullptr;         // [B x n_embd]
  float* k_ = nullptr;         // [B x n_embd]
  float* v_ = nullptr;         // [B x n_embd]
  float* att_ = nullptr;       // attention output [B x n_embd]
  float* ff_ = nullptr;        // [B x n_ff]
  float* pooled_ = nullptr;    // [B x n_embd]
  std::vector<void*> owned_;   // every backend allocation, freed in ~Encoder
};

}  // namespace tars::engine
