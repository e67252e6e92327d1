// The forward pass of an encoder (BERT) over packed inputs.
#include "engine/encoder.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace tars::engine {

void Encoder::check_batch(std::span<const int32_t> tokens, std::span<const int32_t> start,
                          std::span<const int32_t> types) const {
  if (start.size() < 2 || start[0] != 0) {
    throw Error(ErrorCode::kInvalidArgument, "an encoder batch needs at least one input");
  }
  const size_t n_inputs = start.size() - 1;
  for (size_t i = 0; i < n_inputs; ++i) {
    const int64_t len = static_cast<int64_t>(start[i + 1]) - start[i];
    if (len <= 0) {
      throw Error(ErrorCode::kInvalidArgument, "input " + std::to_string(i) + " has no tokens");
    }
    if (len > hp_.n_ctx_train) {
      throw Error(ErrorCode::kInvalidArgument,
                  "input " + std::to_string(i) + " has " + std::to_string(len) +
                      " tokens, more than the model's " + std::to_string(hp_.n_ctx_train));
    }
  }
  if (static_cast<size_t>(start.back()) != tokens.size()) {
    throw Error(ErrorCode::kInvalidArgument, "encoder batch offsets do not match its tokens");
  }
  if (tokens.size() > static_cast<size_t>(max_batch_)) {
    throw Error(ErrorCode::kInvalidArgument,
                "an encoder batch of " + std::to_string(tokens.size()) +
                    " tokens is over the limit of " + std::to_string(max_batch_));
  }
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= hp_.n_vocab) {
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(tokens[t]) +
                                                   " is outside the vocabulary of " +
                                                   std::to_string(hp_.n_vocab));
    }
  }
  if (!types.empty() && types.size() != tokens.size()) {
    throw Error(ErrorCode::kInvalidArgument, "an encoder batch has " + std::to_string(types.size()) +
                                                 " token types for " + std::to_string(tokens.size()) + " tokens");
  }
  for (int32_t t : types) {
    if (t < 0 || t >= hp_.n_token_types) {
      throw Error(ErrorCode::kInvalidArgument, "token type " + std::to_string(t) + " is outside the model's " +
                                                   std::to_string(hp_.n_token_types) + " types");
    }
  }
}

std::vector<float> Encoder::forward(std::span<const int32_t> tokens, std::span<const int32_t> start,
                                    std::span<const int32_t> types) {
  check_batch(tokens, start, types);
  std::lock_guard<std::mutex> lock(mu_);
  Backend& be = backend_;
  const int n = static_cast<int>(tokens.size());
  const int n_inputs = static_cast<int>(start.size()) - 1;
  const int E = hp_.n_embd, F = hp_.n_ff;
  const size_t nE = static_cast<size_t>(n) * E;
  const SeqLayout layout{n_inputs, start.data()};
  const AttentionParams ap{hp_.n_head, hp_.n_head, hp_.head_dim,
                           1.0f / std::sqrt(static_cast<float>(hp_.head_dim))};

  // Embeddings: token row + (position row + type-0 row) (+ the token's
  // type row less type 0's), then LayerNorm.
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n_inputs; ++i) {
    for (int t = start[i]; t < start[i + 1]; ++t) pos[t] = t - start[i];
  }
  be.get_rows(w_.tok_embd, tokens.data(), n, x_);
  be.gather_rows(pos_type_, pos.data(), n, E, tmp_);
  be.add(x_, tmp_, nE);
  if (std::any_of(types.begin(), types.end(), [](int32_t t) { return t != 0; })) {
    be.gather_rows(type_delta_, types.data(), n, E, tmp_);
    be.add(x_, tmp_, nE);
  }
  be.layer_norm(x_, w_.embd_norm, w_.embd_norm_b, n, E, hp_.norm_eps);

  for (const EncoderLayerWeights& l : w_.layers) {
    be.matmul(l.wq, x_, n, q_, &l.bq);
    be.matmul(l.wk, x_, n, k_, &l.bk);
    be.matmul(l.wv, x_, n, v_, &l.bv);
    be.attention_packed(q_, k_, v_, layout, ap, att_);
    be.matmul(l.wo, att_, n, tmp_, &l.bo);
    be.add(x_, tmp_, nE);
    be.layer_norm(x_, l.attn_out_norm, l.attn_out_norm_b, n, E, hp_.norm_eps);
    be.matmul(l.ffn_up, x_, n, ff_, &l.ffn_up_b);
    be.gelu_erf(ff_, static_cast<size_t>(n) * F);
    be.matmul(l.ffn_down, ff_, n, tmp_, &l.ffn_down_b);
    be.add(x_, tmp_, nE);
    be.layer_norm(x_, l.out_norm, l.out_norm_b, n, E, hp_.norm_eps);
  }

  std::vector<float> out;
  switch (hp_.pooling) {
    case PoolingType::kNone:
      out.resize(nE);
      be.download(out.data(), x_, nE * sizeof(float));
      return out;
    case PoolingType::kMean:
      be.seq_mean(x_, layout, E, pooled_);
      break;
    case PoolingType::kCls:
    case PoolingType::kRank:
      be.gather_rows(x_, start.data(), n_inputs, E, pooled_);  // each input's first row
      break;
  }
  out.resize(static_cast<size_t>(n_inputs) * E);
  be.download(out.data(), pooled_, out.size() * sizeof(float));
  if (hp_.pooling == PoolingType::kRank) {
    // The head on each input's first row, on the host (encoder.h).
    const int O = hp_.n_cls_out;
    std::vector<float> scores(static_cast<size_t>(n_inputs) * O);
    for (int i = 0; i < n_inputs; ++i) {
      w_.head.apply(out.data() + static_cast<size_t>(i) * E, scores.data() + static_cast<size_t>(i) * O);
    }
    return scores;
  }
  return out;
}

}  // namespace tars::engine
