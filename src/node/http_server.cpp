#include "node/http_server.h"

#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

namespace tars::node {
namespace {

const char* error_type(int status) {
  switch (status) {
    case 400: case 405: case 413: case 422: return "invalid_request_error";
    case 401: case 403: return "authentication_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

int status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kTooLarge: return 413;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kUnsupported: return 400;
    case ErrorCode::kCorruptData: return 422;
    default: return 500;
  }
}

// Why bind() failed, found by trying the bind ourselves to read errno.
std::string bind_failure_reason(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return std::string("cannot resolve host '") + host + "': " + gai_strerror(rc);
  std::string reason = "unknown error";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      int err = errno;
      if (err == EADDRINUSE) {
        reason = "port " + std::to_string(port) + " on " + host +
                 " is already in use (another tars node or program is listening there); stop "
                 "it, or choose another port with --port or TARS_PORT";
      } else if (err == EACCES) {
        reason = "permission denied for port " + std::to_string(port) +
                 " (ports below 1024 need privileges); choose another with --port";
      } else if (err == EADDRNOTAVAIL) {
        reason = "address " + host + " is not an address of this machine; check --host";
      } else {
        reason = std::string(std::strerror(err));
      }
    }
    ::close(fd);
    break;
  }
  ::freeaddrinfo(res);
  return reason;
}

// The request being answered on this thread: httplib reads, routes and
// answers a request on one thread, and its logger runs after the answer's
// last byte (a stream's too), so the observer's figures are kept here
// between the pre-routing hook, the route's handler and the logger.
struct CurrentRequest {
  std::chrono::steady_clock::time_point start;
  bool started = false;
  const std::string* route = nullptr;
};
thread_local CurrentRequest t_current;

}  // namespace

void reply_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Model text can hold invalid UTF-8 (a token may be part of a character):
  // replace it rather than fail the response.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

nlohmann::json json_bytes(std::string_view s) {
  nlohmann::json b = nlohmann::json::array();
  for (unsigned char c : s) b.push_back(c);
  return b;
}

nlohmann::json error_body(int status, const std::string& message, const std::string& code) {
  return {{"error", {{"message", message}, {"type", error_type(status)}, {"code", code}}}};
}

nlohmann::json error_body_for(const std::string& path, int status, const std::string& message,
                              const std::string& code) {
  if (path.rfind("/api/", 0) == 0) return {{"error", message}};
  if (path.rfind("/v1/messages", 0) == 0) {
    // Anthropic's shape, whose SDKs read error.type and error.message.
    const char* type = status == 400   ? "invalid_request_error"
                       : status == 401 ? "authentication_error"
                       : status == 403 ? "permission_error"
                       : status == 404 ? "not_found_error"
                       : status == 413 ? "request_too_large"
                       : status == 429 ? "rate_limit_error"
                       : status == 503 ? "overloaded_error"
                                       : "api_error";
    return {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
  }
  return error_body(status, message, code);
}

nlohmann::ordered_json parse_json_object(const httplib::Request& req) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(req.body);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number no double holds (1e999)
    throw HttpError(400, "invalid_json", std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) {
    throw HttpError(400, "invalid_request", "request body must be a JSON object, got " +
                                                std::string(j.type_name()));
  }
  return j;
}

HttpServer::HttpServer(HttpServerOptions options) : options_(std::move(options)) {
  int threads = options_.threads;
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_.set_payload_max_length(options_.max_body_bytes);
  // An idle kept-alive connection holds its worker thread until this runs
  // out, and a stopping server waits for every worker: keep it short so
  // SIGTERM ends the process in about this long when nothing is running.
  server_.set_keep_alive_timeout(2);
  // Answers go out as headers, then the body or a stream's chunks, in
  // separate writes: with Nagle's algorithm a write can wait for the
  // client's (delayed, up to 40 ms) ACK of the one before. A client that
  // sends its own request in two writes without TCP_NODELAY meets the same
  // wait on its side, which the server cannot avoid: Node's fetch (and so
  // the openai package) does that for bodies above about a kilobyte (README).
  server_.set_tcp_nodelay(true);
  // httplib's default also sets SO_REUSEPORT, which lets a second node bind
  // the same port silently; SO_REUSEADDR alone allows a quick restart but
  // refuses a port that is in use.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  uint64_t limit = options_.max_body_bytes;
  // Bodies for the statuses httplib produces itself (no route, body too
  // large, malformed HTTP); responses a handler wrote keep their body.
  httplib::Server::HandlerWithResponse on_error = [limit](const httplib::Request& req,
                                                          httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg, code;
    switch (res.status) {
      case 404: msg = "no such endpoint: " + req.method + " " + req.path; code = "not_found"; break;
      case 413: msg = "request body is larger than the limit of " + std::to_string(limit) +
                      " bytes (server.max_body)"; code = "body_too_large"; break;
      case 400: msg = "malformed HTTP request"; code = "bad_request"; break;
      default: msg = "HTTP error " + std::to_string(res.status); code = "http_error"; break;
    }
    reply_json(res, res.status, error_body_for(req.path, res.status, msg, code));
    return httplib::Server::HandlerResponse::Handled;
  };
  server_.set_error_handler(on_error);
  server_.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    t_current = {std::chrono::steady_clock::now(), true, nullptr};
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("{} {} {} -> {}", req.remote_addr, req.method, req.path, res.status);
    CurrentRequest current = t_current;
    t_current = {};
    if (!observer_) return;
    double seconds = -1;
    if (current.started) {
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - current.start).count();
    }
    observer_(req.method, current.route ? *current.route : std::string(), res.status, seconds);
  });
}

void HttpServer::set_request_observer(RequestObserver observer) { observer_ = std::move(observer); }

HttpServer::~HttpServer() { stop(); }

void HttpServer::add_routes(const std::vector<Route>& routes) {
  static const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "PATCH", "DELETE",
                                                    "OPTIONS"};
  std::map<std::string, std::map<std::string, HttpHandler>> by_path;
  std::vector<std::string> order;
  for (const auto& r : routes) {
    if (!by_path.count(r.path)) order.push_back(r.path);
    by_path[r.path][r.method] = r.handler;
  }
  for (const auto& path : order) {
    const auto& methods = by_path[path];
    std::string allow;
    for (const auto& [m, h] : methods) allow += (allow.empty() ? "" : ", ") + m;
    for (const auto& method : kMethods) {
      HttpHandler handler;
      if (auto it = methods.find(method); it != methods.end()) {
        handler = it->second;
      } else {
        handler = [allow, method](const httplib::Request& req, httplib::Response& res) {
          res.set_header("Allow", allow);
          throw HttpError(405, "method_not_allowed",
                          "method " + method + " is not allowed on " + req.path + " (allowed: " +
                              allow + ")");
        };
      }
      // The one place where handler failures become HTTP errors.
      httplib::Server::Handler wrapped = [this, handler, route = std::make_shared<const std::string>(path)](
                                             const httplib::Request& req, httplib::Response& res) {
        t_current.route = route.get();
        struct InFlight {
          std::atomic<int>& n;
          explicit InFlight(std::atomic<int>& c) : n(c) { ++n; }
          ~InFlight() { --n; }
        } guard(in_flight_);
        try {
          handler(req, res);
        } catch (const HttpError& e) {
          reply_json(res, e.status(), error_body_for(req.path, e.status(), e.what(), e.error_code()));
        } catch (const Error& e) {
          int status = status_of(e.code());
          if (status == 503) res.set_header("Retry-After", "1");
          if (status == 503) spdlog::warn("{} {}: {}", req.method, req.path, e.what());
          else if (status >= 500) spdlog::error("{} {}: {}", req.method, req.path, e.what());
          reply_json(res, status, error_body_for(req.path, status, e.what(), error_code_name(e.code())));
        } catch (const std::exception& e) {
          spdlog::error("{} {}: unexpected error: {}", req.method, req.path, e.what());
          reply_json(res, 500, error_body_for(req.path, 500, std::string("internal error: ") + e.what(),
                                          "internal_error"));
        }
      };
      if (method == "GET") server_.Get(path, wrapped);
      else if (method == "POST") server_.Post(path, wrapped);
      else if (method == "PUT") server_.Put(path, wrapped);
      else if (method == "PATCH") server_.Patch(path, wrapped);
      else if (method == "DELETE") server_.Delete(path, wrapped);
      else server_.Options(path, wrapped);
    }
  }
}

void HttpServer::bind() {
  if (options_.port == 0) {
    bound_port_ = server_.bind_to_any_port(options_.host);
    if (bound_port_ > 0) return;
  } else if (server_.bind_to_port(options_.host, options_.port)) {
    bound_port_ = options_.port;
    return;
  }
  throw Error(ErrorCode::kIo, "cannot listen on " + options_.host + ":" +
                                  std::to_string(options_.port) + ": " +
                                  bind_failure_reason(options_.host, options_.port));
}

void HttpServer::run() { server_.listen_after_bind(); }

void HttpServer::stop() { server_.stop(); }

}  // namespace tars::node
