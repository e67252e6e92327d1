// Loading the weights of a decoder model and running its forward pass.
#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

namespace tars::engine {
namespace {

std::string layer_name(int il, const char* what) {
  return "blk." + std::to_string(il) + "." + what;
}

}  // namespace

Model::Model(std::shared_ptr<const GgufFile> gguf, Backend& backend, const ModelOptions& options)
    : gguf_(std::move(gguf)), backend_(backend), opt_(options) {}

Model::~Model() {
  for (void* p : owned_) backend_.free(p);
}

std::unique_ptr<Model> Model::load(std::shared_ptr<const GgufFile> gguf, Backend& backend,
                                   const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model(std::move(gguf), backend, options));
  m->hp_ = model_read_hparams(*m->gguf_);
  if (m->opt_.n_ctx <= 0) m->opt_.n_ctx = m->hp_.n_ctx_train;
  if (m->opt_.n_slots < 1 || m->opt_.max_batch < 1) {
    throw Error(ErrorCode::kInvalidArgument, "n_slots and max_batch must be at least 1");
  }
  if (m->opt_.kv_type != TensorType::kF16 && m->opt_.kv_type != TensorType::kF32) {
    throw Error(ErrorCode::kInvalidArgument, "the KV cache type must be f16 or f32");
  }
  m->tokenizer_ = Tokenizer::from_gguf(*m->gguf_);
  m->load_weights();
  m->alloc_buffers();
  return m;
}

void Model::load_weights() {
  const GgufFile& f = *gguf_;
  const ModelHParams& hp = hp_;
  // Finds a tensor, checks its shape, and hands it to the backend.
  auto get = [&](const std::string& name, int64_t cols, int64_t rows, bool required) -> Weight {
    const GgufTensorInfo* t = f.find_tensor(name);
    if (!t) {
      if (required) {
        throw Error(ErrorCode::kCorruptData, f.path() + ": tensor '" + name + "' is missing");
      }
      return {};
    }
    int64_t t_cols = static_cast<int64_t>(t->shape[0]);
    int64_t t_rows = t->shape.size() > 1 ? static_cast<int64_t>(t->shape[1]) : 1;
    for (size_t i = 2; i < t->shape.size(); ++i) t_rows *= static_cast<int64_t>(t->shape[i]);
    if (t_cols != cols || t_rows != rows) {
      throw Error(ErrorCode::kCorruptData,
                  f.path() + ": tensor '" + name + "' has shape [" + std::to_string(t_cols) + ", " +
                      std::to_string(t_rows) + "], expected [" + std::to_string(cols) + ", " +
                      std::to_string(rows) + "]");
    }
    return backend_.load_weight(t->type, cols, rows, t->data);
  };
  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb || emb->shape.size() != 2) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": tensor 'token_embd.weight' is missing or not 2-D");
  }
  hp_.n_vocab = static_cast<int>(emb->shape[1]);
  if (hp_.n_vocab != tokenizer_->vocab().n_vocab()) {
    throw Error(ErrorCode::kCorruptData,
                f.path() + ": token_embd has " + std::to_string(hp_.n_vocab) +
                    " rows but the tokenizer has " + std::to_string(tokenizer_->vocab().n_vocab()) +
                    " tokens");
  }
  const int E = hp.n_embd, Q = hp.q_dim(), K = hp.kv_dim(), F = hp.n_ff, V = hp_.n_vocab;
  const bool layer_norm = hp.norm == NormKind::kLayer;
  w_.tok_embd = get("token_embd.weight", E, V, true);
  w_.output_norm = get("output_norm.weight", E, 1, true);
  w_.output_norm_b = get("output_norm.bias", E, 1, false);
  w_.output = get("output.weight", E, V, false);
  if (!w_.output) w_.output = w_.tok_embd;  // tied embeddings
  w_.output_b = get("output.bias", V, 1, false);
  if (const GgufTensorInfo* rf = f.find_tensor("rope_freqs.weight")) {
    if (rf->type != TensorType::kF32 || rf->n_elems != static_cast<uint64_t>(hp.rope.n_rot / 2)) {
      throw Error(ErrorCode::kCorruptData, f.path() + ": rope_freqs.weight must be F32 of n_rot/2 values");
    }
    const float* p = reinterpret_cast<const float*>(rf->data);
    w_.rope_freq_factors.assign(p, p + rf->n_elems);
    hp_.rope.freq_factors = w_.rope_freq_factors.data();
  }
  w_.layers.resize(hp.n_layer);
  for (int il = 0; il < hp.n_layer; ++il) {
    LayerWeights& l = w_.layers[il];
    auto n = [&](const char* what) { return layer_name(il, what); };
    l.attn_norm = get(n("attn_norm.weight"), E, 1, true);
    l.attn_norm_b = get(n("attn_norm.bias"), E, 1, layer_norm && hp.arch == "phi2");
    l.wqkv = get(n("attn_qkv.weight"), E, Q + 2 * K, false);
    if (l.wqkv) {
      l.bqkv = get(n("attn_qkv.bias"), Q + 2 * K, 1, false);
    } else {
      l.wq = get(n("attn_q.weight"), E, Q, true);
      l.wk = get(n("attn_k.weight"), E, K, true);
      l.wv = get(n("attn_v.weight"), E, K, true);
      l.bq = get(n("attn_q.bias"), Q, 1, hp.arch == "qwen2");
      l.bk = get(n("attn_k.bias"), K, 1, hp.arch == "qwen2");
      l.bv = get(n("attn_v.bias"), K, 1, hp.arch == "qwen2");
    }
    l.wo = get(n("attn_output.weight"), Q, E, true);
    l.bo = get(n("attn_output.bias"), E, 1, false);
    if (!hp.parallel_residual) {
      l.ffn_norm = get(n("ffn_norm.weight"), E, 1, hp.arch != "stablelm");
      l.ffn_norm_b = get(n("ffn_norm.bias"), E, 1, false);
    }
    if (hp.ffn == FfnKind::kSwiGlu) {
      l.ffn_gate = get(n("ffn_gate.weight"), E, F, true);
    }
    l.ffn_up = get(n("ffn_up.weight"), E, F, true);
    l.ffn_down = get(n("ffn_down.weight"), F, E, true);
    l.ffn_up_b = get(n("ffn_up.bias"), F, 1, false);
    l.ffn_down_b = get(n("ffn_down.bias"), E, 1, false);
  }
}

ModelBufferSizes model_buffer_sizes(const ModelHParams& hp, const ModelOptions& opt) {
  const size_t B = static_cast<size_t>(opt.max_batch);
  ModelBufferSizes s;
  s.x = B * hp.n_embd;
  s.h = B * hp.n_embd;
  s.q = B * hp.q_dim();
  s.k = B * hp.kv_dim();
  s.v = B * hp.kv_dim();
  s.qkv = B * (hp.q_dim() + 2 * hp.kv_dim());
  s.att = B * hp.q_dim();
  s.tmp = B * hp.n_embd;
  s.ff1 = B * hp.n_ff;
  s.ff2 = B * hp.n_ff;
  s.out_rows = B * hp.n_embd;
  s.logits = B * static_cast<size_t>(hp.n_vocab);
  const size_t elem = opt.kv_type == TensorType::kF32 ? 4 : 2;
  s.kv_layer_bytes = static_cast<size_t>(opt.n_slots) * opt.n_ctx * hp.kv_dim() * elem;
  s.n_layer = hp.n_layer;
  return s;
}

void Model::alloc_buffers() {
  const ModelHParams& hp = hp_;
  const ModelBufferSizes s = model_buffer_sizes(hp, opt_);
  auto buf = [&](size_t floats) {
    void* p = backend_.alloc(floats * sizeof(float), MemoryKind::kCompute);
    owned_.push_back(p);
    return static_cast<float*>(p);
  };
  x_ = buf(s.x);
  h_ = buf(s.h);
  q_ = buf(s.q);
  k_ = buf(s.k);
  v_ = buf(s.v);
  qkv_ = buf(s.qkv);
  att_ = buf(s.att);
  tmp_ = buf(s.tmp);
  ff1_ = buf(s.ff1);
  ff2_ = buf(s.ff2);
  out_rows_ = buf(s.out_rows);
  logits_ = buf(s.logits);
  kv_.resize(hp.n_layer);
  for (auto& l : kv_) {
    l.k = backend_.alloc(s.kv_layer_bytes, MemoryKind::kKvCache);
    l.v = backend_.alloc(s.kv_layer_bytes, MemoryKind::kKvCache);
    owned_.push_back(l.k);
    owned_.push_back(l.v);
    l.type = opt_.kv_type;
    l.n_ctx = opt_.n_ctx;
    l.kv_dim = hp.kv_dim();
  }
}

void Model::forward(const Batch& batch, std::vector<float>& logits) {
  const int n = batch.size();
  if (batch.pos.size() != static_cast<size_t>(n) || batch.seq.size() != static_cast<size_t>(n) ||
      batch.want_logits.size() != static_cast<size_t>(n)) {
    throw Error(ErrorCode::kInvalidArgument, "batch arrays differ in length");
  }
  for (int i = 0; i < n; ++i) {
    if (batch.tokens[i] < 0 || batch.tokens[i] >= hp_.n_vocab) {
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(batch.tokens[i]) +
                                                   " is outside the vocabulary of " +
                                                   std::to_string(hp_.n_vocab));
    }
    if (batch.seq[i] < 0 || batch.seq[i] >= opt_.n_slots) {
      throw Error(ErrorCode::kInvalidArgument, "sequence slot " + std::to_string(batch.seq[i]) +
                                                   " is outside 0.." +
                                                   std::to_string(opt_.n_slots - 1));
    }
    if (batch.pos[i] < 0 || batch.pos[i] >= opt_.n_ctx) {
      throw Error(ErrorCode::kInvalidArgument,
                  "position " + std::to_string(batch.pos[i]) + " is past the context of " +
                      std::to_string(opt_.n_ctx) + " tokens");
    }
  }
  for (int b = 0; b < n; b += opt_.max_batch) {
    forward_chunk(batch, b, std::min(n, b + opt_.max_batch), logits);
  }
}

void Model::forward_chunk(const Batch& batch, int begin, int end, std::vector<float>& logits) {
  Backend& be = backend_;
  const ModelHParams& hp = hp_;
  const int n = end - begin;
  const int E = hp.n_embd, Q = hp.q_dim(), K = hp.kv_dim(), F = hp.n_ff;
  BatchLayout layout{n, batch.pos.data() + begin, batch.seq.data() + begin};
  AttentionParams ap{hp.n_head, hp.n_head_kv, hp.head_dim,
                     1.0f / std::sqrt(static_cast<float>(hp.head_dim))};
  auto norm = [&](float* x, const Weight& w, const Weight& b, int rows) {
    if (hp.norm == NormKind::kRms) be.rms_norm(x, w, rows, E, hp.norm_eps);
    else be.layer_norm(x, w, b, rows, E, hp.norm_eps);
  };

  be.get_rows(w_.tok_embd, batch.tokens.data() + begin, n, x_);
  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& l = w_.layers[il];
    be.copy_cols(x_, E, 0, E, n, h_);
    norm(h_, l.attn_norm, l.attn_norm_b, n);

    if (l.wqkv) {
      be.matmul(l.wqkv, h_, n, qkv_, l.bqkv ? &l.bqkv : nullptr);
      be.copy_cols(qkv_, Q + 2 * K, 0, Q, n, q_);
      be.copy_cols(qkv_, Q + 2 * K, Q, K, n, k_);
      be.copy_cols(qkv_, Q + 2 * K, Q + K, K, n, v_);
    } else {
      const MatmulOut qkv[] = {{&l.wq, q_, l.bq ? &l.bq : nullptr},
                               {&l.wk, k_, l.bk ? &l.bk : nullptr},
                               {&l.wv, v_, l.bv ? &l.bv : nullptr}};
      be.matmul_many(h_, n, qkv, 3);
    }
    be.rope(q_, layout, hp.n_head, hp.head_dim, hp.rope);
    be.rope(k_, layout, hp.n_head_kv, hp.head_dim, hp.rope);
    be.kv_store(kv_[il], k_, v_, layout);
    be.attention(q_, kv_[il], layout, ap, att_);
    be.matmul(l.wo, att_, n, tmp_, l.bo ? &l.bo : nullptr);

    // Feed-forward input: the same normed h (parallel residual, or stablelm
    // files without ffn_norm), else the normed residual after attention.
    const bool parallel = hp.parallel_residual || !l.ffn_norm;
    be.add(x_, tmp_, static_cast<size_t>(n) * E);
    if (!parallel) {
      be.copy_cols(x_, E, 0, E, n, h_);
      norm(h_, l.ffn_norm, l.ffn_norm_b, n);
    }
    if (hp.ffn == FfnKind::kSwiGlu) {
      const MatmulOut gate_up[] = {{&l.ffn_gate, ff1_, nullptr}, {&l.ffn_up, ff2_, nullptr}};
      be.matmul_many(h_, n, gate_up, 2);
      be.swiglu(ff1_, ff2_, static_cast<size_t>(n) * F);
    } else {
      be.matmul(l.ffn_up, h_, n, ff1_, l.ffn_up_b ? &l.ffn_up_b : nullptr);
      be.gelu(ff1_, static_cast<size_t>(n) * F);
    }
    be.matmul(l.ffn_down, ff1_, n, tmp_, l.ffn_down_b ? &l.ffn_down_b : nullptr);
    be.add(x_, tmp_, static_cast<size_t>(n) * E);
  }

  std::vector<int32_t> rows;
  for (int i = begin; i < end; ++i) {
    if (batch.want_logits[i]) rows.push_back(i - begin);
  }
  if (rows.empty()) return;
  const int m = static_cast<int>(rows.size());
  be.gather_rows(x_, rows.data(), m, E, out_rows_);
  norm(out_rows_, w_.output_norm, w_.output_norm_b, m);
  be.matmul(w_.output, out_rows_, m, logits_, w_.output_b ? &w_.output_b : nullptr);
  size_t old = logits.size();
  logits.resize(old + static_cast<size_t>(m) * hp.n_vocab);
  be.download(logits.data() + old, logits_, static_cast<size_t>(m) * hp.n_vocab * sizeof(float));
}

}  // namespace tars::engine
