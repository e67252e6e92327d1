#include "cluster/protocol.h"

namespace tars::cluster {

const char* rpc_code_name(int code) {
  switch (code) {
    case -32700: return "parse error";
    case -32600: return "invalid request";
    case -32601: return "method not found";
    case -32602: return "invalid params";
    case -32603: return "internal error";
    case kRpcUnauthorized: return "unauthorized";
    case kRpcVersionMismatch: return "version mismatch";
    case kRpcUnavailable: return "unavailable";
    case kRpcNotFound: return "not found";
    case kRpcForbiddenPath: return "forbidden path";
    case kRpcTimeout: return "timeout";
    default: return "error";
  }
}

}  // namespace tars::cluster
