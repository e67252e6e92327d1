#pragma once
// A thin layer over cpp-httplib: one route table, JSON error bodies mapped
// from tars::Error in one place, 404/405/413 as JSON, a busy port reported
// clearly, an in-flight request counter and a graceful stop.
//
// Handlers are thin: they parse the request, call the node, and write JSON.
// Any exception leaving a handler becomes an error response here:
//   tars::Error(kInvalidArgument) -> 400   kNotFound    -> 404
//   tars::Error(kTooLarge)        -> 413   kUnavailable -> 503 (Retry-After: 1)
//   HttpError(status, ...)        -> status, as given
//   anything else                 -> 500
// Error bodies use OpenAI's shape, which every client of this API parses:
//   {"error": {"message": "...", "type": "invalid_request_error", "code": "..."}}
// except on Ollama's paths (/api/...), whose clients read Ollama's shape:
//   {"error": "..."}

#include <httplib.h>

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace tars::node {

// An error with an explicit HTTP status (405, 429, ...), for the cases the
// ErrorCode mapping does not cover.
class HttpError : public Error {
 public:
  HttpError(int status, std::string code, const std::string& message)
      : Error(ErrorCode::kInvalidArgument, message), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& error_code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

using HttpHandler = std::function<void(const httplib::Request&, httplib::Response&)>;

struct Route {
  std::string method;   // "GET", "POST", ...
  std::string path;     // exact path, or an httplib regex pattern
  HttpHandler handler;
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  uint64_t max_body_bytes = 8u << 20;
  int threads = 32;
};

// Told of every answered request, on the thread that answered it, after the
// answer's last byte: its method, the matched route's path pattern ("" when
// no route matched), the status, and the seconds since it arrived (-1 when
// its arrival was not seen: httplib refused it before routing).
using RequestObserver =
    std::function<void(const std::string& method, const std::string& route, int status, double seconds)>;

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();

  // Call before bind().
  void set_request_observer(RequestObserver observer);
  // Registers the routes; for each path, the methods it lacks answer 405
  // with an Allow header. Call before bind().
  void add_routes(const std::vector<Route>& routes);
  // Binds the socket. A busy port throws tars::Error(kIo) with a message that
  // names the address and says what to do.
  void bind();
  int port() const { return bound_port_; }
  // Serves until stop(); returns once the accept loop has ended and the
  // worker threads have finished their requests.
  void run();
  // Stops accepting connections (safe from any thread).
  void stop();
  int in_flight() const { return in_flight_.load(); }

 private:
  HttpServerOptions options_;
  httplib::Server server_;
  std::atomic<int> in_flight_{0};
  RequestObserver observer_;
  int bound_port_ = 0;
};

// The bytes of `s` as a JSON array of numbers (OpenAI's logprobs "bytes",
// llama-server's pieces that are not valid UTF-8).
nlohmann::json json_bytes(std::string_view s);
// Writes `body` as the JSON response with `status`.
void reply_json(httplib::Response& res, int status, const nlohmann::json& body);
// The error body for `status` (OpenAI's shape).
nlohmann::json error_body(int status, const std::string& message, const std::string& code);
// The error body for a request to `path`: Ollama's {"error": message} under
// /api/, Anthropic's {"type": "error", "error": {"type", "message"}} under
// /v1/messages, else error_body's.
nlohmann::json error_body_for(const std::string& path, int status, const std::string& message,
                              const std::string& code);
// Parses a request body as a JSON object, keys in the client's order
// (request_params.h); malformed JSON or another type throws
// tars::Error(kInvalidArgument) with the parser's position.
nlohmann::ordered_json parse_json_object(const httplib::Request& req);

}  // namespace tars::node
