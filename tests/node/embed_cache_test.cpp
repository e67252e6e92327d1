// The embedding cache (node/embed_cache.h): its URL, value and key formats,
// and the client against a real Redis server (Debian's redis-server,
// started here on a loopback port; scripts/setup.sh installs it, and these
// tests fail, saying so, where it is missing).
#include "node/embed_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "support/redis_server.h"
#include "support/test_support.h"

namespace tars::node {
namespace {

using namespace std::chrono_literals;

TEST(EmbedCacheUrl, HostPortPasswordAndDatabase) {
  RedisAddress a = parse_redis_url("redis://127.0.0.1:6380/2");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.db, 2);
  EXPECT_EQ(a.password, "");
  a = parse_redis_url("redis://:s3cret@cache.lan");
  EXPECT_EQ(a.host, "cache.lan");
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(a.password, "s3cret");
  EXPECT_EQ(a.db, 0);
  a = parse_redis_url("redis://default:pw@[::1]:7000/");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 7000);
  EXPECT_EQ(a.password, "pw");
  for (const char* bad : {"http://127.0.0.1:6379", "redis://", "redis://:pw@", "redis://h:0", "redis://h:65536",
                          "redis://h:6x", "redis://h/db", "redis://[::1", "redis://[::1]x"}) {
    try {
      parse_redis_url(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig) << bad;
      EXPECT_NE(std::string(e.what()).find("redis://[:PASSWORD@]HOST"), std::string::npos) << e.what();
    }
  }
}

engine::Embedding sample(int dim) {
  engine::Embedding e;
  for (int i = 0; i < dim; ++i) e.values.push_back(std::sin(0.37f * i) * (i % 3 ? 1e-3f : 7.5f));
  e.values[1] = -0.0f;
  e.values[2] = 1e-42f;  // subnormal: kept bit for bit
  e.n_tokens = 12;
  e.n_tokens_input = 40;
  return e;
}

TEST(EmbedCacheValue, RoundTripsBitForBit) {
  const engine::Embedding e = sample(384);
  const std::string bytes = encode_cached_embedding(e);
  EXPECT_EQ(bytes.size(), 16u + 4 * 384);
  auto back = decode_cached_embedding(bytes, 384);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->n_tokens, 12);
  EXPECT_EQ(back->n_tokens_input, 40);
  EXPECT_TRUE(back->truncated());
  ASSERT_EQ(back->values.size(), e.values.size());
  for (size_t i = 0; i < e.values.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(back->values[i]), std::bit_cast<uint32_t>(e.values[i])) << i;
  }
}

TEST(EmbedCacheValue, AnythingElseIsAMiss) {
  const std::string good = encode_cached_embedding(sample(8));
  EXPECT_TRUE(decode_cached_embedding(good, 8));
  EXPECT_FALSE(decode_cached_embedding(good, 9));   // another model's dimension
  EXPECT_FALSE(decode_cached_embedding(good, 0));
  EXPECT_FALSE(decode_cached_embedding(good.substr(0, good.size() - 1), 8));
  EXPECT_FALSE(decode_cached_embedding(good + "x", 8));
  EXPECT_FALSE(decode_cached_embedding("", 8));
  std::string v = good;
  v[0] = 'X';  // not our magic
  EXPECT_FALSE(decode_cached_embedding(v, 8));
  v = good;
  v[4] = 9;  // header's dimension disagrees
  EXPECT_FALSE(decode_cached_embedding(v, 8));
  v = good;
  std::memset(&v[8], 0, 4);  // no tokens run
  EXPECT_FALSE(decode_cached_embedding(v, 8));
  v = good;
  std::memset(&v[12], 0, 4);  // fewer input tokens than run
  EXPECT_FALSE(decode_cached_embedding(v, 8));
  for (float bad : {NAN, INFINITY}) {
    engine::Embedding e = sample(8);
    e.values[5] = bad;
    EXPECT_FALSE(decode_cached_embedding(encode_cached_embedding(e), 8));
  }
}

TEST(EmbedCacheKey, SameInputSameKeyAndEveryOptionChangesIt) {
  engine::EmbedOptions o;
  const std::string sha(64, 'a');
  const std::string k = embed_cache_key(sha, o, "hello world");
  EXPECT_EQ(k, embed_cache_key(sha, o, "hello world"));
  EXPECT_EQ(k.rfind("tars:embed:v1:", 0), 0u);
  EXPECT_EQ(k.size(), 14u + 64);
  EXPECT_NE(k, embed_cache_key(std::string(64, 'b'), o, "hello world"));
  EXPECT_NE(k, embed_cache_key(sha, o, "hello world "));
  engine::EmbedOptions raw = o;
  raw.normalize = false;
  EXPECT_NE(k, embed_cache_key(sha, raw, "hello world"));
  engine::EmbedOptions strict = o;
  strict.truncate = false;
  EXPECT_NE(k, embed_cache_key(sha, strict, "hello world"));
  engine::EmbedOptions shorter = o;
  shorter.max_tokens = 16;
  EXPECT_NE(k, embed_cache_key(sha, shorter, "hello world"));
  // Token ids never share a key with text, even the text of their bytes.
  const std::vector<int32_t> ids = {0x6c6c6568, 0x6f77206f};  // "hello wo" as int32 LE
  EXPECT_NE(embed_cache_key(sha, o, ids), embed_cache_key(sha, o, "hello wo"));
  EXPECT_NE(embed_cache_key(sha, o, ids), embed_cache_key(sha, o, std::vector<int32_t>{0x6c6c6568}));
}

std::vector<engine::Embedding> samples(int n, int dim) {
  std::vector<engine::Embedding> v;
  for (int i = 0; i < n; ++i) {
    engine::Embedding e = sample(dim);
    e.values[0] = static_cast<float>(i);
    v.push_back(e);
  }
  return v;
}

TEST(EmbedCacheRedis, StoresWithTheTtlAndReadsBackWhatWasStored) {
  test::RedisServer redis;
  EmbedCache cache({redis.url(), 3600, 500});
  const std::vector<std::string> keys = {"tars:embed:v1:a", "tars:embed:v1:b", "tars:embed:v1:c"};
  auto none = cache.get(keys, 16);
  ASSERT_EQ(none.size(), 3u);
  for (const auto& e : none) EXPECT_FALSE(e);
  cache.put({keys[0], keys[2]}, {samples(3, 16)[0], samples(3, 16)[2]});
  auto got = cache.get(keys, 16);
  ASSERT_TRUE(got[0]);
  EXPECT_FALSE(got[1]);
  ASSERT_TRUE(got[2]);
  EXPECT_EQ(got[0]->values, samples(3, 16)[0].values);
  EXPECT_EQ(got[2]->values, samples(3, 16)[2].values);
  EXPECT_EQ(got[2]->n_tokens, 12);
  // The TTL is on the key.
  const int ttl = std::stoi(redis.command({"TTL", keys[0]}));
  EXPECT_GT(ttl, 3500);
  EXPECT_LE(ttl, 3600);
  EmbedCacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 4u);
  EXPECT_EQ(s.stores, 2u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_TRUE(s.connected);
  // ttl 0: no expiry.
  EmbedCache forever({redis.url(), 0, 500});
  forever.put({"tars:embed:v1:z"}, {sample(4)});
  EXPECT_EQ(redis.command({"TTL", "tars:embed:v1:z"}), "-1");
}

TEST(EmbedCacheRedis, AForeignOrDamagedValueIsAMissAndAnError) {
  test::RedisServer redis;
  redis.command({"SET", "tars:embed:v1:x", "not an embedding"});
  redis.command({"SET", "tars:embed:v1:y", encode_cached_embedding(sample(8))});
  redis.command({"LPUSH", "tars:embed:v1:list", "a"});  // another type: MGET gives nil
  EmbedCache cache({redis.url(), 60, 500});
  auto got = cache.get({"tars:embed:v1:x", "tars:embed:v1:y", "tars:embed:v1:list"}, 16);  // y: dimension 8
  EXPECT_FALSE(got[0]);
  EXPECT_FALSE(got[1]);
  EXPECT_FALSE(got[2]);
  EmbedCacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.errors, 2u);
  // Embedded again and stored, the key holds our value.
  cache.put({"tars:embed:v1:x"}, {sample(16)});
  EXPECT_TRUE(cache.get({"tars:embed:v1:x"}, 16)[0]);
}

TEST(EmbedCacheRedis, PasswordAndDatabase) {
  test::RedisServer redis({"--requirepass", "s3cret"});
  EmbedCache cache({"redis://:s3cret@127.0.0.1:" + std::to_string(redis.port()) + "/3", 60, 500});
  cache.put({"tars:embed:v1:k"}, {sample(8)});
  EXPECT_TRUE(cache.get({"tars:embed:v1:k"}, 8)[0]);
  EXPECT_EQ(cache.redacted_url(), "redis://***@127.0.0.1:" + std::to_string(redis.port()) + "/3");
  // In database 3, not 0.
  EXPECT_EQ(redis.command({"EXISTS", "tars:embed:v1:k"}, "s3cret"), "0");
  EXPECT_EQ(redis.command({"SELECT", "3"}, "s3cret"), "OK");
  // A wrong password: every read a miss, counted as errors, nothing thrown.
  EmbedCache wrong({"redis://:nope@127.0.0.1:" + std::to_string(redis.port()), 60, 500});
  EXPECT_FALSE(wrong.get({"tars:embed:v1:k"}, 8)[0]);
  wrong.put({"tars:embed:v1:k2"}, {sample(8)});
  EmbedCacheStats s = wrong.stats();
  EXPECT_FALSE(s.connected);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_GE(s.errors, 1u);
  EXPECT_EQ(s.stores, 0u);
}

TEST(EmbedCacheRedis, ARedisThatDiesCostsMissesNotFailuresAndIsFoundAgain) {
  auto redis = std::make_unique<test::RedisServer>();
  const int port = redis->port();
  EmbedCache cache({redis->url(), 60, 200});
  cache.put({"tars:embed:v1:k"}, {sample(8)});
  ASSERT_TRUE(cache.get({"tars:embed:v1:k"}, 8)[0]);
  redis->kill();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(cache.get({"tars:embed:v1:k"}, 8)[0]);  // the broken connection
  EXPECT_FALSE(cache.get({"tars:embed:v1:k"}, 8)[0]);  // within the 1 s back-off: not even tried
  cache.put({"tars:embed:v1:k"}, {sample(8)});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  EmbedCacheStats s = cache.stats();
  EXPECT_FALSE(s.connected);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.hits, 1u);
  // Back on the same port (empty: nothing persisted), the cache reconnects
  // once the back-off has passed.
  redis = std::make_unique<test::RedisServer>(std::vector<std::string>{}, port);
  std::this_thread::sleep_for(1100ms);
  cache.put({"tars:embed:v1:k"}, {sample(8)});
  EXPECT_TRUE(cache.get({"tars:embed:v1:k"}, 8)[0]);
  EXPECT_TRUE(cache.stats().connected);
}

TEST(EmbedCacheRedis, NothingListeningIsAMissWithinTheTimeout) {
  EmbedCache cache({"redis://127.0.0.1:" + std::to_string(test::free_port()), 60, 200});
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(cache.get({"tars:embed:v1:k"}, 8)[0]);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(cache.stats().errors, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
}

}  // namespace
}  // namespace tars::node
