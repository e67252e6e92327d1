// Vocab from GGUF metadata (tokenizer.ggml.*).

#include <algorithm>
#include <array>
#include <limits>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

namespace tars::engine {

namespace {

constexpr std::string_view kKeyModel = "tokenizer.ggml.model";
constexpr std::string_view kKeyPre = "tokenizer.ggml.pre";
constexpr std::string_view kKeyTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kKeyScores = "tokenizer.ggml.scores";
constexpr std::string_view kKeyTypes = "tokenizer.ggml.token_type";
constexpr std::string_view kKeyMerges = "tokenizer.ggml.merges";

[[noreturn]] void corrupt(const GgufFile& f, const std::string& what) {
  throw Error(ErrorCode::kCorruptData, f.path() + ": " + what);
}

TokenizerModel model_from_name(const GgufFile& f, const std::string& name) {
  if (name == "llama") return TokenizerModel::kSpm;
  if (name == "gpt2") return TokenizerModel::kBpe;
  if (name == "bert") return TokenizerModel::kWpm;
  throw Error(ErrorCode::kUnsupported,
              f.path() + ": tokenizer model '" + name + "' (" + std::string(kKeyModel) +
                  ") is not supported; tars reads 'llama' (SentencePiece), 'gpt2' "
                  "(byte-level BPE) and 'bert' (WordPiece)");
}

// Byte-level BPE pre-tokenizer names as GGUF converters write them. Each name
// maps to the expression its tokenizer.json uses; aliases share one.
PreTokenizer bpe_pre_from_name(const GgufFile& f, const std::string& name) {
  // Files written before converters recorded the pre-tokenizer (StableLM-3B,
  // phi-2 and GPT-2 files of early 2024) carry none: GPT-2's expression is
  // the one GPT-2 and GPT-NeoX tokenizers use.
  if (name.empty() || name == "default" || name == "gpt-2" || name == "phi-2" || name == "olmo")
    return PreTokenizer::kGpt2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return PreTokenizer::kLlama3;
  if (name == "qwen2" || name == "stablelm2") return PreTokenizer::kQwen2;
  throw Error(ErrorCode::kUnsupported,
              f.path() + ": BPE pre-tokenizer '" + name + "' (" + std::string(kKeyPre) +
                  ") is not supported; tars knows gpt-2, phi-2, olmo, default, llama-bpe, "
                  "llama3, qwen2, stablelm2");
}

// A special token id: absent, 0xFFFFFFFF, negative or outside the vocabulary
// all mean "none". Real files do carry out-of-range ids (a padding id equal
// to the vocabulary size is common in fine-tunes); refusing them would
// refuse working models over a token that is never used.
int32_t special_id(const GgufFile& f, std::string_view key, int32_t n_vocab) {
  const GgufValue* v = f.find(key);
  if (!v) return kTokenNone;
  int64_t id;
  if (const auto* u = std::get_if<uint64_t>(&v->value)) {
    if (*u >= static_cast<uint64_t>(n_vocab)) return kTokenNone;
    id = static_cast<int64_t>(*u);
  } else if (const auto* s = std::get_if<int64_t>(&v->value)) {
    id = *s;
  } else {
    corrupt(f, std::string(key) + " is not an integer");
  }
  return (id >= 0 && id < n_vocab) ? static_cast<int32_t>(id) : kTokenNone;
}

// Vocab::fim_* and eog_extra: the file's FIM keys, else the families' marker
// texts; end-of-generation control tokens by their text.
void find_fim_and_eog(const GgufFile& f, Vocab& v) {
  const auto nv = static_cast<int32_t>(v.tokens.size());
  v.fim_pre = special_id(f, "tokenizer.ggml.fim_pre_token_id", nv);
  v.fim_suf = special_id(f, "tokenizer.ggml.fim_suf_token_id", nv);
  v.fim_mid = special_id(f, "tokenizer.ggml.fim_mid_token_id", nv);
  static constexpr std::array<std::array<std::string_view, 3>, 6> kFim = {{
      {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"},           // Qwen2.5-Coder, StarCoder2
      {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"},                 // StarCoder, SantaCoder
      {"<fim-prefix>", "<fim-suffix>", "<fim-middle>"},
      {"\xE2\x96\x81<PRE>", "\xE2\x96\x81<SUF>", "\xE2\x96\x81<MID>"},  // CodeLlama (with SentencePiece's space)
      {"<PRE>", "<SUF>", "<MID>"},
      {"<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>",
       "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>"},  // DeepSeek-Coder
  }};
  static constexpr std::array<std::string_view, 4> kEog = {"<|endoftext|>", "<|fim_pad|>", "<|repo_name|>",
                                                          "<|file_sep|>"};
  const bool from_keys = v.fim_pre != kTokenNone && v.fim_suf != kTokenNone && v.fim_mid != kTokenNone;
  std::array<std::array<int32_t, 3>, kFim.size()> found;
  for (auto& fam : found) fam.fill(kTokenNone);
  for (int32_t id = 0; id < nv; ++id) {
    const std::string& t = v.tokens[static_cast<size_t>(id)];
    if (t.size() < 5 || t.size() > 24 || t.find('<') == std::string::npos) continue;
    for (size_t fam = 0; fam < kFim.size(); ++fam) {
      for (size_t k = 0; k < 3; ++k) {
        if (t == kFim[fam][k]) found[fam][k] = id;
      }
    }
    const bool control = v.types[static_cast<size_t>(id)] == TokenType::kControl;
    if (control && id != v.eos && id != v.eot && std::find(kEog.begin(), kEog.end(), t) != kEog.end()) {
      v.eog_extra.push_back(id);
    }
  }
  if (from_keys) return;
  v.fim_pre = v.fim_suf = v.fim_mid = kTokenNone;
  for (const auto& fam : found) {
    if (fam[0] != kTokenNone && fam[1] != kTokenNone && fam[2] != kTokenNone) {
      v.fim_pre = fam[0];
      v.fim_suf = fam[1];
      v.fim_mid = fam[2];
      return;
    }
  }
}

// An array of integers stored either signed or unsigned (writers differ).
std::vector<int64_t> int_array(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.find(key);
  std::vector<int64_t> out;
  if (!v) return out;
  if (const auto* s = std::get_if<std::vector<int64_t>>(&v->value)) return *s;
  if (const auto* u = std::get_if<std::vector<uint64_t>>(&v->value)) {
    out.reserve(u->size());
    for (uint64_t x : *u) {
      out.push_back(x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                        ? -1
                        : static_cast<int64_t>(x));
    }
    return out;
  }
  corrupt(f, std::string(key) + " is not an array of integers");
}

}  // namespace

std::string_view tokenizer_model_name(TokenizerModel model) {
  switch (model) {
    case TokenizerModel::kSpm: return "llama";
    case TokenizerModel::kBpe: return "gpt2";
    case TokenizerModel::kWpm: return "bert";
  }
  return "unknown";
}

Vocab vocab_load(const GgufFile& f) {
  Vocab v;
  const std::optional<std::string> model = f.opt_string(kKeyModel);
  if (!model) corrupt(f, "has no tokenizer (" + std::string(kKeyModel) + " is missing)");
  v.model_name = *model;
  v.model = model_from_name(f, v.model_name);
  v.pre_name = f.opt_string(kKeyPre).value_or("");
  // SPM and WordPiece have no pre-tokenizer choice; their files carry names
  // such as "default" or "bert-bge" that select nothing.
  v.pre = v.model == TokenizerModel::kBpe ? bpe_pre_from_name(f, v.pre_name) : PreTokenizer::kNone;

  const std::vector<std::string>* tokens = f.get_string_array(kKeyTokens);
  if (!tokens || tokens->empty()) corrupt(f, std::string(kKeyTokens) + " is missing or empty");
  if (tokens->size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    corrupt(f, std::string(kKeyTokens) + " has more tokens than an int32 id can address");
  v.tokens = *tokens;
  const size_t n = v.tokens.size();

  if (const std::vector<double>* scores = f.get_float_array(kKeyScores)) {
    if (scores->size() != n)
      corrupt(f, std::string(kKeyScores) + " has " + std::to_string(scores->size()) +
                     " entries for " + std::to_string(n) + " tokens");
    v.scores.assign(scores->begin(), scores->end());
  } else {
    v.scores.assign(n, 0.0f);
  }

  const std::vector<int64_t> types = int_array(f, kKeyTypes);
  if (types.empty()) {
    v.types.assign(n, TokenType::kNormal);
  } else {
    if (types.size() != n)
      corrupt(f, std::string(kKeyTypes) + " has " + std::to_string(types.size()) +
                     " entries for " + std::to_string(n) + " tokens");
    v.types.reserve(n);
    for (int64_t t : types) {
      // Values outside 0..6 are "undefined", which tokenizes like normal text.
      v.types.push_back(t >= 0 && t <= 6 ? static_cast<TokenType>(t) : TokenType::kUndefined);
    }
  }

  if (v.model == TokenizerModel::kBpe) {
    const std::vector<std::string>* merges = f.get_string_array(kKeyMerges);
    if (!merges) corrupt(f, std::string(kKeyMerges) + " is missing (a gpt2 tokenizer needs it)");
    v.merges = *merges;
  }

  const auto nv = static_cast<int32_t>(n);
  v.bos = special_id(f, "tokenizer.ggml.bos_token_id", nv);
  v.eos = special_id(f, "tokenizer.ggml.eos_token_id", nv);
  v.eot = special_id(f, "tokenizer.ggml.eot_token_id", nv);
  v.unk = special_id(f, "tokenizer.ggml.unknown_token_id", nv);
  v.sep = special_id(f, "tokenizer.ggml.seperator_token_id", nv);  // sic: GGUF's spelling
  v.pad = special_id(f, "tokenizer.ggml.padding_token_id", nv);
  v.cls = special_id(f, "tokenizer.ggml.cls_token_id", nv);
  v.mask = special_id(f, "tokenizer.ggml.mask_token_id", nv);

  find_fim_and_eog(f, v);

  // Defaults by kind (what the original tokenizers do), then the file's say.
  switch (v.model) {
    case TokenizerModel::kSpm:
      v.add_bos = true;
      v.add_space_prefix = true;
      break;
    case TokenizerModel::kBpe:
      v.add_bos = v.pre == PreTokenizer::kLlama3;
      break;
    case TokenizerModel::kWpm:
      v.add_bos = true;  // [CLS]
      v.add_eos = true;  // [SEP]
      break;
  }
  v.add_bos = f.opt_bool("tokenizer.ggml.add_bos_token").value_or(v.add_bos);
  v.add_eos = f.opt_bool("tokenizer.ggml.add_eos_token").value_or(v.add_eos);
  v.add_space_prefix = f.opt_bool("tokenizer.ggml.add_space_prefix").value_or(v.add_space_prefix);
  return v;
}

}  // namespace tars::engine
