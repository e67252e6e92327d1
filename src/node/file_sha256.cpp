#include "node/file_sha256.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"

namespace tars::node {

std::string file_sha256(const std::string& path, const std::function<void(uint64_t)>& on_bytes) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) {
    throw Error(ErrorCode::kIo, "cannot open " + path + " to hash it: " + std::strerror(errno));
  }
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  TARS_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1);
  std::vector<unsigned char> buf(1 << 20);
  uint64_t done = 0;
  for (;;) {
    size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    if (n > 0) {
      EVP_DigestUpdate(ctx.get(), buf.data(), n);
      done += n;
      if (on_bytes) on_bytes(done);
    }
    if (n < buf.size()) {
      if (std::ferror(f.get())) throw Error(ErrorCode::kIo, "cannot read " + path + " to hash it");
      break;
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

Sha256Cache::Sha256Cache(std::string cache_file) : cache_file_(std::move(cache_file)) {}

std::string Sha256Cache::get(const std::string& path) {
  namespace fs = std::filesystem;
  std::lock_guard<std::mutex> lock(mu_);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(ErrorCode::kIo, "cannot read " + path + ": " + std::strerror(errno));
  }
  std::string key = fs::absolute(path).lexically_normal().string();
  uint64_t size = static_cast<uint64_t>(st.st_size);
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;

  nlohmann::json cache = nlohmann::json::object();
  if (std::ifstream in(cache_file_); in) {
    try {
      cache = nlohmann::json::parse(in);
      if (!cache.is_object()) cache = nlohmann::json::object();
    } catch (const std::exception&) {
      spdlog::warn("sha256 cache {} is damaged; rebuilding it", cache_file_);
      cache = nlohmann::json::object();
    }
  }
  if (cache.contains(key)) {
    const auto& e = cache[key];
    if (e.is_object() && e.value("size", uint64_t{0}) == size &&
        e.value("mtime_ns", int64_t{-1}) == mtime_ns && e.value("sha256", "").size() == 64) {
      return e["sha256"].get<std::string>();
    }
  }
  spdlog::info("hashing {} ({} bytes) for the model file API", path, size);
  std::string sha = file_sha256(path);
  cache[key] = {{"size", size}, {"mtime_ns", mtime_ns}, {"sha256", sha}};
  // Write beside and rename: a crash never leaves a half-written cache.
  std::error_code ec;
  fs::create_directories(fs::path(cache_file_).parent_path(), ec);
  std::string tmp = cache_file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << cache.dump(2) << "\n";
    if (!out) {
      spdlog::warn("cannot write the sha256 cache {}; the file will be hashed again next time",
                   tmp);
      return sha;
    }
  }
  fs::rename(tmp, cache_file_, ec);
  if (ec) spdlog::warn("cannot write the sha256 cache {}: {}", cache_file_, ec.message());
  return sha;
}

}  // namespace tars::node
