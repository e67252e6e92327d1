#pragma once
// One sequence's generation loop over a Model: prompt in (processed as one
// batch, in chunks), tokens out one at a time through a sampler, streamed as
// text that never splits a UTF-8 character and never shows a stop string.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"

namespace tars::engine {

class Model;
class JsonSchema;
class Tokenizer;

struct GenerateOptions {
  int max_tokens = 128;            // tokens to generate at most (-1: until the context is full; 0: the
                                   // prompt is only read, into the scheduler slot's cache)
  SamplerOptions sampling;
  std::vector<std::string> stop;   // generation ends before any of these strings
  bool ignore_eos = false;         // keep going past end-of-generation tokens
  // JSON mode: the text is kept a JSON object, and generation may end only
  // once it is complete (json_prefix.h). Not with ignore_eos.
  bool json_object = false;
  // Structured output: the text is kept a value this schema accepts, and
  // generation may end only once it is complete (json_schema.h). Not with
  // ignore_eos or json_object.
  std::shared_ptr<const JsonSchema> json_schema;
  std::string json_before, json_after;  // text around the value (a forced tool call)
  int slot = 0;                    // KV-cache slot to use
};

enum class FinishReason { kStop, kLength };

struct GenerateResult {
  std::vector<int32_t> tokens;     // generated ids (without the stop string's tokens' text)
  std::string text;                // generated text, stop string excluded
  FinishReason finish = FinishReason::kLength;
  int n_prompt = 0;
  double prompt_ms = 0;            // prompt processing time
  double generate_ms = 0;          // time for the generated tokens
};

// Called with each new piece of text; return false to cancel.
using TextCallback = std::function<bool(std::string_view)>;

// Holds back text that might be the start of a stop string.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Appends text; returns what can be emitted now. Sets `stopped` when a stop
  // string appeared (the returned text then ends before it).
  std::string push(std::string_view text, bool& stopped);
  // What is still held back, at the end of generation.
  std::string flush();
  // The stop string that stopped generation ("" while none has).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
};

// The sampler constraint the options ask for: JSON mode's, a schema's, or
// none (nullptr). For generate() and the scheduler alike.
std::unique_ptr<TokenConstraint> make_constraint(const GenerateOptions& options, const Tokenizer& tokenizer);

// Runs prompt + generation on options.slot from position 0. Throws
// tars::Error(kInvalidArgument) when the prompt plus max_tokens exceeds the
// context, naming the figures.
GenerateResult generate(Model& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const TextCallback& on_text = {});

}  // namespace tars::engine
