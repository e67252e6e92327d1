#include "node/embeddings_api.h"

#include <cstring>
#include <set>

#include "common/error.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "node/model_host.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); }

// One request's inputs: texts, or token ids (OpenAI allows both, not mixed).
struct Inputs {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> tokens;
  size_t size() const { return texts.empty() ? tokens.size() : texts.size(); }
};

Inputs parse_inputs(const json& body, const char* field) {
  if (!body.contains(field)) bad(std::string("'") + field + "' is required");
  const json& in = body[field];
  Inputs out;
  auto token_list = [&](const json& arr, size_t index) {
    std::vector<int32_t> ids;
    for (const auto& t : arr) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        bad(std::string("'") + field + "'[" + std::to_string(index) +
            "] must hold token ids (non-negative integers)");
      }
      ids.push_back(t.get<int32_t>());
    }
    if (ids.empty()) bad(std::string("'") + field + "'[" + std::to_string(index) + "] is empty");
    return ids;
  };
  if (in.is_string()) {
    out.texts.push_back(in.get<std::string>());
  } else if (in.is_array()) {
    if (in.empty()) bad(std::string("'") + field + "' is an empty list");
    if (in.size() > kMaxEmbeddingInputs) {
      bad(std::string("'") + field + "' has " + std::to_string(in.size()) +
          " inputs; at most " + std::to_string(kMaxEmbeddingInputs) + " per request");
    }
    if (in[0].is_number_integer()) {  // one input given as token ids
      out.tokens.push_back(token_list(in, 0));
    } else {
      for (size_t i = 0; i < in.size(); ++i) {
        const json& x = in[i];
        if (x.is_string() && out.tokens.empty()) {
          out.texts.push_back(x.get<std::string>());
        } else if (x.is_array() && out.texts.empty()) {
          out.tokens.push_back(token_list(x, i));
        } else {
          bad(std::string("'") + field + "'[" + std::to_string(i) + "] must be a string" +
              (out.texts.empty() ? " or an array of token ids" : "") + ", got " + x.type_name());
        }
      }
    }
  } else {
    bad(std::string("'") + field + "' must be a string or an array of strings, got " +
        in.type_name());
  }
  for (size_t i = 0; i < out.texts.size(); ++i) {
    if (out.texts[i].empty()) bad(std::string("'") + field + "'[" + std::to_string(i) + "] is an empty string");
  }
  return out;
}

bool opt_bool(const json& body, const char* field, bool dflt) {
  if (!body.contains(field)) return dflt;
  if (!body[field].is_boolean()) bad(std::string("'") + field + "' must be true or false");
  return body[field].get<bool>();
}

std::vector<engine::Embedding> run(HostedModel& m, const Inputs& in, const engine::EmbedOptions& o) {
  return in.texts.empty() ? engine::embed_token_inputs(*m.encoder, in.tokens, o)
                          : engine::embed_texts(*m.encoder, in.texts, o);
}

std::string base64(const float* v, size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* b = reinterpret_cast<const unsigned char*>(v);
  size_t len = n * sizeof(float);
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  for (size_t i = 0; i < len; i += 3) {
    uint32_t x = b[i] << 16;
    if (i + 1 < len) x |= b[i + 1] << 8;
    if (i + 2 < len) x |= b[i + 2];
    out += tbl[(x >> 18) & 63];
    out += tbl[(x >> 12) & 63];
    out += i + 1 < len ? tbl[(x >> 6) & 63] : '=';
    out += i + 2 < len ? tbl[x & 63] : '=';
  }
  return out;
}

// POST /v1/embeddings (OpenAI).
void openai_embeddings(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  json body = parse_json_object(req);
  static const std::set<std::string> known = {"model", "input", "encoding_format", "dimensions",
                                              "user", "truncate", "normalize"};
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (!known.count(it.key())) bad("'" + it.key() + "' is not a known parameter");
  }
  std::string model = body.value("model", "");
  if (body.contains("model") && !body["model"].is_string()) bad("'model' must be a string");
  std::shared_ptr<HostedModel> lease = host.get(model, "embedding");  // held for the request
  HostedModel& m = *lease;
  Inputs in = parse_inputs(body, "input");
  std::string format = "float";
  if (body.contains("encoding_format")) {
    if (!body["encoding_format"].is_string()) bad("'encoding_format' must be \"float\" or \"base64\"");
    format = body["encoding_format"].get<std::string>();
    if (format != "float" && format != "base64") {
      bad("'encoding_format' must be \"float\" or \"base64\", got \"" + format + "\"");
    }
  }
  if (body.contains("dimensions") && !body["dimensions"].is_null()) {
    const json& d = body["dimensions"];
    if (!d.is_number_integer() || d.get<int64_t>() != m.encoder->n_embd()) {
      bad("'dimensions' cannot be chosen for model '" + m.id + "': it always returns " +
          std::to_string(m.encoder->n_embd()) + " dimensions");
    }
  }
  engine::EmbedOptions o;
  o.truncate = opt_bool(body, "truncate", true);
  o.normalize = opt_bool(body, "normalize", true);
  auto out = run(m, in, o);
  json data = json::array();
  int64_t tokens = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    json e = {{"object", "embedding"}, {"index", i}};
    if (format == "base64") e["embedding"] = base64(out[i].values.data(), out[i].values.size());
    else e["embedding"] = out[i].values;
    data.push_back(std::move(e));
    tokens += out[i].n_tokens;
  }
  reply_json(res, 200, {{"object", "list"}, {"data", data}, {"model", m.id},
                        {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

// POST /embed (seed): {"input": ..., "model"?, "normalize"?, "truncate"?}
void seed_embed(ModelHost& host, const httplib::Request& req, httplib::Response& res) {
  json body = parse_json_object(req);
  static const std::set<std::string> known = {"model", "input", "texts", "normalize", "truncate"};
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (!known.count(it.key())) bad("'" + it.key() + "' is not a known parameter");
  }
  if (body.contains("model") && !body["model"].is_string()) bad("'model' must be a string");
  std::shared_ptr<HostedModel> lease = host.get(body.value("model", ""), "embedding");
  HostedModel& m = *lease;
  Inputs in = parse_inputs(body, body.contains("texts") ? "texts" : "input");
  engine::EmbedOptions o;
  o.truncate = opt_bool(body, "truncate", true);
  o.normalize = opt_bool(body, "normalize", true);
  auto out = run(m, in, o);
  json data = json::array();
  int64_t tokens = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    data.push_back({{"index", i}, {"embedding", out[i].values}, {"tokens", out[i].n_tokens},
                    {"truncated", out[i].truncated()}});
    tokens += out[i].n_tokens;
  }
  reply_json(res, 200, {{"model", m.id}, {"dimension", m.encoder->n_embd()},
                        {"normalized", o.normalize}, {"data", data},
                        {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

}  // namespace

std::vector<Route> embeddings_routes(ModelHost& host) {
  return {
      {"POST", "/v1/embeddings",
       [&host](const httplib::Request& req, httplib::Response& res) { openai_embeddings(host, req, res); }},
      {"POST", "/embed",
       [&host](const httplib::Request& req, httplib::Response& res) { seed_embed(host, req, res); }},
  };
}

}  // namespace tars::node
