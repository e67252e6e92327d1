#pragma once
// One generation request as the HTTP layer sees it: the parameters every
// generation endpoint accepts (OpenAI chat and completions, the seed's
// /inference), parsed and validated in one place, and the running request
// whose events the handler thread consumes (streaming or not).

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "node/reasoning.h"
#include "node/request_params.h"
#include "node/tool_calls.h"

namespace tars::node {

struct HostedModel;

// A submitted request: the scheduler's callbacks push events here, the HTTP
// thread pops them.
class Generation {
 public:
  struct Event {
    bool done = false;
    engine::TokenEvent token;            // when !done; its text is the answer's (thoughts apart)
    std::string thinking;                // when !done: a reasoning model's thought text (node/reasoning.h)
    std::chrono::steady_clock::time_point at;  // when !done: when the engine made it
    engine::FinishReason finish = engine::FinishReason::kStop;  // when done
    engine::RequestStats stats;          // when done
    std::string error;                   // when done: "" on success
  };

  // Renders the prompt (chat template or raw), tokenizes and submits.
  // `model` is a lease from ModelHost::get, held until the Generation is
  // destroyed: a model unloaded meanwhile lives until its requests finish.
  // Throws tars::Error (kInvalidArgument: prompt too long / bad template;
  // kUnavailable: queue full).
  Generation(std::shared_ptr<HostedModel> model, const GenerationParams& params);
  ~Generation();  // cancels if still running

  // Waits up to `timeout_ms` for events; returns those available (maybe none).
  std::vector<Event> wait(int timeout_ms);
  // Waits for the end: the answer's text and thoughts, and the closing event.
  // An engine failure throws (throw_generation_failure).
  struct Whole {
    std::string text, thinking;
    Event done;
  };
  Whole wait_whole();
  void cancel();
  // Ends the generation as a limit of the caller's own (llama-server's time
  // limit, its indentation rule): the done event comes without an error,
  // finish kLength. Tokens made meanwhile may still come before it.
  void end_here();
  bool finished() const;

  const GenerationParams& params() const { return params_; }
  // How this model writes tool calls (kNone when the request has no tools).
  ToolCallFormat tool_format() const { return tool_format_; }
  const std::string& model_id() const { return model_id_; }
  int n_prompt() const { return n_prompt_; }
  // The prompt as submitted, as text (special tokens written out).
  std::string prompt_text() const;
  // Its context size, in tokens.
  int n_ctx() const;
  const std::string& id() const { return id_; }
  int64_t created() const { return created_; }
  // The text of a token id (for logprobs).
  std::string token_text(int32_t id) const;

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Event> events;
    bool done = false;
    bool ended = false;  // end_here was called
  };
  GenerationParams params_;
  std::string model_id_;
  std::shared_ptr<HostedModel> model_;  // the lease (outlives handle_)
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<engine::RequestHandle> handle_;
  int n_prompt_ = 0;
  std::vector<int32_t> prompt_;
  ToolCallFormat tool_format_ = ToolCallFormat::kNone;
  std::string id_;
  int64_t created_ = 0;
};

// A request's prompt as Generation submits it: the chat template rendered
// (the oldest messages dropped when the request allows it and the chat does
// not fit), or the raw prompt, or the fill-in-the-middle frame, tokenized.
struct PreparedPrompt {
  std::vector<int32_t> tokens;
  std::string text;  // a chat's rendered template (what `tokens` reads); "" for other prompts
  ToolCallFormat tool_format = ToolCallFormat::kNone;  // how the model writes calls (kNone without tools)
  ReasoningTags reasoning;  // the model's thought tags when its thoughts come apart; else empty
  bool in_thought = false;  // the prompt ends inside an opened thought
};
// Throws tars::Error(kInvalidArgument) for a template that fails or a
// request the model cannot serve (think on a model that does not reason,
// a fill without FIM markers).
PreparedPrompt prepare_prompt(HostedModel& model, const GenerationParams& params);

// `prefix` and 16 random hex digits: the ids of answers and their parts
// ("chatcmpl-...", Anthropic's "msg_...", the Responses API's "resp_...").
std::string random_id(const char* prefix);

// "length" or "stop": the finish reason as OpenAI's finish_reason and
// Ollama's done_reason both write it.
const char* finish_reason_name(engine::FinishReason f);

// A failure inside the engine after the request was accepted, as the error
// the HTTP layer answers with (503 while the server shuts down, else 500).
[[noreturn]] void throw_generation_failure(const std::string& error);

}  // namespace tars::node
