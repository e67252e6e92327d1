#pragma once
// The checks request_params.cpp builds its parsers from, for the parsers of
// other APIs in their own files (anthropic_params.cpp). Every one throws
// tars::Error(kInvalidArgument) naming the field.

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/json_schema.h"
#include "engine/sampler.h"

namespace tars::node::params_detail {

using json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& field, const std::string& what);
// A value checked on its own, named `label` in errors.
double number_value(const json& v, const std::string& label, double lo, double hi);
int64_t integer_value(const json& v, const std::string& label, int64_t lo, int64_t hi);
bool boolean_value(const json& v, const std::string& label);
// body[field] checked.
double number(const json& body, const char* field, double lo, double hi);
int64_t integer(const json& body, const char* field, int64_t lo, int64_t hi);
bool boolean(const json& body, const char* field);
// The body must be an object of known keys; its "model" (or "").
std::string known_keys_and_model(const json& body, const std::set<std::string>& known);
// OpenAI's "tools" array of body, checked (names unique, at most kMaxTools).
json parse_tools(const json& body);
// The same check of a tools array (another API's tools converted to
// OpenAI's function objects), errors naming "tools[i]...".
json check_tools(const json& tools);
// The calls of a conversation so far (call id, function name), and the
// name of the last one with `id` ("" when none): what a tool message
// answering it is named in templates.
using CallNames = std::vector<std::pair<std::string, std::string>>;
std::string call_name(const CallNames& calls, const std::string& id);
// body's "stop": a string or up to 16 strings.
std::vector<std::string> stop_strings(const json& body);
// OpenAI's logit_bias object ({"token id": bias}) into `s`.
void logit_bias_object(const json& lb, engine::SamplerOptions& s);
// A JSON schema compiled for structured output.
std::shared_ptr<const engine::JsonSchema> schema_of(const json& schema, const std::string& field);

}  // namespace tars::node::params_detail
