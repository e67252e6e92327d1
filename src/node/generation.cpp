#include "node/generation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>

#include "common/error.h"
#include "engine/chat_template.h"
#include "engine/json_schema.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "node/model_host.h"
#include "node/usage_log.h"

namespace tars::node {

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

namespace {

using json = nlohmann::json;

// A JSON value as chat templates see it (objects keep their keys' order).
engine::JinjaValue jinja_from_json(const nlohmann::ordered_json& j) {
  using value_t = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case value_t::null: return engine::JinjaValue::none();
    case value_t::boolean: return engine::JinjaValue(j.get<bool>());
    case value_t::number_integer: return engine::JinjaValue(j.get<int64_t>());
    case value_t::number_unsigned:
      return j.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX) ? engine::JinjaValue(static_cast<int64_t>(j.get<uint64_t>()))
                                                                    : engine::JinjaValue(j.get<double>());
    case value_t::number_float: return engine::JinjaValue(j.get<double>());
    case value_t::string: return engine::JinjaValue(j.get<std::string>());
    case value_t::array: {
      engine::JinjaList list;
      for (const auto& x : j) list.push_back(jinja_from_json(x));
      return engine::JinjaValue(std::move(list));
    }
    case value_t::object: {
      engine::JinjaDict dict;
      for (auto it = j.begin(); it != j.end(); ++it) dict.emplace_back(it.key(), jinja_from_json(it.value()));
      return engine::JinjaValue(std::move(dict));
    }
    default: return engine::JinjaValue::none();
  }
}

// Ollama's way with a chat longer than the context: the oldest messages go,
// system messages stay, and what is kept starts with a user message (so that
// templates which insist on alternating turns still render). The longest
// history whose prompt fits, with room for max_tokens (at least one), is
// kept; when none fits, the last user message and what follows it (which the
// scheduler then refuses, with the figures).
std::vector<engine::ChatMessage> fit_history(
    const std::vector<engine::ChatMessage>& msgs, int n_ctx, int max_tokens,
    const std::function<std::vector<int32_t>(const std::vector<engine::ChatMessage>&)>& tokens) {
  std::vector<size_t> cuts;  // where the kept part may start: a user message after the first one
  bool seen_user = false;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (msgs[i].role != "user") continue;
    if (seen_user) cuts.push_back(i);
    seen_user = true;
  }
  auto kept = [&](size_t cut) {
    std::vector<engine::ChatMessage> out;
    for (size_t i = 0; i < cut; ++i) {
      if (msgs[i].role == "system") out.push_back(msgs[i]);
    }
    out.insert(out.end(), msgs.begin() + static_cast<std::ptrdiff_t>(cut), msgs.end());
    return out;
  };
  auto fits = [&](size_t cut) {
    return static_cast<int64_t>(tokens(kept(cut)).size()) + std::max(max_tokens, 1) <= n_ctx;
  };
  if (cuts.empty()) return msgs;
  // Later cuts keep less; the first that fits is found by halving.
  size_t lo = 0, hi = cuts.size() - 1;
  if (!fits(cuts[hi])) return kept(cuts[hi]);
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (fits(cuts[mid])) hi = mid;
    else lo = mid + 1;
  }
  return kept(cuts[lo]);
}

// Fill in the middle, in the prefix-suffix-middle order the code models are
// trained on: [BOS] <prefix marker> before <suffix marker> after <middle
// marker> [the middle's start]; the model writes the middle and ends it with
// an end-of-generation token (<|endoftext|>, <|fim_pad|>...:
// Vocab::eog_extra). llama-server's /infill (params.fill) puts files before
// it: with the repository markers Qwen2.5-Coder was trained on,
// <|repo_name|>project\n, then <|file_sep|>name\ntext for each file and
// <|file_sep|>file\n for the one being edited; without them, each file's
// name and text as plain text. What does not fit the context with room for
// max_tokens goes: the oldest files, then the far ends of the prefix (its
// start) and of the suffix (its end), the suffix keeping at least a quarter.
std::vector<int32_t> fim_prompt(const engine::Tokenizer& tok, const HostedModel& model, const GenerationParams& params) {
  const engine::Vocab& v = tok.vocab();
  if (v.fim_pre == engine::kTokenNone) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("'") + (params.fill ? "input_suffix" : "suffix") + "': model '" + model.id +
                    "' cannot fill in the middle: its vocabulary has no fill-in-the-middle tokens (code models such "
                    "as Qwen2.5-Coder, StarCoder or CodeLlama have them)");
  }
  auto text = [&](const std::string& t) { return tok.encode(t, /*add_special=*/false, /*parse_special=*/false); };
  std::vector<int32_t> before = text(params.prompt), after = text(params.suffix), middle = text(params.fill_middle);
  const int32_t repo = tok.find_token("<|repo_name|>"), file_sep = tok.find_token("<|file_sep|>");
  const bool repo_markers = repo >= 0 && file_sep >= 0;
  std::vector<std::vector<int32_t>> files;
  for (const auto& f : params.fill_files) {
    if (repo_markers) {
      std::vector<int32_t> t = {file_sep};
      for (int32_t id : text(f.name + "\n" + f.text)) t.push_back(id);
      files.push_back(std::move(t));
    } else {
      std::string plain = f.name.empty() ? f.text : f.name + "\n" + f.text;
      if (!plain.empty() && plain.back() != '\n') plain += '\n';
      files.push_back(text(plain));
    }
  }
  std::vector<int32_t> repo_head, file_head;
  if (repo_markers) {
    repo_head = {repo};
    for (int32_t id : text("project\n")) repo_head.push_back(id);
    file_head = {file_sep};
    for (int32_t id : text("file\n")) file_head.push_back(id);
  }
  const bool bos = v.add_bos && v.bos != engine::kTokenNone;
  if (params.fill) {
    const int64_t room = static_cast<int64_t>(model.model->options().n_ctx) - std::max(params.max_tokens, 1);
    const int64_t fixed = bos + 3 + static_cast<int64_t>(middle.size());
    const int64_t heads = static_cast<int64_t>(repo_head.size() + file_head.size());
    int64_t files_size = 0;
    for (const auto& f : files) files_size += static_cast<int64_t>(f.size());
    const int64_t text_size = static_cast<int64_t>(before.size() + after.size());
    size_t first_file = 0;
    if (!files.empty() && fixed + text_size + heads + files_size > room) {
      // The oldest files go first.
      while (first_file < files.size() && fixed + text_size + heads + files_size > room) {
        files_size -= static_cast<int64_t>(files[first_file++].size());
      }
    }
    files.erase(files.begin(), files.begin() + static_cast<std::ptrdiff_t>(first_file));
    const int64_t avail = room - fixed - (files.empty() ? 0 : heads + files_size);
    if (text_size > avail && avail > 0) {
      const int64_t keep_after = std::min<int64_t>(static_cast<int64_t>(after.size()),
                                                   std::max(avail / 4, avail - static_cast<int64_t>(before.size())));
      const int64_t keep_before = std::min<int64_t>(static_cast<int64_t>(before.size()), avail - keep_after);
      before.erase(before.begin(), before.end() - keep_before);
      after.resize(static_cast<size_t>(keep_after));
    }
  }
  std::vector<int32_t> out;
  auto add = [&](const std::vector<int32_t>& t) { out.insert(out.end(), t.begin(), t.end()); };
  if (bos) out.push_back(v.bos);
  if (!files.empty()) {
    add(repo_head);
    for (const auto& f : files) add(f);
    add(file_head);
  }
  out.push_back(v.fim_pre);
  add(before);
  out.push_back(v.fim_suf);
  add(after);
  out.push_back(v.fim_mid);
  add(middle);
  return out;
}

}  // namespace

PreparedPrompt prepare_prompt(HostedModel& model, const GenerationParams& params) {
  PreparedPrompt out;
  std::vector<int32_t>& prompt = out.tokens;
  ReasoningTags& reasoning = out.reasoning;  // the model's thought tags, when its thoughts come apart
  bool& in_thought = out.in_thought;
  const engine::Tokenizer& tok = model.model->tokenizer();
  // Text in the model's own format (a rendered chat, or a raw prompt) to
  // tokens: templates usually write the BOS text themselves; add it only if not.
  auto templated_tokens = [&](const std::string& text) {
    const engine::Vocab& v = tok.vocab();
    const bool has_bos = v.bos >= 0 && text.rfind(v.tokens[v.bos], 0) == 0;
    return tok.encode(text, /*add_special=*/!has_bos, /*parse_special=*/true);
  };
  if (params.chat) {
    std::vector<engine::ChatMessage> msgs;
    for (const auto& m : params.messages) {
      engine::ChatMessage cm(m.role, m.content);
      for (const auto& c : m.tool_calls) cm.tool_calls.push_back({c.id, c.name, jinja_from_json(c.arguments)});
      cm.tool_call_id = m.tool_call_id;
      cm.name = m.name;
      cm.reasoning_content = m.reasoning_content;
      msgs.push_back(std::move(cm));
    }
    const engine::JinjaValue tools = params.tools.empty() ? engine::JinjaValue::none() : jinja_from_json(params.tools);
    const ReasoningTags tags = reasoning_tags(model.chat->text());
    if (params.require_reasoning && tags.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "model '" + model.id +
                                                   "' does not think: its chat template shows no thinking tags "
                                                   "(send the request without \"think\")");
    }
    const engine::JinjaValue variables = jinja_from_json(params.template_variables);
    std::string text;
    auto render = [&](const std::vector<engine::ChatMessage>& chat) {
      text = model.chat->apply(chat, /*add_generation_prompt=*/true, tools, variables.as_dict());
      return templated_tokens(text);
    };
    prompt = render(msgs);
    out.text = text;
    const int n_ctx = model.model->options().n_ctx;
    if (params.truncate_history && static_cast<int>(prompt.size()) + std::max(params.max_tokens, 1) > n_ctx) {
      const size_t n_whole = prompt.size();
      const std::vector<engine::ChatMessage> kept = fit_history(msgs, n_ctx, params.max_tokens, render);
      prompt = render(kept);
      out.text = text;
      spdlog::info("model {}: a chat of {} messages ({} tokens) does not fit the context of {}; the oldest {} went "
                   "({} tokens left)",
                   model.id, msgs.size(), n_whole, n_ctx, msgs.size() - kept.size(), prompt.size());
    }
    if (!params.tools.empty()) out.tool_format = tool_call_format(model.chat->text());
    // A constrained answer (JSON mode, a schema, a forced call) is all
    // answer: the constraint writes no thought.
    const bool constrained = params.json_object || params.json_schema || !params.forced_tool.empty();
    if (params.split_reasoning && !tags.empty() && !constrained) {
      reasoning = tags;
      in_thought = prompt_opens_thought(text, tags);
    }
  } else if (params.templated_prompt) {
    prompt = templated_tokens(params.prompt);
  } else if (params.fill || !params.suffix.empty()) {
    prompt = fim_prompt(tok, model, params);
  } else if (!params.prompt_parts.empty()) {
    // Token ids and texts; the texts are in the model's own format.
    const int n_vocab = tok.vocab().n_vocab();
    for (size_t i = 0; i < params.prompt_parts.size(); ++i) {
      const PromptPart& part = params.prompt_parts[i];
      if (part.token >= n_vocab) {
        throw Error(ErrorCode::kInvalidArgument, "'prompt' holds token " + std::to_string(part.token) + ", but model '" +
                                                     model.id + "' has " + std::to_string(n_vocab) + " tokens");
      }
      if (part.token >= 0) {
        prompt.push_back(part.token);
        continue;
      }
      const std::vector<int32_t> t = i == 0 ? templated_tokens(part.text) : tok.encode(part.text, false, true);
      prompt.insert(prompt.end(), t.begin(), t.end());
    }
  } else {
    prompt = tok.encode(params.prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  const int n_ctx = model.model->options().n_ctx;
  if (params.truncate_history && static_cast<int64_t>(prompt.size()) + std::max(params.max_tokens, 1) > n_ctx) {
    // Ollama's last resort: the start goes (all but the first prompt_keep
    // tokens), the end, which asks the question, stays.
    const int64_t room = params.max_tokens > 0 ? params.max_tokens : n_ctx / 4;
    const int64_t limit = n_ctx - std::max<int64_t>(room, 1);
    if (limit > 0) {
      const int64_t keep = std::min<int64_t>(params.prompt_keep, limit / 2);
      const size_t n_whole = prompt.size();
      prompt.erase(prompt.begin() + keep, prompt.end() - (limit - keep));
      spdlog::info("model {}: a prompt of {} tokens does not fit the context of {}; its start went ({} tokens left, "
                   "the first {} kept)",
                   model.id, n_whole, n_ctx, prompt.size(), keep);
    }
  }
  return out;
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
  for (const auto& [token, bias] : params.sampling.logit_bias) {
    if (token >= tok.vocab().n_vocab()) {
      throw Error(ErrorCode::kInvalidArgument, "'logit_bias' names token " + std::to_string(token) + ", but model '" +
                                                   model_id_ + "' has " + std::to_string(tok.vocab().n_vocab()) +
                                                   " tokens");
    }
  }
  PreparedPrompt prepared = prepare_prompt(model, params);
  std::vector<int32_t> prompt = std::move(prepared.tokens);
  const ReasoningTags reasoning = prepared.reasoning;
  const bool in_thought = prepared.in_thought;
  tool_format_ = prepared.tool_format;
  n_prompt_ = static_cast<int>(prompt.size());
  prompt_ = prompt;

  engine::GenRequest r;
  r.prompt = std::move(prompt);
  r.options.max_tokens = params.max_tokens;
  r.options.sampling = params.sampling;
  r.options.stop = params.stop;
  r.options.ignore_eos = params.ignore_eos;
  r.options.json_object = params.json_object;
  r.options.json_schema = params.json_schema;
  if (!params.forced_tool.empty()) {
    // tool_choice "required" or a named function: the answer is one call.
    if (tool_format_ == ToolCallFormat::kMistral) {
      throw Error(ErrorCode::kInvalidArgument,
                  "'tool_choice' cannot force a call with model '" + model_id_ +
                      "': its calls begin with a control token ([TOOL_CALLS]), which a constraint cannot write");
    }
    const ForcedCall call = forced_call(tool_format_, params.tools, params.forced_tool == "*" ? "" : params.forced_tool);
    try {
      r.options.json_schema = engine::JsonSchema::parse(call.schema, /*lenient=*/true);
    } catch (const Error& e) {
      throw Error(ErrorCode::kInvalidArgument, std::string("'tools' cannot be called by force: ") + e.what());
    }
    r.options.json_before = call.before;
    r.options.json_after = call.after;
  }
  r.top_logprobs = params.logprobs ? std::max(params.top_logprobs, 0) : 0;
  r.cache_prompt = params.cache_prompt;
  std::shared_ptr<Shared> sh = shared_;
  // Mistral's tool-call markers and thought tags are control tokens, which
  // the decoder leaves out of the text: they are written in as they come
  // (unless the vocabulary has them as text tokens, which come as text).
  std::vector<std::pair<int32_t, std::string>> markers;
  auto mark = [&](std::string_view text) {
    const int32_t id = tok.find_token(text);
    if (id >= 0) markers.emplace_back(id, std::string(text));
  };
  if (tool_format_ == ToolCallFormat::kMistral) {
    mark(kMistralToolCalls);
    mark(kMistralArgs);
  }
  if (!reasoning.empty()) {
    mark(reasoning.open);
    mark(reasoning.close);
  }
  auto splitter = reasoning.empty() ? nullptr : std::make_shared<ReasoningSplitter>(reasoning, in_thought);
  r.on_token = [sh, markers, splitter](const engine::TokenEvent& t) {
    {
      std::lock_guard<std::mutex> lock(sh->mu);
      Event e;
      e.token = t;
      e.at = std::chrono::steady_clock::now();
      for (const auto& [id, text] : markers) {
        if (t.id >= 0 && t.id == id && t.text.find(text) == std::string::npos) e.token.text = text + t.text;
      }
      if (splitter) {
        ReasoningSplitter::Parts parts = splitter->push(e.token.text);
        e.token.text = std::move(parts.content);
        e.thinking = std::move(parts.thinking);
      }
      sh->events.push_back(std::move(e));
    }
    sh->cv.notify_all();
  };
  // The usage ledger's record of this request (usage_log.h), written as it
  // ends, whatever the client does meanwhile.
  std::function<void(engine::FinishReason, const engine::RequestStats&, const std::string&)> ledger;
  if (model.usage_log) {
    ledger = [log = model.usage_log, id = model_id_, kind = params.chat ? "chat" : "completion",
              start = std::chrono::steady_clock::now()](engine::FinishReason f, const engine::RequestStats& st,
                                                        const std::string& err) {
      UsageRecord u;
      u.model = id;
      u.kind = kind;
      u.prompt_tokens = st.n_prompt;
      u.completion_tokens = st.n_generated;
      u.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (st.n_generated > 0) u.ttft_ms = st.ttft_ms;
      u.finish = err.empty() ? finish_reason_name(f) : err == "cancelled" ? "cancelled" : "error";
      log->record(std::move(u));
    };
  }
  r.on_done = [sh, ledger, splitter](engine::FinishReason f, const engine::RequestStats& st, std::string err) {
    {
      std::lock_guard<std::mutex> lock(sh->mu);
      if (sh->ended && err == "cancelled") {  // end_here: a limit the caller keeps, not a failure
        err.clear();
        f = engine::FinishReason::kLength;
      }
    }
    if (ledger) ledger(f, st, err);
    {
      std::lock_guard<std::mutex> lock(sh->mu);
      if (splitter && err.empty()) {  // what the splitter held back (a possible tag that was not one)
        ReasoningSplitter::Parts parts = splitter->finish();
        if (!parts.content.empty() || !parts.thinking.empty()) {
          Event held;
          held.token.id = -1;
          held.token.text = std::move(parts.content);
          held.thinking = std::move(parts.thinking);
          sh->events.push_back(std::move(held));
        }
      }
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

const char* finish_reason_name(engine::FinishReason f) {
  return f == engine::FinishReason::kLength ? "length" : "stop";
}

void throw_generation_failure(const std::string& error) {
  if (error == "the server is shutting down") throw Error(ErrorCode::kUnavailable, error);
  throw Error(ErrorCode::kInternal, "generation failed: " + error);
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

Generation::Whole Generation::wait_whole() {
  Whole w;
  for (;;) {
    for (auto& e : wait(1000)) {
      if (!e.done) {
        w.text += e.token.text;
        w.thinking += e.thinking;
        continue;
      }
      if (!e.error.empty()) throw_generation_failure(e.error);
      w.done = std::move(e);
      return w;
    }
  }
}

void Generation::cancel() {
  if (handle_) handle_->cancel();
}

void Generation::end_here() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->ended = true;
  }
  cancel();
}

bool Generation::finished() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->done;
}

int Generation::n_ctx() const { return model_->model->options().n_ctx; }

std::string Generation::prompt_text() const { return model_->model->tokenizer().decode(prompt_, true); }

std::string Generation::token_text(int32_t id) const {
  return model_->model->tokenizer().token_to_piece(id, true);
}

}  // namespace tars::node
