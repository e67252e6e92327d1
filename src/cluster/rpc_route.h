#pragma once
// POST /rpc: the HTTP side of the JSON-RPC method table (cluster/jsonrpc.h).
//
// Authentication: every call carries the cluster's join token as
//   Authorization: Bearer <token>
// compared in constant time. Missing, wrong, or a node without a join token
// (which refuses every /rpc call): one error response with code -32001
// (kRpcUnauthorized) and id null, whatever the body was, notifications and
// batches included (the caller must learn why nothing ran).
//
// HTTP status: every JSON-RPC answer, errors included (-32001 and -32700
// too), is HTTP 200 with the JSON-RPC body, the usual JSON-RPC-over-HTTP
// practice: clients such as jayson turn any non-2xx status into a transport
// error carrying only the raw text, so the JSON-RPC code would be lost. A
// request with nothing to answer (notifications only) gets 204 and no body.
// Only what never reaches the codec keeps an HTTP status: a body over
// server.max_body is 413 from HttpServer, a method other than POST 405.

#include <memory>
#include <optional>
#include <string>

#include "cluster/jsonrpc.h"
#include "node/http_server.h"

namespace tars::cluster {

inline constexpr const char* kRpcPath = "/rpc";

// nullopt when `authorization` (the header's value, "" when absent) carries
// `join_token`; the -32001 error to answer otherwise (the three cases of the top).
std::optional<RpcError> rpc_check_token(const std::string& authorization,
                                        const std::string& join_token);

// The route POST /rpc answering from `table` (shared: the route may outlive
// the caller's scope) for callers that hold `join_token`.
node::Route rpc_route(std::shared_ptr<const RpcMethodTable> table, std::string join_token);

}  // namespace tars::cluster
