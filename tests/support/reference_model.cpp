#include "support/reference_model.h"

#include <cmath>
#include <stdexcept>

#include "engine/gguf.h"
#include "engine/quant.h"

namespace tars::test {

using engine::GgufFile;

ReferenceModel::Tensor ReferenceModel::get(const GgufFile& f, const std::string& name,
                                           bool required) const {
  Tensor t;
  const auto* info = f.find_tensor(name);
  if (!info) {
    if (required) throw std::runtime_error("reference model: missing tensor " + name);
    return t;
  }
  t.cols = static_cast<long>(info->shape[0]);
  t.rows = static_cast<long>(info->n_elems / info->shape[0]);
  std::vector<float> row(t.cols);
  size_t row_bytes = info->n_bytes / t.rows;
  t.v.resize(info->n_elems);
  for (long r = 0; r < t.rows; ++r) {
    engine::dequantize_row(info->type, info->data + row_bytes * r, row.data(), t.cols);
    for (long c = 0; c < t.cols; ++c) t.v[r * t.cols + c] = row[c];
  }
  return t;
}

void ReferenceModel::matvec(const Tensor& w, const double* x, double* y) const {
  for (long r = 0; r < w.rows; ++r) {
    double s = 0;
    for (long c = 0; c < w.cols; ++c) s += w.v[r * w.cols + c] * x[c];
    y[r] = s;
  }
}

ReferenceModel::ReferenceModel(const GgufFile& f) {
  arch_ = f.get_string("general.architecture");
  const std::string& a = arch_;
  n_embd_ = static_cast<int>(f.get_u64(a + ".embedding_length"));
  n_layer_ = static_cast<int>(f.get_u64(a + ".block_count"));
  n_head_ = static_cast<int>(f.get_u64(a + ".attention.head_count"));
  n_head_kv_ = static_cast<int>(f.opt_u64(a + ".attention.head_count_kv").value_or(n_head_));
  head_dim_ = n_embd_ / n_head_;
  n_ff_ = static_cast<int>(f.get_u64(a + ".feed_forward_length"));
  n_rot_ = static_cast<int>(f.opt_u64(a + ".rope.dimension_count").value_or(head_dim_));
  rope_base_ = f.opt_f64(a + ".rope.freq_base").value_or(10000.0);
  if (f.opt_string(a + ".rope.scaling.type").value_or("") == "linear") {
    rope_scale_ = 1.0 / f.opt_f64(a + ".rope.scaling.factor").value_or(1.0);
  }
  layer_norm_ = a == "phi2" || a == "stablelm";
  neox_ = a != "llama";
  gelu_ = a == "phi2";
  parallel_ = a == "phi2";
  eps_ = layer_norm_ ? f.opt_f64(a + ".attention.layer_norm_epsilon").value_or(1e-5)
                     : f.opt_f64(a + ".attention.layer_norm_rms_epsilon").value_or(1e-5);
  tok_embd_ = get(f, "token_embd.weight");
  n_vocab_ = static_cast<int>(tok_embd_.rows);
  out_norm_ = get(f, "output_norm.weight");
  out_norm_b_ = get(f, "output_norm.bias", false);
  output_ = get(f, "output.weight", false);
  if (!output_.present()) output_ = tok_embd_;
  output_b_ = get(f, "output.bias", false);
  for (int il = 0; il < n_layer_; ++il) {
    auto n = [&](const char* s) { return "blk." + std::to_string(il) + "." + s; };
    Layer l;
    l.attn_norm = get(f, n("attn_norm.weight"));
    l.attn_norm_b = get(f, n("attn_norm.bias"), false);
    l.wqkv = get(f, n("attn_qkv.weight"), false);
    l.bqkv = get(f, n("attn_qkv.bias"), false);
    if (!l.wqkv.present()) {
      l.wq = get(f, n("attn_q.weight"));
      l.wk = get(f, n("attn_k.weight"));
      l.wv = get(f, n("attn_v.weight"));
      l.bq = get(f, n("attn_q.bias"), false);
      l.bk = get(f, n("attn_k.bias"), false);
      l.bv = get(f, n("attn_v.bias"), false);
    }
    l.wo = get(f, n("attn_output.weight"));
    l.bo = get(f, n("attn_output.bias"), false);
    l.ffn_norm = get(f, n("ffn_norm.weight"), false);
    l.ffn_norm_b = get(f, n("ffn_norm.bias"), false);
    l.gate = get(f, n("ffn_gate.weight"), false);
    l.up = get(f, n("ffn_up.weight"));
    l.down = get(f, n("ffn_down.weight"));
    l.up_b = get(f, n("ffn_up.bias"), false);
    l.down_b = get(f, n("ffn_down.bias"), false);
    layers_.push_back(std::move(l));
  }
}

namespace {

double half(double x) { return static_cast<double>(static_cast<_Float16>(static_cast<float>(x))); }

double gelu(double z) {
  return 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
}

// llama.cpp's GELU table: exact outside [-10, 10], else looked up by the
// half-rounded input and stored as half.
double gelu_half_table(double z) {
  if (z <= -10) return 0;
  if (z >= 10) return z;
  return half(gelu(half(z)));
}

}  // namespace

std::vector<std::vector<double>> ReferenceModel::logits_all(const std::vector<int>& tokens,
                                                            const HalfRounding& rounding) const {
  const int T = static_cast<int>(tokens.size()), E = n_embd_, hd = head_dim_;
  const int Q = n_head_ * hd, K = n_head_kv_ * hd;
  auto norm = [&](const double* x, const Tensor& w, const Tensor& b, double* y) {
    if (layer_norm_) {
      double mean = 0, var = 0;
      for (int i = 0; i < E; ++i) mean += x[i];
      mean /= E;
      for (int i = 0; i < E; ++i) var += (x[i] - mean) * (x[i] - mean);
      var /= E;
      for (int i = 0; i < E; ++i) {
        y[i] = (x[i] - mean) / std::sqrt(var + eps_) * w.v[i] + (b.present() ? b.v[i] : 0.0);
      }
    } else {
      double ss = 0;
      for (int i = 0; i < E; ++i) ss += x[i] * x[i];
      double s = 1.0 / std::sqrt(ss / E + eps_);
      for (int i = 0; i < E; ++i) y[i] = x[i] * s * w.v[i];
    }
  };
  auto add_bias = [](double* y, const Tensor& b) {
    if (b.present()) for (long i = 0; i < b.cols; ++i) y[i] += b.v[i];
  };
  auto rope = [&](double* v, int pos) {  // one head
    for (int i = 0; i < n_rot_ / 2; ++i) {
      double theta = pos * rope_scale_ * std::pow(rope_base_, -2.0 * i / n_rot_);
      int a = neox_ ? i : 2 * i, b = neox_ ? i + n_rot_ / 2 : 2 * i + 1;
      double x0 = v[a], x1 = v[b];
      v[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
      v[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  };

  std::vector<std::vector<double>> x(T, std::vector<double>(E));
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < E; ++i) x[t][i] = tok_embd_.v[static_cast<size_t>(tokens[t]) * E + i];
  }
  for (const Layer& l : layers_) {
    std::vector<std::vector<double>> h(T, std::vector<double>(E)), q(T, std::vector<double>(Q)),
        k(T, std::vector<double>(K)), v(T, std::vector<double>(K));
    for (int t = 0; t < T; ++t) {
      norm(x[t].data(), l.attn_norm, l.attn_norm_b, h[t].data());
      if (l.wqkv.present()) {
        std::vector<double> qkv(Q + 2 * K);
        matvec(l.wqkv, h[t].data(), qkv.data());
        add_bias(qkv.data(), l.bqkv);
        std::copy(qkv.begin(), qkv.begin() + Q, q[t].begin());
        std::copy(qkv.begin() + Q, qkv.begin() + Q + K, k[t].begin());
        std::copy(qkv.begin() + Q + K, qkv.end(), v[t].begin());
      } else {
        matvec(l.wq, h[t].data(), q[t].data());
        matvec(l.wk, h[t].data(), k[t].data());
        matvec(l.wv, h[t].data(), v[t].data());
        add_bias(q[t].data(), l.bq);
        add_bias(k[t].data(), l.bk);
        add_bias(v[t].data(), l.bv);
      }
      for (int hh = 0; hh < n_head_; ++hh) rope(&q[t][hh * hd], t);
      for (int hh = 0; hh < n_head_kv_; ++hh) rope(&k[t][hh * hd], t);
    }
    for (int t = 0; t < T; ++t) {
      std::vector<double> att(Q), o(E);
      const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
      auto kv = [&](double x) { return rounding.keys_values ? half(x) : x; };
      for (int hh = 0; hh < n_head_; ++hh) {
        int kh = hh / (n_head_ / n_head_kv_);
        if (rounding.query_and_sum) {
          // Online softmax over the keys in order, the value sum in half.
          bool scaled_first = arch_ == "phi2";
          std::vector<double> qh(hd), sum_v(hd, 0.0);
          for (int i = 0; i < hd; ++i) {
            double qi = q[t][hh * hd + i];
            qh[i] = half(scaled_first ? qi * scale : qi);
          }
          double mx = -INFINITY, sum = 0;
          for (int j = 0; j <= t; ++j) {
            double d = 0;
            for (int i = 0; i < hd; ++i) d += qh[i] * half(k[j][kh * hd + i]);
            if (!scaled_first) d *= scale;
            double ms = 1, vs = 1;
            if (d > mx) {
              ms = std::isinf(mx) ? 0.0 : std::exp(mx - d);
              mx = d;
              for (double& e : sum_v) e = half(e * ms);
            } else {
              vs = std::exp(d - mx);
            }
            for (int i = 0; i < hd; ++i) sum_v[i] = half(sum_v[i] + half(v[j][kh * hd + i]) * vs);
            sum = sum * ms + vs;
          }
          for (int i = 0; i < hd; ++i) att[hh * hd + i] = sum_v[i] / sum;
          continue;
        }
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int j = 0; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][hh * hd + i] * kv(k[j][kh * hd + i]);
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int j = 0; j <= t; ++j) {
          for (int i = 0; i < hd; ++i) att[hh * hd + i] += s[j] / sum * kv(v[j][kh * hd + i]);
        }
      }
      matvec(l.wo, att.data(), o.data());
      add_bias(o.data(), l.bo);
      std::vector<double> fin(E);
      bool parallel = parallel_ || !l.ffn_norm.present();
      if (parallel) {
        fin = h[t];
      } else {
        std::vector<double> x2(E);
        for (int i = 0; i < E; ++i) x2[i] = x[t][i] + o[i];
        norm(x2.data(), l.ffn_norm, l.ffn_norm_b, fin.data());
      }
      std::vector<double> a(n_ff_), b(n_ff_), down(E);
      matvec(l.up, fin.data(), b.data());
      add_bias(b.data(), l.up_b);
      if (gelu_) {
        for (int i = 0; i < n_ff_; ++i) a[i] = rounding.gelu_table ? gelu_half_table(b[i]) : gelu(b[i]);
      } else {
        matvec(l.gate, fin.data(), a.data());
        for (int i = 0; i < n_ff_; ++i) a[i] = a[i] / (1 + std::exp(-a[i])) * b[i];
      }
      matvec(l.down, a.data(), down.data());
      add_bias(down.data(), l.down_b);
      // Safe to update in place: every token's k and v were computed above.
      for (int i = 0; i < E; ++i) x[t][i] += o[i] + down[i];
    }
  }
  std::vector<std::vector<double>> out(T, std::vector<double>(n_vocab_));
  for (int t = 0; t < T; ++t) {
    std::vector<double> h(E);
    norm(x[t].data(), out_norm_, out_norm_b_, h.data());
    matvec(output_, h.data(), out[t].data());
    add_bias(out[t].data(), output_b_);
  }
  return out;
}

}  // namespace tars::test
