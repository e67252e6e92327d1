// libFuzzer target: arbitrary bytes as text through the real tokenizers of
// the shared fixtures (SentencePiece, byte-level BPE, WordPiece), with and
// without special-token parsing. Byte-level BPE must give the input back.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

using tars::engine::GgufFile;
using tars::engine::Tokenizer;

namespace {

struct Tokenizers {
  std::unique_ptr<Tokenizer> spm, bpe, wpm;
};

std::unique_ptr<Tokenizer> load(const std::string& file) {
  auto gguf = GgufFile::open(std::string(TARS_FUZZ_VOCAB_DIR) + "/" + file);
  return Tokenizer::from_gguf(*gguf);
}

const Tokenizers& tokenizers() {
  static Tokenizers t = [] {
    Tokenizers x;
    x.spm = load("ggml-vocab-llama-spm.gguf");
    x.bpe = load("ggml-vocab-gpt-2.gguf");
    x.wpm = load("ggml-vocab-bert-bge.gguf");
    return x;
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizers& t = tokenizers();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool special : {false, true}) {
    for (const Tokenizer* tok : {t.spm.get(), t.bpe.get(), t.wpm.get()}) {
      auto ids = tok->encode(text, special, special);
      for (int32_t id : ids) {
        if (id < 0 || id >= tok->n_vocab()) std::abort();
      }
      std::string back = tok->decode(ids);
      tars::engine::TokenStreamDecoder stream(*tok);
      for (int32_t id : ids) stream.push(id);
      stream.flush();
      if (tok == t.bpe.get() && !special && back != text) std::abort();  // byte-level BPE is lossless
    }
  }
  return 0;
}
