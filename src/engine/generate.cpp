#include "engine/generate.h"

#include <chrono>

#include "common/error.h"
#include "engine/json_prefix.h"
#include "engine/json_schema.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace tars::engine {

std::string StopMatcher::push(std::string_view text, bool& stopped) {
  held_.append(text);
  stopped = false;
  size_t first = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    size_t at = held_.find(s);
    if (at != std::string::npos && at < first) {
      first = at;
      matched_ = s;
    }
  }
  if (first != std::string::npos) {
    stopped = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t len = std::min(s.size() - 1, held_.size()); len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(held_);
  return out;
}

std::unique_ptr<TokenConstraint> make_constraint(const GenerateOptions& options, const Tokenizer& tokenizer) {
  if (options.json_schema) {
    return std::make_unique<SchemaConstraint>(tokenizer, options.json_schema, options.json_before, options.json_after);
  }
  if (options.json_object) return std::make_unique<JsonConstraint>(tokenizer);
  return nullptr;
}

GenerateResult generate(Model& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const TextCallback& on_text) {
  using clock = std::chrono::steady_clock;
  const int n_ctx = model.options().n_ctx;
  const int n_prompt = static_cast<int>(prompt.size());
  if (n_prompt == 0) throw Error(ErrorCode::kInvalidArgument, "the prompt is empty");
  int max_tokens = options.max_tokens < 0 ? n_ctx - n_prompt : options.max_tokens;
  if (n_prompt + max_tokens > n_ctx) {
    throw Error(ErrorCode::kInvalidArgument,
                "the prompt (" + std::to_string(n_prompt) + " tokens) plus max_tokens (" +
                    std::to_string(max_tokens) + ") exceeds " + model.context_limit_text());
  }
  GenerateResult res;
  res.n_prompt = n_prompt;
  Sampler sampler(options.sampling);
  if (auto c = make_constraint(options, model.tokenizer())) sampler.set_constraint(std::move(c));
  StopMatcher stop(options.stop);
  TokenStreamDecoder decoder(model.tokenizer(), /*at_start=*/false);
  std::vector<int32_t> history = prompt;
  std::vector<float> logits;
  const int n_vocab = model.hparams().n_vocab;

  auto t0 = clock::now();
  Batch batch;
  for (int i = 0; i < n_prompt; ++i) batch.add(prompt[i], i, options.slot, i == n_prompt - 1);
  model.forward(batch, logits);
  auto t1 = clock::now();
  res.prompt_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();

  bool cancelled = false;
  auto emit = [&](const std::string& text) {
    if (text.empty() || cancelled) return;
    res.text += text;
    if (on_text && !on_text(text)) cancelled = true;
  };
  for (int i = 0; i < max_tokens && !cancelled; ++i) {
    int32_t id = sampler.sample(std::span<const float>(logits.data(), n_vocab), history);
    if (!options.ignore_eos && model.tokenizer().is_end_of_generation(id)) {
      res.finish = FinishReason::kStop;
      break;
    }
    res.tokens.push_back(id);
    history.push_back(id);
    bool stopped = false;
    emit(stop.push(decoder.push(id), stopped));
    if (stopped) {
      res.finish = FinishReason::kStop;
      break;
    }
    if (i + 1 == max_tokens) break;
    logits.clear();
    Batch next;
    next.add(id, n_prompt + i, options.slot, true);
    model.forward(next, logits);
  }
  if (res.finish != FinishReason::kStop) {
    bool stopped = false;
    std::string tail = stop.push(decoder.flush(), stopped);
    if (stopped) res.finish = FinishReason::kStop;
    else tail += stop.flush();
    emit(tail);
  }
  res.generate_ms = std::chrono::duration<double, std::milli>(clock::now() - t1).count();
  return res;
}

}  // namespace tars::engine
