#include "cluster/rpc_client.h"

#include <httplib.h>

#include <map>
#include <thread>

#include "cluster/rpc_route.h"

namespace tars::cluster {
namespace {

using Clock = std::chrono::steady_clock;

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// Why a request got no response, in words.
std::string transport_reason(httplib::Error err, const RpcClientOptions& o) {
  switch (err) {
    case httplib::Error::Connection: return "could not connect (refused, unreachable or no answer within " + ms(o.connect_timeout) + ")";
    case httplib::Error::ConnectionTimeout: return "no connection within " + ms(o.connect_timeout);
    case httplib::Error::Read: return "the connection closed before an answer came";
    case httplib::Error::Write: return "sending the request failed";
    default: return "HTTP client error " + httplib::to_string(err);
  }
}

ErrorCode kind_of_status(int status) {
  switch (status) {
    case 400: return ErrorCode::kInvalidArgument;
    case 404: return ErrorCode::kNotFound;
    case 413: return ErrorCode::kTooLarge;
    case 503: return ErrorCode::kUnavailable;
    default: return ErrorCode::kInternal;
  }
}

}  // namespace

RpcClient::RpcClient(std::string base_url, std::string token, RpcClientOptions options)
    : base_url_(std::move(base_url)), token_(std::move(token)), options_(std::move(options)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
}

std::string RpcClient::node() const {
  return options_.node_name.empty() ? base_url_ : options_.node_name + " (" + base_url_ + ")";
}

std::string RpcClient::post(const std::string& body, const std::string& what, bool idempotent) {
  const int attempts = idempotent ? 1 + std::max(0, options_.retries) : 1;
  auto backoff = options_.backoff;
  for (int attempt = 1;; ++attempt) {
    httplib::Client client(base_url_);
    if (!client.is_valid()) {
      throw Error(ErrorCode::kInvalidArgument, "cannot call " + what + ": '" + base_url_ +
                                                   "' is not a node URL (http://host:port)");
    }
    client.set_connection_timeout(options_.connect_timeout);
    client.set_tcp_nodelay(true);  // headers and body at once (http_server.cpp)
    client.set_read_timeout(options_.read_timeout);
    client.set_write_timeout(options_.read_timeout);
    httplib::Headers headers = {{"Authorization", "Bearer " + token_}};
    auto start = Clock::now();
    httplib::Result res = client.Post(kRpcPath, headers, body, "application/json");
    if (res) {
      if (res->status == 200) return res->body;
      if (res->status == 204) return "";
      // Not a JSON-RPC answer (413, 405, a proxy's page): say what came.
      std::string msg = res->body.substr(0, 300);
      try {
        json j = json::parse(res->body);
        msg = j.at("error").at("message").get<std::string>();
      } catch (const std::exception&) {
      }
      throw Error(kind_of_status(res->status), "node " + node() + " answered " + what +
                                                   " with HTTP " + std::to_string(res->status) +
                                                   ": " + msg);
    }
    const httplib::Error err = res.error();
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    if (err == httplib::Error::Read && elapsed >= options_.read_timeout) {
      // The server may still be working on it: never retried.
      throw RpcError(kRpcTimeout, "node " + node() + ": " + what + ": no answer within the read "
                                      "timeout of " + ms(options_.read_timeout));
    }
    // Connection/ConnectionTimeout: the request surely did not arrive. Read
    // (before the deadline) and Write: the connection broke.
    bool retryable = err == httplib::Error::Connection || err == httplib::Error::ConnectionTimeout ||
                     err == httplib::Error::Read || err == httplib::Error::Write;
    std::string why = transport_reason(err, options_);
    if (retryable && attempt < attempts) {
      if (options_.on_retry) options_.on_retry(attempt + 1, why);
      std::this_thread::sleep_for(backoff);
      backoff *= 2;
      continue;
    }
    std::string tries = attempt > 1 ? " (" + std::to_string(attempt) + " attempts)" : "";
    throw Error(ErrorCode::kUnavailable, "cannot reach node " + node() + " at " + base_url_ +
                                             kRpcPath + " for " + what + ": " + why + tries);
  }
}

json RpcClient::parse_response(const std::string& body, const std::string& what) const {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw Error(ErrorCode::kCorruptData, "node " + node() + " answered " + what +
                                             " with a body that is not JSON: " + e.what());
  }
}

RpcError RpcClient::remote_error(const json& error, const std::string& what) const {
  int code = kRpcInternalError;
  std::string message = error.dump();
  json data = nullptr;
  if (error.is_object()) {
    if (auto c = error.find("code"); c != error.end() && c->is_number_integer()) code = c->get<int>();
    if (auto m = error.find("message"); m != error.end() && m->is_string()) message = m->get<std::string>();
    if (auto d = error.find("data"); d != error.end()) data = *d;
  }
  return RpcError(code, "node " + node() + ": " + what + ": " + message, std::move(data));
}

json RpcClient::call(const std::string& method, const json& params, bool idempotent) {
  const int64_t id = next_id_++;
  json request = {{"jsonrpc", "2.0"}, {"method", method}, {"id", id}};
  if (!params.is_null()) request["params"] = params;
  std::string body = post(request.dump(), method, idempotent);
  json response = parse_response(body, method);
  if (response.is_object() && response.contains("error")) throw remote_error(response["error"], method);
  if (!response.is_object() || !response.contains("result") || response.value("id", json()) != id) {
    throw Error(ErrorCode::kCorruptData, "node " + node() + " answered " + method +
                                             " with something that is not its JSON-RPC response: " +
                                             body.substr(0, 200));
  }
  return std::move(response["result"]);
}

void RpcClient::notify(const std::string& method, const json& params) {
  json request = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) request["params"] = params;
  std::string body = post(request.dump(), method + " (notification)", false);
  if (body.empty()) return;
  // A node answers a notification only when it refused the whole request
  // (a wrong token, a body it could not parse).
  json response = parse_response(body, method);
  if (response.is_object() && response.contains("error")) throw remote_error(response["error"], method);
}

std::vector<RpcOutcome> RpcClient::batch(const std::vector<RpcRequest>& requests, bool idempotent) {
  if (requests.empty()) return {};
  const int64_t first = next_id_.fetch_add(static_cast<int64_t>(requests.size()));
  json body = json::array();
  for (size_t i = 0; i < requests.size(); ++i) {
    json r = {{"jsonrpc", "2.0"}, {"method", requests[i].method}, {"id", first + static_cast<int64_t>(i)}};
    if (!requests[i].params.is_null()) r["params"] = requests[i].params;
    body.push_back(std::move(r));
  }
  const std::string what = "a batch of " + std::to_string(requests.size()) + " calls";
  std::string text = post(body.dump(), what, idempotent);
  json response = parse_response(text, what);
  // One error object instead of an array: the whole batch was refused.
  if (response.is_object() && response.contains("error")) throw remote_error(response["error"], what);
  if (!response.is_array()) {
    throw Error(ErrorCode::kCorruptData, "node " + node() + " answered " + what +
                                             " with something that is not a batch response: " +
                                             text.substr(0, 200));
  }
  std::map<int64_t, const json*> by_id;
  for (const auto& r : response) {
    if (r.is_object() && r.contains("id") && r["id"].is_number_integer()) by_id[r["id"].get<int64_t>()] = &r;
  }
  std::vector<RpcOutcome> outcomes(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    auto it = by_id.find(first + static_cast<int64_t>(i));
    if (it == by_id.end()) {
      throw Error(ErrorCode::kCorruptData, "node " + node() + " answered " + what +
                                               " without an answer for " + requests[i].method);
    }
    const json& r = *it->second;
    if (r.contains("error")) outcomes[i].error = remote_error(r["error"], requests[i].method);
    else outcomes[i].result = r.value("result", json());
  }
  return outcomes;
}

}  // namespace tars::cluster
