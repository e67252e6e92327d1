#pragma once
// The cluster protocol's version and the application error codes of /rpc,
// beside JSON-RPC 2.0's standard ones (-32700 parse error, -32600 invalid
// request, -32601 method not found, -32602 invalid params, -32603 internal).
// A node refuses to join a cluster whose protocol version differs.

namespace tars::cluster {

// Bumped on any incompatible change of a method's params or result.
inline constexpr int kProtocolVersion = 1;

// Application error codes (JSON-RPC reserves -32000..-32099 for servers).
enum RpcAppCode : int {
  kRpcUnauthorized = -32001,     // join token missing or wrong
  kRpcVersionMismatch = -32002,  // protocol version differs
  kRpcUnavailable = -32003,      // busy, loading, shutting down: retry later
  kRpcNotFound = -32004,         // unknown model, node or file
  kRpcForbiddenPath = -32005,    // a path outside the node's model directory
  kRpcTimeout = -32006,          // a call between nodes ran past its deadline
};

// A short name for each application code, for logs and messages.
const char* rpc_code_name(int code);

}  // namespace tars::cluster
