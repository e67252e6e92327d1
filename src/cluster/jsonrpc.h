#pragma once
// JSON-RPC 2.0 (https://www.jsonrpc.org/specification): the codec and the ONE
// method table every node serves at POST /rpc (cluster/rpc_route.h).
//
// Messages, as they travel (one HTTP body each):
//
//   request       {"jsonrpc": "2.0", "method": "node.info", "params": {...} | [...], "id": 1}
//                 params may be left out; id is a string, a number or null.
//   notification  the same without "id": the method runs, nothing is answered,
//                 not even an error.
//   success       {"jsonrpc": "2.0", "result": <any JSON>, "id": <the request's id>}
//   error         {"jsonrpc": "2.0", "error": {"code": -32601, "message": "...",
//                                               "data": <optional>}, "id": <id or null>}
//   batch         [request | notification, ...] -> [response, ...] for the
//                 members that have an id, in no promised order (tars keeps
//                 the members' order); a batch of notifications only -> no
//                 body at all; an empty array [] -> ONE error (-32600), not an array.
//
// Error codes (cluster/protocol.h): -32700 the body is not JSON (id null);
// -32600 a member that is not a valid Request object (id null unless the
// member had a valid id); -32601 unknown method; -32602 bad params; -32603
// the handler failed; the application codes -32001..-32006.
//
// A handler throws RpcError for an exact code. Any tars::Error it throws is
// mapped in one place (rpc_error_of): kInvalidArgument -> -32602, kNotFound
// -> -32004, kUnavailable -> -32003, anything else -> -32603, message kept.
// Other exceptions become -32603 too. Nothing escapes handle().

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "cluster/protocol.h"
#include "common/error.h"

namespace tars::cluster {

using json = nlohmann::json;

// A JSON-RPC error with its exact code and optional data. Also a tars::Error,
// so code that does not care about RPC sees a kind it knows (rpc_error_kind).
class RpcError : public Error {
 public:
  RpcError(int code, const std::string& message, json data = nullptr);
  int rpc_code() const { return rpc_code_; }
  const json& data() const { return data_; }
  // The error object of a response: {"code", "message"[, "data"]}.
  json to_json() const;

 private:
  int rpc_code_;
  json data_;
};

// The tars::ErrorCode an RPC error code stands for (-32602 -> kInvalidArgument,
// -32003 -> kUnavailable, ...), so an RpcError crossing into the HTTP layer
// gets a sensible status.
ErrorCode rpc_error_kind(int rpc_code);

// The one mapping of a handler's exception to a JSON-RPC error (see the top).
// Call it inside a catch block; it rethrows the current exception to look at it.
RpcError rpc_error_of_current_exception();

// What a handler knows about the call besides its params.
struct RpcCall {
  std::string remote_addr;  // the HTTP peer, "127.0.0.1:51234"; "" for an in-process call
  // The HTTP request headers, names lower-cased ("x-tars-forwarded-by").
  // The Authorization header is left out: handlers never see the token.
  std::map<std::string, std::string> headers;
};

// A method's handler: params is the request's "params" (an array or an
// object) or null when the request had none. It returns the result (any
// JSON, null included) or throws (see the top for the mapping).
using RpcHandler = std::function<json(const json& params, const RpcCall& call)>;

struct RpcMethod {
  std::string name;         // "node.info": <area>.<verb>
  bool idempotent = false;  // calling it twice has the effect of once: clients may retry it
  RpcHandler handler;
  std::string help;         // one line for rpc.methods: what it does, its params and result
};

// Called for every error the table answers or would have answered (a
// notification's errors are not sent): for the logs. `method` is "" when the
// request had none.
using RpcErrorLog = std::function<void(const std::string& method, const RpcError& error,
                                       bool notification)>;

// The method table. Fill it with add() before serving; handle() is then safe
// from any number of threads at once (the table is read-only by then).
class RpcMethodTable {
 public:
  RpcMethodTable() = default;
  RpcMethodTable(const RpcMethodTable&) = delete;  // rpc.methods points at its table
  RpcMethodTable& operator=(const RpcMethodTable&) = delete;

  // Adds a method. A second method of the same name, an empty name or a
  // missing handler is a programming error: tars::Error(kInternal).
  void add(RpcMethod method);
  const RpcMethod* find(const std::string& name) const;
  // Every method in the order added: [{"name", "idempotent", "help"}].
  json describe() const;
  void set_error_log(RpcErrorLog log) { log_ = std::move(log); }

  // Answers one HTTP body: the response body to send, or nullopt when there
  // is nothing to send (notifications only). Never throws.
  std::optional<std::string> handle(std::string_view body, const RpcCall& call) const;
  // The same on a parsed body (a request object or a batch array); nullopt
  // when nothing is to be sent.
  std::optional<json> handle_json(const json& body, const RpcCall& call) const;

 private:
  std::optional<json> handle_one(const json& request, const RpcCall& call) const;
  void log(const std::string& method, const RpcError& e, bool notification) const;

  std::vector<RpcMethod> methods_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in methods_
  RpcErrorLog log_;
};

// The method "rpc.methods" listing `table` (which must outlive it):
// result {"protocol": kProtocolVersion, "methods": [{"name", "idempotent", "help"}]}.
RpcMethod rpc_methods_method(const RpcMethodTable& table);

// Response bodies, built in one place.
json rpc_result_response(const json& id, json result);
json rpc_error_response(const json& id, const RpcError& error);

// Reading params in handlers. `name` is the key when params is an object;
// when it is an array, `position` picks the element (-1: by name only).
// Missing or of the wrong type: RpcError(-32602) naming the parameter.
const json* rpc_param_find(const json& params, const std::string& name, int position = -1);
template <class T>
T rpc_param(const json& params, const std::string& name, int position = -1);
template <class T>
T rpc_param_or(const json& params, const std::string& name, T fallback, int position = -1);

// --- implementation of the templates ---

[[noreturn]] void rpc_param_type_error(const std::string& name, const json& value,
                                       const char* what);

template <class T>
T rpc_param(const json& params, const std::string& name, int position) {
  const json* v = rpc_param_find(params, name, position);
  if (!v) throw RpcError(kRpcInvalidParams, "missing parameter '" + name + "'");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // json's own conversion would truncate 1.5 and cast 1e300 (undefined
    // behaviour): integers must be integers, in T's range.
    constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<T>::max());
    bool ok = false;
    if (v->is_number_unsigned()) {
      ok = v->get<uint64_t>() <= kMax;
    } else if (v->is_number_integer()) {
      int64_t x = v->get<int64_t>();
      ok = x >= 0 ? static_cast<uint64_t>(x) <= kMax
                  : std::is_signed_v<T> && x >= static_cast<int64_t>(std::numeric_limits<T>::min());
    }
    if (!ok) rpc_param_type_error(name, *v, "expected an integer in range");
    return v->is_number_unsigned() ? static_cast<T>(v->get<uint64_t>())
                                   : static_cast<T>(v->get<int64_t>());
  } else {
    try {
      return v->get<T>();
    } catch (const json::exception& e) {
      rpc_param_type_error(name, *v, e.what());
    }
  }
}

template <class T>
T rpc_param_or(const json& params, const std::string& name, T fallback, int position) {
  const json* v = rpc_param_find(params, name, position);
  if (!v || v->is_null()) return fallback;
  return rpc_param<T>(params, name, position);
}

}  // namespace tars::cluster
