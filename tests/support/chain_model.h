#pragma once
// A tiny LLaMA-architecture model whose greedy answers are chosen by its
// weights: every token has a successor, and the model gives that successor
// the highest logit whatever came before. The embedding of token t is the
// unit vector e_t, attention and feed-forward add nothing (their output
// matrices are zero), so after the final norm the hidden state is e_t scaled,
// and the output matrix has a one at (successor(t), t). The answer to any
// prompt follows the chain from the prompt's last token, through the real
// engine, tokenizer, chat template and server: what tool-call and stop
// handling need to be tested end to end, where a random model would never
// write the text they look for.
//
// The vocabulary is SentencePiece-style: <unk>, <s>, </s>, the 256 byte
// tokens <0x00>..<0xFF>, the control tokens <|im_start|> and <|im_end|>
// (the end of generation), then the spec's pieces as normal tokens (reached
// only through the chain: the tokenizer never builds them from text, which it
// writes with byte tokens).

#include <string>
#include <utility>
#include <vector>

namespace tars::test {

struct ChainModelSpec {
  std::string chat_template;         // tokenizer.chat_template (Jinja)
  std::vector<std::string> pieces;   // normal tokens after the control tokens
  std::vector<std::string> controls; // more control tokens (Mistral's "[TOOL_CALLS]"), after <|im_end|>
  // (token, its successor), tokens named by their vocabulary text: "<0x0A>"
  // for the byte '\n', "<|im_end|>", or a piece. Tokens not named here are
  // followed by <|im_end|>.
  std::vector<std::pair<std::string, std::string>> chain;
  int n_ctx = 4096;
};

void write_chain_model(const ChainModelSpec& spec, const std::string& path);

}  // namespace tars::test
