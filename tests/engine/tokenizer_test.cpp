// Tokenizers on small hand-made vocabularies: merge order, byte fallback,
// special tokens on and off, BOS/EOS, the streaming UTF-8 decoder, WordPiece
// normalisation, the pre-tokenizer regexes, Unicode folding, GGUF loading
// and its refusals. Every expectation here is worked out by hand from the
// algorithm's definition, not taken from the implementation's output.
// Real vocabularies are in tests/model/tokenizer_vectors_test.cpp.

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_internal.h"

namespace tars::engine {
namespace {

using namespace tokenizer_detail;

const std::string kMark = "\xE2\x96\x81";  // U+2581
const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// ---- SPM --------------------------------------------------------------------

// Ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then the normal pieces
// below, then the special tokens.
enum SpmId : int32_t {
  kSpmSpace = 259, kSpmA, kSpmB, kSpmC, kSpmSpaceA, kSpmAB, kSpmSpaceAB, kSpmBC,
  kSpmX, kSpmY, kSpmXY, kSpmYX,
  kSpmImStart, kSpmUser, kSpmCtlShort, kSpmCtlLong,
};
int32_t spm_byte(int b) { return 3 + b; }

Vocab spm_vocab() {
  Vocab v;
  v.model = TokenizerModel::kSpm;
  v.model_name = "llama";
  auto add = [&](const std::string& t, float score, TokenType type) {
    v.tokens.push_back(t);
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    add(name, 0, TokenType::kByte);
  }
  add(kMark, -1, TokenType::kNormal);
  add("a", -2, TokenType::kNormal);
  add("b", -2, TokenType::kNormal);
  add("c", -2, TokenType::kNormal);
  add(kMark + "a", -3, TokenType::kNormal);
  add("ab", -1.5f, TokenType::kNormal);
  add(kMark + "ab", -4, TokenType::kNormal);
  add("bc", -0.5f, TokenType::kNormal);
  add("x", -2, TokenType::kNormal);
  add("y", -2, TokenType::kNormal);
  add("xy", -1, TokenType::kNormal);  // same score as "yx": ties go left
  add("yx", -1, TokenType::kNormal);
  add("<|im_start|>", 0, TokenType::kControl);
  add("<|user|>", 0, TokenType::kUserDefined);
  add("<|a|>", 0, TokenType::kControl);
  add("<|a|>b", 0, TokenType::kControl);  // longer, shares a prefix
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

using Ids = std::vector<int32_t>;

TEST(TokenizerSpm, MergesHighestScoreFirst) {
  auto tok = Tokenizer::create(spm_vocab());
  // "▁abc": pairs ▁a (-3), ab (-1.5), bc (-0.5). bc merges first; then ▁a;
  // "▁abc"/"abc" are not pieces, so ▁a + bc remain.
  EXPECT_EQ(tok->encode("abc", false, false), (Ids{kSpmSpaceA, kSpmBC}));
  // "▁ab": ab (-1.5) before ▁a (-3), then ▁ + ab -> ▁ab.
  EXPECT_EQ(tok->encode("ab", false, false), (Ids{kSpmSpaceAB}));
  // "xyx": xy and yx tie at -1; the left pair wins.
  EXPECT_EQ(tok->encode("xyx", false, false), (Ids{kSpmSpace, kSpmXY, kSpmX}));
  // Spaces inside the text are U+2581 too.
  EXPECT_EQ(tok->encode("ab ab", false, false), (Ids{kSpmSpaceAB, kSpmSpaceAB}));
  EXPECT_EQ(tok->encode("", false, false), Ids{});
  EXPECT_EQ(tok->encode("", true, false), Ids{1});
}

TEST(TokenizerSpm, ByteFallbackForUnknownCharacters) {
  auto tok = Tokenizer::create(spm_vocab());
  // "é" is C3 A9 and not a piece.
  EXPECT_EQ(tok->encode("\xC3\xA9", false, false),
            (Ids{kSpmSpace, spm_byte(0xC3), spm_byte(0xA9)}));
  // Invalid UTF-8 is spelt byte by byte as well, and decodes back.
  const std::string bad = "a\xFF\xC3";
  const Ids ids = tok->encode(bad, false, false);
  EXPECT_EQ(ids, (Ids{kSpmSpaceA, spm_byte(0xFF), spm_byte(0xC3)}));
  EXPECT_EQ(tok->decode(ids), bad);
  // Without byte tokens the character becomes <unk>.
  Vocab v = spm_vocab();
  for (int b = 0; b < 256; ++b) v.types[spm_byte(b)] = TokenType::kUnused;
  auto no_bytes = Tokenizer::create(v);
  EXPECT_EQ(no_bytes->encode("\xC3\xA9", false, false), (Ids{kSpmSpace, 0, 0}));
}

TEST(TokenizerSpm, BosEosFollowTheVocabFlags) {
  Vocab v = spm_vocab();
  auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("a", true, false), (Ids{1, kSpmSpaceA}));
  EXPECT_EQ(tok->encode("a", false, false), (Ids{kSpmSpaceA}));
  v.add_bos = false;
  v.add_eos = true;
  auto tok2 = Tokenizer::create(v);
  EXPECT_EQ(tok2->encode("a", true, false), (Ids{kSpmSpaceA, 2}));
  v.add_space_prefix = false;
  auto tok3 = Tokenizer::create(v);
  EXPECT_EQ(tok3->encode("a", false, false), (Ids{kSpmA}));
  // No BOS id: nothing is added, nothing breaks.
  v.bos = kTokenNone;
  v.add_bos = true;
  EXPECT_EQ(Tokenizer::create(v)->encode("a", true, false), (Ids{kSpmA, 2}));
}

TEST(TokenizerSpm, SpecialTokensParsedOnlyWhenAsked) {
  auto tok = Tokenizer::create(spm_vocab());
  // On: the control token is one id; the text after it gets the space prefix.
  EXPECT_EQ(tok->encode("<|im_start|>ab", false, true), (Ids{kSpmImStart, kSpmSpaceAB}));
  EXPECT_EQ(tok->encode("ab<|im_start|>", false, true), (Ids{kSpmSpaceAB, kSpmImStart}));
  // Off: it is plain text (here spelt in bytes) and decodes back to itself.
  const Ids off = tok->encode("<|im_start|>ab", false, false);
  EXPECT_EQ(std::count(off.begin(), off.end(), kSpmImStart), 0);
  EXPECT_GT(off.size(), 10u);
  EXPECT_EQ(tok->decode(off), "<|im_start|>ab");
  // Longest match first: "<|a|>b" beats "<|a|>".
  EXPECT_EQ(tok->encode("<|a|>b", false, true), (Ids{kSpmCtlLong}));
  EXPECT_EQ(tok->encode("<|a|>c", false, true), (Ids{kSpmCtlShort, kSpmSpace, kSpmC}));
  // User-defined tokens are vocabulary words: matched either way.
  EXPECT_EQ(tok->encode("<|user|>", false, false), (Ids{kSpmUser}));
  EXPECT_EQ(tok->encode("<|user|>", false, true), (Ids{kSpmUser}));
  // Adjacent specials, and a special at the very end.
  EXPECT_EQ(tok->encode("<|im_start|><|im_start|>", true, true), (Ids{1, kSpmImStart, kSpmImStart}));
}

TEST(TokenizerSpm, DecodeDropsTheAddedSpace) {
  auto tok = Tokenizer::create(spm_vocab());
  EXPECT_EQ(tok->decode(Ids{1, kSpmSpaceA, kSpmBC}), "abc");
  EXPECT_EQ(tok->decode(Ids{1, kSpmSpaceA, kSpmBC}, true), "<s>abc");
  EXPECT_EQ(tok->decode(Ids{kSpmSpaceAB, kSpmSpaceAB}), "ab ab");
  EXPECT_EQ(tok->token_to_piece(kSpmSpaceAB), " ab");
  EXPECT_EQ(tok->token_to_piece(1), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok->token_to_piece(spm_byte('\n')), "\n");
  EXPECT_EQ(tok->token_to_piece(-5), "");
  EXPECT_EQ(tok->token_to_piece(100000), "");
  // Text with special tokens round-trips when they are rendered.
  const std::string chat = "<|im_start|>ab ab<|im_start|>c";
  EXPECT_EQ(tok->decode(tok->encode(chat, true, true), true), "<s>" + chat);
}

// ---- streaming decoder ------------------------------------------------------

TEST(TokenStreamDecoder, HoldsSplitCharactersUntilComplete) {
  auto tok = Tokenizer::create(spm_vocab());
  TokenStreamDecoder d(*tok);
  EXPECT_EQ(d.push(kSpmSpaceA), "a");  // first piece: the prefix space is dropped
  // "€" = E2 82 AC, one byte token each.
  EXPECT_EQ(d.push(spm_byte(0xE2)), "");
  EXPECT_EQ(d.pending(), 1u);
  EXPECT_EQ(d.push(spm_byte(0x82)), "");
  EXPECT_EQ(d.pending(), 2u);
  EXPECT_EQ(d.push(spm_byte(0xAC)), "\xE2\x82\xAC");
  EXPECT_EQ(d.pending(), 0u);
  // A 4-byte character (U+1F999), one byte per token.
  EXPECT_EQ(d.push(spm_byte(0xF0)), "");
  EXPECT_EQ(d.push(spm_byte(0x9F)), "");
  EXPECT_EQ(d.push(spm_byte(0xA6)), "");
  EXPECT_EQ(d.push(spm_byte(0x99)), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(d.push(kSpmSpaceA), " a");
  EXPECT_EQ(d.flush(), "");
}

TEST(TokenStreamDecoder, ReplacesBytesThatCannotFormACharacter) {
  auto tok = Tokenizer::create(spm_vocab());
  TokenStreamDecoder d(*tok, /*at_start=*/false);
  EXPECT_EQ(d.push(spm_byte(0xFF)), kReplacement);         // never valid
  EXPECT_EQ(d.push(spm_byte(0x80)), kReplacement);         // stray continuation
  EXPECT_EQ(d.push(spm_byte(0xE2)), "");                   // may still complete...
  EXPECT_EQ(d.push(kSpmSpaceA), kReplacement + " a");      // ...but did not
  EXPECT_EQ(d.push(spm_byte(0xC0)), kReplacement);         // overlong lead
  EXPECT_EQ(d.push(spm_byte(0xED)), "");
  EXPECT_EQ(d.push(spm_byte(0xA0)), kReplacement + kReplacement);  // surrogate: ED A0 is bad
  EXPECT_EQ(d.push(spm_byte(0xF0)), "");
  EXPECT_EQ(d.push(spm_byte(0x9F)), "");
  EXPECT_EQ(d.flush(), kReplacement);  // the incomplete tail
  EXPECT_EQ(d.pending(), 0u);
}

TEST(TokenStreamDecoder, OutputEqualsDecodeForValidText) {
  auto tok = Tokenizer::create(spm_vocab());
  const std::string text = "ab \xE2\x82\xAC x\xC3\xA9yx <|im_start|>abc";
  const Ids ids = tok->encode(text, false, true);
  TokenStreamDecoder d(*tok, /*at_start=*/true, /*render_special=*/true);
  std::string streamed;
  for (int32_t id : ids) streamed += d.push(id);
  streamed += d.flush();
  EXPECT_EQ(streamed, tok->decode(ids, true));
  EXPECT_EQ(streamed, text);
  // Without render_special the control token is silent.
  TokenStreamDecoder quiet(*tok);
  std::string plain;
  for (int32_t id : ids) plain += quiet.push(id);
  EXPECT_EQ(plain, "ab \xE2\x82\xAC x\xC3\xA9yx abc");
}

// ---- byte-level BPE ---------------------------------------------------------

// GPT-2's byte-to-unicode table, written out from its definition.
std::string byte_char(int b) {
  const bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
  uint32_t cp = static_cast<uint32_t>(b);
  if (!self) {
    int n = 0;
    for (int k = 0; k < b; ++k) {
      if (!((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE))) ++n;
    }
    cp = 0x100 + n;
  }
  std::string s;
  utf8_append(s, cp);
  return s;
}

// Ids 0..255: byte b's character is token b. Then the merged pieces.
Vocab bpe_vocab(const std::vector<std::string>& merges) {
  Vocab v;
  v.model = TokenizerModel::kBpe;
  v.model_name = "gpt2";
  v.pre = PreTokenizer::kGpt2;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_char(b));
  for (const char* t : {"ab", "bc", "abc", "\xC4\xA0" "a", "\xC4\xA0" "ab"}) v.tokens.push_back(t);
  v.tokens.push_back("<|endoftext|>");
  v.tokens.push_back("[ADDED]");
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  v.types[v.tokens.size() - 2] = TokenType::kControl;
  v.types[v.tokens.size() - 1] = TokenType::kUserDefined;
  v.merges = merges;
  v.bos = v.eos = static_cast<int32_t>(v.tokens.size() - 2);
  return v;
}
constexpr int32_t kAB = 256, kBC = 257, kABC = 258, kSpA = 259, kSpAB = 260, kEot = 261, kAdded = 262;

TEST(TokenizerBpe, ByteToUnicodeTableIsGpt2s) {
  EXPECT_EQ(byte_char(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_char('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byte_char(0), "\xC4\x80");     // U+0100
  EXPECT_EQ(byte_char(0xAD), "\xC5\x83");  // soft hyphen -> U+0143, the 68th
  EXPECT_EQ(byte_char('A'), "A");
}

TEST(TokenizerBpe, MergesByRank) {
  // "b c" ranks before "a b": abc -> a + bc (no "a bc" merge listed).
  auto t1 = Tokenizer::create(bpe_vocab({"b c", "a b"}));
  EXPECT_EQ(t1->encode("abc", false, false), (Ids{'a', kBC}));
  // The other order: ab + c.
  auto t2 = Tokenizer::create(bpe_vocab({"a b", "b c"}));
  EXPECT_EQ(t2->encode("abc", false, false), (Ids{kAB, 'c'}));
  // Chained merges.
  auto t3 = Tokenizer::create(bpe_vocab({"a b", "ab c", "\xC4\xA0 a", "\xC4\xA0" "a b"}));
  EXPECT_EQ(t3->encode("abc", false, false), (Ids{kABC}));
  // " ab" is one GPT-2 word Ġ a b. "a b" (rank 0) merges before "Ġ a" (rank 2),
  // and no "Ġ ab" merge exists: Ġ + ab.
  EXPECT_EQ(t3->encode(" ab", false, false), (Ids{' ', kAB}));
  // With "Ġ a" first: Ġa, then "Ġa b": one token.
  auto t4 = Tokenizer::create(bpe_vocab({"\xC4\xA0 a", "\xC4\xA0" "a b", "a b"}));
  EXPECT_EQ(t4->encode(" ab", false, false), (Ids{kSpAB}));
  // Words never merge across the pre-tokenizer's cuts: "ab ab" is "ab", " ab".
  EXPECT_EQ(t4->encode("ab ab", false, false), (Ids{kAB, kSpAB}));
}

TEST(TokenizerBpe, AnyBytesRoundTrip) {
  auto tok = Tokenizer::create(bpe_vocab({"a b", "b c", "\xC4\xA0 a"}));
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    const Ids ids = tok->encode(s, false, i % 2 == 0);
    ASSERT_EQ(tok->decode(ids), s) << i;
  }
}

TEST(TokenizerBpe, SpecialAndAddedTokens) {
  auto tok = Tokenizer::create(bpe_vocab({"a b"}));
  EXPECT_EQ(tok->encode("ab<|endoftext|>ab", false, true), (Ids{kAB, kEot, kAB}));
  const Ids off = tok->encode("<|endoftext|>", false, false);
  EXPECT_EQ(std::count(off.begin(), off.end(), kEot), 0);
  EXPECT_EQ(tok->decode(off), "<|endoftext|>");
  // Added tokens are stored as plain text (no byte table) and always match.
  EXPECT_EQ(tok->encode("x[ADDED]", false, false), (Ids{'x', kAdded}));
  EXPECT_EQ(tok->token_to_piece(kAdded), "[ADDED]");
  EXPECT_EQ(tok->token_to_piece(kEot), "");
  EXPECT_EQ(tok->token_to_piece(kEot, true), "<|endoftext|>");
  EXPECT_EQ(tok->token_to_piece(kSpA), " a");
  EXPECT_TRUE(tok->is_end_of_generation(kEot));
  EXPECT_FALSE(tok->is_end_of_generation(kAB));
  // GPT-2 vocabularies add no BOS by default; the flag adds it.
  EXPECT_EQ(tok->encode("ab", true, false), (Ids{kAB}));
  Vocab v = bpe_vocab({"a b"});
  v.add_bos = true;
  EXPECT_EQ(Tokenizer::create(v)->encode("ab", true, false), (Ids{kEot, kAB}));
}

TEST(TokenizerBpe, Llama3WholeWordSkipsMerges) {
  // "abc" is a token, but no merge path leads to it.
  Vocab v = bpe_vocab({"a b"});
  auto gpt2 = Tokenizer::create(v);
  EXPECT_EQ(gpt2->encode("abc", false, false), (Ids{kAB, 'c'}));
  v.pre = PreTokenizer::kLlama3;
  auto llama3 = Tokenizer::create(v);
  EXPECT_EQ(llama3->encode("abc", false, false), (Ids{kABC}));
}

// ---- pre-tokenizer regexes --------------------------------------------------

std::vector<std::string> pre_split(PreTokenizer pre, std::string_view text) {
  RegexSplitter rx(bpe_pre_pattern(pre));
  std::vector<std::string_view> parts;
  rx.split(text, parts);
  return {parts.begin(), parts.end()};
}
using Parts = std::vector<std::string>;

TEST(TokenizerPreTokenizer, Gpt2) {
  EXPECT_EQ(pre_split(PreTokenizer::kGpt2, "Hello world's  end\n"),
            (Parts{"Hello", " world", "'s", " ", " end", "\n"}));
  EXPECT_EQ(pre_split(PreTokenizer::kGpt2, "12345 x"), (Parts{"12345", " x"}));
  // Contractions are lower-case only in GPT-2.
  EXPECT_EQ(pre_split(PreTokenizer::kGpt2, "I'M"), (Parts{"I", "'", "M"}));
  EXPECT_EQ(pre_split(PreTokenizer::kGpt2, "\xD0\xBD\xD0\xB0 \xE4\xBD\xA0!!"),
            (Parts{"\xD0\xBD\xD0\xB0", " \xE4\xBD\xA0", "!!"}));
}

TEST(TokenizerPreTokenizer, Llama3AndQwen2) {
  EXPECT_EQ(pre_split(PreTokenizer::kLlama3, "12345"), (Parts{"123", "45"}));
  EXPECT_EQ(pre_split(PreTokenizer::kQwen2, "12345"), (Parts{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(pre_split(PreTokenizer::kLlama3, "I'M here"), (Parts{"I", "'M", " here"}));
  EXPECT_EQ(pre_split(PreTokenizer::kLlama3, "Hello\n\nworld"), (Parts{"Hello", "\n\n", "world"}));
  // A non-letter may lead a word ("[^\r\n\p{L}\p{N}]?\p{L}+").
  EXPECT_EQ(pre_split(PreTokenizer::kLlama3, "x.y"), (Parts{"x", ".y"}));
  // U+017F (long s) is not a contraction letter: "'ſx" stays one word
  // (Unicode case folding would cut "'ſ" off as a contraction).
  EXPECT_EQ(pre_split(PreTokenizer::kLlama3, "a'\xC5\xBFx"), (Parts{"a", "'\xC5\xBFx"}));
}

TEST(TokenizerPreTokenizer, InvalidUtf8IsKeptAsItsOwnPieces) {
  const std::string s = "ab\xFF\xFE cd\xC3";
  const Parts parts = pre_split(PreTokenizer::kGpt2, s);
  std::string joined;
  for (const auto& p : parts) joined += p;
  EXPECT_EQ(joined, s);
  EXPECT_EQ(parts.front(), "ab");
}

TEST(TokenizerPreTokenizer, JitIsUsedWhenAvailable) {
  RegexSplitter rx(bpe_pre_pattern(PreTokenizer::kGpt2));
  EXPECT_EQ(rx.jit(), regex_jit_available());
  std::printf("[ pcre2    ] JIT %s\n", rx.jit() ? "on" : "not available");
}

// ---- WordPiece --------------------------------------------------------------

Vocab wpm_vocab() {
  Vocab v;
  v.model = TokenizerModel::kWpm;
  v.model_name = "bert";
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    v.tokens.push_back(t);
    v.types.push_back(TokenType::kControl);
  }
  for (const std::string& t : {kMark + "hello", kMark + "world", kMark + "un", std::string("aff"),
                              std::string("able"), kMark + ",", kMark + "!", kMark + "cafe",
                              kMark + "\xE4\xB8\xAD", kMark + "a", std::string("a"),
                              kMark + "\xE1\x84\x92"}) {
    v.tokens.push_back(t);
    v.types.push_back(TokenType::kNormal);
  }
  v.pad = 0;
  v.unk = 1;
  v.cls = 2;
  v.sep = 3;
  v.mask = 4;
  v.add_bos = v.add_eos = true;
  return v;
}
enum WpmId : int32_t { kWUnk = 1, kWCls, kWSep, kWMask, kWHello, kWWorld, kWUn, kWAff, kWAble,
                       kWComma, kWBang, kWCafe, kWZhong, kWSpA, kWA, kWHieuh };

TEST(TokenizerWpm, NormalisesAndSplits) {
  auto tok = Tokenizer::create(wpm_vocab());
  EXPECT_EQ(tok->encode("Hello, World!", false, false), (Ids{kWHello, kWComma, kWWorld, kWBang}));
  EXPECT_EQ(tok->encode("  unaffable\t", false, false), (Ids{kWUn, kWAff, kWAble}));
  EXPECT_EQ(tok->encode("CAF\xC3\x89", false, false), (Ids{kWCafe}));   // É -> e
  EXPECT_EQ(tok->encode("cafe\xCC\x81", false, false), (Ids{kWCafe}));  // e + U+0301
  // Control characters vanish without splitting the word (ZWJ, U+200D).
  EXPECT_EQ(tok->encode("hel\xE2\x80\x8Dlo", false, false), (Ids{kWHello}));
  // Every CJK ideograph is a word: 中 is known, 文 is not.
  EXPECT_EQ(tok->encode("\xE4\xB8\xAD\xE6\x96\x87", false, false), (Ids{kWZhong, kWUnk}));
  // A word that cannot be spelt is one [UNK], whatever pieces it began with.
  EXPECT_EQ(tok->encode("unaffx hello", false, false), (Ids{kWUnk, kWHello}));
  // Hangul decomposes to jamo: 한 = U+1112 U+1161 U+11AB; only U+1112 is a piece.
  EXPECT_EQ(tok->encode("\xED\x95\x9C", false, false), (Ids{kWUnk}));
  EXPECT_EQ(tok->encode(" \n", false, false), Ids{});
  EXPECT_EQ(tok->encode("Hello", true, false), (Ids{kWCls, kWHello, kWSep}));
}

TEST(TokenizerWpm, OverlongWordsAreUnknown) {
  auto tok = Tokenizer::create(wpm_vocab());
  EXPECT_EQ(tok->encode(std::string(100, 'a'), false, false).size(), 100u);
  EXPECT_EQ(tok->encode(std::string(101, 'a'), false, false), (Ids{kWUnk}));
}

TEST(TokenizerWpm, DecodeAndSpecials) {
  auto tok = Tokenizer::create(wpm_vocab());
  EXPECT_EQ(tok->decode(tok->encode("Hello, unaffable World!", true, false)),
            "hello , unaffable world !");
  EXPECT_EQ(tok->encode("[CLS]hello[SEP]", false, true), (Ids{kWCls, kWHello, kWSep}));
  // Unparsed, "[MASK]" is the words "[", "mask", "]", none of them pieces here.
  EXPECT_EQ(tok->encode("[MASK]", false, false), (Ids{kWUnk, kWUnk, kWUnk}));
  EXPECT_EQ(tok->decode(Ids{kWCls, kWHello, kWUnk, kWSep}), "hello [UNK]");
}

// ---- Unicode folding and UTF-8 ----------------------------------------------

std::string fold(uint32_t cp) {
  std::string s;
  unicode_fold_append(cp, s);
  return s;
}
std::string utf8(std::initializer_list<uint32_t> cps) {
  std::string s;
  for (uint32_t c : cps) utf8_append(s, c);
  return s;
}

TEST(TokenizerUnicode, FoldStripsAccentsAndLowerCases) {
  EXPECT_EQ(fold('A'), "a");
  EXPECT_EQ(fold('z'), "z");
  EXPECT_EQ(fold(0x00C9), "e");                                 // É
  EXPECT_EQ(fold(0x00C4), "a");                                 // Ä
  EXPECT_EQ(fold(0x1EC7), "e");                                 // ệ (two marks)
  EXPECT_EQ(fold(0x0130), "i");                                 // İ: I + U+0307
  EXPECT_EQ(fold(0x0301), "");                                  // combining acute
  EXPECT_EQ(fold(0x2126), utf8({0x03C9}));                      // OHM SIGN -> Ω -> ω
  EXPECT_EQ(fold(0x0411), utf8({0x0431}));                      // Б -> б
  EXPECT_EQ(fold(0x1E9E), utf8({0x00DF}));                      // ẞ -> ß
  EXPECT_EQ(fold(0x00DF), utf8({0x00DF}));                      // ß stays
  EXPECT_EQ(fold(0xFB01), utf8({0xFB01}));                      // ﬁ: compatibility only
  EXPECT_EQ(fold(0xD55C), utf8({0x1112, 0x1161, 0x11AB}));      // 한
  EXPECT_EQ(fold(0xAC00), utf8({0x1100, 0x1161}));              // 가: no final
  EXPECT_EQ(fold(0x4E2D), utf8({0x4E2D}));                      // 中
  EXPECT_EQ(fold(0x1F999), utf8({0x1F999}));                    // 🦙
  EXPECT_TRUE(unicode_is_cjk(0x4E2D));
  EXPECT_FALSE(unicode_is_cjk(0x3042));  // hiragana is not in BERT's list
}

TEST(TokenizerUtf8, RejectsMalformedSequences) {
  EXPECT_EQ(utf8_sequence_length("\xE2\x82\xAC", 0), 3u);
  EXPECT_EQ(utf8_sequence_length("\xF0\x9F\xA6\x99", 0), 4u);
  EXPECT_EQ(utf8_sequence_length("\xC0\xAF", 0), 0u);          // overlong
  EXPECT_EQ(utf8_sequence_length("\xE0\x80\xAF", 0), 0u);      // overlong
  EXPECT_EQ(utf8_sequence_length("\xED\xA0\x80", 0), 0u);      // surrogate
  EXPECT_EQ(utf8_sequence_length("\xF4\x90\x80\x80", 0), 0u);  // past U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xE2\x82", 0), 0u);          // truncated
  EXPECT_EQ(utf8_sequence_length("\x80", 0), 0u);
  size_t len = 0;
  EXPECT_EQ(utf8_decode("\xE2\x82\xAC", 0, len), 0x20ACu);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(utf8_decode("\xFF", 0, len), kInvalidCodepoint);
  EXPECT_EQ(len, 1u);
}

// ---- loading from GGUF ------------------------------------------------------

struct MemoryGguf {
  std::vector<uint8_t> bytes;
  std::unique_ptr<GgufFile> file;
  explicit MemoryGguf(const GgufWriter& w) : bytes(w.to_bytes()) {
    file = GgufFile::from_memory(bytes.data(), bytes.size(), "test.gguf");
  }
};

GgufWriter spm_writer() {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", kMark + "a", "a"});
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, -1, -2});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);  // unset
  w.set_u32("tokenizer.ggml.seperator_token_id", 5);          // out of range: none
  return w;
}

TEST(TokenizerGguf, LoadsVocabAndDefaults) {
  MemoryGguf g(spm_writer());
  const Vocab v = vocab_load(*g.file);
  EXPECT_EQ(v.model, TokenizerModel::kSpm);
  EXPECT_EQ(v.n_vocab(), 5);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.pad, kTokenNone);
  EXPECT_EQ(v.sep, kTokenNone);
  EXPECT_EQ(v.types[1], TokenType::kControl);
  EXPECT_FLOAT_EQ(v.scores[3], -1.0f);
  EXPECT_TRUE(v.add_bos);  // SPM default
  EXPECT_FALSE(v.add_eos);
  EXPECT_TRUE(v.add_space_prefix);
  auto tok = Tokenizer::from_gguf(*g.file);
  EXPECT_EQ(tok->encode("a", true, false), (Ids{1, 3}));

  GgufWriter w = spm_writer();
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  w.set_bool("tokenizer.ggml.add_space_prefix", false);
  MemoryGguf g2(w);
  auto tok2 = Tokenizer::from_gguf(*g2.file);
  EXPECT_EQ(tok2->encode("a", true, false), (Ids{4}));
}

// A vocabulary of `tokens` after the SPM writer's five, with their types.
Vocab vocab_with(const std::vector<std::pair<std::string, int32_t>>& extra,
                 const std::function<void(GgufWriter&)>& more = {}) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", kMark + "a", "a"};
  std::vector<float> scores = {0, 0, 0, -1, -2};
  std::vector<int32_t> types = {2, 3, 3, 1, 1};
  for (const auto& [t, type] : extra) {
    tokens.push_back(t);
    scores.push_back(0);
    types.push_back(type);
  }
  GgufWriter w = spm_writer();
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  if (more) more(w);
  MemoryGguf g(w);
  return vocab_load(*g.file);
}

TEST(TokenizerGguf, FillInTheMiddleMarkersByKeyOrByFamily) {
  // Qwen2.5-Coder's, found by their text (ids 5, 6, 7).
  Vocab v = vocab_with({{"<|fim_prefix|>", 3}, {"<|fim_suffix|>", 3}, {"<|fim_middle|>", 3}});
  EXPECT_EQ(v.fim_pre, 5);
  EXPECT_EQ(v.fim_suf, 6);
  EXPECT_EQ(v.fim_mid, 7);
  // DeepSeek-Coder's full-width bars and SentencePiece's space; the order is
  // begin (prefix), hole (suffix), end (middle).
  v = vocab_with({{"<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", 3},
                  {"<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>", 3},
                  {"<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", 3}});
  EXPECT_EQ(v.fim_pre, 7);
  EXPECT_EQ(v.fim_suf, 6);
  EXPECT_EQ(v.fim_mid, 5);
  // CodeLlama's.
  v = vocab_with({{"\xE2\x96\x81<PRE>", 4}, {"\xE2\x96\x81<SUF>", 4}, {"\xE2\x96\x81<MID>", 4}});
  EXPECT_EQ(v.fim_pre, 5);
  EXPECT_EQ(v.fim_mid, 7);
  // Two of three is none.
  v = vocab_with({{"<|fim_prefix|>", 3}, {"<|fim_middle|>", 3}});
  EXPECT_EQ(v.fim_pre, kTokenNone);
  EXPECT_EQ(v.fim_mid, kTokenNone);
  // The file's keys win over the texts.
  v = vocab_with({{"<|fim_prefix|>", 3}, {"<|fim_suffix|>", 3}, {"<|fim_middle|>", 3}}, [](GgufWriter& w) {
    w.set_u32("tokenizer.ggml.fim_pre_token_id", 3);
    w.set_u32("tokenizer.ggml.fim_suf_token_id", 4);
    w.set_u32("tokenizer.ggml.fim_mid_token_id", 0);
  });
  EXPECT_EQ(v.fim_pre, 3);
  EXPECT_EQ(v.fim_suf, 4);
  EXPECT_EQ(v.fim_mid, 0);
}

TEST(TokenizerGguf, EndOfTextAndCodeSeparatorsEndGeneration) {
  // Control tokens only; the eos stays itself.
  const Vocab v = vocab_with({{"<|endoftext|>", 3}, {"<|fim_pad|>", 3}, {"<|file_sep|>", 1}, {"<|repo_name|>", 3}});
  EXPECT_EQ(v.eog_extra, (std::vector<int32_t>{5, 6, 8}));  // <|file_sep|> is normal text here
  auto tok = Tokenizer::create(v);
  EXPECT_TRUE(tok->is_end_of_generation(2));  // </s>
  EXPECT_TRUE(tok->is_end_of_generation(5));
  EXPECT_TRUE(tok->is_end_of_generation(8));
  EXPECT_FALSE(tok->is_end_of_generation(7));
  EXPECT_FALSE(tok->is_end_of_generation(4));
}

TEST(TokenizerGguf, UnknownModelIsRefusedByName) {
  GgufWriter w = spm_writer();
  w.set_string("tokenizer.ggml.model", "t5");
  MemoryGguf g(w);
  try {
    vocab_load(*g.file);
    FAIL() << "t5 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("'t5'"), std::string::npos) << e.what();
  }
}

TEST(TokenizerGguf, UnknownPreTokenizerIsRefusedByName) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "made-up-pre");
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  MemoryGguf g(w);
  try {
    vocab_load(*g.file);
    FAIL() << "made-up-pre accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("'made-up-pre'"), std::string::npos) << e.what();
  }
  // The names real files carry are known.
  for (const char* pre : {"gpt-2", "phi-2", "llama-bpe", "qwen2", "stablelm2", "default"}) {
    GgufWriter ok = w;
    ok.set_string("tokenizer.ggml.pre", pre);
    MemoryGguf g2(ok);
    EXPECT_NO_THROW(Tokenizer::from_gguf(*g2.file)) << pre;
  }
}

TEST(TokenizerGguf, InconsistentArraysAreRefused) {
  {
    GgufWriter w = spm_writer();
    w.set_i32_array("tokenizer.ggml.token_type", {1, 1});
    MemoryGguf g(w);
    try {
      vocab_load(*g.file);
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptData);
      EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.token_type"), std::string::npos);
    }
  }
  {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    MemoryGguf g(w);
    EXPECT_THROW(vocab_load(*g.file), Error);  // no tokenizer at all
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string_array("tokenizer.ggml.tokens", {"a"});
    MemoryGguf g(w);
    EXPECT_THROW(vocab_load(*g.file), Error);  // gpt2 without merges
  }
  Vocab v = spm_vocab();
  v.eos = 100000;
  EXPECT_THROW(Tokenizer::create(v), Error);
  v = spm_vocab();
  v.scores.pop_back();
  EXPECT_THROW(Tokenizer::create(v), Error);
}

// Random bytes never crash any tokenizer, special parsing on or off.
TEST(TokenizerRobustness, RandomBytes) {
  std::vector<std::unique_ptr<Tokenizer>> toks;
  toks.push_back(Tokenizer::create(spm_vocab()));
  toks.push_back(Tokenizer::create(bpe_vocab({"a b", "b c"})));
  toks.push_back(Tokenizer::create(wpm_vocab()));
  std::mt19937 rng(42);
  for (int i = 0; i < 500; ++i) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    if (i % 5 == 0) s += "<|im_start|>[CLS]<|endoftext|>";
    for (const auto& t : toks) {
      const Ids ids = t->encode(s, i % 2 == 0, i % 3 == 0);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t->n_vocab());
      TokenStreamDecoder d(*t);
      std::string out;
      for (int32_t id : ids) out += d.push(id);
      out += d.flush();
      // The streamed text is always valid UTF-8.
      for (size_t k = 0; k < out.size();) {
        const size_t n = utf8_sequence_length(out, k);
        ASSERT_GT(n, 0u) << "invalid UTF-8 at " << k;
        k += n;
      }
    }
  }
}

TEST(Utf8Valid, WellFormedOnly) {
  EXPECT_TRUE(utf8_valid(""));
  EXPECT_TRUE(utf8_valid("a \xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"));  // a é 中 😀
  EXPECT_FALSE(utf8_valid("\xE4"));              // one byte of 中 (a byte-fallback piece)
  EXPECT_FALSE(utf8_valid("\xE4\xB8"));          // truncated
  EXPECT_FALSE(utf8_valid("\xB8"));              // stray continuation byte
  EXPECT_FALSE(utf8_valid("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(utf8_valid("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(utf8_valid("\xF4\x90\x80\x80"));  // past U+10FFFF
}

}  // namespace
}  // namespace tars::engine
