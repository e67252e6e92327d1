#pragma once
// Tokenizers read from GGUF metadata: SentencePiece-style BPE ("llama"),
// byte-level BPE ("gpt2") and WordPiece ("bert").
//
// A Vocab is the plain data GGUF carries under `tokenizer.ggml.*`; a
// Tokenizer is built from it once (lookup tables, compiled pre-tokenizer
// regexes) and is then immutable: encode/decode are const and safe to call
// from several threads at once. A TokenStreamDecoder turns generated ids into
// text one id at a time without ever splitting a UTF-8 character.
//
// Conventions shared with other GGUF readers (facts of the format, not of one
// implementation):
//   - token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
//     6 byte (SPM "<0xXX>" byte-fallback tokens).
//   - special ids stored as 0xFFFFFFFF (or absent, or outside the vocabulary)
//     mean "none" (kTokenNone here).
//   - SPM pieces use U+2581 for a space; byte-level BPE pieces use GPT-2's
//     byte-to-unicode mapping; WordPiece word-start pieces carry a leading
//     U+2581 and continuation pieces have no "##".

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tars::engine {

class GgufFile;

inline constexpr int32_t kTokenNone = -1;

// tokenizer.ggml.model
enum class TokenizerModel {
  kSpm,  // "llama": SentencePiece BPE, merges by piece score, byte fallback
  kBpe,  // "gpt2": byte-level BPE, merges by rank, regex pre-tokenizer
  kWpm,  // "bert": WordPiece, greedy longest match per word
};

// tokenizer.ggml.pre for byte-level BPE: which regex splits text into words
// before merging. SPM and WordPiece have kNone.
enum class PreTokenizer {
  kNone,
  kGpt2,    // "gpt-2", "phi-2", "olmo" (GPT-NeoX, used by StableLM-3B), "default"/absent
  kLlama3,  // "llama-bpe", "llama3", "llama-v3"; also whole-word vocabulary hits skip merging
  kQwen2,   // "qwen2", "stablelm2" (StableLM 2 uses the same expression)
};

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Everything GGUF says about a tokenizer. Plain data: tests build one by hand.
struct Vocab {
  TokenizerModel model = TokenizerModel::kSpm;
  std::string model_name;               // tokenizer.ggml.model as written ("llama")
  PreTokenizer pre = PreTokenizer::kNone;
  std::string pre_name;                 // tokenizer.ggml.pre as written; "" when absent

  std::vector<std::string> tokens;      // (n_vocab) token text as stored in the file
  std::vector<float> scores;            // (n_vocab) SPM merge priority, higher first; 0 when absent
  std::vector<TokenType> types;         // (n_vocab) kNormal when the file has no token_type
  std::vector<std::string> merges;      // BPE: "left right", rank = index (0 merges first)

  // Special ids; kTokenNone when unset.
  int32_t bos = kTokenNone;   // beginning of sequence (<s>, <|begin_of_text|>)
  int32_t eos = kTokenNone;   // end of sequence
  int32_t eot = kTokenNone;   // end of turn (<|eot_id|>), ends generation like eos
  int32_t unk = kTokenNone;   // unknown
  int32_t pad = kTokenNone;
  int32_t sep = kTokenNone;   // WordPiece [SEP]
  int32_t cls = kTokenNone;   // WordPiece [CLS]
  int32_t mask = kTokenNone;  // WordPiece [MASK]
  // Fill-in-the-middle markers of code models (tokenizer.ggml.fim_pre_token_id,
  // ..._suf_..., ..._mid_..., else found by their text: Qwen2.5-Coder's
  // <|fim_prefix|> <|fim_suffix|> <|fim_middle|>, StarCoder's <fim_prefix>...,
  // CodeLlama's <PRE> <SUF> <MID>, DeepSeek-Coder's <｜fim▁begin｜>
  // <｜fim▁hole｜> <｜fim▁end｜>); all three or none.
  int32_t fim_pre = kTokenNone, fim_suf = kTokenNone, fim_mid = kTokenNone;
  // Control tokens that end generation besides eos and eot, found by their
  // text: <|endoftext|> where it is not the eos (Qwen's chat models), and the
  // code models' <|fim_pad|>, <|repo_name|>, <|file_sep|> (what they write
  // after a filled middle).
  std::vector<int32_t> eog_extra;

  // encode(add_special=true) adds BOS/EOS (WordPiece: [CLS]/[SEP]) when set.
  // Defaults follow the tokenizer kind (SPM: BOS only; BPE: none, except the
  // Llama-3 pre-tokenizer which adds BOS; WordPiece: both); the GGUF keys
  // tokenizer.ggml.add_bos_token / add_eos_token override them.
  bool add_bos = false;
  bool add_eos = false;
  // SPM: a space is put before the text (and after each special token) before
  // tokenizing, and decoding drops it again. tokenizer.ggml.add_space_prefix.
  bool add_space_prefix = false;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens.size()); }
};

// Reads `tokenizer.ggml.*` from a GGUF file. Throws tars::Error: kCorruptData
// naming the key when arrays are missing or of inconsistent length,
// kUnsupported naming the value for an unknown tokenizer model or
// pre-tokenizer.
Vocab vocab_load(const GgufFile& gguf);

// The tokenizer kinds' names in GGUF ("llama", "gpt2", "bert").
std::string_view tokenizer_model_name(TokenizerModel model);

class Tokenizer {
 public:
  // Builds the tokenizer for `vocab.model`. Throws tars::Error(kUnsupported)
  // for a pre-tokenizer this model kind cannot use, kCorruptData for a
  // vocabulary that is inconsistent (arrays of different lengths, ids out of
  // range).
  static std::unique_ptr<Tokenizer> create(Vocab vocab);
  // vocab_load + create.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& gguf);

  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  const Vocab& vocab() const { return vocab_; }
  int32_t n_vocab() const { return vocab_.n_vocab(); }

  // Text to ids. add_special: BOS/EOS (WordPiece: [CLS]/[SEP]) as the vocab's
  // add_bos/add_eos say. parse_special: control tokens written in the text
  // (e.g. "<|im_start|>") become that one token; otherwise they are ordinary
  // text. User-defined tokens (type 4, "added tokens") are always matched, as
  // they are part of the vocabulary's normal text (Hugging Face does the
  // same). Where several special tokens could match, the leftmost wins, and
  // of those the longest. Any byte string is accepted (invalid UTF-8
  // included): nothing throws here.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes one token stands for. Control tokens give "" unless
  // render_special, then their text. An id outside the vocabulary gives "".
  // SPM pieces keep the space that stands for U+2581 (decode() drops the
  // prefix space); a piece may be part of a UTF-8 character.
  std::string token_to_piece(int32_t id, bool render_special = false) const;
  // token_to_piece(id) of every id, made on the first call and kept (JSON
  // mode tries every token's bytes; each request would otherwise redo it).
  // Thread-safe.
  const std::vector<std::string>& pieces() const;

  // Ids to text: pieces concatenated. For SPM the space the tokenizer put in
  // front of the text (and after each control token) is dropped again; for
  // WordPiece the space before the first word. Words come out as the
  // tokenizer saw them (WordPiece: lower-cased, accents stripped, single
  // spaces, punctuation as separate words: "hello , world !"). The result is
  // the raw bytes: it may be invalid UTF-8 if the ids say so (use
  // TokenStreamDecoder for display).
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  // The id of a token with exactly this text, or kTokenNone.
  int32_t find_token(std::string_view text) const;
  TokenType token_type(int32_t id) const;
  // Whether generation ends at this id (eos or eot).
  bool is_end_of_generation(int32_t id) const;

 protected:
  explicit Tokenizer(Vocab vocab);

  // Tokenizes text that holds no special token. `after_special` is true for
  // the first fragment of the text and for each fragment that follows a
  // special token (SPM puts its space prefix there).
  virtual void encode_fragment(std::string_view text, bool after_special,
                               std::vector<int32_t>& out) const = 0;
  // The bytes a non-control token stands for (normal, user-defined, byte,
  // unknown, unused).
  virtual std::string piece_text(int32_t id) const = 0;
  // Whether decode() drops one leading space after the start / a control token.
  virtual bool drops_prefix_space() const { return false; }

  Vocab vocab_;
  // Token text to id (lowest id wins for duplicates). Keys point into
  // vocab_.tokens, which never changes after construction.
  std::unordered_map<std::string_view, int32_t> token_index_;

 private:
  friend class TokenStreamDecoder;
  struct Fragment {
    std::string_view text;     // raw text when token == kTokenNone
    int32_t token = kTokenNone;
  };
  void split_special(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
  std::string render(int32_t id, bool render_special, bool& drop_space) const;

  // Control and user-defined ids by the first byte of their text, longest
  // text first (ties: lower id).
  std::array<std::vector<int32_t>, 256> special_by_first_byte_;
  mutable std::once_flag pieces_once_;
  mutable std::vector<std::string> pieces_;  // pieces(), once made
  bool has_special_ = false;       // any control or user-defined token
  bool has_user_defined_ = false;  // any user-defined token (matched even unparsed)
};

// Turns ids into text one at a time for streaming output. Each push returns
// only complete UTF-8 characters; a partial multi-byte sequence is held back
// until the token that completes it arrives. Bytes that can never form a
// character (a stray continuation byte, a lead byte followed by a non-
// continuation byte) come out as U+FFFD, so the output is always valid UTF-8.
class TokenStreamDecoder {
 public:
  // at_start: the ids begin the text (SPM drops the prefix space of the first
  // piece); false when continuing after a prompt that was printed already.
  explicit TokenStreamDecoder(const Tokenizer& tokenizer, bool at_start = true,
                              bool render_special = false);
  // The text that became complete with this id (maybe "").
  std::string push(int32_t id);
  // End of stream: whatever is still held, an incomplete sequence as U+FFFD.
  std::string flush();
  // Bytes held back waiting for the rest of a character (0..3).
  size_t pending() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool render_special_;
  bool drop_space_;       // next non-empty piece loses one leading space
  std::string pending_;   // an incomplete UTF-8 sequence
};

// Whether `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF, no truncated sequence): a token's piece
// may be only part of a character.
bool utf8_valid(std::string_view s);

// A UTF-8 lead byte by RFC 3629's table: how many bytes the character has in
// all (`length`, 1 to 4) and the range of its second byte (`lo`..`hi`; the
// rest are 0x80..0xBF). False for a byte that cannot start a character
// (continuation bytes, overlong leads 0xC0 0xC1, 0xF5 and up).
bool utf8_lead(unsigned char c, int& length, unsigned char& lo, unsigned char& hi);

}  // namespace tars::engine
