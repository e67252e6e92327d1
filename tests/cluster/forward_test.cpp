#include "cluster/forward.h"
#include "cluster/router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <mutex>
#include <thread>
#include <utility>

#include "node/http_server.h"
#include "support/test_support.h"

namespace tars::cluster {
namespace {

// An upstream node: plain httplib on a loopback port with a JSON answer, a
// complete event stream and one that breaks off in the middle.
class Upstream {
 public:
  Upstream() {
    server_.Post("/json", [this](const httplib::Request& req, httplib::Response& res) {
      forwarded_by_ = req.get_header_value(kForwardedHeader);
      res.status = req.body == "bad" ? 400 : 200;
      res.set_content(R"({"echo":)" + nlohmann::json(req.body).dump() + "}", "application/json");
    });
    server_.Post("/stream", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
        for (int i = 0; i < 3; ++i) {
          std::string e = "data: {\"i\":" + std::to_string(i) + "}\n\n";
          sink.write(e.data(), e.size());
        }
        std::string end = "data: [DONE]\n\n";
        sink.write(end.data(), end.size());
        sink.done();
        return true;
      });
    });
    server_.Post("/broken", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
        std::string e = "data: {\"i\":0}\n\n";
        sink.write(e.data(), e.size());
        return false;  // the node dies: the connection closes without the last chunk
      });
    });
    // Ollama's JSON lines: a whole stream (its closing line longer than the
    // forwarder's old 64-byte tail), one that breaks off, and one whose last
    // line is the node's own error.
    auto lines = [](bool close, bool error_last) {
      return [close, error_last](const httplib::Request&, httplib::Response& res) {
        res.set_chunked_content_provider("application/x-ndjson", [close, error_last](size_t, httplib::DataSink& sink) {
          std::string l = R"({"response":"a","done":false})" "\n";
          sink.write(l.data(), l.size());
          if (!close) return false;  // the node dies mid-stream
          std::string end = error_last ? std::string(R"({"error":"generation failed: boom"})") + "\n"
                                       : R"({"response":"","done":true,"done_reason":"stop","total_duration":)"
                                         R"(123456789,"load_duration":1,"prompt_eval_count":5,"eval_count":9})" "\n";
          sink.write(end.data(), end.size());
          sink.done();
          return true;
        });
      };
    };
    // The other APIs' event streams, each ending its own way; "cut" ones
    // stop before their closing event (the node dies).
    auto events = [](std::vector<std::string> evs, bool close) {
      return [evs, close](const httplib::Request&, httplib::Response& res) {
        res.set_chunked_content_provider("text/event-stream", [evs, close](size_t, httplib::DataSink& sink) {
          for (size_t i = 0; i + (close ? 0 : 1) < evs.size(); ++i) sink.write(evs[i].data(), evs[i].size());
          if (!close) return false;
          sink.done();
          return true;
        });
      };
    };
    const std::vector<std::string> anthropic = {
        "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"};
    // The Responses API's last event repeats the whole answer: far longer than 4 KiB.
    const std::string long_text(20000, 'x');
    const std::vector<std::string> responses = {
        "event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output_text\":\"" + long_text +
            "\"},\"sequence_number\":3}\n\n"};
    const std::vector<std::string> llama = {"data: {\"index\":0,\"content\":\"a\",\"stop\":false}\n\n",
                                            "data: {\"stop\":true,\"content\":\"\",\"prompt\":\"" + long_text + "\"}\n\n"};
    server_.Post("/anthropic", events(anthropic, true));
    server_.Post("/v1/messages", events(anthropic, false));
    server_.Post("/responses", events(responses, true));
    server_.Post("/v1/responses", events(responses, false));
    server_.Post("/completion", events(llama, true));
    server_.Post("/lines", lines(true, false));
    server_.Post("/lines-broken", lines(false, false));
    server_.Post("/lines-error", lines(true, true));
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Upstream() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string forwarded_by() const { return forwarded_by_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string forwarded_by_;
};

// The forwarding node: a tars HttpServer whose routes forward to `replicas`.
class Forwarder {
 public:
  explicit Forwarder(std::vector<Replica> replicas) : server_({"127.0.0.1", 0, 1 << 20, 8}) {
    ForwardOptions opt;
    opt.self_id = "node-a";
    opt.connect_timeout = std::chrono::milliseconds(500);
    opt.on_outcome = [this](const Replica& r, const char* outcome) {
      std::lock_guard<std::mutex> lock(mu_);
      outcomes_.push_back(r.node_id + ":" + outcome);
    };
    auto fwd = [replicas, opt](const httplib::Request& req, httplib::Response& res) {
      forward_request(req, res, replicas, opt);
    };
    server_.add_routes({{"POST", "/json", fwd}, {"POST", "/stream", fwd}, {"POST", "/broken", fwd},
                        {"POST", "/lines", fwd}, {"POST", "/lines-broken", fwd}, {"POST", "/lines-error", fwd},
                        {"POST", "/anthropic", fwd}, {"POST", "/v1/messages", fwd}, {"POST", "/responses", fwd},
                        {"POST", "/v1/responses", fwd}, {"POST", "/completion", fwd}});
    server_.bind();
    thread_ = std::thread([this] { server_.run(); });
  }
  ~Forwarder() {
    server_.stop();
    thread_.join();
  }
  httplib::Client client() const { return httplib::Client("127.0.0.1", server_.port()); }
  // "node:outcome" for each replica tried (ForwardOptions::on_outcome), in
  // order; taken, so the next call gives only what came after.
  std::vector<std::string> outcomes() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(outcomes_, {});
  }

 private:
  std::mutex mu_;
  std::vector<std::string> outcomes_;
  node::HttpServer server_;
  std::thread thread_;
};

Replica replica(const std::string& id, const std::string& url) {
  Replica r;
  r.node_id = id;
  r.node_name = id;
  r.url = url;
  r.loaded = true;
  return r;
}

std::string dead_url() { return "http://127.0.0.1:" + std::to_string(test::free_port()); }

TEST(Forward, JsonAnswerWithStatusAfterSkippingADeadNode) {
  Upstream up;
  Forwarder fwd({replica("dead", dead_url()), replica("b", up.url())});
  auto cli = fwd.client();
  auto r = cli.Post("/json", "hello", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(nlohmann::json::parse(r->body)["echo"], "hello");
  EXPECT_EQ(r->get_header_value("X-Tars-Served-By"), "b");
  EXPECT_EQ(up.forwarded_by(), "node-a");
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"dead:skipped", "b:answered"}));
  // The upstream's error status passes through as it is.
  r = cli.Post("/json", "bad", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"dead:skipped", "b:answered"}));
}

TEST(Forward, NoReachableNodeIsA503NamingEachNode) {
  Forwarder fwd({replica("dead1", dead_url()), replica("dead2", dead_url())});
  auto r = fwd.client().Post("/json", "x", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  std::string msg = nlohmann::json::parse(r->body)["error"]["message"];
  EXPECT_NE(msg.find("dead1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dead2"), std::string::npos) << msg;
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"dead1:skipped", "dead2:skipped"}));
}

TEST(Forward, EventStreamPassesThroughWhole) {
  Upstream up;
  Forwarder fwd({replica("b", up.url())});
  auto r = fwd.client().Post("/stream", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(r->body, "data: {\"i\":0}\n\ndata: {\"i\":1}\n\ndata: {\"i\":2}\n\ndata: [DONE]\n\n");
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"b:answered"}));
}

TEST(Forward, StreamBrokenMidwayEndsWithAnErrorEvent) {
  Upstream up;
  Forwarder fwd({replica("b", up.url())});
  auto r = fwd.client().Post("/broken", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body.rfind("data: {\"i\":0}\n\n", 0), 0u) << r->body;
  EXPECT_NE(r->body.find("failed mid-stream"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("[DONE]"), std::string::npos);
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"b:broken"}));
}

TEST(Forward, EachApisClosingEventEndsItsStreamAndACutOneGetsItsOwnErrorEvent) {
  Upstream up;
  Forwarder fwd({replica("b", up.url())});
  auto cli = fwd.client();
  // Whole streams pass through as they are, whatever their closing event
  // and however long it is.
  for (const char* path : {"/anthropic", "/responses", "/completion"}) {
    auto r = cli.Post(path, "{}", "application/json");
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->body.find("failed mid-stream"), std::string::npos) << path << ": " << r->body.substr(0, 300);
  }
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"b:answered", "b:answered", "b:answered"}));
  // Cut before the end: the error comes in the API's own shape.
  auto a = cli.Post("/v1/messages", "{}", "application/json");
  ASSERT_TRUE(a);
  const size_t at = a->body.rfind("event: error\ndata: ");
  ASSERT_NE(at, std::string::npos) << a->body;
  const auto e = nlohmann::json::parse(a->body.substr(at + 19));
  EXPECT_EQ(e["type"], "error");
  EXPECT_EQ(e["error"]["type"], "api_error");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("failed mid-stream"), std::string::npos);
  auto r = cli.Post("/v1/responses", "{}", "application/json");
  ASSERT_TRUE(r);
  const size_t rat = r->body.rfind("event: error\ndata: ");
  ASSERT_NE(rat, std::string::npos) << r->body.substr(0, 300);
  const auto re = nlohmann::json::parse(r->body.substr(rat + 19));
  EXPECT_EQ(re["type"], "error");
  EXPECT_EQ(re["code"], "upstream_failed");
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"b:broken", "b:broken"}));
}

// Splits a JSON-lines body into parsed lines (each must be JSON).
std::vector<nlohmann::json> json_lines(const std::string& body) {
  std::vector<nlohmann::json> out;
  size_t at = 0;
  while (at < body.size()) {
    size_t nl = body.find('\n', at);
    if (nl == std::string::npos) nl = body.size();
    out.push_back(nlohmann::json::parse(body.substr(at, nl - at)));
    at = nl + 1;
  }
  return out;
}

TEST(Forward, JsonLinesPassThroughWholeAndBrokenOnesEndWithAnErrorLine) {
  Upstream up;
  Forwarder fwd({replica("b", up.url())});
  auto cli = fwd.client();
  auto r = cli.Post("/lines", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-ndjson");
  auto whole = json_lines(r->body);
  ASSERT_EQ(whole.size(), 2u) << r->body;  // nothing added to a stream that closed
  EXPECT_EQ(whole[1]["done"], true);

  r = cli.Post("/lines-broken", "{}", "application/json");
  ASSERT_TRUE(r);
  auto broken = json_lines(r->body);
  ASSERT_EQ(broken.size(), 2u) << r->body;
  EXPECT_EQ(broken[0]["response"], "a");
  ASSERT_TRUE(broken[1].contains("error")) << r->body;  // Ollama's clients throw on it
  EXPECT_NE(broken[1]["error"].get<std::string>().find("failed mid-stream"), std::string::npos);

  r = cli.Post("/lines-error", "{}", "application/json");
  ASSERT_TRUE(r);
  auto failed = json_lines(r->body);
  ASSERT_EQ(failed.size(), 2u) << r->body;  // the node's own error is the end
  EXPECT_EQ(failed[1]["error"], "generation failed: boom");
  // The node's own error line closes its stream: answered, by the node.
  EXPECT_EQ(fwd.outcomes(), (std::vector<std::string>{"b:answered", "b:broken", "b:answered"}));
}

TEST(Router, EveryModelBearingPathHasItsRole) {
  for (const char* p : {"/v1/chat/completions", "/chat/completions", "/v1/completions", "/inference", "/tokenize",
                        "/detokenize", "/api/chat", "/api/generate", "/v1/messages", "/v1/messages/count_tokens",
                        "/v1/responses", "/apply-template", "/completion", "/completions", "/infill"}) {
    EXPECT_EQ(router_role_for_path("POST", p), "chat") << p;
  }
  for (const char* p : {"/v1/rerank", "/v1/reranking", "/rerank", "/reranking"}) {
    EXPECT_EQ(router_role_for_path("POST", p), "rerank") << p;
  }
  for (const char* p : {"/embed", "/v1/embeddings", "/api/embed", "/api/embeddings", "/embedding", "/embeddings"}) {
    EXPECT_EQ(router_role_for_path("POST", p), "embedding") << p;
  }
  EXPECT_EQ(router_role_for_path("POST", "/api/show"), "any");
  for (const char* p : {"/health", "/v1/models", "/api/tags", "/api/ps", "/rpc"}) {
    EXPECT_EQ(router_role_for_path("GET", p), "") << p;
  }
  EXPECT_EQ(router_role_for_path("GET", "/api/chat"), "");  // a 405 from the route table, not a forward
}

TEST(RouteTable, OrderPrefersLoadedThenLeastLoadedAndExcludesSelf) {
  RouteEntry e{"m", "chat", {}};
  Replica a = replica("a", "u1"), b = replica("b", "u2"), c = replica("c", "u3"), d = replica("d", "u4");
  a.load = 5;
  b.load = 1;
  c.load = 0;
  c.loaded = false;
  d.load = 1;
  e.replicas = {a, b, c, d};
  auto order = route_order(e, "d");
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0].node_id, "b");
  EXPECT_EQ(order[1].node_id, "a");
  EXPECT_EQ(order[2].node_id, "c");

  RouteTable t;
  t.set({{"emb", "embedding", {a}}, e}, 7);
  EXPECT_EQ(t.find("", "chat")->model, "m");
  EXPECT_EQ(t.find("emb", "chat")->role, "embedding");
  EXPECT_FALSE(t.find("nope", "chat"));
  uint64_t version = 0;
  auto back = RouteTable::entries_from_json(t.to_json(), &version);
  EXPECT_EQ(version, 7u);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].replicas.size(), 4u);
  EXPECT_EQ(back[1].replicas[2].loaded, false);
  EXPECT_THROW(RouteTable::entries_from_json(nlohmann::json{{"routes", {{{"model", 1}}}}}), Error);
  // A replica's load is a count and the version a non-negative integer:
  // get<int>() cast -1e300 (undefined behaviour, found by requests_fuzz).
  for (const nlohmann::json& v : {nlohmann::json(-1e300), nlohmann::json(0.5), nlohmann::json(-1)}) {
    nlohmann::json j = t.to_json();
    j["routes"][0]["replicas"][0]["load"] = v;
    EXPECT_THROW(RouteTable::entries_from_json(j), Error) << v.dump();
    j = t.to_json();
    j["version"] = v;
    EXPECT_THROW(RouteTable::entries_from_json(j, &version), Error) << v.dump();
  }
}

}  // namespace
}  // namespace tars::cluster
