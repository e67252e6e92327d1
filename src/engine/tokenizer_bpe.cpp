// Byte-level BPE ("gpt2" in GGUF): GPT-2, phi-2, StableLM, Llama 3, Qwen2.
//
// Encoding: a pre-tokenizer regex cuts the text into words; each byte of a
// word is one starting symbol (the token of that byte's character in GPT-2's
// byte-to-unicode table); adjacent symbols merge by the merges list, lowest
// rank first (ties: leftmost), until no listed pair is left. Symbols are
// token ids from the start, so the merge table is keyed by id pairs and no
// strings are built while merging. A priority queue keeps a word of n bytes
// at O(n log n).
//
// Llama 3's tokenizer skips merging for a word that is itself a vocabulary
// token ("ignore_merges" in its tokenizer.json).

#include <array>
#include <queue>

#include "engine/tokenizer_internal.h"

namespace tars::engine::tokenizer_detail {

namespace {

// Pre-tokenizer expressions as the models' tokenizer.json files give them.
// The case-insensitive contractions "(?i:'s|...)" are spelt out with classes:
// PCRE2's Unicode case folding would also let 'ſ' (U+017F) match 's' and
// 'K' (U+212A) match 'k', which the originals do not.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's byte-to-unicode table: the printable bytes '!'..'~', U+00A1..U+00AC
// and U+00AE..U+00FF stand for themselves; the other 68 bytes, in increasing
// order, take U+0100, U+0101, ... so that no piece holds a space or control
// character.
struct ByteUnicode {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // code point (< 0x100 + 68) -> byte, -1 if none
  ByteUnicode() {
    to_byte.fill(-1);
    uint32_t next = 0x100;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = self ? b : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteUnicode& byte_unicode() {
  static const ByteUnicode table;
  return table;
}

struct Merge {
  int32_t rank;    // position in the merges list
  int32_t result;  // the token the pair becomes
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(Vocab vocab)
      : Tokenizer(std::move(vocab)), splitter_(bpe_pre_pattern(vocab_.pre)) {
    const ByteUnicode& bu = byte_unicode();
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      utf8_append(ch, bu.to_cp[b]);
      byte_char_[b] = ch;
      byte_token_[b] = find_token(ch);
    }
    merges_.reserve(vocab_.merges.size());
    for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
      const std::string& m = vocab_.merges[rank];
      // "left right"; searching from 1 lets a left part begin with a space.
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      const std::string_view left = std::string_view(m).substr(0, sp);
      const std::string_view right = std::string_view(m).substr(sp + 1);
      const int32_t a = find_token(left), b = find_token(right);
      const int32_t ab = find_token(std::string(left) + std::string(right));
      // A merge whose parts or result are not tokens can never apply.
      if (a == kTokenNone || b == kTokenNone || ab == kTokenNone) continue;
      merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(rank), ab});  // first rank wins
    }
  }

 protected:
  void encode_fragment(std::string_view text, bool after_special,
                       std::vector<int32_t>& out) const override;
  std::string piece_text(int32_t id) const override;

 private:
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  RegexSplitter splitter_;
  std::array<std::string, 256> byte_char_;  // byte -> UTF-8 of its stand-in character
  std::array<int32_t, 256> byte_token_;     // byte -> token of that character, or none
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
};

void BpeTokenizer::encode_fragment(std::string_view text, bool /*after_special*/,
                                   std::vector<int32_t>& out) const {
  std::vector<std::string_view> words;
  splitter_.split(text, words);
  for (std::string_view w : words) encode_word(w, out);
}

struct Symbol {
  int32_t id;          // token of this piece; kTokenNone for a byte the vocabulary lacks
  int32_t prev, next;  // neighbours, -1 at the ends
  bool alive;
};

struct Pair {
  int32_t rank;
  int32_t left, right;        // symbol indices
  int32_t left_id, right_id;  // ids when queued (stale check)
  int32_t result;             // the merged token
};

struct PairOrder {  // top of the heap: lowest rank, then leftmost
  bool operator()(const Pair& a, const Pair& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.left > b.left;
  }
};

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (vocab_.pre == PreTokenizer::kLlama3) {
    std::string mapped;
    for (unsigned char c : word) mapped += byte_char_[c];
    const int32_t id = find_token(mapped);
    if (id != kTokenNone && vocab_.types[id] == TokenType::kNormal) {
      out.push_back(id);
      return;
    }
  }

  if (word.empty()) return;
  std::vector<Symbol> sym(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    sym[i] = {byte_token_[static_cast<unsigned char>(word[i])], static_cast<int32_t>(i) - 1,
              static_cast<int32_t>(i) + 1, true};
  }
  sym.back().next = -1;

  std::priority_queue<Pair, std::vector<Pair>, PairOrder> queue;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0 || sym[l].id == kTokenNone || sym[r].id == kTokenNone) return;
    auto it = merges_.find(pair_key(sym[l].id, sym[r].id));
    if (it == merges_.end()) return;
    queue.push({it->second.rank, l, r, sym[l].id, sym[r].id, it->second.result});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Symbol& l = sym[p.left];
    Symbol& r = sym[p.right];
    if (!l.alive || !r.alive || l.next != p.right || l.id != p.left_id || r.id != p.right_id)
      continue;  // stale
    l.id = p.result;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = p.left;
    r.alive = false;
    try_add(l.prev, p.left);
    try_add(p.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[i].next) {
    if (sym[i].id != kTokenNone) out.push_back(sym[i].id);
    else if (vocab_.unk != kTokenNone) out.push_back(vocab_.unk);
  }
}

std::string BpeTokenizer::piece_text(int32_t id) const {
  const std::string& t = vocab_.tokens[id];
  // Added tokens are stored as plain text, not through the byte table.
  if (vocab_.types[id] == TokenType::kUserDefined) return t;
  const ByteUnicode& bu = byte_unicode();
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    size_t len = 1;
    const uint32_t cp = utf8_decode(t, i, len);
    if (cp < bu.to_byte.size() && bu.to_byte[cp] >= 0) {
      out.push_back(static_cast<char>(bu.to_byte[cp]));
    } else {
      out.append(t, i, len);  // not a byte stand-in: keep as written
    }
    i += len;
  }
  return out;
}

}  // namespace

const char* bpe_pre_pattern(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::kLlama3: return kLlama3Pattern;
    case PreTokenizer::kQwen2: return kQwen2Pattern;
    default: return kGpt2Pattern;
  }
}

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab) {
  return std::make_unique<BpeTokenizer>(std::move(vocab));
}

}  // namespace tars::engine::tokenizer_detail
