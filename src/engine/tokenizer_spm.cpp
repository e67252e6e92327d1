// SentencePiece-style BPE ("llama" in GGUF): LLaMA 1/2, Mistral, TinyLlama.
//
// Encoding: spaces become U+2581 (a space is put in front first when
// add_space_prefix), the text is cut into UTF-8 characters, and adjacent
// pieces are merged while their concatenation is a vocabulary token, always
// the pair whose token has the highest score first (ties: the leftmost pair).
// A piece that is not a token at the end (a character the vocabulary lacks)
// is spelt with byte tokens <0xXX>, or <unk> when the vocabulary has none.
// A priority queue keeps this O(n log n) in the text length.

#include <array>
#include <queue>

#include "engine/tokenizer_internal.h"

namespace tars::engine::tokenizer_detail {

namespace {

// The byte a "<0xXX>" token stands for, or -1.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    v *= 16;
    if (c >= '0' && c <= '9') v += c - '0';
    else if (c >= 'A' && c <= 'F') v += c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v += c - 'a' + 10;
    else return -1;
  }
  return v;
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {
    byte_token_.fill(kTokenNone);
    for (int32_t id = 0; id < n_vocab(); ++id) {
      if (vocab_.types[id] != TokenType::kByte) continue;
      const int b = parse_byte_token(vocab_.tokens[id]);
      if (b >= 0 && byte_token_[b] == kTokenNone) byte_token_[b] = id;
    }
  }

 protected:
  void encode_fragment(std::string_view text, bool after_special,
                       std::vector<int32_t>& out) const override;
  std::string piece_text(int32_t id) const override;
  bool drops_prefix_space() const override { return vocab_.add_space_prefix; }

 private:
  // A token the merge may produce: plain text tokens only. Control, byte and
  // unused tokens are never spelt out of the text ("<s>" typed by a user stays
  // three characters).
  int32_t text_token(std::string_view s) const {
    const int32_t id = find_token(s);
    if (id == kTokenNone) return kTokenNone;
    const TokenType t = vocab_.types[id];
    return (t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUndefined)
               ? id
               : kTokenNone;
  }

  std::array<int32_t, 256> byte_token_;  // byte -> its <0xXX> token, or none
};

struct Symbol {
  uint32_t start;  // byte offset into the escaped text
  uint32_t len;    // bytes; 0 once merged into its left neighbour
  int32_t prev, next;  // neighbours in the list, -1 at the ends
};

struct Bigram {
  float score;   // score of the token the pair would become
  int32_t left;  // symbol index of the left piece
  int32_t right;
  uint32_t len;  // bytes of the pair when it was queued (stale check)
};

struct BigramOrder {  // top of the heap: highest score, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  }
};

void SpmTokenizer::encode_fragment(std::string_view text, bool after_special,
                                   std::vector<int32_t>& out) const {
  std::string s;
  s.reserve(text.size() + text.size() / 2 + 3);
  if (after_special && vocab_.add_space_prefix) s += kSpaceMarker;
  for (char c : text) {
    if (c == ' ') s += kSpaceMarker;
    else s.push_back(c);
  }
  if (s.empty()) return;

  std::vector<Symbol> sym;
  sym.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) n = 1;  // an invalid byte is a piece of its own (byte fallback)
    const auto idx = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n), idx - 1, idx + 1});
    i += n;
  }
  sym.back().next = -1;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t len = sym[left].len + sym[right].len;
    const int32_t id = text_token(std::string_view(s).substr(sym[left].start, len));
    if (id == kTokenNone) return;
    queue.push({vocab_.scores[id], left, right, len});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    // Stale: one side was merged away, or grew, since the pair was queued.
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    r.len = 0;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[i].next) {
    const std::string_view piece = std::string_view(s).substr(sym[i].start, sym[i].len);
    const int32_t id = text_token(piece);
    if (id != kTokenNone) {
      out.push_back(id);
      continue;
    }
    for (unsigned char c : piece) {
      const int32_t bt = byte_token_[c];
      if (bt != kTokenNone) out.push_back(bt);
      else if (vocab_.unk != kTokenNone) out.push_back(vocab_.unk);
    }
  }
}

std::string SpmTokenizer::piece_text(int32_t id) const {
  const std::string& t = vocab_.tokens[id];
  switch (vocab_.types[id]) {
    case TokenType::kByte: {
      const int b = parse_byte_token(t);
      return b >= 0 ? std::string(1, static_cast<char>(b)) : t;
    }
    case TokenType::kUnknown:
      return " \xE2\x81\x87 ";  // " ⁇ ", SentencePiece's surface for <unk>
    default: {
      std::string out;
      out.reserve(t.size());
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
          out.push_back(' ');
          i += kSpaceMarker.size();
        } else {
          out.push_back(t[i++]);
        }
      }
      return out;
    }
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) {
  return std::make_unique<SpmTokenizer>(std::move(vocab));
}

}  // namespace tars::engine::tokenizer_detail
