#include "cluster/jsonrpc.h"

namespace tars::cluster {
namespace {

// A name from the request, shortened for messages (a method name can be
// anything a caller sends, megabytes included).
std::string shown(const std::string& s) {
  constexpr size_t kMax = 80;
  return s.size() <= kMax ? s : s.substr(0, kMax) + "...";
}

bool valid_id(const json& id) { return id.is_string() || id.is_number() || id.is_null(); }

// Why `request` is not a valid Request object, or "" when it is one.
std::string request_problem(const json& request) {
  if (!request.is_object()) {
    return std::string("a request must be a JSON object, got ") + request.type_name();
  }
  if (auto it = request.find("id"); it != request.end() && !valid_id(*it)) {
    return std::string("\"id\" must be a string, a number or null, got ") + it->type_name();
  }
  auto version = request.find("jsonrpc");
  if (version == request.end()) return "missing \"jsonrpc\": \"2.0\"";
  if (!version->is_string() || version->get_ref<const std::string&>() != "2.0") {
    return "\"jsonrpc\" must be the string \"2.0\", got " + shown(version->dump());
  }
  auto method = request.find("method");
  if (method == request.end()) return "missing \"method\"";
  if (!method->is_string()) {
    return std::string("\"method\" must be a string, got ") + method->type_name();
  }
  if (auto params = request.find("params");
      params != request.end() && !params->is_array() && !params->is_object()) {
    return std::string("\"params\" must be an array or an object (or left out), got ") +
           params->type_name();
  }
  return "";
}

}  // namespace

RpcError::RpcError(int code, const std::string& message, json data)
    : Error(rpc_error_kind(code), message), rpc_code_(code), data_(std::move(data)) {}

json RpcError::to_json() const {
  json e = {{"code", rpc_code_}, {"message", what()}};
  if (!data_.is_null()) e["data"] = data_;
  return e;
}

ErrorCode rpc_error_kind(int rpc_code) {
  switch (rpc_code) {
    case kRpcParseError: case kRpcInvalidRequest: case kRpcInvalidParams:
    case kRpcUnauthorized: case kRpcVersionMismatch: case kRpcForbiddenPath:
      return ErrorCode::kInvalidArgument;
    case kRpcMethodNotFound: case kRpcNotFound:
      return ErrorCode::kNotFound;
    case kRpcUnavailable: case kRpcTimeout:
      return ErrorCode::kUnavailable;
    default:
      return ErrorCode::kInternal;
  }
}

RpcError rpc_error_of_current_exception() {
  try {
    throw;
  } catch (const RpcError& e) {
    return e;
  } catch (const Error& e) {
    switch (e.code()) {
      case ErrorCode::kInvalidArgument: return RpcError(kRpcInvalidParams, e.what());
      case ErrorCode::kNotFound: return RpcError(kRpcNotFound, e.what());
      case ErrorCode::kUnavailable: return RpcError(kRpcUnavailable, e.what());
      default: return RpcError(kRpcInternalError, e.what());
    }
  } catch (const std::exception& e) {
    return RpcError(kRpcInternalError, std::string("internal error: ") + e.what());
  } catch (...) {
    return RpcError(kRpcInternalError, "internal error: an unknown exception");
  }
}

json rpc_result_response(const json& id, json result) {
  return {{"jsonrpc", "2.0"}, {"result", std::move(result)}, {"id", id}};
}

json rpc_error_response(const json& id, const RpcError& error) {
  return {{"jsonrpc", "2.0"}, {"error", error.to_json()}, {"id", id}};
}

void RpcMethodTable::add(RpcMethod method) {
  if (method.name.empty() || !method.handler) {
    throw Error(ErrorCode::kInternal, "RPC method '" + method.name + "' needs a name and a handler");
  }
  if (index_.count(method.name)) {
    throw Error(ErrorCode::kInternal, "RPC method '" + method.name + "' is added twice");
  }
  index_[method.name] = methods_.size();
  methods_.push_back(std::move(method));
}

const RpcMethod* RpcMethodTable::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &methods_[it->second];
}

json RpcMethodTable::describe() const {
  json list = json::array();
  for (const auto& m : methods_) {
    list.push_back({{"name", m.name}, {"idempotent", m.idempotent}, {"help", m.help}});
  }
  return list;
}

void RpcMethodTable::log(const std::string& method, const RpcError& e, bool notification) const {
  if (!log_) return;
  try {
    log_(method, e, notification);
  } catch (...) {
    // A failing logger must not turn an answer into no answer.
  }
}

std::optional<json> RpcMethodTable::handle_one(const json& request, const RpcCall& call) const {
  // The id to answer with: the request's own when it is a valid one.
  json id = nullptr;
  if (request.is_object()) {
    if (auto it = request.find("id"); it != request.end() && valid_id(*it)) id = *it;
  }
  if (std::string problem = request_problem(request); !problem.empty()) {
    // Answered even without an id: the caller must learn its request was not
    // one (the specification's examples answer these with id null).
    RpcError e(kRpcInvalidRequest, "invalid request: " + problem);
    log("", e, false);
    return rpc_error_response(id, e);
  }
  bool notification = !request.contains("id");
  const std::string& name = request["method"].get_ref<const std::string&>();
  const RpcMethod* method = find(name);
  if (!method) {
    RpcError e(kRpcMethodNotFound,
               "method '" + shown(name) + "' not found (rpc.methods lists the methods)");
    log(name, e, notification);
    if (notification) return std::nullopt;
    return rpc_error_response(id, e);
  }
  static const json kNoParams = nullptr;
  auto params = request.find("params");
  try {
    json result = method->handler(params == request.end() ? kNoParams : *params, call);
    if (notification) return std::nullopt;
    return rpc_result_response(id, std::move(result));
  } catch (...) {
    RpcError e = rpc_error_of_current_exception();
    log(name, e, notification);
    if (notification) return std::nullopt;
    return rpc_error_response(id, e);
  }
}

std::optional<json> RpcMethodTable::handle_json(const json& body, const RpcCall& call) const {
  if (!body.is_array()) return handle_one(body, call);
  if (body.empty()) {
    RpcError e(kRpcInvalidRequest, "invalid request: an empty batch (a batch needs at least one request)");
    log("", e, false);
    return rpc_error_response(nullptr, e);
  }
  json responses = json::array();
  for (const auto& member : body) {
    if (auto r = handle_one(member, call)) responses.push_back(std::move(*r));
  }
  if (responses.empty()) return std::nullopt;  // notifications only
  return responses;
}

std::optional<std::string> RpcMethodTable::handle(std::string_view body, const RpcCall& call) const {
  std::optional<json> response;
  try {
    json parsed = json::parse(body);
    response = handle_json(parsed, call);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    RpcError err(kRpcParseError, std::string("parse error: the body is not valid JSON: ") + e.what());
    log("", err, false);
    response = rpc_error_response(nullptr, err);
  } catch (...) {
    // handle_json catches what handlers throw; this is for the rest (memory).
    RpcError err = rpc_error_of_current_exception();
    log("", err, false);
    response = rpc_error_response(nullptr, err);
  }
  if (!response) return std::nullopt;
  // A handler's strings may hold invalid UTF-8 (model text): replace it
  // rather than fail the whole answer.
  return response->dump(-1, ' ', false, json::error_handler_t::replace);
}

RpcMethod rpc_methods_method(const RpcMethodTable& table) {
  return {"rpc.methods", true,
          [&table](const json&, const RpcCall&) {
            return json{{"protocol", kProtocolVersion}, {"methods", table.describe()}};
          },
          "the methods of this node: {protocol, methods: [{name, idempotent, help}]}; no params"};
}

const json* rpc_param_find(const json& params, const std::string& name, int position) {
  if (params.is_object()) {
    auto it = params.find(name);
    return it == params.end() ? nullptr : &*it;
  }
  if (params.is_array() && position >= 0 && static_cast<size_t>(position) < params.size()) {
    return &params[static_cast<size_t>(position)];
  }
  return nullptr;
}

void rpc_param_type_error(const std::string& name, const json& value, const char* what) {
  throw RpcError(kRpcInvalidParams, "parameter '" + name + "' has the wrong type or value (" +
                                        (value.is_primitive() ? shown(value.dump()) : value.type_name()) +
                                        "): " + what);
}

}  // namespace tars::cluster
