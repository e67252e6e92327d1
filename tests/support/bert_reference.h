#pragma once
// A plain double-precision BERT encoder, written from the model description
// (embeddings + LayerNorm, post-LN blocks with biases, exact erf GELU,
// bidirectional attention, pooling) independently of the engine's code: the
// yardstick for the engine's embeddings. One input at a time, every tensor
// dequantized to double up front, no batching and no tricks.

#include <string>
#include <vector>

namespace tars::engine {
class GgufFile;
}

namespace tars::test {

class BertReference {
 public:
  // Reads the bert.* hyper-parameters and every tensor of `file`.
  explicit BertReference(const engine::GgufFile& file);

  // The last block's output for one input, [n_tokens][n_embd]. `types`:
  // each token's type id, or empty for type 0 everywhere.
  std::vector<std::vector<double>> hidden(const std::vector<int>& tokens,
                                          const std::vector<int>& types = {}) const;
  // Rank pooling: the classification head on the first token's row (its
  // n_cls_out raw scores): tanh(cls x + b) then cls.output, as present.
  std::vector<double> rank(const std::vector<int>& tokens, const std::vector<int>& types) const;
  // Pooled by bert.pooling_type (mean: average over all tokens; cls: the
  // first token; none: every token's vector, concatenated), each vector
  // L2-normalised when `normalize`.
  std::vector<double> embed(const std::vector<int>& tokens, bool normalize = true) const;

  int n_embd() const { return n_embd_; }
  int pooling() const { return pooling_; }

 private:
  struct Tensor {
    std::vector<double> v;  // row-major [rows x cols]
    long cols = 0, rows = 0;
  };
  struct Layer {
    Tensor wq, bq, wk, bk, wv, bv, wo, bo, ln1_w, ln1_b, up, up_b, down, down_b, ln2_w, ln2_b;
  };
  Tensor get(const engine::GgufFile& f, const std::string& name) const;
  // y = W x + b (b may be empty).
  std::vector<double> linear(const Tensor& w, const Tensor& b, const std::vector<double>& x) const;
  void layer_norm(std::vector<double>& x, const Tensor& w, const Tensor& b) const;

  int n_embd_ = 0, n_layer_ = 0, n_head_ = 0, n_ff_ = 0, n_ctx_ = 0, pooling_ = 1;
  double eps_ = 1e-12;
  Tensor tok_embd_, type_embd_, pos_embd_, embd_norm_w_, embd_norm_b_;
  Tensor cls_w_, cls_b_, cls_out_w_, cls_out_b_;  // rank pooling; empty when absent
  std::vector<Layer> layers_;
};

}  // namespace tars::test
