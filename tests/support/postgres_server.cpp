#include "support/postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace tars::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Debian keeps the server programs in /usr/lib/postgresql/<version>/bin.
std::string find_bindir() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) dirs.push_back(e.path() / "bin");
  std::sort(dirs.begin(), dirs.end());
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    if (fs::exists(*it / "initdb") && fs::exists(*it / "postgres")) return it->string();
  }
  return "";
}

}  // namespace

PostgresServer::PostgresServer(int port) : port_(port ? port : free_port()), bindir_(find_bindir()) {
  if (bindir_.empty()) {
    throw std::runtime_error("PostgreSQL's initdb and postgres not found under /usr/lib/postgresql: "
                             "scripts/setup.sh installs Debian's postgresql package");
  }
  root_ = ::geteuid() == 0;
  if (root_) {
    const passwd* pw = ::getpwnam("postgres");
    if (!pw) throw std::runtime_error("running as root, and there is no postgres user to run PostgreSQL as");
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    if (::chown(dir_.path().c_str(), uid_, gid_) != 0) throw std::runtime_error("chown of the test's directory failed");
  }
  data_ = dir_.file("data");
  Process init(as_owner({bin("initdb"), "-D", data_, "-U", "tars", "--auth=trust", "--no-sync", "-E", "UTF8",
                         "--locale=C"}));
  if (init.wait(120s) != 0) throw std::runtime_error("initdb failed: " + init.err() + init.out());
  start();
}

PostgresServer::~PostgresServer() {
  if (proc_) stop();
}

std::string PostgresServer::bin(const std::string& program) const { return bindir_ + "/" + program; }

std::vector<std::string> PostgresServer::as_owner(std::vector<std::string> argv) const {
  if (!root_) return argv;
  std::vector<std::string> out = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid_),
                                  "--regid=" + std::to_string(gid_), "--clear-groups", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::string PostgresServer::url() const { return "postgresql://tars@127.0.0.1:" + std::to_string(port_) + "/postgres"; }

void PostgresServer::start() {
  proc_ = std::make_unique<Process>(as_owner({bin("postgres"), "-D", data_, "-p", std::to_string(port_), "-k",
                                              dir_.path(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"}));
  const std::string ping = "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=postgres user=tars connect_timeout=1";
  for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
    if (PQping(ping.c_str()) == PQPING_OK) return;
    if (!proc_->running()) break;
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("postgres did not start: " + proc_->err() + proc_->out());
}

void PostgresServer::stop() {
  proc_->signal(SIGINT);  // fast shutdown: ends the sessions, exits cleanly
  proc_->wait(30s);
  proc_.reset();
}

std::string PostgresServer::query(const std::string& sql) {
  PGconn* c = PQconnectdb(url().c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string e = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot connect to the test's PostgreSQL: " + e);
  }
  PGresult* r = PQexec(c, sql.c_str());
  const auto status = PQresultStatus(r);
  std::string out;
  if (status == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
  std::string err = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK ? "" : PQerrorMessage(c);
  PQclear(r);
  PQfinish(c);
  if (!err.empty()) throw std::runtime_error(sql + ": " + err);
  return out;
}

}  // namespace tars::test
