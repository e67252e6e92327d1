#include "node/files_api.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "node/file_sha256.h"
#include "node/model_host.h"

namespace tars::node {
namespace {

using json = nlohmann::json;

// 401 unless the request carries the node's join token (when it has one).
void check_token(const httplib::Request& req, const std::string& token) {
  if (token.empty()) return;
  std::string auth = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  bool ok = auth.size() == prefix.size() + token.size() && auth.rfind(prefix, 0) == 0 &&
            CRYPTO_memcmp(auth.data() + prefix.size(), token.data(), token.size()) == 0;
  if (!ok) {
    throw HttpError(401, "invalid_token",
                    auth.empty() ? "this node needs 'Authorization: Bearer <join token>' for "
                                   "model files"
                                 : "wrong join token for model files");
  }
}

struct ServedFile {
  std::string id;
  std::string path;
  uint64_t size = 0;
};

// The declared (or shared) model's file, or 404.
ServedFile served_file(ModelHost& host, const FilePathResolver& shared, const std::string& id) {
  std::optional<std::string> path;
  if (shared) path = shared(id);
  if (!path) {
    auto decl = host.find_decl(id);
    if (!decl) throw Error(ErrorCode::kNotFound, "model '" + id + "' is not declared on this node");
    path = decl->path;
  }
  struct stat st {};
  if (::stat(path->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw Error(ErrorCode::kNotFound,
                "model '" + id + "': its file " + *path + " is missing on this node");
  }
  return {id, *path, static_cast<uint64_t>(st.st_size)};
}

// Checks the ranges httplib parsed against the file size: an unsatisfiable
// one answers 416; several are served as the whole file. httplib slices the
// content provider's output by req.ranges, so they are adjusted in place.
bool ranges_ok(const httplib::Request& req, uint64_t size) {
  auto& ranges = const_cast<httplib::Request&>(req).ranges;
  if (ranges.size() > 1) {
    ranges.clear();
    return true;
  }
  for (auto& [first, last] : ranges) {
    auto n = static_cast<ssize_t>(size);
    if (first < 0) {  // suffix: the last `last` bytes
      if (last <= 0 || n == 0) return false;
    } else {
      if (first >= n || (last >= 0 && last < first)) return false;
      if (last >= n) last = n - 1;  // clamp, as RFC 9110 says
    }
  }
  return true;
}

void get_file(ModelHost& host, const NodeConfig& config, const FilePathResolver& shared,
              const httplib::Request& req, httplib::Response& res) {
  check_token(req, config.join_token);
  ServedFile f = served_file(host, shared, req.matches[1]);
  if (!ranges_ok(req, f.size)) {
    const_cast<httplib::Request&>(req).ranges.clear();  // keep our JSON body whole
    res.set_header("Content-Range", "bytes */" + std::to_string(f.size));
    throw HttpError(416, "range_not_satisfiable",
                    "range '" + req.get_header_value("Range") + "' is outside model '" + f.id +
                        "' file of " + std::to_string(f.size) + " bytes");
  }
  std::shared_ptr<std::FILE> file(std::fopen(f.path.c_str(), "rb"), [](std::FILE* p) {
    if (p) std::fclose(p);
  });
  if (!file) throw Error(ErrorCode::kIo, "cannot open model file " + f.path);
  res.set_header("Accept-Ranges", "bytes");
  res.set_header("Content-Disposition",
                 "attachment; filename=\"" + std::filesystem::path(f.path).filename().string() + "\"");
  // httplib asks for [offset, offset + length) of the (ranged) body.
  res.set_content_provider(
      f.size, "application/octet-stream",
      [file](size_t offset, size_t length, httplib::DataSink& sink) {
        std::vector<char> buf(std::min<size_t>(length, 1 << 20));
        if (::fseeko(file.get(), static_cast<off_t>(offset), SEEK_SET) != 0) return false;
        while (length > 0) {
          size_t n = std::fread(buf.data(), 1, std::min(length, buf.size()), file.get());
          if (n == 0) return false;  // the file shrank: drop the connection, never pad
          if (!sink.write(buf.data(), n)) return false;
          length -= n;
        }
        return true;
      });
}

}  // namespace

std::vector<Route> files_routes(ModelHost& host, const NodeConfig& config, FilePathResolver shared) {
  auto cache = std::make_shared<Sha256Cache>(config.data_dir + "/state/file_sha256.json");
  return {
      {"GET", R"(/files/([^/]+))",
       [&host, &config, shared](const httplib::Request& req, httplib::Response& res) {
         get_file(host, config, shared, req, res);
       }},
      {"GET", R"(/files/([^/]+)/info)",
       [&host, &config, cache, shared](const httplib::Request& req, httplib::Response& res) {
         check_token(req, config.join_token);
         ServedFile f = served_file(host, shared, req.matches[1]);
         reply_json(res, 200,
                    {{"id", f.id},
                     {"file", std::filesystem::path(f.path).filename().string()},
                     {"size", f.size},
                     {"sha256", cache->get(f.path)}});
       }},
  };
}

}  // namespace tars::node
