// llama-server's own completion bodies (request_params.h): POST /completion
// and /infill.
#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"
#include "node/json_int.h"
#include "node/request_params.h"
#include "node/request_params_detail.h"

namespace tars::node {

using namespace params_detail;

namespace {

// A token id in a request: an integer from 0 to INT32_MAX (the model's
// vocabulary is checked when the prompt is built).
int32_t token_in(const json& v, const std::string& label) {
  const auto id = json_int_in(v, 0, INT32_MAX);
  if (!id) bad(label, "must be a token id (an integer from 0) or a string, got " + v.dump());
  return static_cast<int32_t>(*id);
}

// "prompt": a string, token ids, both mixed, or one of these in an array of
// one (several prompts in one request are refused).
std::vector<PromptPart> prompt_parts(const json& pr) {
  std::vector<PromptPart> parts;
  if (pr.is_string()) {
    parts.push_back({-1, pr.get<std::string>()});
    return parts;
  }
  if (!pr.is_array()) bad("prompt", std::string("must be a string or an array of token ids and strings, got ") + pr.type_name());
  // [[...]] or ["text"]: one prompt in a list.
  const bool nested = pr.size() == 1 && pr[0].is_array();
  const json& items = nested ? pr[0] : pr;
  size_t strings = 0;
  for (const auto& x : items) strings += x.is_string();
  bool numbers = false;
  for (const auto& x : items) numbers = numbers || x.is_number();
  if (!nested && strings > 1 && !numbers) {
    bad("prompt", "holds " + std::to_string(strings) + " prompts; tars answers one prompt per request");
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string label = nested ? "prompt[0][" + std::to_string(i) + "]" : "prompt[" + std::to_string(i) + "]";
    const json& x = items[i];
    if (x.is_string()) parts.push_back({-1, x.get<std::string>()});
    else if (x.is_array()) bad("prompt", "holds several prompts; tars answers one prompt per request");
    else parts.push_back({token_in(x, label), ""});
  }
  return parts;
}

// A sampler tars does not have: accepted only at the value that turns it
// off (`off` tells).
template <typename Off>
void only_off(const json& body, const char* field, const char* what, Off off) {
  if (!body.contains(field) || body[field].is_null()) return;
  const json& v = body[field];
  if (!v.is_number() && !v.is_boolean() && !v.is_string() && !v.is_array() && !v.is_object()) {
    bad(field, std::string("has the wrong type: ") + v.type_name());
  }
  if (!off(v)) bad(field, std::string("is not supported: tars has no ") + what + " (leave it out, or " + v.dump() + " off)");
}

bool number_is(const json& v, double x) { return v.is_number() && v.get<double>() == x; }

// logit_bias as llama-server takes it: [[id, bias or false], ...] (false
// bans the token), or OpenAI's object of id strings (request_params.cpp's
// check, through generation_parse).
void logit_bias(const json& lb, engine::SamplerOptions& s) {
  if (!lb.is_array()) bad("logit_bias", std::string("must be an array of [token id, bias] pairs or an object, got ") + lb.type_name());
  if (lb.size() > 1024) bad("logit_bias", "has more than 1024 tokens");
  for (size_t i = 0; i < lb.size(); ++i) {
    const std::string label = "logit_bias[" + std::to_string(i) + "]";
    const json& pair = lb[i];
    if (!pair.is_array() || pair.size() != 2) bad(label, "must be a [token id, bias] pair, got " + pair.dump());
    if (pair[0].is_string()) bad(label, "names a token by its text; tars takes token ids here (see /tokenize)");
    const int32_t id = token_in(pair[0], label + "[0]");
    float bias = 0;
    if (pair[1].is_boolean()) {
      if (pair[1].get<bool>()) bad(label + "[1]", "must be a number or false (the token is never chosen)");
      bias = -INFINITY;
    } else {
      bias = static_cast<float>(number_value(pair[1], label + "[1]", -100, 100));
    }
    s.logit_bias.emplace_back(id, bias);
  }
}

// "samplers": the steps to apply, by name. The ones tars applies keep their
// order (penalties, top_k, top_p, min_p, infill, temperature); one left out
// is off.
void samplers(const json& list, engine::SamplerOptions& s) {
  if (!list.is_array()) bad("samplers", std::string("must be an array of sampler names, got ") + list.type_name());
  static const std::vector<std::string> order = {"penalties", "top_k", "top_p", "min_p", "infill", "temperature"};
  // Names tars accepts and does nothing for (their settings must be off).
  static const std::set<std::string> neutral = {"dry", "typ_p", "typical_p", "xtc", "top_n_sigma"};
  std::set<std::string> seen;
  int last = -1;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string label = "samplers[" + std::to_string(i) + "]";
    if (!list[i].is_string()) bad(label, "must be a sampler name, got " + list[i].dump());
    std::string name = list[i].get<std::string>();
    if (name == "top-k") name = "top_k";
    if (name == "top-p" || name == "nucleus") name = "top_p";
    if (name == "min-p") name = "min_p";
    if (name == "temp") name = "temperature";
    if (neutral.count(name)) continue;
    const auto it = std::find(order.begin(), order.end(), name);
    if (it == order.end()) {
      bad(label, "is \"" + name + "\", which is not a sampler tars knows (penalties, top_k, top_p, min_p, infill, "
                 "temperature)");
    }
    const int at = static_cast<int>(it - order.begin());
    if (!seen.insert(name).second) bad(label, "names \"" + name + "\" again; each sampler applies once here");
    if (at < last) {
      bad("samplers", "puts \"" + name + "\" after \"" + order[last] +
                          "\"; tars applies penalties, top_k, top_p, min_p, infill and temperature in that order");
    }
    last = at;
  }
  if (!seen.count("penalties")) {
    s.repeat_penalty = 1;
    s.presence_penalty = 0;
    s.frequency_penalty = 0;
  }
  if (!seen.count("top_k")) s.top_k = 0;
  if (!seen.count("top_p")) s.top_p = 1;
  if (!seen.count("min_p")) s.min_p = 0;
  s.infill = seen.count("infill") > 0;
  if (!seen.count("temperature") && s.temperature > 0) s.temperature = 1;  // drawn from the plain distribution
}

}  // namespace

LlamaCompletionParams llama_completion_parse(const json& body, bool infill) {
  static const std::set<std::string> known = {
      "model", "prompt", "n_predict", "max_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty",
      "repeat_last_n", "presence_penalty", "frequency_penalty", "seed", "stop", "ignore_eos", "logit_bias",
      "n_probs", "json_schema", "stream", "cache_prompt", "return_tokens", "samplers", "response_fields",
      "id_slot", "n_keep", "t_max_predict_ms", "t_max_prompt_ms", "n_indent", "n_cmpl", "n",
      // samplers and options tars does not have: only their "off" values
      "typical_p", "mirostat", "mirostat_tau", "mirostat_eta", "dry_multiplier", "dry_base", "dry_allowed_length",
      "dry_penalty_last_n", "dry_sequence_breakers", "xtc_probability", "xtc_threshold", "dynatemp_range",
      "dynatemp_exponent", "top_n_sigma", "min_keep", "grammar", "post_sampling_probs", "timings_per_token",
      "return_progress", "lora", "n_discard", "n_cache_reuse", "image_data", "multimodal_data",
      // /infill
      "input_prefix", "input_suffix", "input_extra"};
  LlamaCompletionParams out;
  GenerationParams& p = out.gen;
  p.chat = false;
  p.model = known_keys_and_model(body, known);
  if (!infill) {
    for (const char* f : {"input_prefix", "input_suffix", "input_extra"}) {
      if (body.contains(f)) bad(f, "belongs to /infill");
    }
    if (!body.contains("prompt") || body["prompt"].is_null()) bad("prompt", "is required");
    p.prompt_parts = prompt_parts(body["prompt"]);
    if (p.prompt_parts.empty() || (p.prompt_parts.size() == 1 && p.prompt_parts[0].token < 0 &&
                                   p.prompt_parts[0].text.empty())) {
      bad("prompt", "must not be empty");
    }
  } else {
    p.fill = true;
    auto text = [&](const char* f) -> std::string {
      if (!body.contains(f) || body[f].is_null()) return "";
      if (!body[f].is_string()) bad(f, std::string("must be a string, got ") + body[f].type_name());
      return body[f].get<std::string>();
    };
    p.prompt = text("input_prefix");
    p.suffix = text("input_suffix");
    p.fill_middle = text("prompt");
    if (body.contains("input_extra") && !body["input_extra"].is_null()) {
      const json& extra = body["input_extra"];
      if (!extra.is_array()) bad("input_extra", std::string("must be an array of {filename, text}, got ") + extra.type_name());
      for (size_t i = 0; i < extra.size(); ++i) {
        const std::string label = "input_extra[" + std::to_string(i) + "]";
        const json& x = extra[i];
        if (!x.is_object()) bad(label, "must be an object with filename and text");
        for (auto it = x.begin(); it != x.end(); ++it) {
          if (it.key() != "filename" && it.key() != "text") bad(label + "." + it.key(), "is not a known field (filename, text)");
        }
        FillFile file;
        if (x.contains("filename")) {
          if (!x["filename"].is_string()) bad(label + ".filename", "must be a string");
          file.name = x["filename"].get<std::string>();
        }
        if (!x.contains("text") || !x["text"].is_string()) bad(label + ".text", "must be a string");
        file.text = x["text"].get<std::string>();
        p.fill_files.push_back(std::move(file));
      }
    }
  }

  // n_predict (-1: until the context is full; 0: read the prompt only).
  for (const char* f : {"max_tokens", "n_predict"}) {
    if (body.contains(f) && !body[f].is_null()) {
      const int64_t n = integer(body, f, INT32_MIN, 1 << 24);
      p.max_tokens = n < 0 ? -1 : static_cast<int>(n);
    }
  }
  auto& s = p.sampling;
  // A temperature of 0 or less is greedy (llama-server's probabilities still come).
  if (body.contains("temperature") && !body["temperature"].is_null()) {
    s.temperature = static_cast<float>(std::max(0.0, number(body, "temperature", -1e9, 1e9)));
  }
  if (body.contains("top_k") && !body["top_k"].is_null()) {
    s.top_k = static_cast<int>(std::max<int64_t>(0, integer(body, "top_k", INT32_MIN, INT32_MAX)));  // <= 0: off
  }
  if (body.contains("top_p") && !body["top_p"].is_null()) s.top_p = static_cast<float>(number(body, "top_p", 0, 1));
  if (body.contains("min_p") && !body["min_p"].is_null()) s.min_p = static_cast<float>(number(body, "min_p", 0, 1));
  if (body.contains("repeat_penalty") && !body["repeat_penalty"].is_null()) {
    s.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 0, 10));
  }
  if (body.contains("repeat_last_n") && !body["repeat_last_n"].is_null()) {
    s.penalty_last_n = static_cast<int>(integer(body, "repeat_last_n", -1, 1 << 20));
  }
  if (body.contains("presence_penalty") && !body["presence_penalty"].is_null()) {
    s.presence_penalty = static_cast<float>(number(body, "presence_penalty", -2, 2));
  }
  if (body.contains("frequency_penalty") && !body["frequency_penalty"].is_null()) {
    s.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", -2, 2));
  }
  if (body.contains("seed") && !body["seed"].is_null()) {
    // -1 (and 4294967295, the same in llama-server's 32 bits): a random seed.
    const int64_t seed = integer(body, "seed", INT64_MIN, INT64_MAX);
    s.seed = seed == 0xFFFFFFFFll ? engine::kSeedRandom : static_cast<uint64_t>(seed);
  }
  p.stop = stop_strings(body);
  if (body.contains("ignore_eos") && !body["ignore_eos"].is_null()) p.ignore_eos = boolean(body, "ignore_eos");
  if (body.contains("logit_bias") && !body["logit_bias"].is_null()) {
    const json& lb = body["logit_bias"];
    if (lb.is_object()) logit_bias_object(lb, s);  // OpenAI's form
    else logit_bias(lb, s);
  }
  if (body.contains("n_probs") && !body["n_probs"].is_null()) {
    out.n_probs = static_cast<int>(integer(body, "n_probs", 0, 20));
    p.logprobs = out.n_probs > 0;
    p.top_logprobs = out.n_probs;
  }
  if (body.contains("json_schema") && !body["json_schema"].is_null()) {
    p.json_schema = schema_of(body["json_schema"], "json_schema");
    if (p.ignore_eos) bad("ignore_eos", "cannot be used with a JSON schema (generation ends with the value)");
  }
  if (body.contains("stream") && !body["stream"].is_null()) p.stream = boolean(body, "stream");
  if (body.contains("cache_prompt") && !body["cache_prompt"].is_null()) p.cache_prompt = boolean(body, "cache_prompt");
  if (body.contains("return_tokens") && !body["return_tokens"].is_null()) {
    out.return_tokens = boolean(body, "return_tokens");
  }
  if (body.contains("samplers") && !body["samplers"].is_null()) samplers(body["samplers"], s);
  if (body.contains("response_fields") && !body["response_fields"].is_null()) {
    const json& rf = body["response_fields"];
    if (!rf.is_array()) bad("response_fields", std::string("must be an array of field names, got ") + rf.type_name());
    for (const auto& f : rf) {
      if (!f.is_string()) bad("response_fields", "must be an array of field names, got " + f.dump());
      out.response_fields.push_back(f.get<std::string>());
    }
  }
  // The scheduler chooses the slot (the one whose cache holds most of the
  // prompt), so a slot asked for is only type-checked.
  if (body.contains("id_slot") && !body["id_slot"].is_null()) integer(body, "id_slot", -1, INT32_MAX);
  // tars never shifts the context (a generation ends when it is full), so
  // there are no tokens to keep; type-checked.
  for (const char* f : {"n_keep", "n_discard"}) {
    if (body.contains(f) && !body[f].is_null()) integer(body, f, -1, INT32_MAX);
  }
  if (body.contains("t_max_predict_ms") && !body["t_max_predict_ms"].is_null()) {
    out.t_max_predict_ms = integer(body, "t_max_predict_ms", 0, INT64_MAX / 1000);
  }
  // A time limit on reading the prompt: llama-server takes it and does
  // nothing with it either; type-checked.
  if (body.contains("t_max_prompt_ms") && !body["t_max_prompt_ms"].is_null()) {
    integer(body, "t_max_prompt_ms", -1, INT64_MAX / 1000);
  }
  if (body.contains("n_indent") && !body["n_indent"].is_null()) {
    out.n_indent = static_cast<int>(integer(body, "n_indent", 0, 1 << 20));
  }
  for (const char* f : {"n_cmpl", "n"}) {
    if (body.contains(f) && !body[f].is_null() && integer(body, f, 1, 1) != 1) bad(f, "must be 1");
  }
  if (body.contains("n_cache_reuse") && !body["n_cache_reuse"].is_null()) integer(body, "n_cache_reuse", 0, INT32_MAX);

  // What tars does not have, at the values that turn it off.
  only_off(body, "typical_p", "locally typical sampling", [](const json& v) { return v.is_number() && v.get<double>() >= 1; });
  only_off(body, "mirostat", "Mirostat sampling", [](const json& v) { return number_is(v, 0); });
  only_off(body, "dry_multiplier", "DRY repetition penalty", [](const json& v) { return number_is(v, 0); });
  only_off(body, "xtc_probability", "XTC sampling", [](const json& v) { return number_is(v, 0); });
  only_off(body, "dynatemp_range", "dynamic temperature", [](const json& v) { return number_is(v, 0); });
  only_off(body, "top_n_sigma", "top-n-sigma sampling", [](const json& v) { return v.is_number() && v.get<double>() <= 0; });
  only_off(body, "min_keep", "min_keep", [](const json& v) { return v.is_number_integer() && v.get<int64_t>() <= 1; });
  only_off(body, "grammar", "GBNF grammars (json_schema is supported)",
           [](const json& v) { return v.is_string() && v.get_ref<const std::string&>().empty(); });
  only_off(body, "post_sampling_probs", "probabilities after sampling", [](const json& v) { return v == false; });
  only_off(body, "timings_per_token", "timings per token (the last answer has them)", [](const json& v) { return v == false; });
  only_off(body, "return_progress", "prompt progress events", [](const json& v) { return v == false; });
  only_off(body, "lora", "LoRA adapters", [](const json& v) { return v.is_array() && v.empty(); });
  only_off(body, "image_data", "images (tars serves text models)", [](const json& v) { return v.is_array() && v.empty(); });
  only_off(body, "multimodal_data", "images or audio (tars serves text models)",
           [](const json& v) { return v.is_array() && v.empty(); });
  // The settings of those samplers: type-checked, no effect while they are off.
  for (const char* f : {"mirostat_tau", "mirostat_eta", "dry_base", "xtc_threshold", "dynatemp_exponent"}) {
    if (body.contains(f) && !body[f].is_null()) number(body, f, -1e9, 1e9);
  }
  for (const char* f : {"dry_allowed_length", "dry_penalty_last_n"}) {
    if (body.contains(f) && !body[f].is_null()) integer(body, f, -1, INT32_MAX);
  }
  if (body.contains("dry_sequence_breakers") && !body["dry_sequence_breakers"].is_null()) {
    const json& b = body["dry_sequence_breakers"];
    if (!b.is_array()) bad("dry_sequence_breakers", "must be an array of strings");
    for (const auto& x : b) {
      if (!x.is_string()) bad("dry_sequence_breakers", "must be an array of strings");
    }
  }
  return out;
}

}  // namespace tars::node
