// HttpServer's request observer (what tars_http_requests_total and
// tars_http_request_duration_seconds count): one call per answered request,
// with the route's pattern, the status, and a duration that runs to a
// stream's last byte.
#include "node/http_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <set>
#include <tuple>
#include <thread>

#include "support/test_support.h"

namespace tars::node {
namespace {

using namespace std::chrono_literals;

struct Seen {
  std::string method, route;
  int status = 0;
  double seconds = 0;
};

class ObservedServer : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.port = 0;
    o.max_body_bytes = 1024;
    o.threads = 4;
    server_ = std::make_unique<HttpServer>(o);
    server_->set_request_observer([this](const std::string& method, const std::string& route,
                                         int status, double seconds) {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back({method, route, status, seconds});
    });
    server_->add_routes({
        {"GET", "/fast", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); }},
        {"POST", "/fast", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); }},
        {"GET", "/items/([a-z]+)",
         [](const httplib::Request&, httplib::Response&) { throw Error(ErrorCode::kNotFound, "no such item"); }},
        // The handler returns at once; the answer's body comes 300 ms later.
        {"GET", "/stream",
         [](const httplib::Request&, httplib::Response& res) {
           res.set_chunked_content_provider("text/plain", [](size_t, httplib::DataSink& sink) {
             sink.write("a", 1);
             std::this_thread::sleep_for(300ms);
             sink.write("b", 1);
             sink.done();
             return true;
           });
         }},
    });
    server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10, 0);
    return c;
  }
  // The observations once `n` have come (the observer runs after the
  // answer is written, so just after the client has it).
  std::vector<Seen> seen(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (seen_.size() >= n || std::chrono::steady_clock::now() > deadline) return seen_;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

TEST_F(ObservedServer, EachRequestOnceWithItsRoutePatternAndStatus) {
  auto c = client();
  ASSERT_EQ(c.Get("/fast")->status, 200);
  ASSERT_EQ(c.Get("/items/abc")->status, 404);   // a handler's error, on its route
  ASSERT_EQ(c.Get("/items/xyz")->status, 404);
  ASSERT_EQ(c.Get("/no/such/path")->status, 404);  // no route: pooled as ""
  ASSERT_EQ(c.Delete("/fast")->status, 405);
  auto s = seen(5);
  ASSERT_EQ(s.size(), 5u);
  // Each connection has its own server thread, so the observations may come
  // in another order than the requests.
  std::multiset<std::tuple<std::string, std::string, int>> got;
  for (const auto& x : s) got.insert({x.method, x.route, x.status});
  std::multiset<std::tuple<std::string, std::string, int>> want = {
      {"GET", "/fast", 200},
      {"GET", "/items/([a-z]+)", 404},  // the pattern, not the path: bounded labels
      {"GET", "/items/([a-z]+)", 404},
      {"GET", "", 404},                 // no route: pooled as ""
      {"DELETE", "/fast", 405}};
  EXPECT_EQ(got, want);
  for (const auto& x : s) {
    EXPECT_GE(x.seconds, 0) << x.route;
    EXPECT_LT(x.seconds, 5) << x.route;
  }
}

TEST_F(ObservedServer, AStreamIsTimedToItsLastByte) {
  auto c = client();
  auto r = c.Get("/stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ab");
  auto s = seen(1);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].route, "/stream");
  EXPECT_GE(s[0].seconds, 0.3);
}

TEST_F(ObservedServer, ABodyOverTheLimitIsCountedToo) {
  auto c = client();
  auto r = c.Post("/fast", std::string(4096, 'x'), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  ASSERT_EQ(c.Get("/fast")->status, 200);  // and the next request is its own
  auto s = seen(2);
  ASSERT_EQ(s.size(), 2u);
  std::multiset<std::tuple<std::string, std::string, int>> got;
  for (const auto& x : s) got.insert({x.method, x.route, x.status});
  // The body is refused before routing: no route.
  std::multiset<std::tuple<std::string, std::string, int>> want = {{"POST", "", 413}, {"GET", "/fast", 200}};
  EXPECT_EQ(got, want);
  for (const auto& x : s) EXPECT_LT(x.seconds, 5) << x.route;
}

}  // namespace
}  // namespace tars::node
