#pragma once
// sha256 of files, streamed (never the whole file in memory), and a cache of
// results keyed by (path, size, mtime): hashing a 4 GB model takes tens of
// seconds, so a node hashes each file version once and remembers it under
// its data directory.

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace tars::node {

// Lower-case hex sha256 of the file's bytes. `on_bytes` (optional) is called
// after each block with the bytes hashed so far. Throws tars::Error(kIo)
// naming the file when it cannot be read.
std::string file_sha256(const std::string& path,
                        const std::function<void(uint64_t)>& on_bytes = {});

// A JSON file {"<path>": {"size", "mtime_ns", "sha256"}} under the data
// directory's state/ folder. Thread-safe; a damaged cache file is ignored
// (and rewritten), never an error.
class Sha256Cache {
 public:
  explicit Sha256Cache(std::string cache_file);
  // The file's sha256, hashed now only if the cache has no entry for its
  // current size and modification time.
  std::string get(const std::string& path);

 private:
  std::string cache_file_;
  std::mutex mu_;  // one hash at a time: concurrent asks for one file hash it once
};

}  // namespace tars::node
