#include "support/bert_reference.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/gguf.h"
#include "engine/quant.h"

namespace tars::test {

using engine::GgufFile;

BertReference::Tensor BertReference::get(const GgufFile& f, const std::string& name) const {
  const auto* info = f.find_tensor(name);
  if (!info) throw std::runtime_error("bert reference: missing tensor " + name);
  Tensor t;
  t.cols = static_cast<long>(info->shape[0]);
  t.rows = static_cast<long>(info->n_elems / info->shape[0]);
  const size_t row_bytes = info->n_bytes / t.rows;
  std::vector<float> row(t.cols);
  t.v.resize(info->n_elems);
  for (long r = 0; r < t.rows; ++r) {
    engine::dequantize_row(info->type, info->data + row_bytes * r, row.data(), t.cols);
    std::copy(row.begin(), row.end(), t.v.begin() + r * t.cols);
  }
  return t;
}

BertReference::BertReference(const GgufFile& f) {
  if (f.get_string("general.architecture") != "bert") throw std::runtime_error("not a bert file");
  n_embd_ = static_cast<int>(f.get_u64("bert.embedding_length"));
  n_layer_ = static_cast<int>(f.get_u64("bert.block_count"));
  n_head_ = static_cast<int>(f.get_u64("bert.attention.head_count"));
  n_ff_ = static_cast<int>(f.get_u64("bert.feed_forward_length"));
  n_ctx_ = static_cast<int>(f.get_u64("bert.context_length"));
  eps_ = f.opt_f64("bert.attention.layer_norm_epsilon").value_or(1e-12);
  pooling_ = static_cast<int>(f.opt_u64("bert.pooling_type").value_or(1));
  tok_embd_ = get(f, "token_embd.weight");
  type_embd_ = get(f, "token_types.weight");
  pos_embd_ = get(f, "position_embd.weight");
  embd_norm_w_ = get(f, "token_embd_norm.weight");
  embd_norm_b_ = get(f, "token_embd_norm.bias");
  for (auto [name, t] : {std::pair{"cls.weight", &cls_w_}, std::pair{"cls.bias", &cls_b_},
                         std::pair{"cls.output.weight", &cls_out_w_}, std::pair{"cls.output.bias", &cls_out_b_}}) {
    if (f.find_tensor(name)) *t = get(f, name);
  }
  for (int il = 0; il < n_layer_; ++il) {
    auto n = [&](const char* s) { return "blk." + std::to_string(il) + "." + s; };
    Layer l;
    l.wq = get(f, n("attn_q.weight"));
    l.bq = get(f, n("attn_q.bias"));
    l.wk = get(f, n("attn_k.weight"));
    l.bk = get(f, n("attn_k.bias"));
    l.wv = get(f, n("attn_v.weight"));
    l.bv = get(f, n("attn_v.bias"));
    l.wo = get(f, n("attn_output.weight"));
    l.bo = get(f, n("attn_output.bias"));
    l.ln1_w = get(f, n("attn_output_norm.weight"));
    l.ln1_b = get(f, n("attn_output_norm.bias"));
    l.up = get(f, n("ffn_up.weight"));
    l.up_b = get(f, n("ffn_up.bias"));
    l.down = get(f, n("ffn_down.weight"));
    l.down_b = get(f, n("ffn_down.bias"));
    l.ln2_w = get(f, n("layer_output_norm.weight"));
    l.ln2_b = get(f, n("layer_output_norm.bias"));
    layers_.push_back(std::move(l));
  }
}

std::vector<double> BertReference::linear(const Tensor& w, const Tensor& b,
                                          const std::vector<double>& x) const {
  std::vector<double> y(w.rows);
  for (long r = 0; r < w.rows; ++r) {
    const double* row = w.v.data() + r * w.cols;
    double s = 0;
    for (long c = 0; c < w.cols; ++c) s += row[c] * x[c];
    y[r] = s + (b.v.empty() ? 0.0 : b.v[r]);
  }
  return y;
}

void BertReference::layer_norm(std::vector<double>& x, const Tensor& w, const Tensor& b) const {
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= x.size();
  for (double v : x) var += (v - mean) * (v - mean);
  var /= x.size();
  const double inv = 1.0 / std::sqrt(var + eps_);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (x[i] - mean) * inv * w.v[i] + b.v[i];
}

std::vector<std::vector<double>> BertReference::hidden(const std::vector<int>& tokens,
                                                      const std::vector<int>& types) const {
  const int n = static_cast<int>(tokens.size()), E = n_embd_, hd = E / n_head_;
  if (n == 0 || n > n_ctx_) throw std::runtime_error("bert reference: bad input length");
  std::vector<std::vector<double>> x(n, std::vector<double>(E));
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < E; ++i) {
      x[t][i] = tok_embd_.v[static_cast<size_t>(tokens[t]) * E + i] +
                pos_embd_.v[static_cast<size_t>(t) * E + i] +
                type_embd_.v[static_cast<size_t>(types.empty() ? 0 : types.at(t)) * E + i];
    }
    layer_norm(x[t], embd_norm_w_, embd_norm_b_);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (const Layer& l : layers_) {
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      q[t] = linear(l.wq, l.bq, x[t]);
      k[t] = linear(l.wk, l.bk, x[t]);
      v[t] = linear(l.wv, l.bv, x[t]);
    }
    for (int t = 0; t < n; ++t) {
      // Every token sees every token of the input: softmax(q k / sqrt(hd)) v per head.
      std::vector<double> att(E, 0.0), p(n);
      for (int h = 0; h < n_head_; ++h) {
        double mx = -INFINITY;
        for (int j = 0; j < n; ++j) {
          double s = 0;
          for (int d = 0; d < hd; ++d) s += q[t][h * hd + d] * k[j][h * hd + d];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int j = 0; j < n; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int j = 0; j < n; ++j) {
          for (int d = 0; d < hd; ++d) att[h * hd + d] += p[j] / sum * v[j][h * hd + d];
        }
      }
      std::vector<double> o = linear(l.wo, l.bo, att);
      for (int i = 0; i < E; ++i) o[i] += x[t][i];
      layer_norm(o, l.ln1_w, l.ln1_b);
      std::vector<double> f = linear(l.up, l.up_b, o);
      for (double& u : f) u = 0.5 * u * (1.0 + std::erf(u / std::sqrt(2.0)));
      std::vector<double> y = linear(l.down, l.down_b, f);
      for (int i = 0; i < E; ++i) y[i] += o[i];
      layer_norm(y, l.ln2_w, l.ln2_b);
      q[t].swap(y);  // q[t] is not needed again: hold the block's output there
    }
    for (int t = 0; t < n; ++t) x[t].swap(q[t]);
  }
  return x;
}

std::vector<double> BertReference::embed(const std::vector<int>& tokens, bool normalize) const {
  const std::vector<std::vector<double>> h = hidden(tokens);
  std::vector<std::vector<double>> vecs;
  if (pooling_ == 0) {
    vecs = h;
  } else if (pooling_ == 2) {
    vecs.push_back(h[0]);
  } else {
    std::vector<double> m(n_embd_, 0.0);
    for (const auto& row : h) {
      for (int i = 0; i < n_embd_; ++i) m[i] += row[i];
    }
    for (double& v : m) v /= static_cast<double>(h.size());
    vecs.push_back(std::move(m));
  }
  std::vector<double> out;
  for (auto& v : vecs) {
    if (normalize) {
      double ss = 0;
      for (double e : v) ss += e * e;
      for (double& e : v) e /= std::sqrt(ss);
    }
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<double> BertReference::rank(const std::vector<int>& tokens, const std::vector<int>& types) const {
  if (cls_w_.v.empty() && cls_out_w_.v.empty()) throw std::runtime_error("bert reference: no classification head");
  std::vector<double> x = hidden(tokens, types)[0];
  if (!cls_w_.v.empty()) {
    x = linear(cls_w_, cls_b_, x);
    for (double& v : x) v = std::tanh(v);
  }
  if (!cls_out_w_.v.empty()) x = linear(cls_out_w_, cls_out_b_, x);
  return x;
}

}  // namespace tars::test
