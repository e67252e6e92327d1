#pragma once
// Shared helpers for tests: fixture paths, temporary directories, sha256,
// and a child-process handle for black-box tests of the real binary.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tars::test {

// ../shared/models (or $TARS_FIXTURES). Fails the current test (ADD_FAILURE)
// when the folder is missing: fixture tests never pass silently.
std::string fixtures_dir();
// fixtures_dir() + "/" + rel, failing the test when the file is missing.
std::string fixture(const std::string& rel);

// The `tars` executable of this build.
std::string tars_binary();

// A fresh directory under the build tree, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);
std::string sha256_hex(const void* data, size_t size);

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

// A child process with stdout and stderr captured to files.
class Process {
 public:
  // Starts `argv[0]` with `argv`, extra environment variables `env` added to
  // this process's environment.
  Process(const std::vector<std::string>& argv,
          const std::map<std::string, std::string>& env = {});
  ~Process();  // SIGKILLs the child if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Waits up to `timeout` for the child to exit; returns its exit code, or
  // 128+signal, or -1 on time-out (the child keeps running).
  int wait(std::chrono::milliseconds timeout);
  bool running();
  std::string out() const;  // everything written to stdout so far
  std::string err() const;  // everything written to stderr so far

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  bool exited_ = false;
  TempDir dir_;
};

// Polls GET http://127.0.0.1:port/health until it answers 200 or `timeout`.
bool wait_http_ready(int port, std::chrono::milliseconds timeout);

}  // namespace tars::test
