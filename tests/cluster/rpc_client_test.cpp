// POST /rpc (cluster/rpc_route.h) on an in-process HttpServer on loopback,
// seen by plain HTTP and by RpcClient (cluster/rpc_client.h): statuses,
// tokens, timeouts, retries for idempotent methods only, unreachable nodes.
#include "cluster/rpc_client.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "cluster/rpc_route.h"
#include "node/http_server.h"
#include "support/test_support.h"

namespace tars::cluster {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "s3cret-token";

// A node serving only /rpc with a small table.
class RpcNode {
 public:
  explicit RpcNode(std::string token = kToken, uint64_t max_body = 1 << 20)
      : server_({"127.0.0.1", 0, max_body, 8}) {
    auto table = std::make_shared<RpcMethodTable>();
    table->add({"echo", true, [](const json& p, const RpcCall&) { return p; }, "params back"});
    table->add({"count", false, [this](const json&, const RpcCall&) { return json(++calls); }, ""});
    table->add({"slow", true,
                [this](const json&, const RpcCall&) {
                  ++calls;
                  std::this_thread::sleep_for(1500ms);
                  return json("late");
                },
                ""});
    table->add({"fail", true,
                [](const json&, const RpcCall&) -> json {
                  throw RpcError(kRpcNotFound, "no model 'x' here", json{{"model", "x"}});
                },
                ""});
    table->add({"peer", true, [](const json&, const RpcCall& c) { return json(c.remote_addr); }, ""});
    server_.add_routes({rpc_route(table, std::move(token))});
    server_.bind();
    thread_ = std::thread([this] { server_.run(); });
  }
  ~RpcNode() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  httplib::Result post(const std::string& body, const std::string& token = kToken) {
    httplib::Client c("127.0.0.1", server_.port());
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return c.Post(kRpcPath, h, body, "application/json");
  }

  std::atomic<int> calls{0};

 private:
  node::HttpServer server_;
  std::thread thread_;
};

// A TCP listener that accepts connections, reads a little and closes them
// without answering: a node that dies while handling the request.
class Dropper {
 public:
  Dropper() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) {
          if (c >= 0) ::close(c);
          return;
        }
        ++accepted;
        char buf[4096];
        (void)::recv(c, buf, sizeof buf, 0);
        ::close(c);
      }
    });
  }
  ~Dropper() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> accepted{0};

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

RpcClientOptions fast_options(std::atomic<int>* retries = nullptr) {
  RpcClientOptions o;
  o.connect_timeout = 500ms;
  o.read_timeout = 2000ms;
  o.retries = 2;
  o.backoff = 10ms;
  o.node_name = "worker-1";
  if (retries) o.on_retry = [retries](int, const std::string&) { ++*retries; };
  return o;
}

TEST(RpcRoute, ErrorsAreHttp200WithTheJsonRpcBody) {
  RpcNode node;
  auto r = node.post("{not json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);  // not the node's generic 400
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  json j = json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], kRpcParseError);
  EXPECT_EQ(j["id"], nullptr);

  r = node.post(R"({"jsonrpc":"2.0","method":"nope","id":4})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], kRpcMethodNotFound);
}

TEST(RpcRoute, NotificationsOnlyGet204AndNoBody) {
  RpcNode node;
  auto r = node.post(R"({"jsonrpc":"2.0","method":"count"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_TRUE(r->body.empty());
  r = node.post(R"([{"jsonrpc":"2.0","method":"count"},{"jsonrpc":"2.0","method":"count"}])");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(node.calls, 3);
}

TEST(RpcRoute, TokenMissingWrongOrUnconfiguredIsMinus32001AndNothingRuns) {
  RpcNode node;
  for (const std::string token : {"", "wrong"}) {
    for (const char* body : {R"({"jsonrpc":"2.0","method":"count","id":1})",
                             R"({"jsonrpc":"2.0","method":"count"})",
                             R"([{"jsonrpc":"2.0","method":"count","id":1}])", "{bad json"}) {
      auto r = node.post(body, token);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
      json j = json::parse(r->body);
      EXPECT_EQ(j["error"]["code"], kRpcUnauthorized) << body;
      EXPECT_EQ(j["id"], nullptr);
      EXPECT_EQ(j["error"]["message"], token.empty() ? "missing join token (send Authorization: Bearer "
                                                       "<token>; set it with --join-token / TARS_JOIN_TOKEN)"
                                                     : "wrong join token");
    }
  }
  EXPECT_EQ(node.calls, 0);

  RpcNode open_node("");  // no join token configured: /rpc refuses everyone
  auto r = open_node.post(R"({"jsonrpc":"2.0","method":"echo","id":1})", "anything");
  ASSERT_TRUE(r);
  json j = json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], kRpcUnauthorized);
  EXPECT_NE(j["error"]["message"].get<std::string>().find("--join-token"), std::string::npos);
}

TEST(RpcRoute, OtherMethodsAre405AndHugeBodies413) {
  RpcNode node(kToken, 1024);
  httplib::Client c(node.url());
  auto r = c.Get(kRpcPath);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
  r = node.post(std::string(4096, ' ') + "{}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST(RpcClient, CallsAndReturnsTheResult) {
  RpcNode node;
  RpcClient client(node.url() + "/", kToken, fast_options());
  EXPECT_EQ(client.call("echo", json{{"a", 1}}, true), (json{{"a", 1}}));
  EXPECT_EQ(client.call("echo", json::array({1, "two"})), json::array({1, "two"}));
  EXPECT_EQ(client.call("echo"), nullptr);
  EXPECT_EQ(client.call("count"), 1);
  EXPECT_NE(client.call("peer").get<std::string>().find("127.0.0.1:"), std::string::npos);
}

TEST(RpcClient, RemoteErrorsKeepCodeMessageAndDataAndNameNodeAndMethod) {
  RpcNode node;
  RpcClient client(node.url(), kToken, fast_options());
  try {
    client.call("fail", nullptr, true);
    FAIL() << "no throw";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.rpc_code(), kRpcNotFound);
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    std::string msg = e.what();
    EXPECT_NE(msg.find("worker-1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fail"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no model 'x' here"), std::string::npos) << msg;
    EXPECT_EQ(e.data(), (json{{"model", "x"}}));
  }
  try {
    client.call("missing.method");
    FAIL() << "no throw";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.rpc_code(), kRpcMethodNotFound);
  }
  RpcClient intruder(node.url(), "guess", fast_options());
  try {
    intruder.call("count");
    FAIL() << "no throw";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.rpc_code(), kRpcUnauthorized);
    EXPECT_NE(std::string(e.what()).find("wrong join token"), std::string::npos);
  }
  // A notification refused for its token still tells the caller.
  EXPECT_THROW(intruder.notify("count"), RpcError);
  EXPECT_EQ(node.calls, 0);
}

TEST(RpcClient, NotifyAndBatch) {
  RpcNode node;
  RpcClient client(node.url(), kToken, fast_options());
  client.notify("count");
  client.notify("no.such.method");  // nothing is answered to notifications, errors included
  EXPECT_EQ(node.calls, 1);
  auto out = client.batch({{"echo", json::array({1})}, {"fail", nullptr}, {"count", nullptr}});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].error);
  EXPECT_EQ(out[0].result, json::array({1}));
  ASSERT_TRUE(out[1].error);
  EXPECT_EQ(out[1].error->rpc_code(), kRpcNotFound);
  EXPECT_FALSE(out[2].error);
  EXPECT_EQ(out[2].result, 2);
  EXPECT_TRUE(client.batch({}).empty());
}

TEST(RpcClient, ReadTimeoutIsMinus32006AndNeverRetried) {
  RpcNode node;
  std::atomic<int> retries{0};
  auto opt = fast_options(&retries);
  opt.read_timeout = 200ms;
  RpcClient client(node.url(), kToken, opt);
  auto start = std::chrono::steady_clock::now();
  try {
    client.call("slow", nullptr, /*idempotent=*/true);
    FAIL() << "no throw";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.rpc_code(), kRpcTimeout);
    EXPECT_NE(std::string(e.what()).find("slow"), std::string::npos) << e.what();
  }
  // Well before the handler answers (1.5 s), with room for a loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1200ms);
  EXPECT_EQ(retries, 0);
  std::this_thread::sleep_until(start + 1600ms);  // let the handler finish before the node stops
  EXPECT_EQ(node.calls, 1);
}

TEST(RpcClient, UnreachableNodeIsUnavailableNamingUrlAndMethodAfterBoundedRetries) {
  int port = test::free_port();  // nothing listens there
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  for (bool idempotent : {true, false}) {
    std::atomic<int> retries{0};
    RpcClient client(url, kToken, fast_options(&retries));
    try {
      client.call("node.info", nullptr, idempotent);
      FAIL() << "no throw";
    } catch (const RpcError& e) {
      FAIL() << "an RpcError for a transport failure: " << e.what();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
      std::string msg = e.what();
      EXPECT_NE(msg.find(url + "/rpc"), std::string::npos) << msg;
      EXPECT_NE(msg.find("node.info"), std::string::npos) << msg;
    }
    EXPECT_EQ(retries, idempotent ? 2 : 0);
  }
}

TEST(RpcClient, BrokenConnectionIsRetriedOnlyForIdempotentMethods) {
  Dropper dropper;
  std::atomic<int> retries{0};
  RpcClient client(dropper.url(), kToken, fast_options(&retries));
  EXPECT_THROW(client.call("model.load", json{{"id", "m"}}, /*idempotent=*/false), Error);
  EXPECT_EQ(dropper.accepted, 1);
  EXPECT_EQ(retries, 0);
  EXPECT_THROW(client.call("node.status", nullptr, /*idempotent=*/true), Error);
  EXPECT_EQ(dropper.accepted, 1 + 3);  // the first try and two retries
  EXPECT_EQ(retries, 2);
}

TEST(RpcClient, RetrySucceedsWhenTheNodeComesUp) {
  // The first attempt finds nobody; the node appears before the retry.
  int port = test::free_port();
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  node::HttpServer server({"127.0.0.1", port, 1 << 20, 4});
  auto table = std::make_shared<RpcMethodTable>();
  table->add({"ping", true, [](const json&, const RpcCall&) { return json("pong"); }, ""});
  server.add_routes({rpc_route(table, kToken)});
  std::thread runner;
  auto opt = fast_options();
  opt.backoff = 50ms;
  opt.on_retry = [&](int attempt, const std::string&) {
    if (attempt == 2) {
      server.bind();
      runner = std::thread([&] { server.run(); });
    }
  };
  RpcClient client(url, kToken, opt);
  EXPECT_EQ(client.call("ping", nullptr, true), "pong");
  server.stop();
  if (runner.joinable()) runner.join();
}

}  // namespace
}  // namespace tars::cluster
