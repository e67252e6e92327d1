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

Model::Model(std::shared_ptr<const GgufFile> gguf, const ModelOptions& options)
    : gguf_(std::move(gguf)), opt_(options) {}

Model::~Model() {
  for (Stage& s : stages_) {
    for (void* p : s.owned) s.be->free(p);
  }
}

std::unique_ptr<Model> Model::load(std::shared_ptr<const GgufFile> gguf, Backend& backend,
                                   const ModelOptions& options) {
  return load(std::move(gguf), std::vector<ModelPart>{{&backend, -1}}, options);
}

std::unique_ptr<Model> Model::load(std::shared_ptr<const GgufFile> gguf,
                                   std::vector<ModelPart> parts, const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model(std::move(gguf), options));
  m->hp_ = model_read_hparams(*m->gguf_);
  if (m->opt_.n_ctx <= 0) m->opt_.n_ctx = default_context(m->hp_.n_ctx_train);
  if (m->opt_.n_slots < 1 || m->opt_.max_batch < 1) {
    throw Error(ErrorCode::kInvalidArgument, "n_slots and max_batch must be at least 1");
  }
  if (m->opt_.kv_type != TensorType::kF16 && m->opt_.kv_type != TensorType::kF32) {
    throw Error(ErrorCode::kInvalidArgument, "the KV cache type must be f16 or f32");
  }
  // Layers to parts: parts may be empty (0 layers), but every layer has one.
  const int n_layer = m->hp_.n_layer;
  int next = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const ModelPart& p = parts[i];
    if (!p.backend) throw Error(ErrorCode::kInvalidArgument, "a model part has no backend");
    for (size_t j = 0; j < i; ++j) {
      if (parts[j].backend == p.backend) {
        throw Error(ErrorCode::kInvalidArgument, "two model parts share one backend");
      }
    }
    int n = p.n_layers;
    if (n < 0) {
      if (i + 1 != parts.size()) {
        throw Error(ErrorCode::kInvalidArgument, "only the last model part may take the rest (-1)");
      }
      n = n_layer - next;
    }
    if (next + n > n_layer) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the model parts hold " + std::to_string(next + n) + " layers; the model has " +
                      std::to_string(n_layer));
    }
    Stage s;
    s.be = p.backend;
    s.l0 = next;
    s.l1 = next + n;
    next += n;
    m->stages_.push_back(std::move(s));
  }
  if (m->stages_.empty() || next != n_layer) {
    throw Error(ErrorCode::kInvalidArgument,
                "the model parts hold " + std::to_string(next) + " layers; the model has " +
                    std::to_string(n_layer));
  }
  // Parts without layers in the middle do nothing; drop them, but keep the
  // first (embeddings) and the last (output head) where they were asked for.
  std::vector<Stage> kept;
  for (size_t i = 0; i < m->stages_.size(); ++i) {
    Stage& s = m->stages_[i];
    if (s.l0 == s.l1 && i != 0 && i + 1 != m->stages_.size()) continue;
    kept.push_back(std::move(s));
  }
  m->stages_ = std::move(kept);
  m->stages_.front().first = true;
  m->stages_.back().last = true;
  m->tokenizer_ = Tokenizer::from_gguf(*m->gguf_);
  m->load_weights();
  m->alloc_buffers();
  return m;
}

std::vector<ModelPartMemory> Model::memory() const {
  std::vector<ModelPartMemory> out;
  for (const Stage& s : stages_) {
    out.push_back({s.be->name(), s.l0, s.l1 - s.l0, s.be->allocated(MemoryKind::kWeights),
                   s.be->allocated(MemoryKind::kKvCache), s.be->allocated(MemoryKind::kCompute)});
  }
  return out;
}

void Model::load_weights() {
  const GgufFile& f = *gguf_;
  const ModelHParams& hp = hp_;
  // Finds a tensor, checks its shape, and hands it to the backend.
  auto get_on = [&](Stage& st, const std::string& name, int64_t cols, int64_t rows,
                    bool required) -> Weight {
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
    return st.be->load_weight(t->type, cols, rows, t->data);
  };
  Stage& first = stages_.front();
  Stage& last = stages_.back();
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
  w_.tok_embd = get_on(first, "token_embd.weight", E, V, true);
  w_.output_norm = get_on(last, "output_norm.weight", E, 1, true);
  w_.output_norm_b = get_on(last, "output_norm.bias", E, 1, false);
  w_.output = get_on(last, "output.weight", E, V, false);
  if (!w_.output) {  // tied embeddings
    w_.output = &first == &last ? w_.tok_embd : get_on(last, "token_embd.weight", E, V, true);
  }
  w_.output_b = get_on(last, "output.bias", V, 1, false);
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
    Stage& st = *std::find_if(stages_.begin(), stages_.end(),
                              [&](const Stage& s) { return il >= s.l0 && il < s.l1; });
    auto get = [&](const std::string& name, int64_t cols, int64_t rows, bool required) {
      return get_on(st, name, cols, rows, required);
    };
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

std::string Model::context_limit_text() const {
  std::string s = "the context of " + std::to_string(opt_.n_ctx) + " tokens";
  if (opt_.n_ctx < hp_.n_ctx_train) {
    s += " (the model was trained for " + std::to_string(hp_.n_ctx_train) + ": a larger ctx_size holds more)";
  }
  return s;
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
  kv_.resize(hp.n_layer);
  for (Stage& st : stages_) {
    auto buf = [&](size_t floats) {
      void* p = st.be->alloc(floats * sizeof(float), MemoryKind::kCompute);
      st.owned.push_back(p);
      return static_cast<float*>(p);
    };
    st.x = buf(s.x);  // every part: the residual stream arrives here
    if (st.l1 > st.l0) {
      st.h = buf(s.h);
      st.q = buf(s.q);
      st.k = buf(s.k);
      st.v = buf(s.v);
      st.qkv = buf(s.qkv);
      st.att = buf(s.att);
      st.tmp = buf(s.tmp);
      st.ff1 = buf(s.ff1);
      st.ff2 = buf(s.ff2);
    }
    if (st.last) {
      st.out_rows = buf(s.out_rows);
      st.logits = buf(s.logits);
    }
    for (int il = st.l0; il < st.l1; ++il) {
      KvLayer& l = kv_[il];
      l.k = st.be->alloc(s.kv_layer_bytes, MemoryKind::kKvCache);
      st.owned.push_back(l.k);
      l.v = st.be->alloc(s.kv_layer_bytes, MemoryKind::kKvCache);
      st.owned.push_back(l.v);
      l.type = opt_.kv_type;
      l.n_ctx = opt_.n_ctx;
      l.kv_dim = hp.kv_dim();
    }
  }
  if (stages_.size() > 1) staging_.resize(s.x);
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
  const ModelHParams& hp = hp_;
  const int n = end - begin;
  BatchLayout layout{n, batch.pos.data() + begin, batch.seq.data() + begin};
  std::vector<int32_t> rows;
  for (int i = begin; i < end; ++i) {
    if (batch.want_logits[i]) rows.push_back(i - begin);
  }

  // A one-part model's decode step may be recorded and replayed as a unit
  // (Backend::capture_begin): the same operations every step. A failed
  // recording ran nothing, so the step runs again directly.
  Backend& be = *stages_.back().be;
  bool done = false;
  if (stages_.size() == 1 && n == 1 && be.capture_begin()) {
    bool recorded = true;
    try {
      compute_chunk(batch.tokens.data() + begin, n, layout, rows);
    } catch (const std::exception&) {  // nothing ran; directly, it throws again if it must
      be.capture_abort();
      recorded = false;
    }
    done = recorded && be.capture_end();
  }
  if (!done) compute_chunk(batch.tokens.data() + begin, n, layout, rows);

  if (rows.empty()) return;
  const int m = static_cast<int>(rows.size());
  size_t old = logits.size();
  logits.resize(old + static_cast<size_t>(m) * hp.n_vocab);
  be.download(logits.data() + old, stages_.back().logits, static_cast<size_t>(m) * hp.n_vocab * sizeof(float));
}

void Model::compute_chunk(const int32_t* tokens, int n, const BatchLayout& layout, const std::vector<int32_t>& rows) {
  const ModelHParams& hp = hp_;
  const int E = hp.n_embd;
  stages_.front().be->get_rows(w_.tok_embd, tokens, n, stages_.front().x);
  for (size_t si = 0; si < stages_.size(); ++si) {
    Stage& s = stages_[si];
    if (si > 0) {  // the residual stream moves to this part's backend
      const size_t bytes = static_cast<size_t>(n) * E * sizeof(float);
      stages_[si - 1].be->download(staging_.data(), stages_[si - 1].x, bytes);
      s.be->upload(s.x, staging_.data(), bytes);
    }
    bool pending_add = false;
    for (int il = s.l0; il < s.l1; ++il) pending_add = forward_layer(s, il, n, layout, pending_add);
  }
  if (rows.empty()) return;
  Stage& s = stages_.back();
  Backend& be = *s.be;
  const int m = static_cast<int>(rows.size());
  be.gather_rows(s.x, rows.data(), m, E, s.out_rows);
  norm(be, s.out_rows, w_.output_norm, w_.output_norm_b, m);
  be.matmul(w_.output, s.out_rows, m, s.logits, w_.output_b ? &w_.output_b : nullptr);
}

void Model::norm(Backend& be, float* x, const Weight& w, const Weight& b, int rows) const {
  if (hp_.norm == NormKind::kRms) be.rms_norm(x, w, rows, hp_.n_embd, hp_.norm_eps);
  else be.layer_norm(x, w, b, rows, hp_.n_embd, hp_.norm_eps);
}

void Model::norm_to(Backend& be, const float* x, float* out, const Weight& w, const Weight& b, int rows) const {
  if (hp_.norm == NormKind::kRms) {
    be.rms_norm_to(x, out, w, rows, hp_.n_embd, hp_.norm_eps);
  } else {
    be.copy_cols(x, hp_.n_embd, 0, hp_.n_embd, rows, out);
    be.layer_norm(out, w, b, rows, hp_.n_embd, hp_.norm_eps);
  }
}

void Model::add_norm_to(Backend& be, float* x, const float* a, float* out, const Weight& w, const Weight& b,
                        int rows) const {
  if (hp_.norm == NormKind::kRms) {
    be.add_rms_norm_to(x, a, out, w, rows, hp_.n_embd, hp_.norm_eps);
  } else {
    be.add(x, a, static_cast<size_t>(rows) * hp_.n_embd);
    norm_to(be, x, out, w, b, rows);
  }
}

// A layer's last residual add (x += tmp) is left to the next layer of the
// same stage, which does it together with its first norm (add_norm_to): the
// same operations in the same order, one GPU kernel fewer. `pending_add`:
// this layer starts with that add; the layer returns whether it left one.
bool Model::forward_layer(Stage& s, int il, int n, const BatchLayout& layout, bool pending_add) {
  Backend& be = *s.be;
  const ModelHParams& hp = hp_;
  const int E = hp.n_embd, Q = hp.q_dim(), K = hp.kv_dim(), F = hp.n_ff;
  AttentionParams ap{hp.n_head, hp.n_head_kv, hp.head_dim,
                     1.0f / std::sqrt(static_cast<float>(hp.head_dim))};
  const LayerWeights& l = w_.layers[il];
  if (pending_add) {
    add_norm_to(be, s.x, s.tmp, s.h, l.attn_norm, l.attn_norm_b, n);
  } else {
    norm_to(be, s.x, s.h, l.attn_norm, l.attn_norm_b, n);
  }

  if (l.wqkv) {
    be.matmul(l.wqkv, s.h, n, s.qkv, l.bqkv ? &l.bqkv : nullptr);
    be.copy_cols(s.qkv, Q + 2 * K, 0, Q, n, s.q);
    be.copy_cols(s.qkv, Q + 2 * K, Q, K, n, s.k);
    be.copy_cols(s.qkv, Q + 2 * K, Q + K, K, n, s.v);
  } else {
    const MatmulOut qkv[] = {{&l.wq, s.q, l.bq ? &l.bq : nullptr},
                             {&l.wk, s.k, l.bk ? &l.bk : nullptr},
                             {&l.wv, s.v, l.bv ? &l.bv : nullptr}};
    be.matmul_many(s.h, n, qkv, 3);
  }
  be.rope_store(s.q, s.k, s.v, kv_[il], layout, hp.n_head, hp.n_head_kv, hp.head_dim, hp.rope);
  be.attention(s.q, kv_[il], layout, ap, s.att);
  be.matmul(l.wo, s.att, n, s.tmp, l.bo ? &l.bo : nullptr);

  // Feed-forward input: the same normed h (parallel residual, or stablelm
  // files without ffn_norm), else the normed residual after attention.
  const bool parallel = hp.parallel_residual || !l.ffn_norm;
  if (parallel) {
    be.add(s.x, s.tmp, static_cast<size_t>(n) * E);
  } else {
    add_norm_to(be, s.x, s.tmp, s.h, l.ffn_norm, l.ffn_norm_b, n);
  }
  if (hp.ffn == FfnKind::kSwiGlu) {
    const MatmulOut gate_up[] = {{&l.ffn_gate, s.ff1, nullptr}, {&l.ffn_up, s.ff2, nullptr}};
    be.matmul_many(s.h, n, gate_up, 2);
    be.swiglu_rows(s.ff1, s.ff2, n, F);
  } else {
    be.matmul(l.ffn_up, s.h, n, s.ff1, l.ffn_up_b ? &l.ffn_up_b : nullptr);
    be.gelu(s.ff1, static_cast<size_t>(n) * F);
  }
  be.matmul(l.ffn_down, s.ff1, n, s.tmp, l.ffn_down_b ? &l.ffn_down_b : nullptr);
  if (il + 1 < s.l1) return true;  // the next layer adds it
  be.add(s.x, s.tmp, static_cast<size_t>(n) * E);
  return false;
}

}  // namespace tars::engine
