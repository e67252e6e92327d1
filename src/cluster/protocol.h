#pragma once
// The cluster protocol's version and the error codes of /rpc: JSON-RPC 2.0's
// standard ones and the application codes tars adds (README "JSON-RPC").
// A node refuses to join a cluster whose protocol version differs.

namespace tars::cluster {

// Bumped on any incompatible change of a method's params or result.
inline constexpr int kProtocolVersion = 1;

// JSON-RPC 2.0's standard error codes (specification section 5.1).
enum RpcStdCode : int {
  kRpcParseError = -32700,      // the body is not valid JSON
  kRpcInvalidRequest = -32600,  // valid JSON, but not a Request object
  kRpcMethodNotFound = -32601,  // no such method in the table
  kRpcInvalidParams = -32602,   // params missing, of the wrong type or value
  kRpcInternalError = -32603,   // the handler failed (a bug or an I/O failure)
};

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
