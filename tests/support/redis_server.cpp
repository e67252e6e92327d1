#include "support/redis_server.h"

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace tars::test {

namespace {

std::string redis_server_binary() {
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::filesystem::path p = std::filesystem::path(dirs.substr(start, end - start)) / "redis-server";
    if (std::filesystem::exists(p)) return p.string();
    start = end + 1;
  }
  return "";
}

}  // namespace

RedisServer::RedisServer(std::vector<std::string> extra, int port) : port_(port ? port : free_port()) {
  using namespace std::chrono_literals;
  const std::string bin = redis_server_binary();
  if (bin.empty()) {
    throw std::runtime_error("redis-server not found on PATH: scripts/setup.sh installs Debian's redis-server");
  }
  std::vector<std::string> argv = {bin, "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  proc_ = std::make_unique<Process>(argv);
  for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
    timeval tv{0, 200000};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    const bool ok = c && !c->err;
    if (c) redisFree(c);
    if (ok) return;
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error("redis-server did not start: " + proc_->err() + proc_->out());
}

std::string RedisServer::command(const std::vector<std::string>& args, const std::string& password) {
  timeval tv{1, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (!c || c->err) {
    if (c) redisFree(c);
    throw std::runtime_error("cannot connect to the test's redis-server");
  }
  auto run = [&](const std::vector<std::string>& a) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& s : a) {
      argv.push_back(s.data());
      lens.push_back(s.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(a.size()), argv.data(), lens.data()));
    std::string v;
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)) {
      v.assign(r->str, r->len);
    } else if (r && r->type == REDIS_REPLY_INTEGER) {
      v = std::to_string(r->integer);
    }
    if (r) freeReplyObject(r);
    return v;
  };
  if (!password.empty()) run({"AUTH", password});
  std::string out = run(args);
  redisFree(c);
  return out;
}

}  // namespace tars::test
