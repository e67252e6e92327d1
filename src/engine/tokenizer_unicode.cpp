// Unicode folding for WordPiece: lower-case and strip accents without ICU.
//
// BERT's uncased normaliser applies NFD to the text, drops non-spacing marks
// and lower-cases. Done one code point at a time this needs three facts per
// code point, which tokenizer_unicode_data.cpp lists for the ~5,000 code
// points where the result is not the code point itself; Hangul syllables
// (11,172 of them) decompose by the arithmetic the Unicode standard gives
// (section 3.12) instead of a table. Per-character folding equals folding the
// whole text except where canonical reordering of marks would matter, and
// marks are dropped anyway.

#include <algorithm>

#include "engine/tokenizer_internal.h"

namespace tars::engine::tokenizer_detail {

namespace {

// Hangul syllable decomposition constants (Unicode 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = 11172;

}  // namespace

void unicode_fold_append(uint32_t cp, std::string& out) {
  using namespace unicode_data;
  if (cp < 0x80) {  // ASCII: only A-Z change
    out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    return;
  }
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    utf8_append(out, kLBase + s / kNCount);
    utf8_append(out, kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) utf8_append(out, kTBase + s % kTCount);
    return;
  }
  const CodepointRange* drop_end = kFoldDrop + kFoldDropCount;
  const CodepointRange* d = std::upper_bound(
      kFoldDrop, drop_end, cp, [](uint32_t c, const CodepointRange& r) { return c < r.first; });
  if (d != kFoldDrop && cp <= (d - 1)->last) return;  // a non-spacing mark
  const CodepointPair* single_end = kFoldSingle + kFoldSingleCount;
  const CodepointPair* p = std::lower_bound(
      kFoldSingle, single_end, cp, [](const CodepointPair& e, uint32_t c) { return e.cp < c; });
  if (p != single_end && p->cp == cp) {
    utf8_append(out, p->folded);
    return;
  }
  const CodepointFold3* multi_end = kFoldMulti + kFoldMultiCount;
  const CodepointFold3* m = std::lower_bound(
      kFoldMulti, multi_end, cp, [](const CodepointFold3& e, uint32_t c) { return e.cp < c; });
  if (m != multi_end && m->cp == cp) {
    for (uint32_t f : m->folded) {
      if (f != 0) utf8_append(out, f);
    }
    return;
  }
  utf8_append(out, cp);
}

bool unicode_is_cjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

}  // namespace tars::engine::tokenizer_detail
