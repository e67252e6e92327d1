// libFuzzer target: arbitrary bytes as the body of POST /rpc through the
// JSON-RPC method table's handle() (cluster/jsonrpc.h), with methods that
// return their params, throw each kind of error, or read params with the
// helpers. Every answer must be valid JSON of the right shape; nothing may
// crash or throw out of handle().
//
// Seeds: jsonrpc_seeds/ beside this file, a few bodies that reach every
// branch (single, batch, notification, each error, each id type).
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "cluster/jsonrpc.h"

using tars::cluster::json;
using tars::cluster::RpcCall;
using tars::cluster::RpcError;
using tars::cluster::RpcMethodTable;

namespace {

const RpcMethodTable& table() {
  static RpcMethodTable* t = [] {
    auto* tb = new RpcMethodTable();
    tb->add({"echo", true, [](const json& p, const RpcCall&) { return p; }, ""});
    tb->add({"sub", true,
             [](const json& p, const RpcCall&) {
               return json(tars::cluster::rpc_param<int64_t>(p, "a", 0) / 2 -
                           tars::cluster::rpc_param_or<int64_t>(p, "b", 0, 1) / 2);
             },
             ""});
    tb->add({"fail", false,
             [](const json& p, const RpcCall&) -> json {
               std::string kind = tars::cluster::rpc_param_or<std::string>(p, "kind", "", 0);
               if (kind == "rpc") throw RpcError(-32005, "outside", p);
               if (kind == "tars") throw tars::Error(tars::ErrorCode::kNotFound, "missing");
               if (kind == "std") throw std::runtime_error("boom");
               return p.at("x");  // json::out_of_range when absent
             },
             ""});
    tb->add(tars::cluster::rpc_methods_method(*tb));
    return tb;
  }();
  return *t;
}

void check_response(const json& r) {
  if (!r.is_object() || r.value("jsonrpc", "") != "2.0" || !r.contains("id")) std::abort();
  bool has_result = r.contains("result"), has_error = r.contains("error");
  if (has_result == has_error) std::abort();
  if (has_error && (!r["error"]["code"].is_number_integer() || !r["error"]["message"].is_string())) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  RpcCall call{"127.0.0.1:1", {}};
  std::optional<std::string> out = table().handle(body, call);
  if (!out) return 0;
  json r = json::parse(*out);  // must be valid JSON: a throw here is a finding
  if (r.is_array()) {
    if (r.empty()) std::abort();  // an empty array is never an answer
    for (const auto& m : r) check_response(m);
  } else {
    check_response(r);
  }
  return 0;
}
