#include "node/embed_cache.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace tars::node {

namespace {

using Reply = std::unique_ptr<redisReply, void (*)(void*)>;

Reply reply_of(void* r) { return Reply(static_cast<redisReply*>(r), freeReplyObject); }

timeval timeval_of(int ms) { return {ms / 1000, (ms % 1000) * 1000}; }

}  // namespace

EmbedCache::EmbedCache(EmbedCacheOptions options)
    : options_(std::move(options)), address_(parse_redis_url(options_.url)) {}

EmbedCache::~EmbedCache() {
  if (ctx_) redisFree(ctx_);
}

std::string EmbedCache::redacted_url() const {
  if (address_.password.empty()) return options_.url;
  auto at = options_.url.rfind('@');
  return "redis://***" + options_.url.substr(at);
}

void EmbedCache::drop_locked(const std::string& why) {
  ++stats_.errors;
  spdlog::warn("embedding cache {}: {}; embedding without it, trying again in 1 s", redacted_url(), why);
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
  stats_.connected = false;
  retry_after_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
}

bool EmbedCache::connect_locked() {
  if (ctx_) return true;
  if (std::chrono::steady_clock::now() < retry_after_) return false;
  // Held in ctx_ from here: a failure below drops it like a broken connection.
  ctx_ = redisConnectWithTimeout(address_.host.c_str(), address_.port, timeval_of(options_.timeout_ms));
  auto give_up = [&](const std::string& why) {
    drop_locked(why);
    return false;
  };
  if (!ctx_ || ctx_->err) return give_up(ctx_ ? ctx_->errstr : "out of memory");
  redisSetTimeout(ctx_, timeval_of(options_.timeout_ms));
  auto command = [&](std::vector<std::string> args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return reply_of(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  };
  if (!address_.password.empty()) {
    Reply r = command({"AUTH", address_.password});
    if (!r || r->type == REDIS_REPLY_ERROR) return give_up(r ? std::string("AUTH: ") + r->str : ctx_->errstr);
  }
  if (address_.db != 0) {
    Reply r = command({"SELECT", std::to_string(address_.db)});
    if (!r || r->type == REDIS_REPLY_ERROR) return give_up(r ? std::string("SELECT: ") + r->str : ctx_->errstr);
  }
  if (!stats_.connected) spdlog::info("embedding cache: connected to {}", redacted_url());
  stats_.connected = true;
  return true;
}

std::vector<std::optional<engine::Embedding>> EmbedCache::get(const std::vector<std::string>& keys, int dim) {
  std::vector<std::optional<engine::Embedding>> out(keys.size());
  if (keys.empty()) return out;
  std::lock_guard<std::mutex> lock(mu_);
  auto all_missed = [&] {
    stats_.misses += keys.size();
    return out;
  };
  if (!connect_locked()) return all_missed();
  std::vector<const char*> argv = {"MGET"};
  std::vector<size_t> lens = {4};
  for (const auto& k : keys) {
    argv.push_back(k.data());
    lens.push_back(k.size());
  }
  Reply r = reply_of(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (!r) {
    drop_locked(std::string("MGET: ") + ctx_->errstr);
    return all_missed();
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != keys.size()) {
    ++stats_.errors;
    spdlog::warn("embedding cache {}: MGET answered {}", redacted_url(),
                 r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "an unexpected reply");
    return all_missed();
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const redisReply* e = r->element[i];
    if (e->type == REDIS_REPLY_STRING) {
      out[i] = decode_cached_embedding(std::string_view(e->str, e->len), dim);
      if (!out[i]) ++stats_.errors;  // stored by something else: embedded again and overwritten
    }
    if (out[i]) ++stats_.hits;
    else ++stats_.misses;
  }
  return out;
}

void EmbedCache::put(const std::vector<std::string>& keys, const std::vector<engine::Embedding>& values) {
  if (keys.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) return;
  const std::string ttl = std::to_string(options_.ttl_s);
  size_t appended = 0;
  for (size_t i = 0; i < keys.size() && i < values.size(); ++i) {
    const std::string v = encode_cached_embedding(values[i]);
    std::vector<const char*> argv = {"SET", keys[i].data(), v.data()};
    std::vector<size_t> lens = {3, keys[i].size(), v.size()};
    if (options_.ttl_s > 0) {
      argv.insert(argv.end(), {"EX", ttl.data()});
      lens.insert(lens.end(), {2, ttl.size()});
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) break;
    ++appended;
  }
  // The replies of the pipeline, in order.
  for (size_t i = 0; i < appended; ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) {
      drop_locked(std::string("SET: ") + ctx_->errstr);
      return;
    }
    Reply r = reply_of(raw);
    if (r->type == REDIS_REPLY_ERROR) ++stats_.errors;
    else ++stats_.stores;
  }
}

EmbedCacheStats EmbedCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace tars::node
