// Writes the chain models the client tests serve (tests/clients/tools.test.mjs):
//   tars_make_chain_model OUT.gguf TEMPLATE.jinja FROM TO [FROM TO]...
// Each FROM is followed by TO; tokens are named by their vocabulary text
// ("<0x0A>", "<|im_end|>", or a piece), and the pieces are the TOs that are
// not tokens already; a TO in square brackets of capitals ("[TOOL_CALLS]") is
// a control token, as Mistral's are, and so is one in <|...|> of lower-case
// letters ("<|fim_prefix|>"). See support/chain_model.h.
#include <cstdio>
#include <exception>
#include <set>
#include <string>

#include "support/chain_model.h"
#include "support/test_support.h"

int main(int argc, char** argv) {
  if (argc < 5 || (argc - 3) % 2 != 0) {
    std::fprintf(stderr, "usage: %s OUT.gguf TEMPLATE.jinja FROM TO [FROM TO]...\n", argv[0]);
    return 2;
  }
  tars::test::ChainModelSpec spec;
  spec.chat_template = tars::test::read_file(argv[2]);
  std::set<std::string> pieces;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string from = argv[i], to = argv[i + 1];
    spec.chain.emplace_back(from, to);
    const bool special = (to.rfind("<0x", 0) == 0 && to.size() == 6) || to == "<|im_end|>" || to == "<|im_start|>";
    const bool mistral = to.size() > 2 && to.front() == '[' && to.back() == ']' &&
                         to.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_/", 1) == to.size() - 1;
    const bool bars = to.size() > 4 && to.rfind("<|", 0) == 0 && to.ends_with("|>") &&
                      to.find_first_not_of("abcdefghijklmnopqrstuvwxyz_", 2) == to.size() - 2;
    const bool control = mistral || bars;
    if (!special && pieces.insert(to).second) (control ? spec.controls : spec.pieces).push_back(to);
  }
  try {
    tars::test::write_chain_model(spec, argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
