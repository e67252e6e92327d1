#pragma once
// Vocabularies from other formats into GGUF's tokenizer metadata: the writer
// side of tokenizer.h's vocab_load.
//
// WordPiece (BERT's vocab.txt, one token per line, the line number is the id):
// GGUF stores a word-start piece with a leading U+2581 ("the" -> "▁the"), a
// continuation piece without the "##" ("##ing" -> "ing"), and bracketed
// tokens ("[CLS]", "[unused0]") as they are. [PAD], [UNK], [CLS], [SEP] and
// [MASK] are control tokens (type 3) and set the special ids; every other
// token is normal (type 1). This is the convention of existing BERT GGUF
// files (ggml-vocab-bert-bge.gguf is bert-base-uncased's vocab.txt converted
// so; the tests check the conversion reproduces it).

#include <string>
#include <string_view>

#include "engine/tokenizer.h"

namespace tars::engine {

class GgufWriter;

// Parses the text of a vocab.txt (LF or CRLF line ends; a final newline is
// optional). `name` appears in error messages. Throws tars::Error
// (kCorruptData) for an empty vocabulary, an empty line (naming its line
// number) or a missing [UNK], [CLS] or [SEP].
Vocab vocab_from_wordpiece_text(std::string_view text, const std::string& name);
// Reads and parses a vocab.txt file; kIo when it cannot be read.
Vocab vocab_from_wordpiece_file(const std::string& path);

// Writes `v` as tokenizer.ggml.* keys: model, pre (when named), tokens,
// token_type, scores (SPM), merges (BPE), the special ids that are set, and
// add_bos_token / add_eos_token.
void vocab_write_gguf(GgufWriter& w, const Vocab& v);

}  // namespace tars::engine
