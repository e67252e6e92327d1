// vocab.txt -> Vocab, and Vocab -> GGUF tokenizer metadata (vocab_convert.h).
#include "engine/vocab_convert.h"

#include <array>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "engine/gguf.h"

namespace tars::engine {
namespace {

constexpr std::string_view kWordStart = "\xE2\x96\x81";  // U+2581

// "[X]": kept as it is (special and [unusedN] tokens).
bool is_bracketed(std::string_view t) { return t.size() >= 2 && t.front() == '[' && t.back() == ']'; }

std::string gguf_piece(std::string_view t) {
  if (is_bracketed(t)) return std::string(t);
  if (t.size() > 2 && t.substr(0, 2) == "##") return std::string(t.substr(2));
  return std::string(kWordStart) + std::string(t);
}

void set_id(GgufWriter& w, const char* key, int32_t id) {
  if (id != kTokenNone) w.set_u32(key, static_cast<uint32_t>(id));
}

}  // namespace

Vocab vocab_from_wordpiece_text(std::string_view text, const std::string& name) {
  Vocab v;
  v.model = TokenizerModel::kWpm;
  v.model_name = "bert";
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    if (line.empty()) {
      throw Error(ErrorCode::kCorruptData,
                  name + ": line " + std::to_string(line_no) + " is empty (one token per line)");
    }
    v.tokens.push_back(gguf_piece(line));
    v.types.push_back(TokenType::kNormal);
    pos = end + 1;
  }
  if (v.tokens.empty()) throw Error(ErrorCode::kCorruptData, name + ": the vocabulary is empty");
  v.scores.assign(v.tokens.size(), 0.0f);
  // The special tokens of BERT's tokenizer; the first occurrence counts.
  const std::array<std::pair<const char*, int32_t*>, 5> specials = {{
      {"[PAD]", &v.pad}, {"[UNK]", &v.unk}, {"[CLS]", &v.cls}, {"[SEP]", &v.sep}, {"[MASK]", &v.mask}}};
  for (const auto& [text_of, id] : specials) {
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (v.tokens[i] == text_of) {
        *id = static_cast<int32_t>(i);
        v.types[i] = TokenType::kControl;
        break;
      }
    }
  }
  for (const auto& [text_of, id] : specials) {
    if (*id == kTokenNone && std::string_view(text_of) != "[PAD]" && std::string_view(text_of) != "[MASK]") {
      throw Error(ErrorCode::kCorruptData,
                  name + ": has no " + text_of + " token (a BERT vocabulary needs it)");
    }
  }
  v.add_bos = true;  // [CLS]
  v.add_eos = true;  // [SEP]
  return v;
}

Vocab vocab_from_wordpiece_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open the vocabulary file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, path + ": cannot read the vocabulary file");
  return vocab_from_wordpiece_text(ss.str(), path);
}

void vocab_write_gguf(GgufWriter& w, const Vocab& v) {
  w.set_string("tokenizer.ggml.model", v.model_name.empty()
                                           ? std::string(tokenizer_model_name(v.model))
                                           : v.model_name);
  if (!v.pre_name.empty()) w.set_string("tokenizer.ggml.pre", v.pre_name);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  std::vector<int32_t> types(v.types.size());
  for (size_t i = 0; i < types.size(); ++i) types[i] = static_cast<int32_t>(v.types[i]);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  if (v.model == TokenizerModel::kSpm) w.set_f32_array("tokenizer.ggml.scores", v.scores);
  if (v.model == TokenizerModel::kBpe) w.set_string_array("tokenizer.ggml.merges", v.merges);
  set_id(w, "tokenizer.ggml.bos_token_id", v.bos);
  set_id(w, "tokenizer.ggml.eos_token_id", v.eos);
  set_id(w, "tokenizer.ggml.eot_token_id", v.eot);
  set_id(w, "tokenizer.ggml.unknown_token_id", v.unk);
  set_id(w, "tokenizer.ggml.seperator_token_id", v.sep);  // sic: GGUF's spelling
  set_id(w, "tokenizer.ggml.padding_token_id", v.pad);
  set_id(w, "tokenizer.ggml.cls_token_id", v.cls);
  set_id(w, "tokenizer.ggml.mask_token_id", v.mask);
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.model == TokenizerModel::kSpm) w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

}  // namespace tars::engine
