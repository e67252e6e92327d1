#pragma once
// Pieces the tokenizer files share. Not part of the public API (tokenizer.h).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer.h"

namespace tars::engine::tokenizer_detail {

// One constructor per algorithm (tokenizer_spm.cpp, tokenizer_bpe.cpp,
// tokenizer_wpm.cpp); Tokenizer::create picks one.
std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_wpm_tokenizer(Vocab vocab);

// The regex a byte-level BPE pre-tokenizer cuts text with (tokenizer_bpe.cpp).
const char* bpe_pre_pattern(PreTokenizer pre);

// ---- UTF-8 (tokenizer_utf8.cpp) -------------------------------------------

inline constexpr uint32_t kInvalidCodepoint = 0xFFFFFFFFu;

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 when
// the bytes there are not one (stray continuation byte, overlong form,
// surrogate, value past U+10FFFF, truncated sequence).
size_t utf8_sequence_length(std::string_view s, size_t i);
// Decodes the sequence at s[i]; sets `len` to the bytes used (1 for an
// invalid byte, which gives kInvalidCodepoint).
uint32_t utf8_decode(std::string_view s, size_t i, size_t& len);
void utf8_append(std::string& out, uint32_t cp);
// How many bytes from s[i] on could begin one well-formed sequence (at least
// 1: an invalid lead byte counts as its own ill-formed "maximal subpart", as
// Unicode's U+FFFD substitution practice calls it). `needed` receives the
// length a complete sequence with this lead byte has (0 for an invalid lead).
size_t utf8_valid_prefix(std::string_view s, size_t i, size_t& needed);
// The UTF-8 of U+2581 (LOWER ONE EIGHTH BLOCK), SentencePiece's space.
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

// ---- PCRE2 regex splitting (tokenizer_regex.cpp) --------------------------

// A compiled pre-tokenizer expression (UTF + UCP, JIT-compiled when PCRE2 has
// a JIT). Thread-safe: each call uses its own match data. PCRE2 stays inside
// tokenizer_regex.cpp.
class RegexSplitter {
 public:
  // Throws tars::Error(kInternal) when the expression does not compile (a bug:
  // every expression is a constant in the tokenizer sources).
  explicit RegexSplitter(const std::string& pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  struct Match {
    size_t start, end;  // byte offsets into the text, end exclusive
    int group;          // first capture group that took part; 0 when none did
  };
  // Successive non-overlapping matches, left to right. Invalid UTF-8 bytes
  // never match anything.
  void matches(std::string_view text, std::vector<Match>& out) const;
  // Cuts text into the pieces the expression matches; bytes no match covers
  // (invalid UTF-8, or text the expression does not describe) become pieces
  // of their own, so the pieces always concatenate back to the input.
  void split(std::string_view text, std::vector<std::string_view>& out) const;
  bool jit() const { return jit_; }

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// Whether this PCRE2 build has a JIT compiler (it is used when present).
bool regex_jit_available();

// ---- Unicode folding for WordPiece (tokenizer_unicode.cpp) ----------------

// Appends the lower-cased, accent-stripped form of one code point: canonical
// decomposition (NFD, Hangul syllables included), non-spacing marks (Mn)
// dropped, then full lower-casing, as BERT's uncased normaliser does. Tables
// generated from the Unicode Character Database (tokenizer_unicode_gen.py).
void unicode_fold_append(uint32_t cp, std::string& out);
// The tables behind unicode_fold_append (tokenizer_unicode_data.cpp).
struct CodepointRange { uint32_t first, last; };       // inclusive
struct CodepointPair { uint32_t cp, folded; };
struct CodepointFold3 { uint32_t cp; uint32_t folded[3]; };  // 0 ends a shorter fold
namespace unicode_data {
extern const char kUnicodeVersion[];
extern const CodepointRange kFoldDrop[];
extern const size_t kFoldDropCount;
extern const CodepointPair kFoldSingle[];
extern const size_t kFoldSingleCount;
extern const CodepointFold3 kFoldMulti[];
extern const size_t kFoldMultiCount;
}  // namespace unicode_data
// BERT's "Chinese character" blocks (CJK Unified Ideographs and extensions,
// compatibility ideographs): each is a word of its own.
bool unicode_is_cjk(uint32_t cp);

}  // namespace tars::engine::tokenizer_detail
