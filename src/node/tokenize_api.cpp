#include "node/tokenize_api.h"

#include "common/error.h"
#include "common/version.h"
#include "engine/chat_template.h"
#include "engine/sampler.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "node/generation.h"
#include "node/model_host.h"
#include "node/request_params.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

// A piece as text when it is valid UTF-8, else its bytes (a byte token, or
// half of a character), as llama-server writes it.
json piece_json(const std::string& piece) { return engine::utf8_valid(piece) ? json(piece) : json_bytes(piece); }

void tokenize(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const TokenizeParams p = tokenize_parse(parse_json_object(req));
  std::shared_ptr<HostedModel> lease = host.get(p.model, "chat");
  const engine::Tokenizer& tok = lease->model->tokenizer();
  const std::vector<int32_t> ids = tok.encode(p.content, p.add_special, p.parse_special);
  json tokens = json::array();
  for (int32_t id : ids) {
    if (p.with_pieces) tokens.push_back({{"id", id}, {"piece", piece_json(tok.token_to_piece(id, true))}});
    else tokens.push_back(id);
  }
  reply_json(res, 200, {{"model", lease->id}, {"tokens", tokens}});
}

void detokenize(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const DetokenizeParams p = detokenize_parse(parse_json_object(req));
  std::shared_ptr<HostedModel> lease = host.get(p.model, "chat");
  const engine::Tokenizer& tok = lease->model->tokenizer();
  const int n_vocab = tok.vocab().n_vocab();
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    if (p.tokens[i] >= n_vocab) {
      throw Error(ErrorCode::kInvalidArgument, "'tokens[" + std::to_string(i) + "]' is " +
                                                   std::to_string(p.tokens[i]) + ", but model '" + lease->id +
                                                   "' has " + std::to_string(n_vocab) + " tokens");
    }
  }
  reply_json(res, 200, {{"model", lease->id}, {"content", tok.decode(p.tokens, true)}});
}

// POST /apply-template: a chat-completion body's messages (and tools, and
// chat_template_kwargs) through the model's chat template.
void apply_template(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  const GenerationParams p = generation_parse(parse_json_object(req), /*chat=*/true);
  std::shared_ptr<HostedModel> lease = host.get(p.model, "chat");
  reply_json(res, 200, {{"prompt", prepare_prompt(*lease, p).text}});
}

// GET /props: what llama-server reports of its model.
void props(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  std::shared_ptr<HostedModel> lease = host.get(req.get_param_value("model"), "chat");
  const HostedModel& m = *lease;
  const engine::SamplerOptions s;  // what a request that sets nothing gets
  const engine::Vocab& v = m.model->tokenizer().vocab();
  auto token_text = [&](int32_t id) { return id >= 0 && id < v.n_vocab() ? v.tokens[id] : std::string(); };
  reply_json(res, 200,
             {{"default_generation_settings",
               {{"n_ctx", m.model->options().n_ctx},
                {"model", m.id},
                {"params", {{"n_predict", -1},
                            {"temperature", s.temperature},
                            {"top_k", s.top_k},
                            {"top_p", s.top_p},
                            {"min_p", s.min_p},
                            {"repeat_penalty", s.repeat_penalty},
                            {"repeat_last_n", s.penalty_last_n},
                            {"presence_penalty", s.presence_penalty},
                            {"frequency_penalty", s.frequency_penalty},
                            {"seed", -1},
                            {"stop", json::array()}}}}},
              {"total_slots", m.model->options().n_slots},
              {"model_path", m.decl.path},
              {"model_alias", m.id},
              {"chat_template", m.chat->text()},
              {"bos_token", token_text(v.bos)},
              {"eos_token", token_text(v.eos)},
              {"modalities", {{"vision", false}, {"audio", false}}},
              {"build_info", std::string("tars ") + kVersion}});
}

}  // namespace

std::vector<Route> tokenize_routes(ModelHost& host) {
  return {
      {"POST", "/apply-template",
       [&host](const httplib::Request& req, httplib::Response& res) { apply_template(host, req, res); }},
      {"GET", "/props", [&host](const httplib::Request& req, httplib::Response& res) { props(host, req, res); }},
      {"POST", "/tokenize", [&host](const httplib::Request& req, httplib::Response& res) { tokenize(host, req, res); }},
      {"POST", "/detokenize",
       [&host](const httplib::Request& req, httplib::Response& res) { detokenize(host, req, res); }},
  };
}

}  // namespace tars::node
