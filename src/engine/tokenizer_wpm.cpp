// WordPiece ("bert" in GGUF): BERT, all-MiniLM, BGE embedding models.
//
// Normalisation as BERT's uncased tokenizer does it: control characters (and
// U+FFFD, NUL) are removed, whitespace separates words, every punctuation
// character (Unicode P*, plus the ASCII symbols $+<=>^`|~) and every CJK
// ideograph is a word of its own, and each word is lower-cased with its
// accents stripped (unicode_fold_append). Then each word is cut greedily into
// the longest vocabulary pieces from the left; a word that cannot be cut, or
// is longer than 100 characters, becomes one [UNK].
//
// GGUF stores a word-start piece with a leading U+2581 ("▁the") and a
// continuation piece without BERT's "##" ("ing").
//
// Character classes come from PCRE2 (Unicode properties); case and
// decomposition from the generated tables. Invalid UTF-8 bytes are dropped.

#include <algorithm>

#include "engine/tokenizer_internal.h"

namespace tars::engine::tokenizer_detail {

namespace {

// Group 1: whitespace (a word break). Group 2: control characters other than
// \t \n \r, and U+FFFD (removed without a break: "a\u200Db" is one word, as in
// BERT). Group 3: one punctuation or CJK character (a word of its own).
// Everything between matches is word text.
constexpr const char* kBertPattern =
    R"(([\t\n\r\p{Zs}]+)|((?:(?![\t\n\r])[\p{C}\x{FFFD}])+)|)"
    R"(([\p{P}!-/:-@\[-`{-~]|[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF})"
    R"(\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF})"
    R"(\x{2F800}-\x{2FA1F}]))";

// Words longer than this (in characters) are [UNK], as BERT's
// max_input_chars_per_word.
constexpr size_t kMaxWordChars = 100;

class WpmTokenizer final : public Tokenizer {
 public:
  explicit WpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)), splitter_(kBertPattern) {
    for (const std::string& t : vocab_.tokens) max_token_bytes_ = std::max(max_token_bytes_, t.size());
    unk_ = vocab_.unk != kTokenNone ? vocab_.unk : find_token("[UNK]");
  }

 protected:
  void encode_fragment(std::string_view text, bool after_special,
                       std::vector<int32_t>& out) const override;
  std::string piece_text(int32_t id) const override;
  bool drops_prefix_space() const override { return true; }

 private:
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;
  int32_t piece_token(std::string_view s) const {
    const int32_t id = find_token(s);
    return id != kTokenNone && vocab_.types[id] != TokenType::kControl ? id : kTokenNone;
  }

  RegexSplitter splitter_;
  size_t max_token_bytes_ = 0;  // no piece is longer: bounds the search per position
  int32_t unk_ = kTokenNone;
};

void WpmTokenizer::encode_fragment(std::string_view text, bool /*after_special*/,
                                   std::vector<int32_t>& out) const {
  std::vector<RegexSplitter::Match> ms;
  splitter_.matches(text, ms);
  std::string word;  // folded text of the word being built
  auto finish = [&] {
    if (!word.empty()) encode_word(word, out);
    word.clear();
  };
  auto add_text = [&](size_t from, size_t to) {
    for (size_t i = from; i < to;) {
      size_t len = 1;
      const uint32_t cp = utf8_decode(text, i, len);
      if (cp != kInvalidCodepoint && cp != 0) unicode_fold_append(cp, word);
      i += len;
    }
  };
  size_t pos = 0;
  for (const RegexSplitter::Match& m : ms) {
    add_text(pos, m.start);
    if (m.group == 1) {
      finish();
    } else if (m.group == 3) {
      finish();
      add_text(m.start, m.end);
      finish();
    }  // group 2: dropped, the word goes on
    pos = m.end;
  }
  add_text(pos, text.size());
  finish();
}

void WpmTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  size_t n_chars = 0;
  for (unsigned char c : word) n_chars += (c & 0xC0) != 0x80;
  const size_t first_out = out.size();
  bool ok = n_chars <= kMaxWordChars;
  // The word with its start marker: the first piece is looked up in here.
  const std::string marked = std::string(kSpaceMarker) + word;
  const size_t mark = kSpaceMarker.size();
  for (size_t start = 0; ok && start < word.size();) {
    // Longest piece first; ends only at character boundaries.
    size_t end = std::min(word.size(), start + max_token_bytes_);
    int32_t id = kTokenNone;
    for (; end > start; --end) {
      if (end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) continue;
      id = start == 0 ? piece_token(std::string_view(marked).substr(0, mark + end))
                      : piece_token(std::string_view(word).substr(start, end - start));
      if (id != kTokenNone) break;
    }
    if (id == kTokenNone) {
      ok = false;
      break;
    }
    out.push_back(id);
    start = end;
  }
  if (!ok) {
    out.resize(first_out);
    if (unk_ != kTokenNone) out.push_back(unk_);
  }
}

std::string WpmTokenizer::piece_text(int32_t id) const {
  const std::string& t = vocab_.tokens[id];
  std::string out;
  if (id == unk_) {  // stands for a whole word
    out.push_back(' ');
    out += t;
  } else if (t.compare(0, kSpaceMarker.size(), kSpaceMarker) == 0) {
    out.push_back(' ');
    out.append(t, kSpaceMarker.size());
  } else {
    out = t;
  }
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> make_wpm_tokenizer(Vocab vocab) {
  return std::make_unique<WpmTokenizer>(std::move(vocab));
}

}  // namespace tars::engine::tokenizer_detail
