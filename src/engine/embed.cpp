// Batching, length limits and normalisation for embeddings (embed.h).
#include "engine/embed.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "engine/tokenizer.h"

namespace tars::engine {
namespace {

int effective_limit(const Encoder& e, const EmbedOptions& o) {
  const int ctx = e.hparams().n_ctx_train;
  if (o.max_tokens == 0) return ctx;
  if (o.max_tokens < 2 || o.max_tokens > ctx) {
    throw Error(ErrorCode::kInvalidArgument,
                "max_tokens " + std::to_string(o.max_tokens) + " must be between 2 and the model's " +
                    std::to_string(ctx));
  }
  return o.max_tokens;
}

// The token that closes an input ([SEP]; older BERT files name it only eos).
int32_t sep_token(const Encoder& e) {
  const Vocab& v = e.tokenizer().vocab();
  return v.sep != kTokenNone ? v.sep : v.eos;
}

// Applies the limit to input `index` in place; records the original length.
void apply_limit(std::vector<int32_t>& ids, size_t index, int limit, bool truncate, int32_t sep,
                 Embedding& out) {
  out.n_tokens_input = static_cast<int>(ids.size());
  if (ids.size() > static_cast<size_t>(limit)) {
    if (!truncate) {
      throw Error(ErrorCode::kInvalidArgument,
                  "input " + std::to_string(index) + " has " + std::to_string(ids.size()) +
                      " tokens, more than the limit of " + std::to_string(limit) +
                      " (truncation is off)");
    }
    const bool keep_last = sep != kTokenNone && ids.back() == sep;
    const int32_t last = ids.back();
    ids.resize(limit);
    if (keep_last) ids.back() = last;
  }
  out.n_tokens = static_cast<int>(ids.size());
}

// Runs the prepared inputs in packed batches, longest first, and fills each
// Embedding's values in input order. `types` is empty (all type 0) or one
// list of type ids per input.
void run_batches(Encoder& e, const std::vector<std::vector<int32_t>>& ids,
                 const std::vector<std::vector<int32_t>>& types, const EmbedOptions& o,
                 std::vector<Embedding>& out) {
  const bool per_token = e.hparams().pooling == PoolingType::kNone;
  const int E = per_token ? e.n_embd() : e.n_out();
  // Scores of a classification head are never normalised.
  const bool normalize = o.normalize && e.hparams().pooling != PoolingType::kRank;
  std::vector<size_t> order(ids.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ids[a].size() > ids[b].size(); });
  std::vector<int32_t> tokens, token_types, start;
  std::vector<size_t> members;  // inputs of the batch being built, in packed order
  auto flush = [&] {
    if (members.empty()) return;
    const std::vector<float> r = e.forward(tokens, start, token_types);
    for (size_t m = 0; m < members.size(); ++m) {
      Embedding& em = out[members[m]];
      const size_t row0 = per_token ? static_cast<size_t>(start[m]) : m;
      const size_t rows = per_token ? static_cast<size_t>(start[m + 1] - start[m]) : 1;
      em.values.assign(r.begin() + row0 * E, r.begin() + (row0 + rows) * E);
      if (normalize) {
        for (size_t i = 0; i < rows; ++i) embed_l2_normalize(em.values.data() + i * E, E);
      }
    }
    tokens.clear();
    token_types.clear();
    members.clear();
    start.assign(1, 0);
  };
  start.assign(1, 0);
  for (size_t idx : order) {
    if (tokens.size() + ids[idx].size() > static_cast<size_t>(e.max_batch_tokens())) flush();
    tokens.insert(tokens.end(), ids[idx].begin(), ids[idx].end());
    if (!types.empty()) token_types.insert(token_types.end(), types[idx].begin(), types[idx].end());
    start.push_back(static_cast<int32_t>(tokens.size()));
    members.push_back(idx);
  }
  flush();
}

}  // namespace

void embed_l2_normalize(float* v, size_t n) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(v[i]) * v[i];
  if (ss <= 0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(ss));
  for (size_t i = 0; i < n; ++i) v[i] *= inv;
}

std::vector<int32_t> embed_tokenize(const Encoder& encoder, const std::string& text) {
  return encoder.tokenizer().encode(text, /*add_special=*/true, /*parse_special=*/false);
}

std::vector<Embedding> embed_texts(Encoder& encoder, const std::vector<std::string>& texts,
                                   const EmbedOptions& options) {
  if (texts.empty()) throw Error(ErrorCode::kInvalidArgument, "no inputs to embed: the list is empty");
  const int limit = effective_limit(encoder, options);
  const int32_t sep = sep_token(encoder);
  std::vector<Embedding> out(texts.size());
  std::vector<std::vector<int32_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ids[i] = embed_tokenize(encoder, texts[i]);
    if (ids[i].empty()) {  // a vocabulary without [CLS]/[SEP] and an empty text
      throw Error(ErrorCode::kInvalidArgument, "input " + std::to_string(i) + " has no tokens");
    }
    apply_limit(ids[i], i, limit, options.truncate, sep, out[i]);
  }
  run_batches(encoder, ids, {}, options, out);
  return out;
}

std::vector<Embedding> embed_token_inputs(Encoder& encoder,
                                          const std::vector<std::vector<int32_t>>& inputs,
                                          const EmbedOptions& options) {
  if (inputs.empty()) throw Error(ErrorCode::kInvalidArgument, "no inputs to embed: the list is empty");
  const int limit = effective_limit(encoder, options);
  const int32_t sep = sep_token(encoder);
  const int32_t n_vocab = encoder.hparams().n_vocab;
  std::vector<Embedding> out(inputs.size());
  std::vector<std::vector<int32_t>> ids = inputs;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].empty()) {
      throw Error(ErrorCode::kInvalidArgument, "input " + std::to_string(i) + " has no tokens");
    }
    for (int32_t id : ids[i]) {
      if (id < 0 || id >= n_vocab) {
        throw Error(ErrorCode::kInvalidArgument,
                    "input " + std::to_string(i) + ": token id " + std::to_string(id) +
                        " is outside the vocabulary of " + std::to_string(n_vocab));
      }
    }
    apply_limit(ids[i], i, limit, options.truncate, sep, out[i]);
  }
  run_batches(encoder, ids, {}, options, out);
  return out;
}

RerankPair rerank_pair_tokens(const Encoder& encoder, std::span<const int32_t> query,
                              std::span<const int32_t> document, int limit, bool truncate, size_t index) {
  const Vocab& v = encoder.tokenizer().vocab();
  const int32_t first = v.cls != kTokenNone ? v.cls : v.bos;
  const int32_t sep = sep_token(encoder);
  if (first == kTokenNone || sep == kTokenNone) {
    throw Error(ErrorCode::kInvalidArgument,
                "the model's vocabulary has no [CLS] or [SEP] token to frame a query and a document");
  }
  if (limit < 3) {
    throw Error(ErrorCode::kInvalidArgument, "a query and a document need a limit of at least 3 tokens");
  }
  size_t nq = query.size(), nd = document.size();
  RerankPair p;
  p.n_tokens_input = static_cast<int>(nq + nd + 3);
  if (nq + nd + 3 > static_cast<size_t>(limit)) {
    if (!truncate) {
      throw Error(ErrorCode::kInvalidArgument,
                  "document " + std::to_string(index) + " and the query have " +
                      std::to_string(p.n_tokens_input) + " tokens together, more than the limit of " +
                      std::to_string(limit) + " (truncation is off)");
    }
    // Longest first: a token at a time from the end of the longer part
    // (the document on a tie).
    while (nq + nd + 3 > static_cast<size_t>(limit)) {
      if (nq > nd) --nq;
      else --nd;
    }
  }
  p.ids.reserve(nq + nd + 3);
  p.ids.push_back(first);
  p.ids.insert(p.ids.end(), query.begin(), query.begin() + static_cast<std::ptrdiff_t>(nq));
  p.ids.push_back(sep);
  p.types.assign(p.ids.size(), 0);
  p.ids.insert(p.ids.end(), document.begin(), document.begin() + static_cast<std::ptrdiff_t>(nd));
  p.ids.push_back(sep);
  // A model with one token type (RoBERTa's) reads the document as type 0 too.
  p.types.resize(p.ids.size(), encoder.hparams().n_token_types > 1 ? 1 : 0);
  return p;
}

std::vector<Embedding> rerank_texts(Encoder& encoder, const std::string& query,
                                    const std::vector<std::string>& documents, const EmbedOptions& options) {
  if (encoder.hparams().pooling != PoolingType::kRank) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("the model is not a reranker: its pooling is ") +
                    pooling_type_name(encoder.hparams().pooling) +
                    " (a reranker's file has pooling_type rank and a classification head)");
  }
  if (documents.empty()) throw Error(ErrorCode::kInvalidArgument, "no documents to rank: the list is empty");
  const int limit = effective_limit(encoder, options);
  const std::vector<int32_t> q = encoder.tokenizer().encode(query, /*add_special=*/false, /*parse_special=*/false);
  std::vector<std::vector<int32_t>> ids(documents.size()), types(documents.size());
  std::vector<Embedding> out(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    const std::vector<int32_t> d = encoder.tokenizer().encode(documents[i], false, false);
    RerankPair p = rerank_pair_tokens(encoder, q, d, limit, options.truncate, i);
    out[i].n_tokens_input = p.n_tokens_input;
    out[i].n_tokens = static_cast<int>(p.ids.size());
    ids[i] = std::move(p.ids);
    types[i] = std::move(p.types);
  }
  run_batches(encoder, ids, types, options, out);
  return out;
}

}  // namespace tars::engine
