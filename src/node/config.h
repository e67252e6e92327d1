#pragma once
// Node configuration: one TOML file, TARS_* environment variables and
// command-line flags, resolved once into a NodeConfig that is passed down.
//
// Precedence, lowest to highest:
//   built-in defaults < config file (--config / TARS_CONFIG) < environment (TARS_*) < flags
// Every setting is one row of the field table in config.cpp: its TOML key,
// environment variable, flag, type and default. `tars serve --print-config`
// prints the resolved result with the source of every value.
//
// Example file (every key optional):
//   [node]
//   name = "pc1"
//   data_dir = "/var/lib/tars"
//   [server]
//   host = "0.0.0.0"
//   port = 8000
//   max_body = "8MiB"
//   [log]
//   level = "info"
//   [cluster]
//   join_token = "..."          # secret: redacted by /config and --print-config
//   [engine]
//   threads = 8
//   ctx_size = 4096
//   slots = 4
//   [[model]]
//   path = "models/mistral-7b-instruct.Q4_K_M.gguf"
//   alias = "mistral"           # API id; default: file name without .gguf
//   role = "chat"               # chat | embedding

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tars::node {

// A keep-alive of forever: never unloaded for being idle (Ollama's negative
// keep_alive; what always-loaded models have).
inline constexpr int64_t kKeepAliveForever = -1;

// A model the node is asked to host.
struct ModelDecl {
  std::string path;   // GGUF file; relative paths are relative to the config file's folder
  std::string alias;  // API id; empty -> file name without .gguf
  std::string role = "chat";  // "chat", "embedding" or "rerank" (a cross-encoder)
  // Cluster placement (issue 6); the defaults keep a single node's behaviour.
  int ctx_size = 0;   // context per slot; 0 = [engine] ctx_size
  int slots = 0;      // parallel sequences; 0 = [engine] slots
  std::string pin;    // "" = anywhere; "NODE" or "NODE/DEVICE" (device id as in `tars gpus`)
  std::vector<std::string> quant;  // allowed types ("Q8_0", "Q4_K_M", "F16"...); empty = any
  std::string load = "always";     // "always" (resident) or "on_demand" (loaded when asked)
  int keep_alive_s = 300;          // on_demand: idle seconds before it may be unloaded
  std::string sha256;              // optional expected sha256 of the file (hex)
  int replicas = 1;                // copies on different nodes; requests go to the least loaded
  // Partial offload of a chat model: its first gpu_layers layers on the GPU
  // ([engine] device), the rest on the CPU; -1 = all on the device. The
  // cluster's planner sets it when no GPU holds the model whole.
  int gpu_layers = -1;
  // Where the cluster's plan put it: "gpu", "cpu", or "" (not planned: the
  // node's [engine] device decides). Set by the coordinator, not a config key.
  std::string planned_device;
  // The uuid of the plan's GPU ("" when none): on a node with several GPUs
  // the model runs on the CUDA device with that uuid (NVML's index and the
  // CUDA ordinal may differ). Set by the coordinator, not a config key.
  std::string planned_gpu;
};

// Whether a role runs on the encoder: "embedding", and "rerank" (a
// cross-encoder that scores a query against documents).
inline bool model_role_is_encoder(const std::string& role) { return role == "embedding" || role == "rerank"; }
// The roles a model may have: "chat" (a decoder: chat and completions) and
// the encoders'.
inline bool model_role_known(const std::string& role) { return role == "chat" || model_role_is_encoder(role); }

struct NodeConfig {
  // [node]
  std::string node_name;  // Default: the host name. Shown in /health, logs, the log file name.
  std::string data_dir;   // Default: ~/.tars. Holds models/, logs/ and state (node_id).
  // [server]
  std::string host = "127.0.0.1";  // Default: loopback only; "0.0.0.0" to serve the network.
  int port = 8000;                 // Default: 8000.
  uint64_t max_body_bytes = 8ull << 20;  // Default: 8 MiB; larger bodies get HTTP 413.
  int http_threads = 32;           // Default: 32 connections served at once.
  int shutdown_grace_ms = 4000;    // Default: 4 s for in-flight requests after SIGTERM.
  // [log]
  std::string log_level = "info";  // trace | debug | info | warn | error | off
  uint64_t log_max_bytes = 10ull << 20;  // Default: rotate the log file at 10 MiB ...
  int log_max_files = 5;                 // ... keeping 5 old files.
  // [engine]: how loaded models run
  int threads = 0;              // Default: 0 = the number of physical cores.
  int ctx_size = 0;             // Default: 0 = each model's trained context, at most 4096 (per slot).
  int slots = 4;                // Default: 4 sequences decoded together per model.
  int queue = 64;               // Default: 64 requests wait per model; more get 503.
  int batch = 512;              // Default: 512 tokens per forward pass.
  std::string kv_type = "f16";  // f16 (default) or f32.
  std::string chat_template;    // Default: "" = the model's own; or a built-in name.
  // Default: auto (CUDA when usable, else the CPU); cpu or cuda force one.
  std::string device = "auto";
  uint64_t memory_budget = 0;   // Default: 0 = unlimited. Bytes all loaded models may need
                                // together; on-demand loads evict LRU idle ones to fit.
  // [devices]
  std::string simulate_devices;  // JSON inventory replacing GPU detection ("" = detect)
  // [cluster]
  std::string join_token;  // secret shared by the nodes of one cluster
  std::string join;        // worker: the coordinator's URL ("http://pc1:8000")
  std::string advertise;   // URL the other nodes reach this one at ("" = from host and port)
  int heartbeat_ms = 1000;         // Default: workers send a heartbeat every second ...
  int failure_deadline_ms = 3000;  // ... and are down after 3 s of silence.
  // [cache]
  std::string cache_redis;          // redis://HOST:PORT for the shared embedding cache ("" = none)
  int cache_embed_ttl_s = 604800;   // Default: cached embeddings expire after 7 days (0 = never).
  // [state]
  std::string state_postgres;       // PostgreSQL for the shared usage ledger ("" = none)
  // [[model]]
  std::vector<ModelDecl> models;
  // Where the config file was read from ("" = none).
  std::string config_file;
  // key -> "default" | "file" | "env" | "flag": where each value came from.
  std::map<std::string, std::string> sources;
};

// Inputs of config_resolve. The CLI fills them: nothing below reads the
// process environment itself.
struct ConfigInputs {
  std::string config_file;                    // "" = none
  std::map<std::string, std::string> env;     // the process environment (only TARS_* are read)
  std::map<std::string, std::string> flags;   // TOML key -> value given on the command line
  std::vector<std::string> model_flags;       // --model FILE (repeatable); replaces the file's list
  std::vector<std::string> alias_flags;       // --alias NAME, the i-th names the i-th --model
  std::vector<std::string> embedding_model_flags;  // --embedding-model FILE (repeatable)
  std::vector<std::string> rerank_model_flags;     // --rerank-model FILE (repeatable)
  std::string home;                           // $HOME, for the default data dir
  std::string hostname;                       // for the default node name
};

// Resolves the configuration. Throws tars::Error(kConfig) naming the source
// (file and key, environment variable or flag) and what is wrong.
NodeConfig config_resolve(const ConfigInputs& in);

// One row per setting, for the CLI to register flags and for docs.
struct ConfigFieldInfo {
  std::string key;    // TOML key, "server.port"
  std::string env;    // "TARS_PORT"
  std::string flag;   // "--port" ("" = no flag)
  std::string help;
  bool secret = false;
};
const std::vector<ConfigFieldInfo>& config_fields();

// The resolved configuration as TOML with the source of each value in a
// comment, secrets redacted.
std::string config_to_toml(const NodeConfig& c);
// The same as JSON (GET /config), secrets redacted.
nlohmann::json config_to_json(const NodeConfig& c);

}  // namespace tars::node
