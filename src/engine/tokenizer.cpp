// What every tokenizer kind shares: the token index, special-token matching,
// BOS/EOS, rendering ids back to text.

#include "engine/tokenizer.h"

#include <algorithm>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer_internal.h"

namespace tars::engine {

using namespace tokenizer_detail;

namespace {

void check_id(const Vocab& v, int32_t id, const char* what) {
  if (id != kTokenNone && (id < 0 || id >= v.n_vocab()))
    throw Error(ErrorCode::kCorruptData, std::string("tokenizer: ") + what + " id " +
                                             std::to_string(id) + " is outside the vocabulary of " +
                                             std::to_string(v.n_vocab()) + " tokens");
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::create(Vocab vocab) {
  const size_t n = vocab.tokens.size();
  if (n == 0) throw Error(ErrorCode::kCorruptData, "tokenizer: the vocabulary is empty");
  if (vocab.scores.empty()) vocab.scores.assign(n, 0.0f);
  if (vocab.types.empty()) vocab.types.assign(n, TokenType::kNormal);
  if (vocab.scores.size() != n || vocab.types.size() != n)
    throw Error(ErrorCode::kCorruptData,
                "tokenizer: " + std::to_string(n) + " tokens but " +
                    std::to_string(vocab.scores.size()) + " scores and " +
                    std::to_string(vocab.types.size()) + " token types");
  for (auto [id, what] : {std::pair{vocab.bos, "bos"}, {vocab.eos, "eos"}, {vocab.eot, "eot"},
                          {vocab.unk, "unk"}, {vocab.pad, "pad"}, {vocab.sep, "sep"},
                          {vocab.cls, "cls"}, {vocab.mask, "mask"}}) {
    check_id(vocab, id, what);
  }
  switch (vocab.model) {
    case TokenizerModel::kSpm:
    case TokenizerModel::kWpm:
      if (vocab.pre != PreTokenizer::kNone)
        throw Error(ErrorCode::kUnsupported, "tokenizer: a " +
                                                 std::string(tokenizer_model_name(vocab.model)) +
                                                 " tokenizer takes no BPE pre-tokenizer");
      return vocab.model == TokenizerModel::kSpm ? make_spm_tokenizer(std::move(vocab))
                                                 : make_wpm_tokenizer(std::move(vocab));
    case TokenizerModel::kBpe:
      if (vocab.pre == PreTokenizer::kNone) vocab.pre = PreTokenizer::kGpt2;
      return make_bpe_tokenizer(std::move(vocab));
  }
  throw Error(ErrorCode::kUnsupported, "tokenizer: unknown tokenizer model");
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& gguf) {
  return create(vocab_load(gguf));
}

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  token_index_.reserve(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_.n_vocab(); ++id) {
    const std::string& t = vocab_.tokens[id];
    if (!t.empty()) token_index_.emplace(t, id);  // first (lowest) id wins
    const TokenType ty = vocab_.types[id];
    if ((ty == TokenType::kControl || ty == TokenType::kUserDefined) && !t.empty()) {
      special_by_first_byte_[static_cast<unsigned char>(t[0])].push_back(id);
      has_special_ = true;
      has_user_defined_ = has_user_defined_ || ty == TokenType::kUserDefined;
    }
  }
  for (auto& ids : special_by_first_byte_) {
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      return vocab_.tokens[a].size() > vocab_.tokens[b].size();
    });
  }
}

Tokenizer::~Tokenizer() = default;

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = token_index_.find(text);
  return it == token_index_.end() ? kTokenNone : it->second;
}

const std::vector<std::string>& Tokenizer::pieces() const {
  std::call_once(pieces_once_, [this] {
    pieces_.resize(vocab_.tokens.size());
    for (size_t i = 0; i < pieces_.size(); ++i) pieces_[i] = token_to_piece(static_cast<int32_t>(i));
  });
  return pieces_;
}

TokenType Tokenizer::token_type(int32_t id) const {
  return id >= 0 && id < n_vocab() ? vocab_.types[id] : TokenType::kUndefined;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return id != kTokenNone && (id == vocab_.eos || id == vocab_.eot ||
                               std::find(vocab_.eog_extra.begin(), vocab_.eog_extra.end(), id) != vocab_.eog_extra.end());
}

// Cuts the text at special tokens. At each position the longest special token
// that starts there wins (leftmost-longest, as Hugging Face's added-token
// matcher does); control tokens take part only when parse_special. The scan
// looks only at the tokens that start with the byte at hand, so it is linear
// in the text for a fixed vocabulary.
void Tokenizer::split_special(std::string_view text, bool parse_special,
                              std::vector<Fragment>& out) const {
  size_t raw_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int32_t hit = kTokenNone;
    // Longest first: the first hit is the longest.
    for (int32_t id : special_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const std::string& t = vocab_.tokens[id];
      if (t.size() > text.size() - pos) continue;
      if (!parse_special && vocab_.types[id] == TokenType::kControl) continue;
      if (text.compare(pos, t.size(), t) == 0) {
        hit = id;
        break;
      }
    }
    if (hit == kTokenNone) {
      ++pos;
      continue;
    }
    if (pos > raw_start) out.push_back({text.substr(raw_start, pos - raw_start), kTokenNone});
    out.push_back({{}, hit});
    pos += vocab_.tokens[hit].size();
    raw_start = pos;
  }
  if (raw_start < text.size()) out.push_back({text.substr(raw_start), kTokenNone});
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  // WordPiece frames a sequence with [CLS] ... [SEP]; older BERT files name
  // them only as bos/eos.
  const bool wpm = vocab_.model == TokenizerModel::kWpm;
  const int32_t first = wpm && vocab_.cls != kTokenNone ? vocab_.cls : vocab_.bos;
  const int32_t last = wpm && vocab_.sep != kTokenNone ? vocab_.sep : vocab_.eos;
  if (add_special && vocab_.add_bos && first != kTokenNone) out.push_back(first);

  std::vector<Fragment> fragments;
  // Nothing to look for: no special tokens, or only control tokens and the
  // caller does not want them parsed.
  if (!has_special_ || (!parse_special && !has_user_defined_)) {
    if (!text.empty()) fragments.push_back({text, kTokenNone});
  } else {
    split_special(text, parse_special, fragments);
  }
  bool after_special = true;  // the start of the text counts as "after a special token"
  for (const Fragment& f : fragments) {
    if (f.token != kTokenNone) {
      out.push_back(f.token);
      after_special = true;
    } else {
      encode_fragment(f.text, after_special, out);
      after_special = false;
    }
  }

  if (add_special && vocab_.add_eos && last != kTokenNone) out.push_back(last);
  return out;
}

std::string Tokenizer::render(int32_t id, bool render_special, bool& drop_space) const {
  if (id < 0 || id >= n_vocab()) return {};
  // <unk> stands for text the tokenizer could not spell; show it even when
  // it is marked as a control token (BERT's [UNK]).
  if (vocab_.types[id] == TokenType::kControl && id != vocab_.unk) {
    // The tokenizer put a space after this token (SPM); take it out again.
    drop_space = drops_prefix_space();
    return render_special ? vocab_.tokens[id] : std::string();
  }
  std::string piece = piece_text(id);
  if (drop_space && !piece.empty()) {
    if (piece[0] == ' ') piece.erase(0, 1);
    drop_space = false;
  }
  return piece;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  bool drop_space = false;
  return render(id, render_special, drop_space);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool drop_space = drops_prefix_space();
  for (int32_t id : ids) out += render(id, render_special, drop_space);
  return out;
}

// ---- streaming ------------------------------------------------------------

TokenStreamDecoder::TokenStreamDecoder(const Tokenizer& tokenizer, bool at_start,
                                       bool render_special)
    : tokenizer_(tokenizer),
      render_special_(render_special),
      drop_space_(at_start && tokenizer.drops_prefix_space()) {}

std::string TokenStreamDecoder::push(int32_t id) {
  pending_ += tokenizer_.render(id, render_special_, drop_space_);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    size_t needed = 0;
    const size_t m = utf8_valid_prefix(pending_, i, needed);
    if (needed != 0 && m == needed) {  // a whole character
      out.append(pending_, i, m);
    } else if (needed != 0 && i + m == pending_.size()) {  // the start of one: wait for the rest
      break;
    } else {  // can never complete
      out += "\xEF\xBF\xBD";
    }
    i += m;
  }
  pending_.erase(0, i);
  return out;
}

std::string TokenStreamDecoder::flush() {
  std::string out = pending_.empty() ? "" : "\xEF\xBF\xBD";
  pending_.clear();
  return out;
}

}  // namespace tars::engine
