#pragma once
// Embeddings of many inputs at once: tokenizing, the length limit, batching
// and normalisation around an Encoder. This is what `tars embed`, the node's
// POST /embed and POST /v1/embeddings call.
//
// Batching: the inputs are sorted by length (longest first) and packed back
// to back into forward passes of at most Encoder::max_batch_tokens() tokens.
// Packing means no padding is ever computed (attention keeps the inputs
// apart); sorting fills the passes evenly. Results come back in input order
// and do not depend on how inputs were grouped (up to float rounding: the
// tests hold batched and one-by-one results to a cosine of 0.99999).
//
// Length limit: an input may have at most `max_tokens` tokens, [CLS] and
// [SEP] included (default: the model's context, 512 for BERT). A longer input
// is truncated by default the way Hugging Face tokenizers and
// sentence-transformers do it: [CLS], the first max_tokens - 2 word pieces,
// [SEP]. With truncate = false it is an error naming the input's index, its
// token count and the limit.
//
// Threads: every function here may be called from several threads at once;
// the forward passes are serialized inside the Encoder.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/encoder.h"

namespace tars::engine {

struct EmbedOptions {
  // L2-normalise every vector (sentence-transformers does). Default: true.
  bool normalize = true;
  // Inputs over max_tokens: truncate (true, default) or throw (false).
  bool truncate = true;
  // Most tokens per input, [CLS] and [SEP] included; 0 (default) = the
  // model's context length. Must be at least 2 and at most the context length.
  int max_tokens = 0;
};

// The embedding of one input.
struct Embedding {
  // n_embd floats (mean or CLS pooling); with pooling none, one row of n_embd
  // floats per token ([n_tokens x n_embd]).
  std::vector<float> values;
  int n_tokens = 0;        // tokens the model ran, after truncation
  int n_tokens_input = 0;  // tokens of the input before truncation
  bool truncated() const { return n_tokens < n_tokens_input; }
};

// Tokenizes text for the encoder: [CLS] + word pieces + [SEP].
std::vector<int32_t> embed_tokenize(const Encoder& encoder, const std::string& text);

// Embeds texts. Throws tars::Error(kInvalidArgument) for an empty list, bad
// options, or (truncate off) an input over the limit.
std::vector<Embedding> embed_texts(Encoder& encoder, const std::vector<std::string>& texts,
                                   const EmbedOptions& options = {});

// Embeds inputs given as token ids, run as they are (the caller adds [CLS]
// and [SEP] if the model wants them; the OpenAI API's token-array input).
// Truncation keeps the first max_tokens - 1 ids and the last one when the
// input ends with [SEP], else the first max_tokens. Throws as embed_texts,
// and for an empty input or an id outside the vocabulary (naming the input).
std::vector<Embedding> embed_token_inputs(Encoder& encoder,
                                          const std::vector<std::vector<int32_t>>& inputs,
                                          const EmbedOptions& options = {});

// A query and a document framed for a cross-encoder: [CLS] query [SEP]
// document [SEP], the first part type 0 and the second type 1 (type 0 when
// the model has one type).
struct RerankPair {
  std::vector<int32_t> ids, types;
  int n_tokens_input = 0;  // before truncation
};

// Frames a pair (query and document as word pieces, without [CLS]/[SEP]).
// Over `limit` tokens it is truncated longest first, as Hugging Face
// tokenizers do by default for pairs: tokens come off the end of the
// longer part, one at a time (the document's on a tie); with truncate off it
// is tars::Error(kInvalidArgument) naming document `index`.
RerankPair rerank_pair_tokens(const Encoder& encoder, std::span<const int32_t> query,
                              std::span<const int32_t> document, int limit, bool truncate, size_t index);

// Scores each document against the query with a reranker (rank pooling):
// one Embedding per document whose values are the head's n_cls_out raw
// scores (logits; never normalised), with the pair's token counts. Pairs
// are batched like embeddings. options.max_tokens limits each pair (0: the
// model's context); options.normalize is not used. Throws
// tars::Error(kInvalidArgument) for a model that is not a reranker, an
// empty list, or (truncate off) a pair over the limit.
std::vector<Embedding> rerank_texts(Encoder& encoder, const std::string& query,
                                    const std::vector<std::string>& documents, const EmbedOptions& options = {});

// Scales v to unit L2 norm (a zero vector stays zero).
void embed_l2_normalize(float* v, size_t n);

}  // namespace tars::engine
