#pragma once
// A shared cache of embeddings in Redis ([cache] redis = "redis://HOST:PORT").
//
// An assistant that searches its documents embeds the same passages again
// and again (every re-index, every restart of the client). With the cache,
// an input the cluster has embedded before is read back instead of run
// through the encoder, on any node: the key is the model file's sha256 (not
// its path or alias, so both PCs share entries for one model), the options
// that change the vector (normalize, truncate) and the input's bytes or
// token ids, hashed with sha256.
//
// The cache never makes a request fail: an unreachable Redis, a time-out, an
// error reply or a value that does not decode to a vector of the model's
// dimension counts as a miss (and an error in the counters) and the input
// is embedded as usual. After a connection failure the node waits a second
// before trying again, so a Redis that is down costs one time-out per second
// at most, not one per request.
//
// Values: "TE1\0", the dimension, the tokens run and the input's tokens
// before truncation (uint32 each, little-endian), then the floats (IEEE-754
// binary32, little-endian). Only pooled vectors (one per input) are cached.
// Entries expire after [cache] embed_ttl_s (default 7 days).

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/embed.h"

struct redisContext;

namespace tars::node {

struct EmbedCacheOptions {
  std::string url;             // redis://[:PASSWORD@]HOST[:PORT][/DB]
  int ttl_s = 7 * 24 * 3600;   // entries expire after this long (0 = never)
  int timeout_ms = 200;        // connect and each command
};

struct EmbedCacheStats {
  uint64_t hits = 0;      // inputs read back from the cache
  uint64_t misses = 0;    // inputs not there (embedded, then stored)
  uint64_t errors = 0;    // failed connects or commands, undecodable values
  uint64_t stores = 0;    // inputs written
  bool connected = false;
};

// Parsed redis:// URL. Throws tars::Error(kConfig) naming what is wrong.
struct RedisAddress {
  std::string host;
  int port = 6379;
  std::string password;
  int db = 0;
};
RedisAddress parse_redis_url(const std::string& url);

// The value stored for an embedding, and back. decode returns nullopt for
// bytes that are not a well-formed value of dimension `dim` with finite
// floats (a value from another program, another model, or damaged).
std::string encode_cached_embedding(const engine::Embedding& e);
std::optional<engine::Embedding> decode_cached_embedding(std::string_view bytes, int dim);

// The Redis key of one input: "tars:embed:v1:" + sha256 hex of the model's
// sha256, the options and the input (text, or token ids as int32).
std::string embed_cache_key(const std::string& model_sha256, const engine::EmbedOptions& o,
                            std::string_view text);
std::string embed_cache_key(const std::string& model_sha256, const engine::EmbedOptions& o,
                            const std::vector<int32_t>& tokens);

class EmbedCache {
 public:
  explicit EmbedCache(EmbedCacheOptions options);  // checks the URL; connects on first use
  ~EmbedCache();
  EmbedCache(const EmbedCache&) = delete;
  EmbedCache& operator=(const EmbedCache&) = delete;

  // The cached embedding of each key (MGET); nullopt where there is none.
  std::vector<std::optional<engine::Embedding>> get(const std::vector<std::string>& keys, int dim);
  // Stores each (key, value) with the TTL, in one round trip.
  void put(const std::vector<std::string>& keys, const std::vector<engine::Embedding>& values);
  EmbedCacheStats stats() const;
  // The URL with any password replaced by "***", for /status and logs.
  std::string redacted_url() const;

 private:
  bool connect_locked();
  void drop_locked(const std::string& why);

  EmbedCacheOptions options_;
  RedisAddress address_;
  mutable std::mutex mu_;
  redisContext* ctx_ = nullptr;
  std::chrono::steady_clock::time_point retry_after_{};
  EmbedCacheStats stats_;
};

}  // namespace tars::node
