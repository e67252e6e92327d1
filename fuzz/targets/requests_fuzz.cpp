// libFuzzer target: request bodies and messages from other nodes through
// every parser that reads them. The first byte picks the parser and the
// mode (its top bit):
//   0 / 1  generation_parse, chat / completion (POST /v1/chat/completions,
//          /v1/completions, /inference; node/request_params.h)
//   2 / 3  embedding_parse, OpenAI / seed (POST /v1/embeddings, /embed; 3 also
//          llama-server's POST /embedding)
//   4      devices_from_json (the devices of node.register and node.heartbeat)
//   5      heartbeat_from_json (node.heartbeat params)
//   6      RouteTable::entries_from_json (the routes a heartbeat answer carries),
//          and the replicas' URLs through prometheus_targets
//   7      devices_parse_simulated (the --simulate-devices file, as text)
//   8 / 9  tokenize_parse / detokenize_parse (POST /tokenize, /detokenize)
//   10/11  ollama_generation_parse, chat / generate (POST /api/chat, /api/generate)
//   12/13  ollama_embed_parse, /api/embed / legacy /api/embeddings
//   14     parse_tool_calls / tool_call_content_prefix on the bytes as a
//          model's answer (node/tool_calls.h), every format; and the
//          answer split into thought and answer (node/reasoning.h), whole
//          and in pieces, which must agree
//   15     the bytes as a value read from the embedding cache's Redis
//          (decode_cached_embedding), as a redis:// URL (parse_redis_url)
//          and as GET /usage's parameters (usage_query_parse)
//   16     rerank_parse, llama-server's and TEI's shapes (POST /v1/rerank,
//          /rerank)
//   17     anthropic_parse, messages and count_tokens (POST /v1/messages,
//          /v1/messages/count_tokens)
//   18     responses_parse (POST /v1/responses)
//   19/20  llama_completion_parse, /completion / /infill (llama-server's own API)
// (the low four bits, plus 16 when bit 6 is set, modulo 21;
// ollama_show_parse runs on 13's document too)
// Edit mode (top bit clear): the parser's valid document below is edited by
// the following bytes, two per edit: which node of the document (in
// pre-order) and what it becomes (another type, a value at the edge of its
// type, removed, wrapped, a key added...). Byte-level mutations of JSON text
// almost never turn a string into a number inside an array of objects, and
// that is where a parser forgets a type check; these edits do it directly.
// Raw mode (top bit set): the rest is JSON text, as a client sends it; text
// that is not JSON is left out (the HTTP and JSON-RPC layers answer it before
// any of these parsers runs).
//
// What must hold: a parser returns, or throws tars::Error with the code its
// header names and a message. Anything else (a json::type_error from a field
// of the wrong type, a float cast out of range under UBSan) escapes and is a
// finding: the HTTP layer would answer it with a 500 "internal error"
// instead of a 400 naming the field. What a parser accepts must keep its
// documented bounds, and the inventory, heartbeat and route readers must read
// back what their writers write.
// FUZZ_DEBUG=1 prints the document and the parser's error.
//
// Seeds: requests_seeds/ (each parser's document unedited, and a few edits);
// requests.dict: field names and edge values for raw mode.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cluster/cluster_metrics.h"
#include "cluster/membership.h"
#include "cluster/route_table.h"
#include "common/error.h"
#include "engine/chat_template.h"
#include "node/devices.h"
#include "node/embed_cache.h"
#include "node/usage_log.h"
#include "node/reasoning.h"
#include "node/request_params.h"
#include "node/tool_calls.h"

using nlohmann::json;
using tars::Error;
using tars::ErrorCode;
using tars::node::kMaxEmbeddingInputs;

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "requests_fuzz: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) finding(what);
}

// --- the documents edit mode starts from: one valid input per parser ---

const char* const kDevices = R"({
  "simulated": true, "source": "pc1.json", "detection": "simulated", "cuda_driver_version": 13000,
  "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3060", "uuid": "GPU-1", "total_memory": 12884901888,
            "free_memory": 12348030976, "compute_capability": "8.6", "driver_version": "580.95.05",
            "temperature": 41, "utilization": 0,
            "sources": {"identity": "simulated", "total_memory": "simulated", "free_memory": "simulated",
                        "compute_capability": "simulated", "temperature": "simulated", "utilization": "simulated"}}],
  "cpu": {"model_name": "AMD EPYC", "physical_cores": 2, "logical_cores": 4, "simd": ["avx2", "fma"],
          "ram_total": 25276502016, "ram_available": 24802267136,
          "sources": {"cores": "procfs", "model_name": "cpuid", "ram": "procfs", "simd": "cpuid"}},
  "warnings": ["one"]})";

json parse_base_document(int which) {
  switch (which) {
    case 0:
      return json::parse(R"({"model": "story", "messages": [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]}], "max_tokens": 8, "temperature": 0.7,
        "top_p": 0.9, "top_k": 40, "min_p": 0.05, "stop": ["\n", "END"], "seed": 7, "stream": true,
        "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 3, "presence_penalty": 0.5,
        "frequency_penalty": -0.5, "repeat_penalty": 1.1, "repeat_last_n": 64, "n": 1, "ignore_eos": false,
        "tools": [], "tool_choice": "auto", "logit_bias": {"15": -100, "7": 2.5}, "response_format": {"type": "text"},
        "cache_prompt": true, "reasoning_format": "auto", "chat_template_kwargs": {"enable_thinking": false}})");
    case 1:
      return json::parse(R"({"model": "story", "prompt": "Once upon a time", "max_completion_tokens": 16,
        "logprobs": 2, "stop": "The end", "echo": false, "seed": null, "user": "u", "best_of": 1, "suffix": ""})");
    case 2:
      return json::parse(R"({"model": "minilm", "input": ["one sentence", "another"], "encoding_format": "base64",
        "dimensions": 384, "user": "u", "truncate": true, "normalize": false})");
    case 3:
      return json::parse(R"({"model": "minilm", "texts": [[101, 2023, 102], [101, 102]], "normalize": true,
        "truncate": false})");
    case 4:
    case 7:
      return json::parse(kDevices);
    case 8:
      return json::parse(R"({"model": "story", "content": "Once upon a time", "add_special": true,
        "parse_special": false, "with_pieces": true})");
    case 9:
      return json::parse(R"({"model": "story", "tokens": [1, 403, 407, 261, 378]})");
    case 10:
      return json::parse(R"({"model": "story", "messages": [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": "Hi", "images": []}, {"role": "assistant", "content": "Yo", "thinking": ""}],
          "stream": false, "keep_alive": "5m", "format": "", "think": false,
          "options": {"temperature": 0.7, "top_k": 20, "top_p": 0.8, "min_p": 0.05, "seed": 42, "num_predict": 16,
                      "stop": ["\n"], "repeat_penalty": 1.1, "repeat_last_n": 32, "num_ctx": 4096, "use_mmap": true,
                      "mirostat": 0, "typical_p": 1.0}})");
    case 11:
      return json::parse(R"({"model": "story", "prompt": "Once upon a time", "system": "Tell stories.", "raw": false,
          "stream": true, "keep_alive": 300, "options": {"num_predict": -1, "temperature": 0}})");
    case 12:
      return json::parse(R"({"model": "minilm", "input": ["one sentence", "another"], "truncate": true,
          "dimensions": 384, "keep_alive": "1m", "options": {"num_thread": 2}})");
    case 13:
      return json::parse(R"({"model": "minilm", "prompt": "one sentence", "keep_alive": 0,
          "options": {"num_ctx": 512}})");
    case 16:
      return json::parse(R"({"model": "rank", "query": "which card", "documents": ["a", {"text": "b"}, ""],
                             "top_n": 1, "return_documents": true, "truncate": true})");
    case 17:
      return json::parse(R"({"model": "story", "max_tokens": 16, "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "Weather?"},
                     {"role": "assistant", "content": [{"type": "thinking", "thinking": "Look it up.", "signature": ""},
                       {"type": "text", "text": "Checking."},
                       {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny",
                       "is_error": false}, {"type": "text", "text": "And tomorrow?"}]}],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object",
                   "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "auto"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stream": true,
        "metadata": {"user_id": "u"}})");
    case 18:
      return json::parse(R"({"model": "story", "instructions": "Be brief.", "max_output_tokens": 16,
        "input": [{"role": "developer", "content": "Use tools."},
                  {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                  {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "Look."}]},
                  {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                  {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
                  {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"}}}, "strict": true}],
        "tool_choice": "auto", "text": {"format": {"type": "text"}, "verbosity": "low"},
        "reasoning": {"effort": "low"}, "temperature": 0.5, "top_p": 0.9, "stream": true, "store": false,
        "truncation": "auto", "metadata": {"k": "v"}, "parallel_tool_calls": true})");
    case 19:
      return json::parse(R"({"model": "story", "prompt": [1, "Once upon a time", 403], "n_predict": 16,
        "temperature": 0.7, "top_k": 40, "top_p": 0.9, "min_p": 0.05, "repeat_penalty": 1.1, "repeat_last_n": 64,
        "presence_penalty": 0, "frequency_penalty": 0, "seed": 42, "stop": ["\n"], "ignore_eos": false,
        "logit_bias": [[15, -1.5], [16, false]], "n_probs": 2, "stream": true, "cache_prompt": true,
        "return_tokens": true, "samplers": ["penalties", "dry", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"],
        "response_fields": ["content", "timings/predicted_n"], "id_slot": -1, "n_keep": 0, "t_max_predict_ms": 500,
        "n_indent": 2, "typical_p": 1.0, "mirostat": 0, "mirostat_tau": 5.0, "dry_multiplier": 0,
        "dry_sequence_breakers": ["\n"], "xtc_probability": 0, "grammar": "", "json_schema": {"type": "object"}})");
    case 20:
      return json::parse(R"({"model": "coder", "input_prefix": "def f():\n", "input_suffix": "\nf()\n",
        "input_extra": [{"filename": "a.py", "text": "A = 1\n"}], "prompt": "  re", "n_predict": 32,
        "t_max_prompt_ms": 500, "t_max_predict_ms": 250, "samplers": ["top_k", "top_p"], "top_k": 40, "top_p": 0.9,
        "stream": false, "cache_prompt": true, "n_indent": 4})");
    case 5:
      return {{"devices", json::parse(kDevices)},
              {"models", json::parse(R"([{"id": "story", "role": "chat", "state": "loaded", "busy": 1, "queued": 0},
                                         {"id": "minilm", "role": "embedding", "state": "loading", "busy": 0,
                                          "queued": 3}])")},
              {"queue_depth", 2}};
    default:
      return json::parse(R"({"version": 3, "routes": [{"model": "story", "role": "chat", "replicas": [
        {"node_id": "a1", "node_name": "pc1", "url": "http://127.0.0.1:8000", "load": 1, "loaded": true},
        {"node_id": "b2", "url": "http://127.0.0.1:8001"}]}]})");
  }
}

constexpr int kParsers = 21;

// Parsed once: parsing them again for every input cost most of the time.
const json& base_document(int which) {
  static const std::vector<json> docs = [] {
    std::vector<json> d;
    for (int i = 0; i < kParsers; ++i) d.push_back(parse_base_document(i));
    return d;
  }();
  return docs[which];
}

// --- edits ---

// Values of the document counted in pre-order; *bytes: about its size as text.
size_t count_nodes(const json& v, size_t* bytes) {
  size_t n = 1;
  *bytes += 4 + (v.is_string() ? v.get_ref<const std::string&>().size() : 0);
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      *bytes += it.key().size();
      n += count_nodes(it.value(), bytes);
    }
  } else if (v.is_array()) {
    for (const auto& x : v) n += count_nodes(x, bytes);
  }
  return n;
}

// Value number *left (pre-order) of v, with its parent (null for the root)
// and its key or index there.
struct Node {
  json* value = nullptr;
  json* parent = nullptr;
  std::string key;
  size_t index = 0;
};

bool find_node(json& v, json* parent, const std::string& key, size_t index, size_t* left, Node* out) {
  if ((*left)-- == 0) {
    *out = {&v, parent, key, index};
    return true;
  }
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (find_node(it.value(), &v, it.key(), 0, left, out)) return true;
    }
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (find_node(v[i], &v, "", i, left, out)) return true;
    }
  }
  return false;
}

// A value short enough to copy a few thousand times.
bool small(const json& v) { return v.is_primitive() && (!v.is_string() || v.get_ref<const std::string&>().size() <= 8); }

json replacement(int kind, const json& old) {
  switch (kind) {
    case 0: return nullptr;
    case 1: return true;
    case 2: return false;
    case 3: return 0;
    case 4: return -1;
    case 5: return 1e300;
    case 6: return -1e300;
    case 7: return 0.5;
    case 8: return INT64_MAX;
    case 9: return UINT64_MAX;
    case 10: return INT64_MIN;
    case 11: return int64_t{1} << 31;
    case 12: return "";
    case 13: return "x";
    case 14: return "12GiB";
    case 15: return "8.6";
    case 16: return json::array();
    case 17: return json::object();
    case 18: return json::array({0});
    case 19: return json::array({"x"});
    case 20: return json{{"x", 1}};
    case 21: return json::array({old});
    case 22: return json{{"x", old}};
    case 23: return json::array({old, old});
    case 24: return json(std::vector<json>(17, small(old) ? old : json("x")));  // one over the 16 stop strings
    case 25: return json(std::vector<json>(kMaxEmbeddingInputs + 1, small(old) ? old : json("x")));
    default: return old.is_number() ? json(-old.get<double>()) : json(old.dump());
  }
}
constexpr int kKinds = 29;  // 0..26 above, 27: remove it, 28: add an unknown key to the object (or
                            // append to the array) holding it

// Returns false, editing nothing, once the document has grown past 24 KiB
// as text (wrapped and copied again and again, it would grow without bound).
bool apply_edit(json& doc, uint8_t where, uint8_t what) {
  size_t bytes = 0;
  const size_t nodes = count_nodes(doc, &bytes);
  if (bytes > 24576) return false;
  size_t left = where % nodes;
  Node n;
  find_node(doc, nullptr, "", 0, &left, &n);
  const int kind = what % kKinds;
  if (kind == 27 || kind == 28) {
    if (!n.parent) return true;
    if (kind == 27) {
      if (n.parent->is_object()) n.parent->erase(n.key);
      else n.parent->erase(n.index);
    } else if (n.parent->is_object()) {
      (*n.parent)["unknown_" + n.key] = *n.value;
    } else {
      n.parent->push_back(*n.value);
    }
    return true;
  }
  *n.value = replacement(kind, *n.value);
  return true;
}

// --- what an accepted input must satisfy ---

// load_only: Ollama's load request (no messages, or an empty prompt).
void check_generation(const tars::node::GenerationParams& p, bool chat, float max_temperature = 2.0f,
                      bool load_only = false) {
  check(p.chat == chat, "generation: chat flag");
  check(p.suffix.empty() || !chat, "generation: a suffix (fill in the middle) in a chat");
  check(p.template_variables.is_object(), "generation: template variables not an object");
  for (auto it = p.template_variables.begin(); it != p.template_variables.end(); ++it) {
    check(!tars::engine::chat_template_reserved_variable(it.key()), "generation: a template variable the server sets");
  }
  if (chat) {
    check(load_only || !p.messages.empty(), "generation: a chat without messages");
    for (const auto& m : p.messages) {
      check(m.role == "system" || m.role == "user" || m.role == "assistant" || m.role == "tool", "generation: a role");
      check(m.tool_calls.empty() || m.role == "assistant", "generation: tool calls outside an assistant message");
      for (const auto& c : m.tool_calls) check(!c.name.empty() && c.arguments.is_object(), "generation: a tool call");
      check(m.reasoning_content.empty() || m.role == "assistant", "generation: thoughts outside an assistant message");
    }
    check(p.tools.is_array() && p.tools.size() <= tars::node::kMaxTools, "generation: tools");
    for (const auto& t : p.tools) check(t["function"]["name"].is_string(), "generation: a tool without a name");
  } else {
    check(load_only || !p.prompt.empty() || !p.prompt_parts.empty() || !p.suffix.empty(),
          "generation: an empty prompt (and no suffix)");
    check(p.prompt_parts.empty() || (p.prompt.empty() && p.suffix.empty()), "generation: token ids and text");
    for (const auto& part : p.prompt_parts) check(part.token >= 0, "generation: a prompt's token id");
  }
  check(p.max_tokens == -1 || (p.max_tokens >= 1 && p.max_tokens <= (1 << 24)), "generation: max_tokens");
  check(p.top_logprobs >= 0 && p.top_logprobs <= 20, "generation: top_logprobs");
  check(p.stop.size() <= 16, "generation: more than 16 stop strings");
  const auto& s = p.sampling;
  check(s.temperature >= 0.0f && s.temperature <= max_temperature, "generation: temperature");
  check(s.top_p >= 0.0f && s.top_p <= 1.0f, "generation: top_p");
  check(s.min_p >= 0.0f && s.min_p <= 1.0f, "generation: min_p");
  check(s.top_k >= 0, "generation: top_k");
  for (const auto& [id, bias] : s.logit_bias) {
    check(id >= 0 && bias >= -100.0f && bias <= 100.0f, "generation: a logit bias");
  }
}

void check_embedding(const tars::node::EmbeddingParams& p) {
  check(p.texts.empty() || p.tokens.empty(), "embedding: texts and token ids mixed");
  check(p.size() >= 1 && p.size() <= tars::node::kMaxEmbeddingInputs, "embedding: input count");
  for (const auto& t : p.texts) check(!t.empty(), "embedding: an empty text");
  for (const auto& ids : p.tokens) {
    check(!ids.empty(), "embedding: an empty token list");
    for (int32_t id : ids) check(id >= 0, "embedding: a negative token id");
  }
}

// What devices_to_json writes, devices_from_json reads back unchanged.
void check_devices_round_trip(const tars::node::DeviceInventory& inv) {
  const json once = tars::node::devices_to_json(inv);
  const json twice = tars::node::devices_to_json(tars::node::devices_from_json(once));
  check(once == twice, "devices: to_json(from_json(to_json(x))) != to_json(x)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = ((data[0] & 15) | ((data[0] & 0x40) >> 2)) % kParsers;
  const bool raw = (data[0] & 0x80) != 0;
  if (which == 15) {  // what another program may have left in Redis: any bytes
    const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    for (int dim : {1, 2, 4, 64, 384, static_cast<int>((size > 17 ? size - 17 : 0) / 4)}) {
      const auto e = tars::node::decode_cached_embedding(bytes, dim);
      if (!e) continue;
      check(e->values.size() == static_cast<size_t>(dim), "cache: a vector of another dimension");
      check(e->n_tokens >= 1 && e->n_tokens <= e->n_tokens_input, "cache: impossible token counts");
      for (float f : e->values) check(std::isfinite(f), "cache: a value that is not finite");
      check(tars::node::encode_cached_embedding(*e) == bytes, "cache: encode(decode(x)) != x");
    }
    // And as GET /usage's query parameters (usage_log.h): since, until, group.
    try {
      const size_t third = bytes.size() / 3;
      const auto q = tars::node::usage_query_parse(std::string(bytes.substr(0, third)),
                                                   std::string(bytes.substr(third, third)),
                                                   std::string(bytes.substr(2 * third)));
      check(q.group == "model" || q.group == "day" || q.group == "node", "usage: another group");
      for (const std::string* t : {&q.since, &q.until}) {
        check(t->size() <= 64 && t->find_first_of("'\";\\") == std::string::npos, "usage: a time with quotes");
      }
    } catch (const Error& e) {
      check(e.code() == ErrorCode::kInvalidArgument, "usage: an error with another code");
    }
    try {
      const tars::node::RedisAddress a = tars::node::parse_redis_url(std::string(bytes));
      check(!a.host.empty() && a.port >= 1 && a.port <= 65535 && a.db >= 0, "redis url: out of bounds");
    } catch (const Error& e) {
      check(e.code() == ErrorCode::kConfig, "redis url: an error with another code");
    }
    return 0;
  }
  if (which == 14) {  // a model's answer: any bytes
    static const json tools = json::parse(R"([{"type": "function", "function": {"name": "get_weather"}},
                                              {"type": "function", "function": {"name": "f"}}])");
    const std::string_view answer(reinterpret_cast<const char*>(data + 1), size - 1);
    for (auto format : {tars::node::ToolCallFormat::kHermes, tars::node::ToolCallFormat::kLlama3,
                        tars::node::ToolCallFormat::kMistral}) {
      const tars::node::ParsedAnswer a = tars::node::parse_tool_calls(answer, format, tools);
      for (const auto& c : a.calls) {
        check(c.name == "get_weather" || c.name == "f", "tool calls: an undeclared function");
        check(c.arguments.is_object(), "tool calls: arguments not an object");
      }
      check(!a.calls.empty() || a.content.size() <= answer.size(), "tool calls: content longer than the answer");
      // Streaming: what is released only grows, and never reaches into a call.
      size_t last = 0;
      for (size_t n = 0; n <= answer.size(); n += 1 + n / 8) {
        const size_t ready = tars::node::tool_call_content_prefix(answer.substr(0, n), format);
        check(ready <= n, "tool calls: more released than received");
        check(ready >= last || format == tars::node::ToolCallFormat::kLlama3, "tool calls: released text taken back");
        last = ready;
      }
    }
    // Thoughts: pieces of 1 to 8 bytes (sizes from the answer itself) give
    // what the whole answer gives, and no byte but blanks and tags is lost.
    for (const auto& tags : {tars::node::ReasoningTags{"<think>", "</think>"},
                             tars::node::ReasoningTags{"[THINK]", "[/THINK]"}}) {
      for (bool in_thought : {false, true}) {
        tars::node::ReasoningSplitter whole(tags, in_thought), cut(tags, in_thought);
        auto w = whole.push(answer);
        auto wf = whole.finish();
        w.thinking += wf.thinking;
        w.content += wf.content;
        tars::node::ReasoningSplitter::Parts c;
        for (size_t at = 0; at < answer.size();) {
          const size_t len = std::min<size_t>(1 + static_cast<unsigned char>(answer[at]) % 8, answer.size() - at);
          auto p = cut.push(answer.substr(at, len));
          c.thinking += p.thinking;
          c.content += p.content;
          at += len;
        }
        auto cf = cut.finish();
        c.thinking += cf.thinking;
        c.content += cf.content;
        check(c.thinking == w.thinking && c.content == w.content, "reasoning: pieces split unlike the whole");
        check(w.thinking.size() + w.content.size() <= answer.size(), "reasoning: more text than the answer");
      }
    }
    return 0;
  }
  json j;
  std::string text;
  if (raw) {
    text.assign(reinterpret_cast<const char*>(data + 1), size - 1);
    if (which != 7) {
      j = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) return 0;
    }
  } else {
    j = base_document(which);
    for (size_t i = 1; i + 1 < size && i < 1 + 2 * 16 && apply_edit(j, data[i], data[i + 1]); i += 2) {
    }
    if (which == 7) text = j.dump();
  }
  if (std::getenv("FUZZ_DEBUG")) {  // to read a finding: FUZZ_DEBUG=1 ./requests_fuzz <crash file>
    std::fprintf(stderr, "parser %d, %s: %s\n", which, raw ? "raw" : "edited", which == 7 ? text.c_str() : j.dump().c_str());
  }
  ErrorCode expected = ErrorCode::kInvalidArgument;
  try {
    switch (which) {
      case 0:
      case 1:
        check_generation(tars::node::generation_parse(j, which == 0), which == 0);
        break;
      case 2:
      case 3:
        if (which == 3) {  // llama-server's shape too, on the same document
          try {
            const tars::node::EmbeddingParams l = tars::node::embedding_parse(j, tars::node::EmbeddingApi::kLlama);
            check_embedding(l);
            check(!l.normalize && l.p_norm >= -1, "embedding: llama-server's normalization");
          } catch (const Error& e) {
            check(e.code() == ErrorCode::kInvalidArgument, "embedding: llama-server's shape, not kInvalidArgument");
          }
        }
        check_embedding(tars::node::embedding_parse(
            j, which == 2 ? tars::node::EmbeddingApi::kOpenAI : tars::node::EmbeddingApi::kSeed));
        break;
      case 4:
        check_devices_round_trip(tars::node::devices_from_json(j));
        break;
      case 5: {
        const json once = tars::cluster::heartbeat_to_json(tars::cluster::heartbeat_from_json(j));
        check(once == tars::cluster::heartbeat_to_json(tars::cluster::heartbeat_from_json(once)),
              "heartbeat: to_json(from_json(to_json(x))) != to_json(x)");
        break;
      }
      case 6: {
        uint64_t version = 0;
        tars::cluster::RouteTable table;
        table.set(tars::cluster::RouteTable::entries_from_json(j, &version), version);
        const json once = table.to_json();
        tars::cluster::RouteTable again;
        again.set(tars::cluster::RouteTable::entries_from_json(once, &version), version);
        check(once == again.to_json(), "routes: to_json(from_json(to_json(x))) != to_json(x)");
        // The replicas' URLs as members' addresses, through the Prometheus
        // service-discovery answer: a target is a bare host[:port].
        std::vector<tars::cluster::Member> members;
        for (const auto& e : table.entries()) {
          for (const auto& r : e.replicas) {
            tars::cluster::Member m;
            m.name = r.node_name;
            m.url = r.url;
            members.push_back(m);
          }
        }
        for (const json& g : tars::cluster::prometheus_targets(members)) {
          const std::string target = g["targets"][0].get<std::string>();
          check(!target.empty() && target.find('/') == std::string::npos, "targets: not a host:port");
          if (g["labels"].contains("__metrics_path__")) {
            const std::string path = g["labels"]["__metrics_path__"].get<std::string>();
            check(path.front() == '/' && path.ends_with("/metrics"), "targets: a metrics path");
          }
        }
        break;
      }
      case 8: {
        const tars::node::TokenizeParams t = tars::node::tokenize_parse(j);
        check(j.contains("content") && j["content"] == t.content, "tokenize: content");
        break;
      }
      case 9:
        for (int32_t id : tars::node::detokenize_parse(j).tokens) check(id >= 0, "detokenize: a negative id");
        break;
      case 10:
      case 11: {
        const auto o = tars::node::ollama_generation_parse(
            j, which == 10 ? tars::node::OllamaEndpoint::kChat : tars::node::OllamaEndpoint::kGenerate);
        check(!o.gen.model.empty(), "ollama: no model");
        // Options' temperature goes to 100 (Ollama sets no bound); a chat
        // without messages is a load request.
        check_generation(o.gen, o.gen.chat, 100.0f, o.load_only);
        check(o.load_only || o.gen.chat || o.gen.templated_prompt || !o.gen.suffix.empty(),
              "ollama: a raw prompt not marked as templated");
        check(o.gen.suffix.empty() || (!o.gen.chat && !o.gen.templated_prompt),
              "ollama: a suffix (fill in the middle) with a chat template or a raw prompt");
        if (which == 10) check(o.load_only == o.gen.messages.empty(), "ollama: load_only with messages");
        break;
      }
      case 12:
        check_embedding(tars::node::ollama_embed_parse(j, false));
        break;
      case 13: {
        const tars::node::EmbeddingParams e = tars::node::ollama_embed_parse(j, true);
        check(e.texts.size() <= 1 && e.tokens.empty() && !e.normalize, "ollama: a legacy embedding request");
        try {
          check(!tars::node::ollama_show_parse(j).empty(), "ollama: show without a model");
        } catch (const Error& se) {
          check(se.code() == ErrorCode::kInvalidArgument, "ollama show: an error with another code");
        }
        break;
      }
      case 16:
        // The document through both shapes (a body fits at most one).
        for (auto api : {tars::node::RerankApi::kJina, tars::node::RerankApi::kTei}) {
          try {
            const tars::node::RerankParams r = tars::node::rerank_parse(j, api);
            check(!r.documents.empty() && r.documents.size() <= tars::node::kMaxRerankDocuments, "rerank: document count");
            check(r.top_n >= 0, "rerank: a negative top_n");
            check(api == tars::node::RerankApi::kJina || r.top_n == 0, "rerank: top_n from TEI's shape");
            check(api == tars::node::RerankApi::kTei || r.raw_scores, "rerank: a sigmoid in llama-server's shape");
          } catch (const Error& e) {
            check(e.code() == ErrorCode::kInvalidArgument, "rerank: an error with another code");
            check(e.what()[0] != '\0', "rerank: an error without a message");
          }
        }
        break;
      case 17:
        // The body as a message and as a count (which refuses what only a message takes).
        for (bool count : {false, true}) {
          try {
            const tars::node::AnthropicParams a = tars::node::anthropic_parse(j, count);
            check_generation(a.gen, true);
            check(count || a.gen.max_tokens >= 1, "anthropic: no max_tokens");
            check(!a.gen.messages.empty() && a.gen.messages.back().role != "assistant", "anthropic: a prefilled answer");
            check(a.gen.template_variables.empty() || a.gen.template_variables.contains("enable_thinking"),
                  "anthropic: template variables other than enable_thinking");
          } catch (const Error& e) {
            check(e.code() == ErrorCode::kInvalidArgument, "anthropic: an error with another code");
            check(e.what()[0] != '\0', "anthropic: an error without a message");
          }
        }
        break;
      case 18: {
        const tars::node::ResponsesParams r = tars::node::responses_parse(j);
        check_generation(r.gen, true);
        check(!r.gen.messages.empty() && r.gen.messages.back().role != "assistant", "responses: nothing to answer");
        check(r.echo.contains("temperature") && r.echo.contains("tool_choice") && r.echo.contains("text"),
              "responses: settings the response repeats are missing");
        check(r.n_instructions <= 1 && r.n_instructions < r.gen.messages.size() &&
                  (r.n_instructions == 0 || r.gen.messages[0].role == "system"),
              "responses: the instructions' message");
        break;
      }
      case 19:
      case 20: {
        const tars::node::LlamaCompletionParams r = tars::node::llama_completion_parse(j, which == 20);
        const tars::node::GenerationParams& g = r.gen;
        check(!g.chat && g.fill == (which == 20), "llama: the kind of prompt");
        check(g.fill || !g.prompt_parts.empty(), "llama: a completion without a prompt");
        for (const auto& part : g.prompt_parts) check(part.token >= -1 && (part.token < 0 || part.text.empty()), "llama: a prompt part");
        check(g.max_tokens >= -1 && g.max_tokens <= (1 << 24), "llama: n_predict");
        check(r.n_probs >= 0 && r.n_probs <= 20 && g.logprobs == (r.n_probs > 0) && g.top_logprobs == r.n_probs,
              "llama: n_probs");
        check(g.stop.size() <= 16, "llama: more than 16 stop strings");
        const auto& s = g.sampling;
        check(std::isfinite(s.temperature) && s.temperature >= 0.0f, "llama: temperature");
        check(s.top_p >= 0.0f && s.top_p <= 1.0f && s.min_p >= 0.0f && s.min_p <= 1.0f && s.top_k >= 0,
              "llama: top_p, min_p, top_k");
        for (const auto& [id, bias] : s.logit_bias) {
          check(id >= 0 && ((bias >= -100.0f && bias <= 100.0f) || bias == -INFINITY), "llama: a logit bias");
        }
        check(r.t_max_predict_ms >= 0 && r.n_indent >= 0, "llama: limits");
        break;
      }
      case 7: {
        expected = ErrorCode::kConfig;
        tars::node::CpuInfo cpu;
        cpu.physical_cores = 2;
        cpu.logical_cores = 4;
        check_devices_round_trip(tars::node::devices_parse_simulated(text, "fuzz.json", cpu));
        break;
      }
    }
  } catch (const Error& e) {
    if (std::getenv("FUZZ_DEBUG")) std::fprintf(stderr, "error: %s\n", e.what());
    check(e.code() == expected, "an error with another code than the parser's");
    check(e.what()[0] != '\0', "an error without a message");
  }
  return 0;
}
