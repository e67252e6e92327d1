#pragma once
// A plain double-precision forward pass of the decoder architectures, written
// from the model descriptions independently of the engine's code: the
// yardstick for the engine's numerics. Slow and simple on purpose: every
// tensor is dequantized to double up front, attention is recomputed from
// scratch for every position.

#include <string>
#include <vector>

namespace tars::engine {
class GgufFile;
}

namespace tars::test {

// Where another engine rounds to half precision, so that its recorded
// numbers can be explained (never how tars computes). llama.cpp's CPU
// flash attention, which it uses even with an F32 KV cache, reads the keys
// and values as half; for small query batches it also rounds the queries
// (phi2's after scaling them by 1/sqrt(head_dim)) and keeps the weighted sum
// of values in half through an online softmax. Its CPU GELU reads a table
// indexed by the half-rounded input and holding half-rounded results.
struct HalfRounding {
  bool keys_values = false;
  bool query_and_sum = false;  // with keys_values
  bool gelu_table = false;
};

class ReferenceModel {
 public:
  explicit ReferenceModel(const engine::GgufFile& file);

  // Logits (n_vocab) after each token of `tokens` (positions 0..n-1).
  std::vector<std::vector<double>> logits_all(const std::vector<int>& tokens,
                                              const HalfRounding& rounding = {}) const;
  int n_vocab() const { return n_vocab_; }

 private:
  using Mat = std::vector<double>;  // row-major [rows x cols]
  struct Tensor {
    Mat v;
    long cols = 0, rows = 0;
    bool present() const { return !v.empty(); }
  };
  Tensor get(const engine::GgufFile& f, const std::string& name, bool required = true) const;
  void matvec(const Tensor& w, const double* x, double* y) const;

  std::string arch_;
  int n_embd_, n_layer_, n_head_, n_head_kv_, head_dim_, n_ff_, n_rot_, n_vocab_;
  double eps_, rope_base_, rope_scale_ = 1;
  bool neox_, layer_norm_, gelu_, parallel_;
  Tensor tok_embd_, out_norm_, out_norm_b_, output_, output_b_;
  struct Layer {
    Tensor attn_norm, attn_norm_b, wq, wk, wv, bq, bk, bv, wqkv, bqkv, wo, bo;
    Tensor ffn_norm, ffn_norm_b, gate, up, down, up_b, down_b;
  };
  std::vector<Layer> layers_;
};

}  // namespace tars::test
