// Loading an encoder (BERT) model: hyper-parameters, weights, buffers.
#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/gguf_hparams.h"
#include "engine/quant.h"
#include "engine/tokenizer.h"

namespace tars::engine {
namespace {

// The largest size an encoder's hyper-parameter may have.
int key_int(const GgufFile& f, const std::string& key) { return hparam_int(f, uint64_t{1} << 24, key); }

// Rows of a 2-D tensor, or 0 when absent / not 2-D.
int tensor_rows(const GgufFile& f, const char* name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t || t->shape.size() != 2) {
    throw Error(ErrorCode::kCorruptData,
                f.path() + ": tensor '" + std::string(name) + "' is missing or not 2-D");
  }
  return static_cast<int>(t->shape[1]);
}

// A tensor's values as floats, row by row (any type the file may hold).
std::vector<float> tensor_floats(const GgufTensorInfo& t) {
  const int64_t cols = static_cast<int64_t>(t.shape[0]);
  const int64_t rows = static_cast<int64_t>(t.n_elems) / std::max<int64_t>(cols, 1);
  std::vector<float> out(static_cast<size_t>(cols * rows));
  const size_t row_bytes = rows > 0 ? t.n_bytes / static_cast<size_t>(rows) : 0;
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t.type, t.data + row_bytes * r, out.data() + r * cols, cols);
  return out;
}

}  // namespace

const char* pooling_type_name(PoolingType p) {
  switch (p) {
    case PoolingType::kNone: return "none";
    case PoolingType::kMean: return "mean";
    case PoolingType::kCls: return "cls";
    case PoolingType::kRank: return "rank";
  }
  return "unknown";
}

bool encoder_is_encoder_file(const GgufFile& f) {
  return f.opt_string("general.architecture").value_or("") == "bert";
}

EncoderHParams encoder_read_hparams(const GgufFile& f) {
  EncoderHParams hp;
  hp.arch = f.get_string("general.architecture");
  const std::string& a = hp.arch;
  if (a != "bert") {
    throw Error(ErrorCode::kUnsupported,
                f.path() + ": architecture '" + a + "' is not an encoder tars runs (bert)");
  }
  hp.name = f.opt_string("general.name").value_or("");
  hp.n_embd = key_int(f, a + ".embedding_length");
  hp.n_layer = key_int(f, a + ".block_count");
  hp.n_head = key_int(f, a + ".attention.head_count");
  hp.n_ff = key_int(f, a + ".feed_forward_length");
  hp.n_ctx_train = key_int(f, a + ".context_length");
  hparam_check_block_count(f, hp.n_layer);
  if (hp.n_embd % hp.n_head != 0) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": embedding_length " +
                                             std::to_string(hp.n_embd) +
                                             " is not a multiple of head_count " +
                                             std::to_string(hp.n_head));
  }
  hp.head_dim = hp.n_embd / hp.n_head;
  hp.norm_eps = static_cast<float>(f.opt_f64(a + ".attention.layer_norm_epsilon").value_or(1e-12));
  if (f.opt_bool(a + ".attention.causal").value_or(false)) {
    throw Error(ErrorCode::kUnsupported,
                f.path() + ": " + a + ".attention.causal is true; tars runs bidirectional encoders only");
  }
  // Absent: mean, what sentence-transformers models (the common BERT
  // embedding models) use.
  const uint64_t pooling = f.opt_u64(a + ".pooling_type").value_or(1);
  if (pooling > 2 && pooling != 4) {
    throw Error(ErrorCode::kUnsupported,
                f.path() + ": " + a + ".pooling_type = " + std::to_string(pooling) +
                    " is not supported (0 none, 1 mean, 2 cls, 4 rank)");
  }
  hp.pooling = static_cast<PoolingType>(pooling);
  hp.n_vocab = tensor_rows(f, "token_embd.weight");
  hp.n_token_types = tensor_rows(f, "token_types.weight");
  if (hp.n_token_types < 1) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": tensor 'token_types.weight' has no rows");
  }
  if (hp.pooling == PoolingType::kRank) {
    // The head's outputs: the last of its layers decides.
    const char* last = f.find_tensor("cls.output.weight") ? "cls.output.weight"
                       : f.find_tensor("cls.weight")      ? "cls.weight"
                                                          : nullptr;
    if (!last) {
      throw Error(ErrorCode::kCorruptData,
                  f.path() + ": " + a + ".pooling_type is rank but the file has no classification head "
                  "(tensors cls.weight / cls.output.weight)");
    }
    // A one-output layer may be stored as a vector.
    const GgufTensorInfo* t = f.find_tensor(last);
    hp.n_cls_out = t->shape.size() == 1 ? 1 : t->shape.size() == 2 ? static_cast<int>(t->shape[1]) : 0;
    if (hp.n_cls_out < 1) {
      throw Error(ErrorCode::kCorruptData, f.path() + ": tensor '" + std::string(last) + "' has no rows");
    }
  }
  return hp;
}

void EncoderHead::apply(const float* x, float* y) const {
  // Double sums: the head is a handful of dot products per input.
  auto linear = [](const std::vector<float>& w, const std::vector<float>& b, int n_in, int n_rows,
                   const float* in, float* out) {
    for (int r = 0; r < n_rows; ++r) {
      const float* row = w.data() + static_cast<size_t>(r) * n_in;
      double s = b.empty() ? 0.0 : b[r];
      for (int c = 0; c < n_in; ++c) s += static_cast<double>(row[c]) * in[c];
      out[r] = static_cast<float>(s);
    }
  };
  if (n_mid == 0) {
    linear(out_w, out_b, n_in, n_out, x, y);
    return;
  }
  std::vector<float> h(n_mid);
  linear(dense_w, dense_b, n_in, n_mid, x, h.data());
  for (float& v : h) v = std::tanh(v);
  if (has_out()) {
    linear(out_w, out_b, n_mid, n_out, h.data(), y);
  } else {
    std::copy(h.begin(), h.end(), y);
  }
}

Encoder::Encoder(std::shared_ptr<const GgufFile> gguf, Backend& backend, const EncoderOptions& options)
    : gguf_(std::move(gguf)), backend_(backend), max_batch_(options.max_batch_tokens) {}

Encoder::~Encoder() {
  for (void* p : owned_) backend_.free(p);
}

std::unique_ptr<Encoder> Encoder::load(std::shared_ptr<const GgufFile> gguf, Backend& backend,
                                       const EncoderOptions& options) {
  if (options.max_batch_tokens < 1) {
    throw Error(ErrorCode::kInvalidArgument, "max_batch_tokens must be at least 1");
  }
  std::unique_ptr<Encoder> e(new Encoder(std::move(gguf), backend, options));
  e->hp_ = encoder_read_hparams(*e->gguf_);
  e->max_batch_ = encoder_batch_tokens(e->hp_, options);
  e->tokenizer_ = Tokenizer::from_gguf(*e->gguf_);
  if (e->hp_.n_vocab != e->tokenizer_->n_vocab()) {
    throw Error(ErrorCode::kCorruptData,
                e->gguf_->path() + ": token_embd has " + std::to_string(e->hp_.n_vocab) +
                    " rows but the tokenizer has " + std::to_string(e->tokenizer_->n_vocab()) +
                    " tokens");
  }
  e->load_weights();
  e->alloc_buffers();
  return e;
}

void Encoder::load_weights() {
  const GgufFile& f = *gguf_;
  // Finds a tensor, checks its shape, and hands it to the backend.
  auto get = [&](const std::string& name, int64_t cols, int64_t rows) -> Weight {
    const GgufTensorInfo* t = f.find_tensor(name);
    if (!t) throw Error(ErrorCode::kCorruptData, f.path() + ": tensor '" + name + "' is missing");
    const int64_t t_cols = static_cast<int64_t>(t->shape[0]);
    int64_t t_rows = 1;
    for (size_t i = 1; i < t->shape.size(); ++i) t_rows *= static_cast<int64_t>(t->shape[i]);
    if (t_cols != cols || t_rows != rows) {
      throw Error(ErrorCode::kCorruptData,
                  f.path() + ": tensor '" + name + "' has shape [" + std::to_string(t_cols) + ", " +
                      std::to_string(t_rows) + "], expected [" + std::to_string(cols) + ", " +
                      std::to_string(rows) + "]");
    }
    return backend_.load_weight(t->type, cols, rows, t->data);
  };
  const int E = hp_.n_embd, F = hp_.n_ff;
  w_.tok_embd = get("token_embd.weight", E, hp_.n_vocab);
  w_.type_embd = get("token_types.weight", E, hp_.n_token_types);
  w_.pos_embd = get("position_embd.weight", E, hp_.n_ctx_train);
  w_.embd_norm = get("token_embd_norm.weight", E, 1);
  w_.embd_norm_b = get("token_embd_norm.bias", E, 1);
  w_.layers.resize(hp_.n_layer);
  for (int il = 0; il < hp_.n_layer; ++il) {
    EncoderLayerWeights& l = w_.layers[il];
    auto n = [&](const char* what) { return "blk." + std::to_string(il) + "." + what; };
    l.wq = get(n("attn_q.weight"), E, E);
    l.bq = get(n("attn_q.bias"), E, 1);
    l.wk = get(n("attn_k.weight"), E, E);
    l.bk = get(n("attn_k.bias"), E, 1);
    l.wv = get(n("attn_v.weight"), E, E);
    l.bv = get(n("attn_v.bias"), E, 1);
    l.wo = get(n("attn_output.weight"), E, E);
    l.bo = get(n("attn_output.bias"), E, 1);
    l.attn_out_norm = get(n("attn_output_norm.weight"), E, 1);
    l.attn_out_norm_b = get(n("attn_output_norm.bias"), E, 1);
    l.ffn_up = get(n("ffn_up.weight"), E, F);
    l.ffn_up_b = get(n("ffn_up.bias"), F, 1);
    l.ffn_down = get(n("ffn_down.weight"), F, E);
    l.ffn_down_b = get(n("ffn_down.bias"), E, 1);
    l.out_norm = get(n("layer_output_norm.weight"), E, 1);
    l.out_norm_b = get(n("layer_output_norm.bias"), E, 1);
  }
  if (hp_.pooling == PoolingType::kRank) load_head();
}

void Encoder::load_head() {
  const GgufFile& f = *gguf_;
  // A tensor as floats, row by row; `cols` checked, rows returned.
  auto read = [&](const std::string& name, int64_t cols, int64_t rows_wanted, std::vector<float>& out) {
    const GgufTensorInfo* t = f.find_tensor(name);
    if (!t) return false;
    const int64_t t_cols = static_cast<int64_t>(t->shape[0]);
    const int64_t t_rows = static_cast<int64_t>(t->n_elems) / std::max<int64_t>(t_cols, 1);
    if (t_cols != cols || (rows_wanted > 0 && t_rows != rows_wanted)) {
      throw Error(ErrorCode::kCorruptData,
                  f.path() + ": tensor '" + name + "' has shape [" + std::to_string(t_cols) + ", " +
                      std::to_string(t_rows) + "], expected " + std::to_string(cols) + " columns" +
                      (rows_wanted > 0 ? " and " + std::to_string(rows_wanted) + " rows" : ""));
    }
    out = tensor_floats(*t);
    return true;
  };
  EncoderHead& h = w_.head;
  h.n_in = hp_.n_embd;
  if (read("cls.weight", hp_.n_embd, 0, h.dense_w)) {
    h.n_mid = static_cast<int>(h.dense_w.size() / hp_.n_embd);
    read("cls.bias", h.n_mid, 1, h.dense_b);
  }
  const int out_in = h.n_mid > 0 ? h.n_mid : hp_.n_embd;
  if (read("cls.output.weight", out_in, hp_.n_cls_out, h.out_w)) read("cls.output.bias", hp_.n_cls_out, 1, h.out_b);
  h.n_out = hp_.n_cls_out;
  for (const std::vector<float>* v : {&h.dense_w, &h.dense_b, &h.out_w, &h.out_b}) {
    for (float x : *v) {
      if (!std::isfinite(x)) {
        throw Error(ErrorCode::kCorruptData, f.path() + ": the classification head has a value that is not finite");
      }
    }
  }
}

int encoder_batch_tokens(const EncoderHParams& hp, const EncoderOptions& options) {
  return std::max(options.max_batch_tokens, hp.n_ctx_train);
}

EncoderBufferSizes encoder_buffer_sizes(const EncoderHParams& hp, const EncoderOptions& options) {
  EncoderBufferSizes s;
  s.batch_tokens = encoder_batch_tokens(hp, options);
  const size_t B = s.batch_tokens, E = hp.n_embd;
  s.x = s.tmp = s.q = s.k = s.v = s.att = s.pooled = B * E;
  s.ff = B * hp.n_ff;
  s.pos_type = static_cast<size_t>(hp.n_ctx_train) * E;
  s.type_delta = static_cast<size_t>(hp.n_token_types) * E;
  return s;
}

void Encoder::alloc_buffers() {
  const size_t E = hp_.n_embd, C = hp_.n_ctx_train;
  const EncoderBufferSizes s = encoder_buffer_sizes(hp_, EncoderOptions{max_batch_});
  auto buf = [&](size_t floats) {
    void* p = backend_.alloc(floats * sizeof(float), MemoryKind::kCompute);
    owned_.push_back(p);
    return static_cast<float*>(p);
  };
  x_ = buf(s.x);
  tmp_ = buf(s.tmp);
  q_ = buf(s.q);
  k_ = buf(s.k);
  v_ = buf(s.v);
  att_ = buf(s.att);
  ff_ = buf(s.ff);
  pooled_ = buf(s.pooled);
  // Every input uses token type 0, so its row is folded into the position
  // table once here: the forward pass then adds one row per token.
  pos_type_ = buf(s.pos_type);
  std::vector<int32_t> ids(C);
  for (size_t p = 0; p < C; ++p) ids[p] = static_cast<int32_t>(p);
  backend_.get_rows(w_.pos_embd, ids.data(), static_cast<int>(C), pos_type_);
  std::fill(ids.begin(), ids.end(), 0);
  // B >= C (load() raised it), so tmp_ holds C copies of the type-0 row.
  backend_.get_rows(w_.type_embd, ids.data(), static_cast<int>(C), tmp_);
  backend_.add(pos_type_, tmp_, C * E);
  // Other types add their difference from type 0 (inputs that give types).
  const size_t T = hp_.n_token_types;
  const std::vector<float> types = tensor_floats(*gguf_->find_tensor("token_types.weight"));
  std::vector<float> delta(T * E);
  for (size_t t = 0; t < T; ++t) {
    for (size_t i = 0; i < E; ++i) delta[t * E + i] = types[t * E + i] - types[i];
  }
  type_delta_ = buf(s.type_delta);
  backend_.upload(type_delta_, delta.data(), delta.size() * sizeof(float));
}

}  // namespace tars::engine
