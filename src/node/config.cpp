#include "node/config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/units.h"
#include "node/embed_cache.h"
#include "node/usage_log.h"

namespace tars::node {
namespace {

namespace fs = std::filesystem;

enum class Kind { kString, kInt, kBytes, kLogLevel };

// One setting. `set` parses text (environment, flags, TOML strings);
// `get` renders the value for --print-config and /config.
struct Field {
  ConfigFieldInfo info;
  Kind kind;
  std::function<void(NodeConfig&, const std::string&)> set;
  std::function<std::string(const NodeConfig&)> get;
};

int parse_int(const std::string& s, int64_t lo, int64_t hi, const std::string& where) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != s.size() || v < lo || v > hi) {
    throw Error(ErrorCode::kConfig, where + ": expected an integer from " + std::to_string(lo) +
                                        " to " + std::to_string(hi) + ", got \"" + s + "\"");
  }
  return static_cast<int>(v);
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    std::vector<Field> t;
    auto str = [&](std::string key, std::string env, std::string flag, std::string help,
                   std::string NodeConfig::*m, bool secret = false) {
      t.push_back({{key, env, flag, help, secret}, Kind::kString,
                   [m](NodeConfig& c, const std::string& v) { c.*m = v; },
                   [m](const NodeConfig& c) { return c.*m; }});
    };
    auto integer = [&](std::string key, std::string env, std::string flag, std::string help,
                       int NodeConfig::*m, int64_t lo, int64_t hi) {
      t.push_back({{key, env, flag, help, false}, Kind::kInt,
                   [m, lo, hi](NodeConfig& c, const std::string& v) {
                     c.*m = parse_int(v, lo, hi, "");
                   },
                   [m](const NodeConfig& c) { return std::to_string(c.*m); }});
    };
    auto bytes = [&](std::string key, std::string env, std::string flag, std::string help,
                     uint64_t NodeConfig::*m) {
      t.push_back({{key, env, flag, help, false}, Kind::kBytes,
                   [m](NodeConfig& c, const std::string& v) {
                     auto b = parse_byte_size(v);
                     if (!b || *b == 0) {
                       throw Error(ErrorCode::kConfig,
                                   ": expected a size such as 8MiB, got \"" + v + "\"");
                     }
                     c.*m = *b;
                   },
                   [m](const NodeConfig& c) { return std::to_string(c.*m); }});
    };
    str("node.name", "TARS_NODE_NAME", "--node-name", "Node name (default: host name)",
        &NodeConfig::node_name);
    str("node.data_dir", "TARS_DATA_DIR", "--data-dir",
        "Data directory for models, logs and state (default: ~/.tars)", &NodeConfig::data_dir);
    str("server.host", "TARS_HOST", "--host",
        "Address to listen on (default: 127.0.0.1; 0.0.0.0 for the network)", &NodeConfig::host);
    integer("server.port", "TARS_PORT", "--port", "TCP port (default: 8000)", &NodeConfig::port,
            1, 65535);
    bytes("server.max_body", "TARS_MAX_BODY", "--max-body",
          "Largest request body accepted (default: 8MiB)", &NodeConfig::max_body_bytes);
    integer("server.http_threads", "TARS_HTTP_THREADS", "--http-threads",
            "Connections served at once (default: 32)", &NodeConfig::http_threads, 1, 4096);
    integer("server.shutdown_grace_ms", "TARS_SHUTDOWN_GRACE_MS", "",
            "Time in-flight requests get after SIGINT/SIGTERM (default: 4000)",
            &NodeConfig::shutdown_grace_ms, 0, 600000);
    t.push_back({{"log.level", "TARS_LOG_LEVEL", "--log-level",
                  "trace, debug, info, warn, error or off (default: info)", false},
                 Kind::kLogLevel,
                 [](NodeConfig& c, const std::string& v) {
                   static const std::set<std::string> ok = {"trace", "debug", "info",
                                                            "warn",  "error", "off"};
                   if (!ok.count(v)) {
                     throw Error(ErrorCode::kConfig,
                                 ": expected one of trace, debug, info, warn, error, off; got \"" +
                                     v + "\"");
                   }
                   c.log_level = v;
                 },
                 [](const NodeConfig& c) { return c.log_level; }});
    bytes("log.max_file_size", "TARS_LOG_MAX_FILE_SIZE", "",
          "Rotate the log file at this size (default: 10MiB)", &NodeConfig::log_max_bytes);
    integer("log.max_files", "TARS_LOG_MAX_FILES", "", "Rotated log files kept (default: 5)",
            &NodeConfig::log_max_files, 1, 1000);
    integer("engine.threads", "TARS_THREADS", "--threads",
            "Threads per model (default: physical cores)", &NodeConfig::threads, 0, 1024);
    integer("engine.ctx_size", "TARS_CTX_SIZE", "--ctx-size",
            "Context per slot (default: the model's trained context, at most 4096)", &NodeConfig::ctx_size, 0,
            1 << 22);
    integer("engine.slots", "TARS_SLOTS", "--slots",
            "Sequences decoded together per model (default: 4)", &NodeConfig::slots, 1, 256);
    integer("engine.queue", "TARS_QUEUE", "--queue",
            "Requests waiting per model before 503 (default: 64)", &NodeConfig::queue, 0, 100000);
    integer("engine.batch", "TARS_BATCH", "--batch-size",
            "Tokens per forward pass (default: 512)", &NodeConfig::batch, 1, 65536);
    t.push_back({{"engine.kv_type", "TARS_KV_TYPE", "--kv-type", "KV cache type: f16 or f32 (default: f16)", false},
                 Kind::kString,
                 [](NodeConfig& c, const std::string& v) {
                   if (v != "f16" && v != "f32") {
                     throw Error(ErrorCode::kConfig, ": expected f16 or f32, got \"" + v + "\"");
                   }
                   c.kv_type = v;
                 },
                 [](const NodeConfig& c) { return c.kv_type; }});
    // 0 is allowed here (unlimited), unlike the other sizes.
    t.push_back({{"engine.memory_budget", "TARS_MEMORY_BUDGET", "--memory-budget",
                  "Bytes all loaded models may need together, e.g. 10GiB; on-demand models "
                  "evict the least recently used idle ones to fit (default: 0 = unlimited)",
                  false},
                 Kind::kBytes,
                 [](NodeConfig& c, const std::string& v) {
                   auto b = parse_byte_size(v);
                   if (!b) {
                     throw Error(ErrorCode::kConfig,
                                 ": expected a size such as 10GiB (0 = unlimited), got \"" + v + "\"");
                   }
                   c.memory_budget = *b;
                 },
                 [](const NodeConfig& c) { return std::to_string(c.memory_budget); }});
    t.push_back({{"engine.device", "TARS_DEVICE", "--device",
                  "Where models run: cpu, cuda, or auto (cuda when usable, else cpu; default: cpu)", false},
                 Kind::kString,
                 [](NodeConfig& c, const std::string& v) {
                   if (v != "cpu" && v != "cuda" && v != "auto") {
                     throw Error(ErrorCode::kConfig, ": expected cpu, cuda or auto, got \"" + v + "\"");
                   }
                   c.device = v;
                 },
                 [](const NodeConfig& c) { return c.device; }});
    str("engine.chat_template", "TARS_CHAT_TEMPLATE", "--chat-template",
        "Chat template: a built-in name, overriding the model's own", &NodeConfig::chat_template);
    str("devices.simulate", "TARS_SIMULATE_DEVICES", "--simulate-devices",
        "JSON inventory that replaces GPU detection", &NodeConfig::simulate_devices);
    str("cluster.join_token", "TARS_JOIN_TOKEN", "--join-token",
        "Secret shared by the nodes of one cluster", &NodeConfig::join_token, true);
    str("cluster.join", "TARS_JOIN", "--join",
        "Worker: the coordinator to join, e.g. http://pc1:8000", &NodeConfig::join);
    str("cluster.advertise", "TARS_ADVERTISE", "--advertise",
        "The URL other nodes reach this one at (default: http://HOST:PORT, 127.0.0.1 for 0.0.0.0)",
        &NodeConfig::advertise);
    integer("cluster.heartbeat_ms", "TARS_HEARTBEAT_MS", "--heartbeat-ms",
            "Workers' heartbeat interval (default: 1000)", &NodeConfig::heartbeat_ms, 50, 600000);
    integer("cluster.failure_deadline_ms", "TARS_FAILURE_DEADLINE_MS", "--failure-deadline-ms",
            "A worker silent this long is down and its models move (default: 3000)",
            &NodeConfig::failure_deadline_ms, 100, 3600000);
    t.push_back({{"cache.redis", "TARS_REDIS", "--redis",
                  "Redis for the shared embedding cache, redis://[:PASSWORD@]HOST[:PORT][/DB] "
                  "(default: none)",
                  true},
                 Kind::kString,
                 [](NodeConfig& c, const std::string& v) {
                   if (!v.empty()) parse_redis_url(v);  // throws kConfig naming what is wrong
                   c.cache_redis = v;
                 },
                 [](const NodeConfig& c) { return c.cache_redis; }});
    integer("cache.embed_ttl_s", "TARS_EMBED_CACHE_TTL_S", "",
            "Seconds a cached embedding is kept (default: 604800 = 7 days; 0 = no expiry)",
            &NodeConfig::cache_embed_ttl_s, 0, 1 << 30);
    t.push_back({{"state.postgres", "TARS_POSTGRES", "--postgres",
                  "PostgreSQL for the cluster's usage ledger (GET /usage), "
                  "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (default: none)",
                  true},
                 Kind::kString,
                 [](NodeConfig& c, const std::string& v) {
                   if (!v.empty()) check_postgres_conninfo(v);  // throws kConfig with libpq's reason
                   c.state_postgres = v;
                 },
                 [](const NodeConfig& c) { return c.state_postgres; }});
    return t;
  }();
  return table;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : fields()) {
    if (f.info.key == key) return &f;
  }
  return nullptr;
}

// Applies `text` to field `f`, prefixing any error with `where`.
void apply(NodeConfig& c, const Field& f, const std::string& text, const std::string& where,
           const std::string& source) {
  try {
    f.set(c, text);
  } catch (const Error& e) {
    std::string msg = e.what();
    throw Error(ErrorCode::kConfig, where + msg);
  }
  c.sources[f.info.key] = source;
}

// TOML value -> text for Field::set, checking its TOML type first.
std::string toml_text(const toml::node& n, const Field& f, const std::string& where) {
  switch (f.kind) {
    case Kind::kInt:
      if (auto v = n.value<int64_t>(); v && n.is_integer()) return std::to_string(*v);
      throw Error(ErrorCode::kConfig, where + ": expected an integer");
    case Kind::kBytes:
      if (n.is_integer()) return std::to_string(*n.value<int64_t>());
      if (n.is_string()) return *n.value<std::string>();
      throw Error(ErrorCode::kConfig, where + ": expected a size (an integer or a string such as \"8MiB\")");
    case Kind::kString:
    case Kind::kLogLevel:
      if (n.is_string()) return *n.value<std::string>();
      throw Error(ErrorCode::kConfig, where + ": expected a string");
  }
  return {};
}

void load_models(NodeConfig& c, const toml::node& n, const std::string& file,
                 const fs::path& base) {
  const toml::array* arr = n.as_array();
  if (!arr) throw Error(ErrorCode::kConfig, file + ": key model: expected [[model]] tables");
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string where = file + ": model " + std::to_string(i + 1);
    const toml::table* t = (*arr)[i].as_table();
    if (!t) throw Error(ErrorCode::kConfig, where + ": expected a table");
    ModelDecl m;
    for (auto&& [k, v] : *t) {
      std::string key(k.str());
      auto str = [&] {
        if (!v.is_string()) throw Error(ErrorCode::kConfig, where + ": key " + key + ": expected a string");
        return *v.value<std::string>();
      };
      auto integer = [&](int lo, int hi) {
        auto x = v.value<int64_t>();
        if (!v.is_integer() || !x || *x < lo || *x > hi) {
          throw Error(ErrorCode::kConfig, where + ": key " + key + ": expected an integer from " +
                                              std::to_string(lo) + " to " + std::to_string(hi));
        }
        return static_cast<int>(*x);
      };
      if (key == "path") m.path = str();
      else if (key == "alias") m.alias = str();
      else if (key == "role") m.role = str();
      else if (key == "ctx_size") m.ctx_size = integer(0, 1 << 24);
      else if (key == "slots") m.slots = integer(0, 256);
      else if (key == "pin") m.pin = str();
      else if (key == "load") m.load = str();
      else if (key == "keep_alive") m.keep_alive_s = integer(0, 1 << 30);
      else if (key == "sha256") m.sha256 = str();
      else if (key == "replicas") m.replicas = integer(1, 64);
      else if (key == "gpu_layers") m.gpu_layers = integer(-1, 1 << 20);
      else if (key == "quant") {
        const toml::array* q = v.as_array();
        if (!q) throw Error(ErrorCode::kConfig, where + ": key quant: expected an array of type names");
        for (auto&& e : *q) {
          if (!e.is_string()) throw Error(ErrorCode::kConfig, where + ": key quant: expected strings");
          m.quant.push_back(*e.value<std::string>());
        }
      } else {
        throw Error(ErrorCode::kConfig, where + ": unknown key " + key +
                                            " (known: path, alias, role, ctx_size, slots, pin, quant, "
                                            "load, keep_alive, sha256, replicas, gpu_layers)");
      }
    }
    if (m.load != "always" && m.load != "on_demand") {
      throw Error(ErrorCode::kConfig,
                  where + ": key load: expected \"always\" or \"on_demand\", got \"" + m.load + "\"");
    }
    if (m.path.empty()) throw Error(ErrorCode::kConfig, where + ": key path is required");
    if (!model_role_known(m.role)) {
      throw Error(ErrorCode::kConfig,
                  where + ": key role: expected \"chat\", \"embedding\" or \"rerank\", got \"" + m.role + "\"");
    }
    if (fs::path(m.path).is_relative()) m.path = (base / m.path).lexically_normal().string();
    c.models.push_back(m);
  }
}

void load_file(NodeConfig& c, const std::string& file) {
  toml::table root;
  try {
    root = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << file;
    if (e.source().begin) msg << ":" << e.source().begin.line << ":" << e.source().begin.column;
    msg << ": " << e.description();
    throw Error(ErrorCode::kConfig, msg.str());
  }
  fs::path base = fs::absolute(fs::path(file)).parent_path();
  for (auto&& [section, value] : root) {
    std::string sec(section.str());
    if (sec == "model") {
      load_models(c, value, file, base);
      continue;
    }
    const toml::table* t = value.as_table();
    if (!t) throw Error(ErrorCode::kConfig, file + ": key " + sec + ": expected a [" + sec + "] table");
    for (auto&& [k, v] : *t) {
      std::string key = sec + "." + std::string(k.str());
      const Field* f = find_field(key);
      std::string where = file + ": key " + key;
      if (!f) throw Error(ErrorCode::kConfig, where + ": unknown key");
      apply(c, *f, toml_text(v, *f, where), where, "file");
    }
  }
}

}  // namespace

const std::vector<ConfigFieldInfo>& config_fields() {
  static const std::vector<ConfigFieldInfo> infos = [] {
    std::vector<ConfigFieldInfo> v;
    for (const auto& f : fields()) v.push_back(f.info);
    return v;
  }();
  return infos;
}

NodeConfig config_resolve(const ConfigInputs& in) {
  NodeConfig c;
  for (const auto& f : fields()) c.sources[f.info.key] = "default";
  c.node_name = in.hostname.empty() ? "tars" : in.hostname;
  c.data_dir = (in.home.empty() ? std::string(".") : in.home) + "/.tars";

  std::string file = in.config_file;
  if (file.empty()) {
    if (auto it = in.env.find("TARS_CONFIG"); it != in.env.end()) file = it->second;
  }
  if (!file.empty()) {
    if (!fs::exists(file)) {
      throw Error(ErrorCode::kConfig, "config file " + file + " does not exist");
    }
    load_file(c, file);
    c.config_file = file;
  }
  for (const auto& f : fields()) {
    if (auto it = in.env.find(f.info.env); it != in.env.end()) {
      apply(c, f, it->second, "environment variable " + f.info.env, "env");
    }
  }
  for (const auto& [key, value] : in.flags) {
    const Field* f = find_field(key);
    if (!f) throw Error(ErrorCode::kInternal, "no config field " + key);
    apply(c, *f, value, "flag " + (f->info.flag.empty() ? key : f->info.flag), "flag");
  }
  if (in.alias_flags.size() > in.model_flags.size()) {
    throw Error(ErrorCode::kConfig, "flag --alias: " + std::to_string(in.alias_flags.size()) +
                                        " aliases for " + std::to_string(in.model_flags.size()) +
                                        " --model flags (the i-th --alias names the i-th --model)");
  }
  if (!in.model_flags.empty() || !in.embedding_model_flags.empty() || !in.rerank_model_flags.empty()) {
    c.models.clear();
    for (size_t i = 0; i < in.model_flags.size(); ++i) {
      ModelDecl m;
      m.path = in.model_flags[i];
      if (i < in.alias_flags.size()) m.alias = in.alias_flags[i];
      c.models.push_back(m);
    }
    for (const auto& p : in.embedding_model_flags) {
      ModelDecl m;
      m.path = p;
      m.role = "embedding";
      c.models.push_back(m);
    }
    for (const auto& p : in.rerank_model_flags) {
      ModelDecl m;
      m.path = p;
      m.role = "rerank";
      c.models.push_back(m);
    }
    c.sources["model"] = "flag";
  } else {
    c.sources["model"] = c.models.empty() ? "default" : "file";
  }
  if (c.node_name.empty()) throw Error(ErrorCode::kConfig, "node.name must not be empty");
  return c;
}

std::string config_to_toml(const NodeConfig& c) {
  std::ostringstream out;
  out << "# tars configuration as resolved (source of each value in comments)\n";
  if (!c.config_file.empty()) out << "# config file: " << c.config_file << "\n";
  std::string section;
  for (const auto& f : fields()) {
    auto dot = f.info.key.find('.');
    std::string sec = f.info.key.substr(0, dot), name = f.info.key.substr(dot + 1);
    if (sec != section) {
      out << "\n[" << sec << "]\n";
      section = sec;
    }
    std::string v = f.get(c);
    if (f.info.secret && !v.empty()) v = "<redacted>";
    out << name << " = ";
    if (f.kind == Kind::kString || f.kind == Kind::kLogLevel) {
      out << toml::value<std::string>(v);
    } else {
      out << v;
    }
    out << "  # " << c.sources.at(f.info.key) << "\n";
  }
  for (const auto& m : c.models) {
    out << "\n[[model]]  # " << c.sources.at("model") << "\n";
    out << "path = " << toml::value<std::string>(m.path) << "\n";
    if (!m.alias.empty()) out << "alias = " << toml::value<std::string>(m.alias) << "\n";
    out << "role = " << toml::value<std::string>(m.role) << "\n";
    if (m.ctx_size) out << "ctx_size = " << m.ctx_size << "\n";
    if (m.slots) out << "slots = " << m.slots << "\n";
    if (!m.pin.empty()) out << "pin = " << toml::value<std::string>(m.pin) << "\n";
    if (!m.quant.empty()) {
      out << "quant = [";
      for (size_t i = 0; i < m.quant.size(); ++i) out << (i ? ", " : "") << toml::value<std::string>(m.quant[i]);
      out << "]\n";
    }
    out << "load = " << toml::value<std::string>(m.load) << "\n";
    if (m.load == "on_demand") out << "keep_alive = " << m.keep_alive_s << "\n";
    if (!m.sha256.empty()) out << "sha256 = " << toml::value<std::string>(m.sha256) << "\n";
    if (m.replicas != 1) out << "replicas = " << m.replicas << "\n";
    if (m.gpu_layers >= 0) out << "gpu_layers = " << m.gpu_layers << "\n";
  }
  return out.str();
}

nlohmann::json config_to_json(const NodeConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : fields()) {
    auto dot = f.info.key.find('.');
    std::string sec = f.info.key.substr(0, dot), name = f.info.key.substr(dot + 1);
    std::string v = f.get(c);
    nlohmann::json value;
    if (f.info.secret) {
      value = v.empty() ? "" : "<redacted>";
    } else if (f.kind == Kind::kInt || f.kind == Kind::kBytes) {
      value = std::stoull(v);
    } else {
      value = v;
    }
    j[sec][name] = value;
  }
  j["model"] = nlohmann::json::array();
  for (const auto& m : c.models) {
    j["model"].push_back({{"path", m.path},       {"alias", m.alias},   {"role", m.role},
                          {"ctx_size", m.ctx_size}, {"slots", m.slots},   {"pin", m.pin},
                          {"quant", m.quant},     {"load", m.load},     {"keep_alive", m.keep_alive_s},
                          {"sha256", m.sha256}, {"replicas", m.replicas},
                          {"gpu_layers", m.gpu_layers}});
  }
  j["config_file"] = c.config_file;
  j["sources"] = c.sources;
  return j;
}

}  // namespace tars::node
