#pragma once
// Calling another node's /rpc (cluster/rpc_route.h) with timeouts, bounded
// retries and clear errors.
//
// Every call has a connect and a read deadline. A method marked idempotent
// is tried again (up to `retries` more times, after `backoff`, doubling)
// when the request surely did not reach the server (the connection was
// refused or timed out) or the connection broke before an answer came; never
// after a read timeout (the server may still be working on it) and never
// for a method that is not idempotent (it could run twice).
//
// What a call throws:
//   RpcError(remote code)      the node answered with a JSON-RPC error; the
//                              message names the node and method, then the
//                              node's own message; data as sent
//   RpcError(kRpcTimeout)      no answer within read_timeout
//   tars::Error(kUnavailable)  the node could not be reached (URL and method named)
//   tars::Error(kCorruptData)  the answer is not a JSON-RPC response
// RpcError is a tars::Error too (rpc_error_kind gives its ErrorCode).
//
// Thread-safe: each call uses its own connection.

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cluster/jsonrpc.h"

namespace tars::cluster {

struct RpcClientOptions {
  // Connecting to the node. Default 2 s.
  std::chrono::milliseconds connect_timeout{2000};
  // Waiting for the answer once the request is sent. Default 30 s.
  std::chrono::milliseconds read_timeout{30000};
  // Extra attempts for idempotent methods (see the top). Default 2.
  int retries = 2;
  // Wait before the first retry, doubled for each next one. Default 100 ms.
  std::chrono::milliseconds backoff{100};
  // The node's name for messages; "" uses the URL.
  std::string node_name;
  // Called before each retry with the attempt about to start (2, 3, ...)
  // and why the last one failed: for logs (and tests).
  std::function<void(int attempt, const std::string& why)> on_retry;
};

// One member of a batch (a request with an id; notifications go alone).
struct RpcRequest {
  std::string method;
  json params;  // array, object, or null to leave it out
};

// One member's answer: a result, or the error the node answered with.
struct RpcOutcome {
  json result;                   // when !error
  std::optional<RpcError> error;
};

class RpcClient {
 public:
  // base_url: "http://192.168.1.20:8001" (the node, without /rpc).
  RpcClient(std::string base_url, std::string token, RpcClientOptions options = {});

  // Calls `method` and returns its result (see the top for what it throws).
  json call(const std::string& method, const json& params = nullptr, bool idempotent = false);
  // Sends a notification: no answer is expected, but transport failures and
  // an error the node sends anyway (a wrong token) still throw. Never retried.
  void notify(const std::string& method, const json& params = nullptr);
  // One HTTP request for several calls; outcomes in the order of `requests`.
  // Retried as a whole only when every method in it is idempotent.
  std::vector<RpcOutcome> batch(const std::vector<RpcRequest>& requests, bool idempotent = false);

  const std::string& base_url() const { return base_url_; }

 private:
  // Posts `body`; returns the response body ("" for 204). `what` names the
  // call in messages ("node.info", "a batch of 3").
  std::string post(const std::string& body, const std::string& what, bool idempotent);
  json parse_response(const std::string& body, const std::string& what) const;
  RpcError remote_error(const json& error, const std::string& what) const;
  std::string node() const;

  std::string base_url_;
  std::string token_;
  RpcClientOptions options_;
  std::atomic<int64_t> next_id_{1};
};

}  // namespace tars::cluster
