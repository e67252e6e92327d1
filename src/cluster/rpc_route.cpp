#include "cluster/rpc_route.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace tars::cluster {

std::optional<RpcError> rpc_check_token(const std::string& authorization,
                                        const std::string& join_token) {
  if (join_token.empty()) {
    return RpcError(kRpcUnauthorized,
                    "this node has no join token, and /rpc needs one: start it with "
                    "--join-token (or TARS_JOIN_TOKEN, or [cluster] join_token)");
  }
  const std::string prefix = "Bearer ";
  if (authorization.empty() || authorization.rfind(prefix, 0) != 0) {
    return RpcError(kRpcUnauthorized,
                    "missing join token (send Authorization: Bearer <token>; set it with "
                    "--join-token / TARS_JOIN_TOKEN)");
  }
  // Constant time in the token's content: the length check only tells a
  // caller the length, and CRYPTO_memcmp does not stop at the first difference.
  std::string_view given = std::string_view(authorization).substr(prefix.size());
  bool ok = given.size() == join_token.size() &&
            CRYPTO_memcmp(given.data(), join_token.data(), join_token.size()) == 0;
  if (!ok) return RpcError(kRpcUnauthorized, "wrong join token");
  return std::nullopt;
}

node::Route rpc_route(std::shared_ptr<const RpcMethodTable> table, std::string join_token) {
  auto handler = [table = std::move(table), token = std::move(join_token)](
                     const httplib::Request& req, httplib::Response& res) {
    std::string answer;
    if (auto denied = rpc_check_token(req.get_header_value("Authorization"), token)) {
      spdlog::warn("POST {} from {}: {}", kRpcPath, req.remote_addr, denied->what());
      answer = rpc_error_response(nullptr, *denied).dump();
    } else {
      RpcCall call;
      call.remote_addr = req.remote_addr + ":" + std::to_string(req.remote_port);
      for (const auto& [name, value] : req.headers) {
        std::string lower = name;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (lower != "authorization") call.headers[lower] = value;
      }
      std::optional<std::string> body = table->handle(req.body, call);
      if (!body) {
        res.status = 204;  // notifications only: nothing to answer
        return;
      }
      answer = std::move(*body);
    }
    res.status = 200;
    res.set_content(answer, "application/json");
  };
  return {"POST", kRpcPath, handler};
}

}  // namespace tars::cluster
