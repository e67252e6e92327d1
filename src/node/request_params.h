#pragma once
// The bodies of the generation and embedding requests, parsed and validated
// in one place: pure functions of the JSON (no model, no HTTP), so that the
// fuzz target fuzz/targets/requests_fuzz.cpp can call them on anything a
// client might send. Every error is a tars::Error(kInvalidArgument) that
// names the field and what is wrong with it.
//
// Bodies are nlohmann::ordered_json, objects in the client's key order: tool
// schemas and call arguments are printed into the prompt by the chat template
// (`tool | tojson`), and Hugging Face's rendering keeps the order they came in.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/json_schema.h"
#include "engine/sampler.h"
#include "node/config.h"

namespace tars::node {

// A function call an assistant message made earlier in the conversation.
struct ToolCallParam {
  std::string id;            // "" when the client gave none
  std::string name;
  nlohmann::ordered_json arguments;  // an object (OpenAI sends it as JSON text; it is parsed here)
  bool operator==(const ToolCallParam&) const = default;
};

// One message of a chat.
struct MessageParam {
  std::string role;     // system, user, assistant or tool ("developer" is system)
  std::string content;
  std::vector<ToolCallParam> tool_calls;  // assistant
  std::string tool_call_id;               // tool: the call it answers
  std::string name;                       // tool: the function's name, when given
  // assistant: a reasoning model's thoughts (OpenAI-compatible servers'
  // reasoning_content, Ollama's thinking), shown to templates that read them
  std::string reasoning_content;
  bool operator==(const MessageParam&) const = default;
};

// At most this many tools in one request (OpenAI's limit).
inline constexpr size_t kMaxTools = 128;

// A piece of a prompt given as token ids and texts mixed (llama-server's
// /completion: [12, 34, "text", 56]).
struct PromptPart {
  int32_t token = -1;  // >= 0: this token (checked against the model's vocabulary when submitted)
  std::string text;    // else this text, in the model's own format (special-token text is those tokens)
  bool operator==(const PromptPart&) const = default;
};

// A file shown to a code model before the text to fill (llama-server's
// /infill input_extra).
struct FillFile {
  std::string name;
  std::string text;
  bool operator==(const FillFile&) const = default;
};

// Parameters common to the generation endpoints. Field names are OpenAI's.
struct GenerationParams {
  std::string model;                 // "" = the node's default chat model
  bool chat = false;                 // messages (chat template) vs a raw prompt
  std::vector<MessageParam> messages;
  // Tools the model may call: OpenAI's tool objects, {"type": "function",
  // "function": {"name", "description", "parameters"}}, checked; empty = none
  // (also with tool_choice "none", when the model is not told of them).
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();
 std::string prompt;
  int max_tokens = -1;               // -1 = until the context is full
  engine::SamplerOptions sampling;   // temperature, top_p, top_k, min_p, penalties, seed
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  bool logprobs = false;
  int top_logprobs = 0;              // 0..20
  bool ignore_eos = false;           // tars extension
  bool cache_prompt = true;          // llama-server's: reuse a slot's cached prompt prefix
  // More variables for the chat template (llama-server's chat_template_kwargs,
  // such as enable_thinking; Ollama's think sets enable_thinking): an object,
  // none of the names the server sets itself.
  nlohmann::ordered_json template_variables = nlohmann::ordered_json::object();
  // Chats: a reasoning model's thoughts come apart from the answer
  // (node/reasoning.h); llama-server's reasoning_format "none" turns it off.
  bool split_reasoning = true;
  // Ollama's think: true: the model must be one that reasons (else 400).
  bool require_reasoning = false;
  // Fill in the middle (OpenAI's completions suffix, Ollama's generate
  // suffix): not empty, the prompt is the text before the gap and this the
  // text after it, put between the model's FIM markers (engine Vocab::fim_*).
  std::string suffix;
  // Not empty: the prompt, as token ids and texts (instead of `prompt`). A
  // first part that is text gets the vocabulary's BOS unless it starts with it.
  std::vector<PromptPart> prompt_parts;
  // Fill in the middle as llama-server's /infill does: also with an empty
  // suffix; `fill_files` before the prefix (with the model's repository
  // markers when it has them); `fill_middle` after the middle marker (the
  // start of the middle, already written); the oldest files, then the far
  // ends of the prefix and the suffix, are left out when the prompt does not
  // fit the context with room for max_tokens.
  bool fill = false;
  std::vector<FillFile> fill_files;
  std::string fill_middle;
  // A chat longer than the context loses its oldest messages instead of
  // being refused (Ollama's behaviour; llama-server's refuses); a prompt
  // still too long (one long message, a long /api/generate prompt) then
  // loses its start, all but its first `prompt_keep` tokens (Ollama's
  // num_keep), keeping room for max_tokens (a quarter of the context when
  // there is no limit).
  bool truncate_history = false;
  int prompt_keep = 4;
  bool json_object = false;          // JSON mode: response_format json_object, Ollama's format "json"
  // tool_choice: "" (auto), "*" (required: a call of any tool), or the name
  // of the function that must be called.
  std::string forced_tool;
  // Structured output: response_format json_schema, Ollama's format with a schema.
  std::shared_ptr<const engine::JsonSchema> json_schema;
  // !chat: the prompt is already in the model's own format (Ollama's "raw"):
  // special-token text in it is those tokens, and BOS is added only when the
  // text does not start with it.
  bool templated_prompt = false;
};

// Parses and validates a request body. `chat` selects messages vs prompt.
// Throws tars::Error(kInvalidArgument) naming the field and what is wrong.
GenerationParams generation_parse(const nlohmann::ordered_json& body, bool chat);

// Most inputs in one embedding request (OpenAI's limit is 2048 too).
inline constexpr size_t kMaxEmbeddingInputs = 2048;

// An embedding request: texts, or token ids (OpenAI allows both, not mixed).
struct EmbeddingParams {
  std::string model;                         // "" = the node's default embedding model
  std::vector<std::string> texts;            // none empty
  std::vector<std::vector<int32_t>> tokens;  // none empty, every id >= 0
  bool truncate = true;                      // cut inputs longer than the model's context
  bool normalize = true;                     // L2-normalize
  bool base64 = false;                       // encoding_format "base64" (OpenAI only)
  std::optional<int64_t> dimensions;         // OpenAI's "dimensions": must be the model's own
  // llama-server's embd_normalize (kLlama, where `normalize` is false and
  // the handler applies this): -1 none, 0 the largest magnitude scaled to
  // 32760 (int16), 1 taxicab, 2 Euclidean, p > 2 the p-norm.
  int p_norm = 2;
  size_t size() const { return texts.empty() ? tokens.size() : texts.size(); }
};

enum class EmbeddingApi {
  kOpenAI,  // POST /v1/embeddings: {model, input, encoding_format, dimensions, user, truncate, normalize}
  kSeed,    // POST /embed: {model, input | texts, truncate, normalize}
  kLlama,   // POST /embedding, /embeddings (llama-server's own): {model, content | input, embd_normalize, truncate}
};

// Parses and validates an embedding request body (1 to kMaxEmbeddingInputs
// inputs). Throws tars::Error(kInvalidArgument) naming the field.
EmbeddingParams embedding_parse(const nlohmann::ordered_json& body, EmbeddingApi api);

// Most documents in one rerank request.
inline constexpr size_t kMaxRerankDocuments = 2048;

// A rerank request: a query and the documents to score against it.
struct RerankParams {
  std::string model;                   // "" = the node's first reranker
  std::string query;                   // may be empty
  std::vector<std::string> documents;  // 1 to kMaxRerankDocuments; may be empty strings
  int64_t top_n = 0;                   // keep the best n (0 = all)
  bool return_documents = false;       // echo each document's text in its result
  bool truncate = true;                // cut pairs longer than the model's context
  bool raw_scores = true;              // false: the sigmoid of each score (TEI's default)
};

enum class RerankApi {
  // POST /v1/rerank, /rerank (llama-server, Jina, Cohere): {model, query,
  // documents (strings or {"text"} objects), top_n, return_documents,
  // truncate}.
  kJina,
  // POST /rerank with "texts" (text-embeddings-inference): {model, query,
  // texts, raw_scores, return_text, truncate (default false),
  // truncation_direction ("Right" only)}.
  kTei,
};

// Parses and validates a rerank body. Throws tars::Error(kInvalidArgument)
// naming the field.
RerankParams rerank_parse(const nlohmann::ordered_json& body, RerankApi api);

// POST /tokenize (llama-server's shape): text to token ids of a chat model.
struct TokenizeParams {
  std::string model;           // "" = the node's default chat model
  std::string content;         // may be empty
  bool add_special = false;    // BOS (and what the vocabulary adds) around the text
  bool parse_special = true;   // "<|im_start|>" written in the text is that one token
  bool with_pieces = false;    // each id with its text
};
TokenizeParams tokenize_parse(const nlohmann::ordered_json& body);

// POST /detokenize: token ids back to text.
struct DetokenizeParams {
  std::string model;
  std::vector<int32_t> tokens;  // every id >= 0 (the model's vocabulary is checked by the handler)
};
DetokenizeParams detokenize_parse(const nlohmann::ordered_json& body);

// --- Ollama's native API (POST /api/chat, /api/generate, /api/embed,
// /api/embeddings, /api/show) ---

enum class OllamaEndpoint { kChat, kGenerate };

// An /api/chat or /api/generate body. Ollama's defaults where they differ
// from OpenAI's: stream true, top_p 0.9, min_p 0, repeat_penalty 1.1.
// Sampling options come in "options" (temperature, top_k, top_p, min_p,
// seed, num_predict, stop, repeat_penalty, repeat_last_n, presence_penalty,
// frequency_penalty); the options that configure how a model is loaded
// (num_ctx, num_gpu, num_thread, ...) are type-checked and left to the node's
// configuration; others, and the features tars lacks (images, template,
// context, think levels), get kInvalidArgument naming them.
struct OllamaGenerationParams {
  GenerationParams gen;
  // No messages (chat) or an empty prompt and system (generate): Ollama's
  // way to load a model; the answer is done at once with done_reason "load"
  // (or "unload" with keep_alive 0).
  bool load_only = false;
  // "keep_alive": how long the model stays loaded after this request, in
  // milliseconds; kKeepAliveForever for a negative value; none when absent
  // (the node's configured keep_alive applies).
  std::optional<int64_t> keep_alive_ms;
};

// Ollama's keep_alive value: a number of seconds (fractions allowed), or a Go
// duration string ("5m", "1h30m", "300ms", "0"; a plain number string counts
// as seconds); negative = forever (kKeepAliveForever). Null or absent: none.
// Throws tars::Error(kInvalidArgument) naming keep_alive.
std::optional<int64_t> ollama_keep_alive_ms(const nlohmann::ordered_json& body);
OllamaGenerationParams ollama_generation_parse(const nlohmann::ordered_json& body, OllamaEndpoint endpoint);

// /api/embed {model, input (string or strings), truncate, options,
// keep_alive, dimensions}: L2-normalized. The older /api/embeddings
// {model, prompt, options, keep_alive} (legacy): one text, not normalized,
// and an empty prompt gives an empty embedding (texts empty).
EmbeddingParams ollama_embed_parse(const nlohmann::ordered_json& body, bool legacy);

// /api/show {model (or the older "name"), verbose}: the model's name.
std::string ollama_show_parse(const nlohmann::ordered_json& body);

// --- llama-server's own API (POST /completion, /completions, /infill) ---

// {prompt (a string, token ids, or both mixed), n_predict (or max_tokens;
// 0: the prompt is only read into the cache), temperature, top_k, top_p,
// min_p, repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty,
// seed, stop, ignore_eos, logit_bias ([[id, bias or false]...] or OpenAI's
// object), n_probs, json_schema, stream, cache_prompt, return_tokens,
// samplers, response_fields, id_slot, n_keep, t_max_predict_ms, model}. The
// samplers tars does not have (typical_p, mirostat, DRY, XTC, dynamic
// temperature, top_n_sigma, grammar, LoRA) are accepted at the values that
// turn them off and refused otherwise, naming them; `samplers` may leave
// samplers out (they are off) but not reorder the ones tars applies
// (penalties, top_k, top_p, min_p, infill (engine/sampler.h), temperature).
// /infill: input_prefix,
// input_suffix, input_extra ([{filename, text}]) and prompt (the start of
// the middle), the same options besides.
struct LlamaCompletionParams {
  GenerationParams gen;               // chat = false; the prompt in gen.prompt_parts or gen.fill*
  bool return_tokens = false;         // the generated ids in "tokens"
  int n_probs = 0;                    // completion_probabilities with each token's best n (gen.logprobs)
  // Only these fields of the answer; "a/b" is field b of object a, moved up
  // and named "a/b".
  std::vector<std::string> response_fields;
  // The generation ends once this long after its first token when a line
  // has ended (editors' time limit for a completion); 0: none.
  int64_t t_max_predict_ms = 0;
  // Lines of the answer indented less than this end it (code completion of
  // a block); 0: none.
  int n_indent = 0;
};
LlamaCompletionParams llama_completion_parse(const nlohmann::ordered_json& body, bool infill);

// --- Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens) ---

// {model, max_tokens, messages, system, stop_sequences, stream, temperature,
// top_p, top_k, tools, tool_choice, thinking, metadata, service_tier}.
// Messages are user / assistant turns whose content is a string or blocks:
// text, tool_use (assistant), tool_result (user: each becomes a "tool"
// message, before the turn's text), thinking (assistant: its thoughts);
// redacted_thinking is dropped. Images, documents, server tools and a
// prefilled last assistant turn are refused (kInvalidArgument naming them),
// as are unknown keys. tools become OpenAI's function objects (parse_tools's
// checks); tool_choice any / tool / none are OpenAI's required / a named
// function / none.
struct AnthropicParams {
  GenerationParams gen;   // chat = true
  bool thinking = false;  // "thinking": {"type": "enabled" or "adaptive"}
};
// count_tokens: the body of /v1/messages/count_tokens (no max_tokens, no
// stream, no sampling).
AnthropicParams anthropic_parse(const nlohmann::ordered_json& body, bool count_tokens);

// --- OpenAI's Responses API (POST /v1/responses) ---

// {model, input, instructions, max_output_tokens, temperature, top_p,
// stream, tools, tool_choice, parallel_tool_calls, text.format, reasoning,
// store, metadata, user, truncation, include, ...}. input is a string (the
// user's turn) or items: messages ({role, content: a string or input_text /
// output_text parts}; developer is system), function_call ({call_id, name,
// arguments as JSON text}: the assistant's calls), function_call_output
// ({call_id, output}: a tool message), reasoning ({content: reasoning_text
// parts}: the next assistant turn's thoughts). Images, files, built-in
// tools, item_reference and background are refused (kInvalidArgument naming them), as are unknown keys.
// previous_response_id continues a stored response's conversation (the
// handler looks it up); store (true by default, as OpenAI's) keeps this one.
struct ResponsesParams {
  GenerationParams gen;               // chat = true
  nlohmann::ordered_json echo;        // the request's settings, as the response repeats them
  std::string previous_response_id;   // "" = none
  bool store = true;
  size_t n_instructions = 0;          // gen.messages begins with this many from "instructions" (0 or 1)
};
ResponsesParams responses_parse(const nlohmann::ordered_json& body);

}  // namespace tars::node
