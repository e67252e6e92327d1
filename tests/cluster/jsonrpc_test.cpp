// The JSON-RPC 2.0 codec and method table (cluster/jsonrpc.h) against the
// cases of the specification (its section 7 examples among them), the error
// mapping, and the join-token check of /rpc (cluster/rpc_route.h).
#include "cluster/jsonrpc.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "cluster/rpc_route.h"

namespace tars::cluster {
namespace {

// The specification's example methods, plus ones that throw each kind of error.
class JsonRpcTable : public ::testing::Test {
 protected:
  JsonRpcTable() {
    table.add({"subtract", true,
               [](const json& p, const RpcCall&) {
                 return rpc_param<int>(p, "minuend", 0) - rpc_param<int>(p, "subtrahend", 1);
               },
               "minuend - subtrahend"});
    table.add({"sum", true,
               [](const json& p, const RpcCall&) {
                 int s = 0;
                 for (const auto& v : p) s += v.get<int>();
                 return json(s);
               },
               "sum of the params"});
    table.add({"update", false, [this](const json&, const RpcCall&) { ++updates; return json(); }, ""});
    table.add({"notify_hello", false, [this](const json&, const RpcCall&) { ++updates; return json(); }, ""});
    table.add({"get_data", true, [](const json&, const RpcCall&) { return json::array({"hello", 5}); }, ""});
    table.add({"echo_params", true, [](const json& p, const RpcCall&) { return p; }, ""});
    table.add({"echo_call", true,
               [](const json&, const RpcCall& c) {
                 return json{{"remote", c.remote_addr}, {"headers", c.headers}};
               },
               ""});
    table.add({"throw", false,
               [](const json& p, const RpcCall&) -> json {
                 std::string kind = rpc_param<std::string>(p, "kind", 0);
                 if (kind == "invalid") throw Error(ErrorCode::kInvalidArgument, "bad value 7 for 'x'");
                 if (kind == "notfound") throw Error(ErrorCode::kNotFound, "no model 'm'");
                 if (kind == "unavailable") throw Error(ErrorCode::kUnavailable, "model loading");
                 if (kind == "io") throw Error(ErrorCode::kIo, "disk on fire");
                 if (kind == "std") throw std::runtime_error("vector too long");
                 if (kind == "int") throw 42;
                 if (kind == "rpc") throw RpcError(kRpcForbiddenPath, "outside", json{{"path", "/etc"}});
                 return "no throw";
               },
               ""});
    table.set_error_log([this](const std::string& method, const RpcError& e, bool notification) {
      logged.push_back(method + " " + std::to_string(e.rpc_code()) + (notification ? " n" : ""));
    });
  }

  // The response to `body`, parsed; null json when nothing was answered.
  json answer(const std::string& body) {
    auto r = table.handle(body, call);
    if (!r) return json();
    return json::parse(*r);
  }
  static void expect_error(const json& r, int code, const json& id) {
    ASSERT_TRUE(r.is_object()) << r.dump();
    EXPECT_EQ(r["jsonrpc"], "2.0") << r.dump();
    ASSERT_TRUE(r.contains("error")) << r.dump();
    EXPECT_FALSE(r.contains("result")) << r.dump();
    EXPECT_EQ(r["error"]["code"], code) << r.dump();
    EXPECT_TRUE(r["error"]["message"].is_string()) << r.dump();
    EXPECT_EQ(r["id"], id) << r.dump();
  }
  static void expect_result(const json& r, const json& result, const json& id) {
    ASSERT_TRUE(r.is_object()) << r.dump();
    EXPECT_EQ(r["jsonrpc"], "2.0");
    EXPECT_FALSE(r.contains("error")) << r.dump();
    EXPECT_EQ(r["result"], result) << r.dump();
    EXPECT_EQ(r["id"], id) << r.dump();
  }

  RpcMethodTable table;
  RpcCall call{"10.0.0.2:5000", {{"x-tars-forwarded-by", "node-b"}}};
  std::atomic<int> updates{0};
  std::vector<std::string> logged;
};

TEST_F(JsonRpcTable, PositionalAndNamedParams) {
  expect_result(answer(R"({"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1})"), 19, 1);
  expect_result(answer(R"({"jsonrpc":"2.0","method":"subtract","params":[23,42],"id":2})"), -19, 2);
  expect_result(answer(R"({"jsonrpc":"2.0","method":"subtract","params":{"subtrahend":23,"minuend":42},"id":3})"), 19, 3);
  expect_result(answer(R"({"jsonrpc":"2.0","method":"subtract","params":{"minuend":42,"subtrahend":23},"id":4})"), 19, 4);
}

TEST_F(JsonRpcTable, ParamsLeftOutReachTheHandlerAsNull) {
  expect_result(answer(R"({"jsonrpc":"2.0","method":"echo_params","id":1})"), nullptr, 1);
  expect_result(answer(R"({"jsonrpc":"2.0","method":"echo_params","params":[],"id":1})"), json::array(), 1);
  expect_result(answer(R"({"jsonrpc":"2.0","method":"echo_params","params":{},"id":1})"), json::object(), 1);
}

TEST_F(JsonRpcTable, ParamsThatAreNotStructuredAreAnInvalidRequest) {
  for (const char* p : {"null", "\"bar\"", "3", "true"}) {
    std::string body = std::string(R"({"jsonrpc":"2.0","method":"echo_params","params":)") + p + R"(,"id":8})";
    expect_error(answer(body), kRpcInvalidRequest, 8);
  }
  // The specification's example: method not a string, params a string, no id.
  expect_error(answer(R"({"jsonrpc":"2.0","method":1,"params":"bar"})"), kRpcInvalidRequest, nullptr);
}

TEST_F(JsonRpcTable, NotificationRunsAndAnswersNothing) {
  EXPECT_FALSE(table.handle(R"({"jsonrpc":"2.0","method":"update","params":[1,2,3,4,5]})", call));
  EXPECT_FALSE(table.handle(R"({"jsonrpc":"2.0","method":"notify_hello"})", call));
  EXPECT_EQ(updates, 2);
  // Errors of notifications are not sent either, but they are logged.
  EXPECT_FALSE(table.handle(R"({"jsonrpc":"2.0","method":"foobar"})", call));
  EXPECT_FALSE(table.handle(R"({"jsonrpc":"2.0","method":"throw","params":["io"]})", call));
  EXPECT_EQ(logged, (std::vector<std::string>{"foobar -32601 n", "throw -32603 n"}));
}

TEST_F(JsonRpcTable, IdNullIsARequestNotANotification) {
  expect_result(answer(R"({"jsonrpc":"2.0","method":"subtract","params":[5,3],"id":null})"), 2, nullptr);
  EXPECT_EQ(updates, 0);
  expect_result(answer(R"({"jsonrpc":"2.0","method":"update","id":null})"), nullptr, nullptr);
  EXPECT_EQ(updates, 1);
}

TEST_F(JsonRpcTable, IdsAreEchoedExactly) {
  for (const char* id : {"\"1\"", "\"\"", "\"a\\u00e9b\"", "0", "-7", "9007199254740993", "1.5",
                         "18446744073709551615"}) {
    std::string body = std::string(R"({"jsonrpc":"2.0","method":"get_data","id":)") + id + "}";
    auto r = answer(body);
    expect_result(r, json::array({"hello", 5}), json::parse(id));
    // Large integers keep every digit (no trip through a double).
    EXPECT_NE(table.handle(body, call)->find(std::string("\"id\":") + json::parse(id).dump()),
              std::string::npos);
  }
}

TEST_F(JsonRpcTable, IdOfAnotherTypeIsAnInvalidRequestWithIdNull) {
  for (const char* id : {"[1]", "{\"a\":1}", "true"}) {
    std::string body = std::string(R"({"jsonrpc":"2.0","method":"get_data","id":)") + id + "}";
    expect_error(answer(body), kRpcInvalidRequest, nullptr);
  }
}

TEST_F(JsonRpcTable, JsonrpcMemberMustBeTheString2_0) {
  expect_error(answer(R"({"method":"get_data","id":1})"), kRpcInvalidRequest, 1);
  expect_error(answer(R"({"jsonrpc":"1.0","method":"get_data","id":1})"), kRpcInvalidRequest, 1);
  expect_error(answer(R"({"jsonrpc":2.0,"method":"get_data","id":"x"})"), kRpcInvalidRequest, "x");
  expect_error(answer(R"({"jsonrpc":"2.0","id":1})"), kRpcInvalidRequest, 1);
  // Even without an id an invalid request is answered: it is not a notification.
  expect_error(answer(R"({"jsonrpc":"1.0","method":"update"})"), kRpcInvalidRequest, nullptr);
  EXPECT_EQ(updates, 0);
}

TEST_F(JsonRpcTable, UnknownMethod) {
  auto r = answer(R"({"jsonrpc":"2.0","method":"foobar","id":"1"})");
  expect_error(r, kRpcMethodNotFound, "1");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("foobar"), std::string::npos);
  // Method names are case-sensitive.
  expect_error(answer(R"({"jsonrpc":"2.0","method":"Subtract","params":[1,1],"id":2})"), kRpcMethodNotFound, 2);
}

TEST_F(JsonRpcTable, ParseErrorHasIdNull) {
  for (const char* body : {R"({"jsonrpc":"2.0","method":"foobar,"params":"bar","baz])", "", "{", "nul",
                           "{\"jsonrpc\":\"2.0\"} trailing", "\xff\xfe", "\"\xc3\x28\"",
                           // a number no double holds: the parser's out_of_range, not an internal error
                           R"({"jsonrpc":"2.0","method":"sum","params":[1e999],"id":1})"}) {
    auto r = answer(body);
    expect_error(r, kRpcParseError, nullptr);
  }
}

TEST_F(JsonRpcTable, BatchWithInvalidJsonIsOneParseError) {
  auto r = answer(R"([{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method")");
  expect_error(r, kRpcParseError, nullptr);
}

TEST_F(JsonRpcTable, EmptyBatchIsOneInvalidRequestNotAnArray) {
  auto r = answer("[]");
  expect_error(r, kRpcInvalidRequest, nullptr);
}

TEST_F(JsonRpcTable, InvalidBatchMembersGetAnErrorEach) {
  auto r = answer("[1]");
  ASSERT_TRUE(r.is_array());
  ASSERT_EQ(r.size(), 1u);
  expect_error(r[0], kRpcInvalidRequest, nullptr);
  r = answer("[1,2,3]");
  ASSERT_EQ(r.size(), 3u);
  for (const auto& m : r) expect_error(m, kRpcInvalidRequest, nullptr);
  // A nested batch is not a request either.
  r = answer(R"([[{"jsonrpc":"2.0","method":"get_data","id":1}]])");
  ASSERT_EQ(r.size(), 1u);
  expect_error(r[0], kRpcInvalidRequest, nullptr);
}

TEST_F(JsonRpcTable, MixedBatchAnswersOnlyTheMembersWithIds) {
  auto r = answer(R"([
    {"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},
    {"jsonrpc":"2.0","method":"notify_hello","params":[7]},
    {"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":"2"},
    {"foo":"boo"},
    {"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"},
    {"jsonrpc":"2.0","method":"get_data","id":"9"}
  ])");
  ASSERT_TRUE(r.is_array()) << r.dump();
  ASSERT_EQ(r.size(), 5u) << r.dump();
  expect_result(r[0], 7, "1");
  expect_result(r[1], 19, "2");
  expect_error(r[2], kRpcInvalidRequest, nullptr);
  expect_error(r[3], kRpcMethodNotFound, "5");
  expect_result(r[4], json::array({"hello", 5}), "9");
  EXPECT_EQ(updates, 1);
}

TEST_F(JsonRpcTable, BatchOfNotificationsOnlyAnswersNothing) {
  EXPECT_FALSE(table.handle(R"([{"jsonrpc":"2.0","method":"notify_sum","params":[1,2,4]},
                               {"jsonrpc":"2.0","method":"notify_hello","params":[7]},
                               {"jsonrpc":"2.0","method":"update"}])",
                            call));
  EXPECT_EQ(updates, 2);
}

TEST_F(JsonRpcTable, TarsErrorsMapInOnePlace) {
  struct Case {
    const char* kind;
    int code;
    const char* message_part;
  };
  for (const Case& c : {Case{"invalid", kRpcInvalidParams, "bad value 7 for 'x'"},
                        Case{"notfound", kRpcNotFound, "no model 'm'"},
                        Case{"unavailable", kRpcUnavailable, "model loading"},
                        Case{"io", kRpcInternalError, "disk on fire"},
                        Case{"std", kRpcInternalError, "vector too long"},
                        Case{"int", kRpcInternalError, "unknown exception"},
                        Case{"rpc", kRpcForbiddenPath, "outside"}}) {
    auto r = answer(std::string(R"({"jsonrpc":"2.0","method":"throw","params":{"kind":")") + c.kind + R"("},"id":1})");
    expect_error(r, c.code, 1);
    EXPECT_NE(r["error"]["message"].get<std::string>().find(c.message_part), std::string::npos) << r.dump();
  }
  auto r = answer(R"({"jsonrpc":"2.0","method":"throw","params":["rpc"],"id":1})");
  EXPECT_EQ(r["error"]["data"], (json{{"path", "/etc"}}));
  // No data member when there is none.
  r = answer(R"({"jsonrpc":"2.0","method":"throw","params":["io"],"id":1})");
  EXPECT_FALSE(r["error"].contains("data"));
}

TEST_F(JsonRpcTable, ParamHelpersNameTheParameter) {
  auto r = answer(R"({"jsonrpc":"2.0","method":"subtract","params":{"minuend":1},"id":1})");
  expect_error(r, kRpcInvalidParams, 1);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("subtrahend"), std::string::npos);
  r = answer(R"({"jsonrpc":"2.0","method":"subtract","params":["a",1],"id":1})");
  expect_error(r, kRpcInvalidParams, 1);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("minuend"), std::string::npos);
  // Integers must be integers in range: no silent truncation or overflow.
  for (const char* bad : {"1.5", "1e300", "3000000000", "-3000000000", "18446744073709551615", "true"}) {
    r = answer(std::string(R"({"jsonrpc":"2.0","method":"subtract","params":[)") + bad + R"(,1],"id":1})");
    expect_error(r, kRpcInvalidParams, 1);
  }
  expect_result(answer(R"({"jsonrpc":"2.0","method":"subtract","params":[-2147483647,1],"id":1})"),
                -2147483647 - 1, 1);
  EXPECT_THROW(rpc_param<uint32_t>(json::array({-1}), "n", 0), RpcError);
  EXPECT_THROW(rpc_param<uint32_t>(json::array({4294967296u}), "n", 0), RpcError);
  EXPECT_EQ(rpc_param<uint32_t>(json::array({4294967295u}), "n", 0), 4294967295u);
  EXPECT_EQ(rpc_param<int64_t>(json{{"n", -5}}, "n"), -5);
  EXPECT_EQ(rpc_param_or<int>(json{{"n", nullptr}}, "n", 9), 9);
  EXPECT_EQ(rpc_param_or<std::string>(json::array(), "s", "d", 0), "d");
  EXPECT_EQ(rpc_param<double>(json::array({1.5}), "x", 0), 1.5);
  // A handler's own mistake reading params (sum of strings) is an internal error.
  expect_error(answer(R"({"jsonrpc":"2.0","method":"sum","params":["a"],"id":1})"), kRpcInternalError, 1);
}

TEST_F(JsonRpcTable, HandlerSeesTheCallContext) {
  auto r = answer(R"({"jsonrpc":"2.0","method":"echo_call","id":1})");
  EXPECT_EQ(r["result"]["remote"], "10.0.0.2:5000");
  EXPECT_EQ(r["result"]["headers"]["x-tars-forwarded-by"], "node-b");
}

TEST_F(JsonRpcTable, RpcMethodsListsTheTable) {
  table.add(rpc_methods_method(table));
  auto r = answer(R"({"jsonrpc":"2.0","method":"rpc.methods","id":1})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["protocol"], kProtocolVersion);
  const json& methods = r["result"]["methods"];
  ASSERT_EQ(methods.size(), 9u);
  EXPECT_EQ(methods[0]["name"], "subtract");
  EXPECT_EQ(methods[0]["idempotent"], true);
  EXPECT_EQ(methods[0]["help"], "minuend - subtrahend");
  EXPECT_EQ(methods[2]["name"], "update");
  EXPECT_EQ(methods[2]["idempotent"], false);
  EXPECT_EQ(methods[8]["name"], "rpc.methods");
}

TEST_F(JsonRpcTable, AddingAMethodTwiceOrWithoutHandlerIsRefused) {
  EXPECT_THROW(table.add({"sum", true, [](const json&, const RpcCall&) { return json(); }, ""}), Error);
  EXPECT_THROW(table.add({"nohandler", true, nullptr, ""}), Error);
  EXPECT_THROW(table.add({"", true, [](const json&, const RpcCall&) { return json(); }, ""}), Error);
}

TEST_F(JsonRpcTable, InvalidUtf8InAResultIsReplacedNotACrash) {
  table.add({"bad_text", true, [](const json&, const RpcCall&) { return json("a\xff" "b"); }, ""});
  auto r = answer(R"({"jsonrpc":"2.0","method":"bad_text","id":1})");
  EXPECT_EQ(r["result"], "a\xEF\xBF\xBD" "b");
}

TEST_F(JsonRpcTable, DeepNestingAndHugeMethodNamesAreHandled) {
  std::string deep = std::string(20000, '[') + std::string(20000, ']');
  auto r = answer(deep);
  ASSERT_TRUE(r.is_array());
  expect_error(r[0], kRpcInvalidRequest, nullptr);
  std::string name(100000, 'x');
  r = answer(R"({"jsonrpc":"2.0","method":")" + name + R"(","id":1})");
  expect_error(r, kRpcMethodNotFound, 1);
  EXPECT_LT(r["error"]["message"].get<std::string>().size(), 300u);
}

TEST(RpcError, CarriesCodeDataAndAKind) {
  RpcError e(kRpcNotFound, "no model", json{{"model", "x"}});
  EXPECT_EQ(e.rpc_code(), kRpcNotFound);
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_EQ(e.to_json(), (json{{"code", -32004}, {"message", "no model"}, {"data", {{"model", "x"}}}}));
  EXPECT_EQ(RpcError(kRpcUnavailable, "").code(), ErrorCode::kUnavailable);
  EXPECT_EQ(RpcError(kRpcTimeout, "").code(), ErrorCode::kUnavailable);
  EXPECT_EQ(RpcError(kRpcInvalidParams, "").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(RpcError(kRpcUnauthorized, "").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(RpcError(kRpcInternalError, "").code(), ErrorCode::kInternal);
  EXPECT_EQ(RpcError(-32099, "").code(), ErrorCode::kInternal);
}

TEST(RpcToken, MissingWrongAndUnconfigured) {
  auto none = rpc_check_token("Bearer abc", "");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->rpc_code(), kRpcUnauthorized);
  EXPECT_NE(std::string(none->what()).find("--join-token"), std::string::npos);

  for (const char* header : {"", "abc", "Basic abc", "bearer abc"}) {
    auto e = rpc_check_token(header, "abc");
    ASSERT_TRUE(e) << header;
    EXPECT_EQ(e->rpc_code(), kRpcUnauthorized);
    EXPECT_NE(std::string(e->what()).find("missing join token (send Authorization: Bearer <token>"),
              std::string::npos)
        << e->what();
  }
  for (const char* header : {"Bearer ", "Bearer ab", "Bearer abcd", "Bearer abd", "Bearer  abc"}) {
    auto e = rpc_check_token(header, "abc");
    ASSERT_TRUE(e) << header;
    EXPECT_EQ(e->rpc_code(), kRpcUnauthorized);
    EXPECT_STREQ(e->what(), "wrong join token");
  }
  EXPECT_FALSE(rpc_check_token("Bearer abc", "abc"));
}

}  // namespace
}  // namespace tars::cluster
