#pragma once
// Fetching a model file from another node over HTTP (a worker that lacks a
// file the plan gives it downloads it from the coordinator's /files API,
// files_api.h).
//
// The download goes to <dest_dir>/<file>.part; an existing .part is resumed
// with a Range request; after the last byte the sha256 of the whole file is
// checked and only then is the file renamed into place, so a file under its
// real name is always complete and verified. A dropped connection is resumed
// up to max_resumes times; a sha256 mismatch deletes the .part.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace tars::node {

// What GET /files/{id}/info answers.
struct ModelFileInfo {
  std::string id;      // model id
  std::string file;    // file name (no directory)
  uint64_t size = 0;   // bytes
  std::string sha256;  // lower-case hex
};

struct FetchRequest {
  std::string url_base;  // the serving node, "http://pc1:8000"
  std::string model_id;  // GET {url_base}/files/{model_id}
  std::string token;     // join token sent as "Authorization: Bearer"; "" = none
  std::string dest_dir;  // the node's model directory (data_dir/models); created if missing
  // From /info. An empty file name, sha256 or a zero size are asked of the
  // server's /files/{id}/info first.
  std::string file;
  std::string sha256;
  uint64_t size = 0;
  int connect_timeout_s = 10;  // per connection attempt
  int read_timeout_s = 60;     // no byte for this long: the connection is dropped and resumed
  int max_resumes = 5;         // connection failures tolerated before giving up
  int retry_delay_ms = 500;    // pause before each resume
  int log_interval_ms = 3000;  // progress lines in the log at most this often
};

// Progress of one fetch, for the log, callbacks and /status.
struct FetchProgress {
  std::string model_id;
  std::string file;
  std::string state;        // "downloading" | "verifying" | "done" | "failed"
  uint64_t bytes = 0;       // bytes of the file on disk so far (.part included)
  uint64_t total = 0;       // file size
  double rate_bps = 0;      // bytes per second over this attempt
  int resumes = 0;          // how many times the download was resumed
  std::string error;        // when failed
};
using FetchProgressFn = std::function<void(const FetchProgress&)>;

// Fetches in progress (and the last result of each model) on one node, for
// /status. Thread-safe.
class FetchRegistry {
 public:
  void update(const FetchProgress& p);
  // {"<model id>": {file, state, bytes, total, percent, rate_bps, resumes, error?}}
  nlohmann::json to_json() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, FetchProgress> fetches_;
};

// GET {url_base}/files/{model_id}/info. Throws tars::Error: kUnavailable
// (cannot connect), kNotFound (404), kInvalidArgument (401: token), kCorruptData
// (an answer that is not the expected JSON).
ModelFileInfo fetch_model_info(const std::string& url_base, const std::string& model_id,
                               const std::string& token, int timeout_s = 10);

// Downloads, verifies and renames into place; returns the file's path
// (dest_dir/file). `progress` (optional) and `registry` (optional) see every
// progress update. Throws tars::Error naming the model, the URL and the
// problem: a file name with '/' or ".." (kInvalidArgument), a server error,
// too many dropped connections (kUnavailable), a size or sha256 mismatch
// (kCorruptData; the .part is deleted).
std::string fetch_model(const FetchRequest& request, const FetchProgressFn& progress = {},
                        FetchRegistry* registry = nullptr);

}  // namespace tars::node
