#include "node/tokenize_api.h"

#include "common/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
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

}  // namespace

std::vector<Route> tokenize_routes(ModelHost& host) {
  return {
      {"POST", "/tokenize", [&host](const httplib::Request& req, httplib::Response& res) { tokenize(host, req, res); }},
      {"POST", "/detokenize",
       [&host](const httplib::Request& req, httplib::Response& res) { detokenize(host, req, res); }},
  };
}

}  // namespace tars::node
