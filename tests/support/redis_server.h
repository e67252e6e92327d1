#pragma once
// A redis-server of the test's own on a free loopback port (Debian's
// redis-server, found on PATH; scripts/setup.sh installs it). Constructing
// one without the program throws, naming the package: the test fails.

#include <memory>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace tars::test {

class RedisServer {
 public:
  // `extra`: more redis-server arguments ("--requirepass", "pw"); `port` 0
  // picks a free one. Returns once the server accepts connections.
  explicit RedisServer(std::vector<std::string> extra = {}, int port = 0);
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  // SIGKILL: the server is gone at once, with whatever it held.
  void kill() { proc_.reset(); }
  // Runs one command on a connection of its own (after AUTH `password`);
  // the reply as text (strings, statuses, errors, integers), "" otherwise.
  std::string command(const std::vector<std::string>& args, const std::string& password = "");

 private:
  int port_;
  std::unique_ptr<Process> proc_;
};

}  // namespace tars::test
