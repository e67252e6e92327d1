#include "cluster/protocol.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace tars::cluster {
namespace {

TEST(Protocol, ApplicationCodesAreInTheServerRangeAndNamed) {
  std::set<int> seen;
  for (int code : {kRpcUnauthorized, kRpcVersionMismatch, kRpcUnavailable, kRpcNotFound,
                   kRpcForbiddenPath, kRpcTimeout}) {
    EXPECT_LE(code, -32000);
    EXPECT_GE(code, -32099);
    EXPECT_TRUE(seen.insert(code).second) << code << " is used twice";
    EXPECT_NE(std::string(rpc_code_name(code)), "error") << code;
  }
  EXPECT_EQ(std::string(rpc_code_name(-32601)), "method not found");
}

}  // namespace
}  // namespace tars::cluster
