#include "node/model_fetch.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/error.h"
#include "common/units.h"
#include "node/file_sha256.h"

namespace tars::node {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// "http://host:port" with no path; trailing slashes dropped.
std::string checked_base(const std::string& url_base) {
  std::string b = url_base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  if (b.rfind("http://", 0) != 0 || b.size() <= 7 || b.find('/', 7) != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument,
                "model file URL base must look like http://host:port, got '" + url_base + "'");
  }
  return b;
}

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string url_escape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

httplib::Headers auth_headers(const std::string& token) {
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  return h;
}

// The error message of a JSON error body, else the body's start.
std::string server_message(const std::string& body) {
  try {
    auto j = nlohmann::json::parse(body);
    if (j.contains("error") && j["error"].contains("message")) {
      return j["error"]["message"].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return body.substr(0, 200);
}

// A status that retrying cannot fix becomes an error here.
[[noreturn]] void http_failure(const std::string& what, int status, const std::string& body) {
  std::string msg = what + ": HTTP " + std::to_string(status) + ": " + server_message(body);
  if (status == 401 || status == 403) {
    throw Error(ErrorCode::kInvalidArgument, msg + " (check the join token)");
  }
  if (status == 404) throw Error(ErrorCode::kNotFound, msg);
  throw Error(ErrorCode::kUnavailable, msg);
}

uint64_t size_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void check_file_name(const std::string& file, const std::string& model_id) {
  if (file.empty() || file == "." || file.find('/') != std::string::npos ||
      file.find('\\') != std::string::npos || file.find("..") != std::string::npos ||
      file.find('\0') != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument,
                "model '" + model_id + "': refusing the file name '" + file +
                    "' (a name with '/' or '..' would leave the model directory)");
  }
}

}  // namespace

void FetchRegistry::update(const FetchProgress& p) {
  std::lock_guard<std::mutex> lock(mu_);
  fetches_[p.model_id] = p;
}

nlohmann::json FetchRegistry::to_json() const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [id, p] : fetches_) {
    nlohmann::json e = {{"file", p.file},   {"state", p.state},       {"bytes", p.bytes},
                        {"total", p.total}, {"rate_bps", p.rate_bps}, {"resumes", p.resumes},
                        {"percent", p.total ? 100.0 * p.bytes / p.total : 0.0}};
    if (!p.error.empty()) e["error"] = p.error;
    j[id] = std::move(e);
  }
  return j;
}

ModelFileInfo fetch_model_info(const std::string& url_base, const std::string& model_id,
                               const std::string& token, int timeout_s) {
  std::string base = checked_base(url_base);
  std::string url = base + "/files/" + url_escape(model_id) + "/info";
  httplib::Client cli(base);
  cli.set_connection_timeout(timeout_s, 0);
  cli.set_read_timeout(timeout_s, 0);
  auto res = cli.Get(("/files/" + url_escape(model_id) + "/info").c_str(), auth_headers(token));
  if (!res) {
    throw Error(ErrorCode::kUnavailable,
                "cannot reach " + url + ": " + httplib::to_string(res.error()));
  }
  if (res->status != 200) http_failure("GET " + url, res->status, res->body);
  try {
    auto j = nlohmann::json::parse(res->body);
    ModelFileInfo info;
    info.id = j.at("id").get<std::string>();
    info.file = j.at("file").get<std::string>();
    // Not get<uint64_t>() alone: it would cast a float (1e300: undefined) and wrap -1.
    if (!j.at("size").is_number_unsigned()) {
      throw Error(ErrorCode::kCorruptData, "GET " + url + ": 'size' must be a byte count, got " + j["size"].dump());
    }
    info.size = j.at("size").get<uint64_t>();
    info.sha256 = j.at("sha256").get<std::string>();
    return info;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kCorruptData, "GET " + url + ": unexpected answer: " + e.what());
  }
}

std::string fetch_model(const FetchRequest& request, const FetchProgressFn& progress,
                        FetchRegistry* registry) {
  FetchRequest rq = request;
  std::string base = checked_base(rq.url_base);
  if (rq.file.empty() || rq.sha256.empty() || rq.size == 0) {
    ModelFileInfo info = fetch_model_info(base, rq.model_id, rq.token, rq.connect_timeout_s);
    if (rq.file.empty()) rq.file = info.file;
    if (rq.sha256.empty()) rq.sha256 = info.sha256;
    if (rq.size == 0) rq.size = info.size;
  }
  check_file_name(rq.file, rq.model_id);
  for (auto& ch : rq.sha256) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::error_code ec;
  fs::create_directories(rq.dest_dir, ec);
  if (ec) {
    throw Error(ErrorCode::kIo, "cannot create the model directory " + rq.dest_dir + ": " + ec.message());
  }
  const std::string final_path = rq.dest_dir + "/" + rq.file;
  const std::string part = final_path + ".part";
  const std::string path = "/files/" + url_escape(rq.model_id);
  const std::string url = base + path;

  FetchProgress p;
  p.model_id = rq.model_id;
  p.file = rq.file;
  p.total = rq.size;
  p.state = "downloading";
  auto report = [&] {
    if (registry) registry->update(p);
    if (progress) progress(p);
  };
  auto fail = [&](ErrorCode code, const std::string& msg) {
    p.state = "failed";
    p.error = msg;
    report();
    spdlog::error("{}", msg);
    throw Error(code, msg);
  };

  // Already in place and intact: nothing to do.
  if (fs::exists(final_path) && size_of(final_path) == rq.size &&
      file_sha256(final_path) == rq.sha256) {
    p.bytes = rq.size;
    p.state = "done";
    report();
    return final_path;
  }

  auto last_log = Clock::now() - std::chrono::hours(1);
  auto last_report = last_log;
  for (;;) {
    uint64_t have = size_of(part);
    if (have > rq.size) {
      spdlog::warn("{} is larger than the file ({} bytes); downloading again", part, rq.size);
      fs::remove(part, ec);
      have = 0;
    }
    p.bytes = have;
    if (have == rq.size) break;
    if (have > 0) spdlog::info("resuming {} at byte {} of {}", url, have, rq.size);

    std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(std::fopen(part.c_str(), have ? "ab" : "wb"),
                                                         std::fclose);
    if (!out) fail(ErrorCode::kIo, "cannot write " + part + ": " + std::strerror(errno));
    httplib::Client cli(base);
    cli.set_connection_timeout(rq.connect_timeout_s, 0);
    cli.set_read_timeout(rq.read_timeout_s, 0);
    httplib::Headers headers = auth_headers(rq.token);
    if (have > 0) headers.emplace("Range", "bytes=" + std::to_string(have) + "-");
    int status = 0;
    std::string error_body, fatal;
    auto t0 = Clock::now();
    uint64_t start = have;
    auto res = cli.Get(
        path.c_str(), headers,
        [&](const httplib::Response& r) {
          status = r.status;
          if (status == 200 && have > 0) {
            // The server ignored the range: start the file over.
            spdlog::warn("{} ignored the Range request; downloading from the start", url);
            if (!std::freopen(part.c_str(), "wb", out.get())) {
              fatal = "cannot write " + part;
              return false;
            }
            have = start = 0;
          } else if (status == 206) {
            std::string cr = r.get_header_value("Content-Range");
            if (cr.rfind("bytes " + std::to_string(have) + "-", 0) != 0) {
              fatal = "the server answered the range request for byte " + std::to_string(have) +
                      " with Content-Range '" + cr + "'";
              return false;
            }
          }
          return true;
        },
        [&](const char* data, size_t len) {
          if (status != 200 && status != 206) {
            if (error_body.size() < 4096) error_body.append(data, len);
            return true;
          }
          if (have + len > rq.size) {
            fatal = "the server sent more than the announced " + std::to_string(rq.size) + " bytes";
            return false;
          }
          if (std::fwrite(data, 1, len, out.get()) != len) {
            fatal = "cannot write " + part + ": " + std::strerror(errno);
            return false;
          }
          have += len;
          auto now = Clock::now();
          double secs = std::chrono::duration<double>(now - t0).count();
          p.bytes = have;
          p.rate_bps = secs > 0 ? (have - start) / secs : 0;
          if (now - last_report >= std::chrono::milliseconds(100)) {
            last_report = now;
            report();
          }
          if (now - last_log >= std::chrono::milliseconds(rq.log_interval_ms)) {
            last_log = now;
            spdlog::info("fetching model {}: {} of {} ({:.1f}%), {}/s", rq.model_id,
                         format_bytes(have), format_bytes(rq.size), 100.0 * have / rq.size,
                         format_bytes(static_cast<uint64_t>(p.rate_bps)));
          }
          return true;
        });
    if (std::fflush(out.get()) != 0) fatal = "cannot write " + part + ": " + std::strerror(errno);
    out.reset();
    if (!fatal.empty()) {
      fs::remove(part, ec);
      fail(ErrorCode::kCorruptData, "fetching model '" + rq.model_id + "' from " + url + ": " + fatal);
    }
    if (res && status == 416) {
      // Our .part does not match the server's file (it changed?): start over.
      spdlog::warn("{} refused the range from byte {}; downloading from the start", url, have);
      fs::remove(part, ec);
    } else if (res && status != 200 && status != 206 && status < 500) {
      try {
        http_failure("GET " + url, status, error_body);
      } catch (const Error& e) {
        fail(e.code(), e.what());
      }
    } else if (res && have == rq.size) {
      break;
    }
    // A dropped connection, a short body or a server error: resume.
    std::string why = !res ? httplib::to_string(res.error())
                           : (status >= 500 ? "HTTP " + std::to_string(status)
                                            : "connection closed early");
    if (++p.resumes > rq.max_resumes) {
      fail(ErrorCode::kUnavailable,
           "fetching model '" + rq.model_id + "' from " + url + ": gave up after " +
               std::to_string(rq.max_resumes) + " resumed attempts (" + why + "); " +
               std::to_string(have) + " of " + std::to_string(rq.size) + " bytes are kept in " +
               part + " and the next fetch resumes there");
    }
    spdlog::warn("fetching model {}: {} at byte {} of {}; resuming (attempt {} of {})",
                 rq.model_id, why, have, rq.size, p.resumes, rq.max_resumes);
    report();
    std::this_thread::sleep_for(std::chrono::milliseconds(rq.retry_delay_ms));
  }

  p.state = "verifying";
  p.bytes = rq.size;
  report();
  std::string sha = file_sha256(part);
  if (sha != rq.sha256) {
    fs::remove(part, ec);
    fail(ErrorCode::kCorruptData,
         "fetching model '" + rq.model_id + "' from " + url + ": sha256 mismatch: expected " +
             rq.sha256 + ", the downloaded file has " + sha + "; the download was deleted");
  }
  fs::rename(part, final_path, ec);
  if (ec) fail(ErrorCode::kIo, "cannot rename " + part + " to " + final_path + ": " + ec.message());
  p.state = "done";
  report();
  spdlog::info("fetched model {} into {} ({}, sha256 verified)", rq.model_id, final_path,
               format_bytes(rq.size));
  return final_path;
}

}  // namespace tars::node
