#include "node/generation.h"

#include <chrono>
#include <random>
#include <set>

#include "common/error.h"
#include "engine/chat_template.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "node/model_host.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "'" + field + "' " + what);
}

double number(const json& body, const char* field, double lo, double hi) {
  const json& v = body.at(field);
  if (!v.is_number()) bad(field, std::string("must be a number, got ") + v.type_name());
  double d = v.get<double>();
  if (!(d >= lo && d <= hi)) {
    bad(field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                   v.dump());
  }
  return d;
}

int64_t integer(const json& body, const char* field, int64_t lo, int64_t hi) {
  const json& v = body.at(field);
  if (!v.is_number_integer()) bad(field, std::string("must be an integer, got ") + v.dump());
  int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) {
    bad(field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                   std::to_string(i));
  }
  return i;
}

bool boolean(const json& body, const char* field) {
  const json& v = body.at(field);
  if (!v.is_boolean()) bad(field, std::string("must be true or false, got ") + v.dump());
  return v.get<bool>();
}

// OpenAI message content: a string, or an array of {"type": "text", "text"} parts.
std::string message_content(const json& m, size_t index) {
  std::string field = "messages[" + std::to_string(index) + "].content";
  if (!m.contains("content") || m["content"].is_null()) return "";
  const json& c = m["content"];
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string text;
    for (const auto& part : c) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part["text"].is_string()) {
        bad(field, "parts must be {\"type\": \"text\", \"text\": \"...\"} (only text is supported)");
      }
      text += part["text"].get<std::string>();
    }
    return text;
  }
  bad(field, std::string("must be a string or an array of text parts, got ") + c.type_name());
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

}  // namespace

GenerationParams generation_parse(const json& body, bool chat) {
  GenerationParams p;
  p.chat = chat;
  static const std::set<std::string> known = {
      "model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature",
      "top_p", "top_k", "min_p", "stop", "seed", "presence_penalty", "frequency_penalty",
      "repeat_penalty", "repeat_last_n", "stream", "stream_options", "logprobs", "top_logprobs",
      "n", "user", "ignore_eos", "echo", "best_of", "suffix", "logit_bias", "response_format",
      "tools", "tool_choice", "parallel_tool_calls", "service_tier", "store", "metadata"};
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (!known.count(it.key())) bad(it.key(), "is not a known parameter");
  }
  if (body.contains("model")) {
    if (!body["model"].is_string()) bad("model", "must be a string");
    p.model = body["model"].get<std::string>();
  }
  if (chat) {
    if (!body.contains("messages")) bad("messages", "is required");
    const json& ms = body["messages"];
    if (!ms.is_array() || ms.empty()) bad("messages", "must be a non-empty array");
    for (size_t i = 0; i < ms.size(); ++i) {
      const json& m = ms[i];
      std::string f = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) bad(f, "must be an object with role and content");
      if (!m.contains("role") || !m["role"].is_string()) bad(f + ".role", "must be a string");
      std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant" && role != "developer" &&
          role != "tool") {
        bad(f + ".role", "must be system, user, assistant, developer or tool, got \"" + role + "\"");
      }
      p.messages.emplace_back(role == "developer" ? "system" : role, message_content(m, i));
    }
  } else {
    if (!body.contains("prompt")) bad("prompt", "is required");
    const json& pr = body["prompt"];
    if (pr.is_string()) {
      p.prompt = pr.get<std::string>();
    } else if (pr.is_array() && pr.size() == 1 && pr[0].is_string()) {
      p.prompt = pr[0].get<std::string>();
    } else {
      bad("prompt", "must be a string (one prompt per request)");
    }
    if (p.prompt.empty()) bad("prompt", "must not be empty");
  }
  for (const char* f : {"max_tokens", "max_completion_tokens"}) {
    if (body.contains(f) && !body[f].is_null()) p.max_tokens = static_cast<int>(integer(body, f, 1, 1 << 24));
  }
  auto& s = p.sampling;
  if (body.contains("temperature")) s.temperature = static_cast<float>(number(body, "temperature", 0, 2));
  if (body.contains("top_p")) s.top_p = static_cast<float>(number(body, "top_p", 0, 1));
  if (body.contains("top_k")) s.top_k = static_cast<int>(integer(body, "top_k", 0, 1 << 20));
  if (body.contains("min_p")) s.min_p = static_cast<float>(number(body, "min_p", 0, 1));
  if (body.contains("presence_penalty")) s.presence_penalty = static_cast<float>(number(body, "presence_penalty", -2, 2));
  if (body.contains("frequency_penalty")) s.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", -2, 2));
  if (body.contains("repeat_penalty")) s.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 0, 10));
  if (body.contains("repeat_last_n")) s.penalty_last_n = static_cast<int>(integer(body, "repeat_last_n", -1, 1 << 20));
  if (body.contains("seed") && !body["seed"].is_null()) {
    int64_t seed = integer(body, "seed", INT64_MIN, INT64_MAX);
    s.seed = static_cast<uint64_t>(seed);
    if (s.seed == engine::kSeedRandom) s.seed = 0;  // -1 as a seed would mean random
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& st = body["stop"];
    if (st.is_string()) {
      p.stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      if (st.size() > 16) bad("stop", "has more than 16 strings");
      for (const auto& x : st) {
        if (!x.is_string()) bad("stop", "must be a string or an array of strings");
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or an array of strings");
    }
  }
  if (body.contains("stream")) p.stream = boolean(body, "stream");
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& so = body["stream_options"];
    if (!so.is_object()) bad("stream_options", "must be an object");
    if (so.contains("include_usage")) p.include_usage = boolean(so, "include_usage");
  }
  if (body.contains("n") && integer(body, "n", 1, 1) != 1) bad("n", "must be 1");
  if (chat) {
    if (body.contains("logprobs") && !body["logprobs"].is_null()) p.logprobs = boolean(body, "logprobs");
    if (body.contains("top_logprobs") && !body["top_logprobs"].is_null()) {
      p.top_logprobs = static_cast<int>(integer(body, "top_logprobs", 0, 20));
      if (!p.logprobs && p.top_logprobs > 0) bad("top_logprobs", "needs \"logprobs\": true");
    }
  } else if (body.contains("logprobs") && !body["logprobs"].is_null()) {
    // Completions: logprobs is the number of alternatives (0..5 in OpenAI; 20 here).
    p.top_logprobs = static_cast<int>(integer(body, "logprobs", 0, 20));
    p.logprobs = true;
  }
  if (body.contains("ignore_eos")) p.ignore_eos = boolean(body, "ignore_eos");
  if (body.contains("echo") && boolean(body, "echo")) bad("echo", "is not supported");
  if (body.contains("tools") && !body["tools"].is_null() && !body["tools"].empty()) {
    bad("tools", "are not supported by this server yet");
  }
  return p;
}

Generation::Generation(std::shared_ptr<HostedModel> lease, const GenerationParams& params)
    : params_(params), model_id_(lease->id), model_(std::move(lease)),
      shared_(std::make_shared<Shared>()) {
  HostedModel& model = *model_;
  id_ = random_id(params.chat ? "chatcmpl-" : "cmpl-");
  created_ = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  const engine::Tokenizer& tok = model.model->tokenizer();
  std::vector<int32_t> prompt;
  if (params.chat) {
    std::vector<engine::ChatMessage> msgs;
    for (const auto& [role, content] : params.messages) msgs.push_back({role, content});
    std::string text = model.chat->apply(msgs, /*add_generation_prompt=*/true);
    // Templates usually write the BOS text themselves; add it only if not.
    const engine::Vocab& v = tok.vocab();
    bool has_bos = v.bos >= 0 && text.rfind(v.tokens[v.bos], 0) == 0;
    prompt = tok.encode(text, /*add_special=*/!has_bos, /*parse_special=*/true);
  } else {
    prompt = tok.encode(params.prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  n_prompt_ = static_cast<int>(prompt.size());

  engine::GenRequest r;
  r.prompt = std::move(prompt);
  r.options.max_tokens = params.max_tokens;
  r.options.sampling = params.sampling;
  r.options.stop = params.stop;
  r.options.ignore_eos = params.ignore_eos;
  r.top_logprobs = params.logprobs ? std::max(params.top_logprobs, 0) : 0;
  std::shared_ptr<Shared> sh = shared_;
  r.on_token = [sh](const engine::TokenEvent& t) {
    {
      std::lock_guard<std::mutex> lock(sh->mu);
      Event e;
      e.token = t;
      sh->events.push_back(std::move(e));
    }
    sh->cv.notify_all();
  };
  r.on_done = [sh](engine::FinishReason f, const engine::RequestStats& st, const std::string& err) {
    {
      std::lock_guard<std::mutex> lock(sh->mu);
      Event e;
      e.done = true;
      e.finish = f;
      e.stats = st;
      e.error = err;
      sh->events.push_back(std::move(e));
      sh->done = true;
    }
    sh->cv.notify_all();
  };
  handle_ = model.scheduler->submit(std::move(r));
}

Generation::~Generation() {
  if (!finished()) cancel();
}

std::vector<Generation::Event> Generation::wait(int timeout_ms) {
  std::unique_lock<std::mutex> lock(shared_->mu);
  shared_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                       [&] { return !shared_->events.empty(); });
  std::vector<Event> out(std::make_move_iterator(shared_->events.begin()),
                         std::make_move_iterator(shared_->events.end()));
  shared_->events.clear();
  return out;
}

void Generation::cancel() {
  if (handle_) handle_->cancel();
}

bool Generation::finished() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->done;
}

std::string Generation::token_text(int32_t id) const {
  return model_->model->tokenizer().token_to_piece(id, true);
}

}  // namespace tars::node
