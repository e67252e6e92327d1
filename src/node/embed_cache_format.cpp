// The embedding cache's formats (embed_cache.h): its URL, its values, its
// keys. Apart from the Redis client so the requests fuzzer links them alone.
#include <openssl/evp.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "node/embed_cache.h"

namespace tars::node {

namespace {

constexpr char kMagic[4] = {'T', 'E', '1', '\0'};
constexpr size_t kHeader = 16;  // magic + dim + n_tokens + n_tokens_input

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t get_u32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

// What goes into every key before the input: the model, the options, and
// whether the input is text or token ids (so text "abc" and the ids whose
// bytes spell it never collide).
std::string key_prefix(const std::string& model_sha256, const engine::EmbedOptions& o, char kind) {
  std::string p = model_sha256;
  p.push_back('\0');
  p += o.normalize ? 'n' : 'r';
  p += o.truncate ? 't' : 'f';
  p += std::to_string(o.max_tokens);
  p.push_back('\0');
  p.push_back(kind);
  p.push_back('\0');
  return p;
}

}  // namespace

RedisAddress parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  auto fail = [&](const std::string& why) -> RedisAddress {
    throw Error(ErrorCode::kConfig, "cache.redis: " + why + " (expected redis://[:PASSWORD@]HOST[:PORT][/DB])");
  };
  if (url.rfind(scheme, 0) != 0) return fail("the URL does not start with redis://");
  std::string rest = url.substr(scheme.size());
  RedisAddress a;
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    std::string user_info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = user_info.find(':');
    a.password = colon == std::string::npos ? user_info : user_info.substr(colon + 1);
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    std::string db = rest.substr(slash + 1);
    rest.resize(slash);
    if (!db.empty()) {
      if (db.size() > 4 || db.find_first_not_of("0123456789") != std::string::npos) {
        return fail("the database must be a number, got \"" + db + "\"");
      }
      a.db = std::stoi(db);
    }
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {  // [::1]:6379
    auto close = rest.find(']');
    if (close == std::string::npos) return fail("unclosed [ in the host");
    a.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return fail("expected :PORT after ]");
      port = rest.substr(close + 2);
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    a.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    a.host = rest;
  }
  if (a.host.empty()) return fail("no host");
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return fail("bad port \"" + port + "\"");
    }
    a.port = std::stoi(port);
  }
  return a;
}

std::string encode_cached_embedding(const engine::Embedding& e) {
  std::string out(kMagic, sizeof kMagic);
  put_u32(out, static_cast<uint32_t>(e.values.size()));
  put_u32(out, static_cast<uint32_t>(e.n_tokens));
  put_u32(out, static_cast<uint32_t>(e.n_tokens_input));
  out.reserve(kHeader + 4 * e.values.size());
  for (float f : e.values) put_u32(out, std::bit_cast<uint32_t>(f));
  return out;
}

std::optional<engine::Embedding> decode_cached_embedding(std::string_view bytes, int dim) {
  if (dim <= 0 || bytes.size() != kHeader + 4 * static_cast<size_t>(dim)) return std::nullopt;
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return std::nullopt;
  if (get_u32(bytes, 4) != static_cast<uint32_t>(dim)) return std::nullopt;
  const uint32_t n_tokens = get_u32(bytes, 8), n_input = get_u32(bytes, 12);
  // A pooled input had at least [CLS] and [SEP]; truncation only shortens.
  if (n_tokens < 1 || n_tokens > (1u << 24) || n_input < n_tokens || n_input > (1u << 30)) return std::nullopt;
  engine::Embedding e;
  e.n_tokens = static_cast<int>(n_tokens);
  e.n_tokens_input = static_cast<int>(n_input);
  e.values.resize(dim);
  for (int i = 0; i < dim; ++i) {
    float f = std::bit_cast<float>(get_u32(bytes, kHeader + 4 * static_cast<size_t>(i)));
    if (!std::isfinite(f)) return std::nullopt;
    e.values[i] = f;
  }
  return e;
}

std::string embed_cache_key(const std::string& model_sha256, const engine::EmbedOptions& o,
                            std::string_view text) {
  std::string k = key_prefix(model_sha256, o, 't');
  k.append(text);
  return "tars:embed:v1:" + sha256_hex(k);
}

std::string embed_cache_key(const std::string& model_sha256, const engine::EmbedOptions& o,
                            const std::vector<int32_t>& tokens) {
  std::string k = key_prefix(model_sha256, o, 'i');
  for (int32_t id : tokens) put_u32(k, static_cast<uint32_t>(id));
  return "tars:embed:v1:" + sha256_hex(k);
}

}  // namespace tars::node
