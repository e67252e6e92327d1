// small_random_bert (support/bert_builder.h): apart from bert_builder.cpp,
// which benchmarks compile on their own, because it reads the fixtures.
#include "support/bert_builder.h"
#include "support/test_support.h"

namespace tars::test {

RandomBertSpec small_random_bert(int pooling) {
  RandomBertSpec s;
  s.n_embd = 64;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_ff = 128;
  s.n_ctx = 128;
  s.pooling = pooling;
  s.vocab_txt = fixture("minilm/vocab.txt");
  return s;
}

}  // namespace tars::test
