#pragma once
// A PostgreSQL server of the test's own: initdb into a temporary directory,
// then `postgres` on a free loopback port (Debian's postgresql package;
// scripts/setup.sh installs it). As root, both run as the `postgres` user
// (PostgreSQL refuses root). Constructing one where the programs are
// missing throws, naming the package: the test fails.

#include <memory>
#include <string>

#include "support/test_support.h"

namespace tars::test {

class PostgresServer {
 public:
  // `port` 0 picks a free one. Returns once the server accepts connections.
  explicit PostgresServer(int port = 0);
  ~PostgresServer();
  int port() const { return port_; }
  // postgresql://tars@127.0.0.1:PORT/postgres (trust authentication).
  std::string url() const;
  // Stops the server (fast shutdown) and waits for it; start() again on
  // the same port and data.
  void stop();
  void start();
  // Runs one SQL statement on a connection of its own; the first column of
  // the first row as text ("" for none). Throws std::runtime_error on an
  // error.
  std::string query(const std::string& sql);

 private:
  std::string bin(const std::string& program) const;
  std::vector<std::string> as_owner(std::vector<std::string> argv) const;

  int port_;
  std::string bindir_;
  TempDir dir_;
  std::string data_;
  bool root_ = false;
  unsigned uid_ = 0, gid_ = 0;
  std::unique_ptr<Process> proc_;
};

}  // namespace tars::test
