// `tars run MODEL "prompt"`: one-shot local generation, streamed to stdout.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "common/error.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/json_schema.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

namespace tars::cli {
namespace {

struct RunFlags {
  EngineFlags engine;
  std::string prompt;
  int n_predict = 128;
  engine::SamplerOptions sampling;
  std::vector<std::string> stop;
  int logits_k = 0;
  bool no_bos = false;
  bool special = false;
  bool json = false;
  std::string json_schema;  // a file
};

// --logits K: the prompt's ids and the top K candidates after it, as JSON lines.
void print_logits(engine::Model& model, const std::vector<int32_t>& prompt, int k) {
  engine::Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) {
    batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  }
  std::vector<float> logits;
  model.forward(batch, logits);
  auto logp = engine::log_softmax(logits);
  nlohmann::json top = nlohmann::json::array();
  for (int32_t id : engine::top_k_ids(logits, k)) {
    top.push_back({{"id", id},
                   {"logit", logits[id]},
                   {"logprob", logp[id]},
                   {"text", model.tokenizer().token_to_piece(id, true)}});
  }
  std::printf("%s\n", nlohmann::json({{"prompt_tokens", prompt}}).dump().c_str());
  std::printf("%s\n", nlohmann::json({{"top_logits", top}}).dump(-1, ' ', false,
                                     nlohmann::json::error_handler_t::replace).c_str());
}

int run(const RunFlags& f) {
  std::shared_ptr<const engine::JsonSchema> schema;
  if (!f.json_schema.empty()) {
    if (f.json) throw Error(ErrorCode::kInvalidArgument, "--json and --json-schema: choose one");
    std::ifstream in(f.json_schema, std::ios::binary);
    if (!in) throw Error(ErrorCode::kIo, "cannot read the JSON schema " + f.json_schema);
    std::ostringstream text;
    text << in.rdbuf();
    schema = engine::JsonSchema::parse(text.str());  // before the model loads: a bad schema fails at once
  }
  auto loaded = load_engine_model(f.engine, /*n_slots=*/1);
  engine::Model& model = *loaded.model;
  std::vector<int32_t> prompt =
      model.tokenizer().encode(f.prompt, /*add_special=*/!f.no_bos, /*parse_special=*/f.special);
  if (f.logits_k > 0) {
    print_logits(model, prompt, f.logits_k);
    return 0;
  }
  engine::GenerateOptions go;
  go.max_tokens = f.n_predict;
  go.sampling = f.sampling;
  go.stop = f.stop;
  go.json_object = f.json;
  go.json_schema = schema;
  std::fputs(f.prompt.c_str(), stdout);
  std::fflush(stdout);
  bool ends_with_newline = !f.prompt.empty() && f.prompt.back() == '\n';
  engine::GenerateResult r = engine::generate(model, prompt, go, [&](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    ends_with_newline = text.back() == '\n';
    return true;
  });
  if (!ends_with_newline) std::fputs("\n", stdout);
  std::fflush(stdout);
  double gen_s = r.generate_ms / 1000.0;
  std::fprintf(stderr,
               "tars: prompt %d tokens in %.1f ms (%.1f tokens/s); generated %zu tokens in %.1f ms "
               "(%.1f tokens/s); finish: %s\n",
               r.n_prompt, r.prompt_ms, r.n_prompt / (r.prompt_ms / 1000.0 + 1e-9),
               r.tokens.size(), r.generate_ms, r.tokens.size() / (gen_s + 1e-9),
               r.finish == engine::FinishReason::kStop ? "stop" : "length");
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app, CommandResult& result) {
  auto f = std::make_shared<RunFlags>();
  f->sampling.seed = engine::kSeedRandom;
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt with a local model");
  add_engine_flags(*cmd, f->engine);
  cmd->add_option("prompt", f->prompt, "Prompt text")->required();
  cmd->add_option("-n,--n-predict", f->n_predict, "Tokens to generate (-1: until the context is full)")
      ->capture_default_str();
  cmd->add_option("--temp", f->sampling.temperature, "Temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", f->sampling.top_k, "Top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", f->sampling.top_p, "Top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", f->sampling.min_p, "Min-p (0 = off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", f->sampling.repeat_penalty, "Repetition penalty (1 = off)")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", f->sampling.frequency_penalty, "Frequency penalty")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", f->sampling.presence_penalty, "Presence penalty")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", f->sampling.penalty_last_n, "Window of the penalties")
      ->capture_default_str();
  cmd->add_option("-s,--seed", f->sampling.seed, "Random seed (default: random)");
  cmd->add_option("--stop", f->stop, "Stop string (repeatable)");
  cmd->add_option("--logits", f->logits_k,
                  "Instead of generating, print the prompt's ids and the top K next-token "
                  "candidates as JSON lines");
  cmd->add_flag("--no-bos", f->no_bos, "Do not add the BOS token");
  cmd->add_flag("--special", f->special, "Parse special tokens such as <|im_start|> in the prompt");
  cmd->add_flag("--json", f->json,
                "JSON mode: the generated text is kept a JSON object and ends once it is complete");
  cmd->add_option("--json-schema", f->json_schema,
                  "Structured output: the generated text is kept a value the JSON schema in this file "
                  "accepts and ends once it is complete");
  cmd->callback([f, &result] { result.exit_code = run(*f); });
}

}  // namespace tars::cli
