#include "node/llama_api.h"

#include <chrono>
#include <utility>

#include "common/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "node/event_stream.h"
#include "node/generation.h"
#include "node/model_host.h"
#include "node/request_params.h"

namespace tars::node {
namespace {

// Objects keep the order they are written in: a stream's last event starts
// with "stop", which is how clients (and a forwarding node) see its end.
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double per(double a, double b) { return b > 0 ? a / b : 0; }

// A completion as llama-server answers it: the whole answer, or a stream's
// events; ended early by the request's own limits (t_max_predict_ms,
// n_indent).
class Completion {
 public:
  Completion(std::shared_ptr<Generation> g, LlamaCompletionParams p) : g_(std::move(g)), p_(std::move(p)) {}

  // A token's event, as the stream's chunk (null when there is nothing to send).
  json token(const Generation::Event& e) {
    if (ended_) return nullptr;  // made after the request's own limit
    std::string text = indent_rule(e.token.text);
    content_ += text;
    json probs = nullptr;
    if (e.token.id >= 0) {
      ids_.push_back(e.token.id);
      if (first_token_ == Clock::time_point{}) first_token_ = e.at;
      if (p_.n_probs > 0) {
        probs = probability(e.token);
        probs_.push_back(probs);
      }
    }
    if (!ended_ && p_.t_max_predict_ms > 0 && content_.find('\n') != std::string::npos &&
        e.at - first_token_ >= std::chrono::milliseconds(p_.t_max_predict_ms)) {
      end();
    }
    if (text.empty() && e.token.id < 0) return nullptr;
    json chunk = {{"index", 0}, {"content", text}, {"tokens", e.token.id >= 0 ? json::array({e.token.id}) : json::array()},
                  {"stop", false}, {"model", g_->model_id()}, {"tokens_predicted", ids_.size()},
                  {"tokens_evaluated", g_->n_prompt()}};
    if (!probs.is_null()) chunk["completion_probabilities"] = json::array({probs});
    return fields(chunk);
  }

  // At the end: an indentation still held back (the answer ended in it)
  // is the answer's, as a stream's chunk (null when there is none).
  json rest() {
    if (ended_ || held_.empty()) return nullptr;
    const std::string text = std::exchange(held_, std::string());
    content_ += text;
    return fields({{"index", 0}, {"content", text}, {"tokens", json::array()}, {"stop", false},
                   {"model", g_->model_id()}, {"tokens_predicted", ids_.size()}, {"tokens_evaluated", g_->n_prompt()}});
  }

  // The answer's fields at the end (`whole`: with all of the content and
  // probabilities; a stream's last event has them empty, as they came).
  json final(const Generation::Event& done, bool whole) {
    if (whole) rest();
    const engine::RequestStats& s = done.stats;
    const char* stop_type = done.finish == engine::FinishReason::kLength ? "limit"
                            : s.stop_sequence.empty()                     ? "eos"
                                                                          : "word";
    const GenerationParams& gp = p_.gen;
    const engine::SamplerOptions& so = gp.sampling;
    json samplers = json::array();
    if (so.repeat_penalty != 1 || so.presence_penalty != 0 || so.frequency_penalty != 0) samplers.push_back("penalties");
    if (so.top_k > 0) samplers.push_back("top_k");
    if (so.top_p < 1) samplers.push_back("top_p");
    if (so.min_p > 0) samplers.push_back("min_p");
    samplers.push_back("temperature");
    const json settings = {
        {"n_ctx", g_->n_ctx()},
        {"model", g_->model_id()},
        {"n_predict", gp.max_tokens},
        {"temperature", so.temperature},
        {"top_k", so.top_k},
        {"top_p", so.top_p},
        {"min_p", so.min_p},
        {"repeat_penalty", so.repeat_penalty},
        {"repeat_last_n", so.penalty_last_n},
        {"presence_penalty", so.presence_penalty},
        {"frequency_penalty", so.frequency_penalty},
        {"seed", so.seed == engine::kSeedRandom ? json(-1) : json(so.seed)},
        {"stop", gp.stop},
        {"ignore_eos", gp.ignore_eos},
        {"n_probs", p_.n_probs},
        {"stream", gp.stream},
        {"cache_prompt", gp.cache_prompt},
        {"samplers", samplers},
    };
    const int processed = s.n_prompt - s.n_cached;
    const json timings = {
        {"cache_n", s.n_cached},
        {"prompt_n", processed},
        {"prompt_ms", s.prompt_ms},
        {"prompt_per_token_ms", per(s.prompt_ms, processed)},
        {"prompt_per_second", per(1000.0 * processed, s.prompt_ms)},
        {"predicted_n", s.n_generated},
        {"predicted_ms", s.generate_ms},
        {"predicted_per_token_ms", per(s.generate_ms, s.n_generated - 1)},
        {"predicted_per_second", per(1000.0 * (s.n_generated - 1), s.generate_ms)},
    };
    const bool ctx_full = done.finish == engine::FinishReason::kLength && s.n_prompt + s.n_generated >= g_->n_ctx();
    json out = {
        {"stop", true},
        {"index", 0},
        {"content", whole ? content_ : ""},
        {"tokens", whole && p_.return_tokens ? json(ids_) : json::array()},
        {"model", g_->model_id()},
        {"tokens_predicted", ids_.size()},
        {"tokens_evaluated", s.n_prompt},
        {"tokens_cached", s.n_cached},
        {"generation_settings", settings},
        {"prompt", g_->prompt_text()},
        {"has_new_line", content_.find('\n') != std::string::npos},
        {"truncated", ctx_full},
        {"stop_type", ended_ ? "limit" : stop_type},
        {"stopping_word", s.stop_sequence},
        {"timings", timings},
    };
    if (p_.n_probs > 0) out["completion_probabilities"] = whole ? probs_ : json::array();
    return fields(out);
  }

 private:
  void end() {
    ended_ = true;
    g_->end_here();
  }

  json probability(const engine::TokenEvent& t) const {
    auto entry = [&](int32_t id, double logprob) {
      const std::string piece = g_->token_text(id);
      return json{{"id", id}, {"token", piece}, {"bytes", json_bytes(piece)}, {"logprob", logprob}};
    };
    json e = entry(t.id, t.logprob);
    json top = json::array();
    for (const auto& a : t.top) top.push_back(entry(a.id, a.logprob));
    e["top_logprobs"] = std::move(top);
    return e;
  }

  // n_indent: a line after the first that starts less indented than this
  // ends the answer, and is left out. A line's indentation is held back
  // until its first other character shows it (or the answer ends).
  std::string indent_rule(const std::string& text) {
    if (p_.n_indent <= 0) return text;
    std::string out;
    for (char c : text) {
      if (ended_) break;
      if (!in_indent_) {
        out += c;
        if (c == '\n') {
          in_indent_ = true;
          held_.clear();
        }
        continue;
      }
      if (c == ' ' || c == '\t') {
        held_ += c;
      } else if (c == '\n') {  // an empty line: kept
        out += held_;
        out += c;
        held_.clear();
      } else if (static_cast<int>(held_.size()) < p_.n_indent) {
        held_.clear();
        end();
      } else {
        out += held_;
        out += c;
        held_.clear();
        in_indent_ = false;
      }
    }
    return out;
  }

  json fields(const json& obj) const {
    if (p_.response_fields.empty()) return obj;
    json out = json::object();
    // A stream's events always say whether it goes on.
    if (p_.gen.stream) out["stop"] = obj["stop"];
    for (const auto& f : p_.response_fields) {
      const size_t slash = f.find('/');
      if (slash == std::string::npos) {
        if (obj.contains(f)) out[f] = obj[f];
        continue;
      }
      const std::string outer = f.substr(0, slash), inner = f.substr(slash + 1);
      if (obj.contains(outer) && obj[outer].is_object() && obj[outer].contains(inner)) out[f] = obj[outer][inner];
    }
    return out;
  }

  std::shared_ptr<Generation> g_;
  LlamaCompletionParams p_;
  std::string content_;
  std::vector<int32_t> ids_;
  json probs_ = json::array();
  Clock::time_point first_token_{};
  bool ended_ = false;
  bool in_indent_ = false;  // at the start of a line after the first, in its indentation
  std::string held_;        // that indentation so far
};

// The stream: a chunk per token, then the answer's fields; no "[DONE]".
class CompletionWriter : public EventWriter {
 public:
  explicit CompletionWriter(std::shared_ptr<Completion> c) : c_(std::move(c)) {}
  std::string start(const Generation&) override { return ""; }
  std::string token(const Generation::Event& e) override { return data(c_->token(e)); }
  std::string finish(const Generation::Event& done) override {
    return data(c_->rest()) + data(c_->final(done, false));
  }
  std::string failure(const std::string& error) override {
    return data(error_body(500, "generation failed: " + error, "generation_failed"));
  }

 private:
  static std::string data(const json& j) {
    if (j.is_null()) return "";
    return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  }
  std::shared_ptr<Completion> c_;
};

HttpHandler completion_handler(ModelHost& host, bool infill) {
  return [&host, infill](const httplib::Request& req, httplib::Response& res) {
    LlamaCompletionParams p = llama_completion_parse(parse_json_object(req), infill);
    std::shared_ptr<HostedModel> m = host.get(p.gen.model, "chat");  // a lease
    auto g = std::make_shared<Generation>(std::move(m), p.gen);
    auto c = std::make_shared<Completion>(g, std::move(p));
    if (g->params().stream) {
      reply_event_stream(res, g, std::make_shared<CompletionWriter>(c));
      return;
    }
    for (;;) {
      for (auto& e : g->wait(1000)) {
        if (!e.done) {
          c->token(e);
          continue;
        }
        if (!e.error.empty()) throw_generation_failure(e.error);
        reply_json(res, 200, c->final(e, true));
        return;
      }
    }
  };
}

// GET /slots[?model=ID][&fail_on_no_slot=1]: each slot of a chat model, as
// llama-server lists them, with what tars adds (state, the prompt's size,
// the tokens its cache holds).
void slots(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  std::shared_ptr<HostedModel> lease = host.get(req.get_param_value("model"), "chat");
  const std::vector<engine::SlotView> views = lease->scheduler->slots();
  const int n_ctx = lease->model->options().n_ctx;
  json out = json::array();
  bool any_idle = false;
  for (const auto& v : views) {
    any_idle = any_idle || !v.busy;
    out.push_back({{"id", v.id},
                   {"id_task", v.task == 0 ? json(-1) : json(v.task)},
                   {"n_ctx", n_ctx},
                   {"speculative", false},
                   {"is_processing", v.busy},
                   {"state", !v.busy ? "idle" : v.generating ? "generating" : "prompt"},
                   {"n_prompt_tokens", v.n_prompt},
                   {"n_cached_tokens", v.n_cached},
                   {"next_token",
                    {{"has_next_token", v.busy},
                     {"n_decoded", v.n_generated},
                     {"n_remain", v.busy ? v.max_tokens - v.n_generated : -1}}}});
  }
  if (req.get_param_value("fail_on_no_slot") == "1" && !any_idle) {
    throw HttpError(503, "no_slot_available", "every slot of model '" + lease->id + "' is busy");
  }
  reply_json(res, 200, out);
}

}  // namespace

std::vector<Route> llama_routes(ModelHost& host) {
  return {
      {"GET", "/slots", [&host](const httplib::Request& req, httplib::Response& res) { slots(host, req, res); }},
      {"POST", "/completion", completion_handler(host, false)},
      {"POST", "/completions", completion_handler(host, false)},
      {"POST", "/infill", completion_handler(host, true)},
  };
}

}  // namespace tars::node
