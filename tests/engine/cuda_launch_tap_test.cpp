// The launch record behind CUDA graph replay (engine/cuda/launch_tap.h) is
// host code: checked here on every machine. Two records are equal exactly
// when the launches are: the same kernels, configurations and argument
// values, in the same order.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "engine/cuda/launch_tap.h"

namespace tars::engine::cuda {
namespace {

const char kKernelA = 0, kKernelB = 0;  // two kernels' addresses

struct Args {  // a struct argument, as the mat-vec's parts are
  const float* p;
  int64_t n;
};

Args s_of(const float* x) { return {x, 4}; }

// The record of one launch of kernel k (grid gx) with arguments a...
template <class... A>
std::vector<unsigned char> record(const void* k, unsigned gx, bool pdl, const A&... a) {
  LaunchTap t;
  t.add(k, gx, 1, 1, 128, 1, 1, 0, pdl, a...);
  return t.bytes;
}

TEST(CudaLaunchTap, EqualLaunchesGiveEqualRecords) {
  float x[4] = {};
  const Args s{x, 4};
  EXPECT_EQ(record(&kKernelA, 32, false, x, 7, 0.5f, s), record(&kKernelA, 32, false, x, 7, 0.5f, s));
  EXPECT_EQ(record(&kKernelA, 32, false, nullptr), record(&kKernelA, 32, false, nullptr));
}

TEST(CudaLaunchTap, AnyDifferenceGivesAnotherRecord) {
  float x[4] = {};
  const auto base = record(&kKernelA, 32, false, x + 0, 7, s_of(x));
  EXPECT_NE(base, record(&kKernelB, 32, false, x + 0, 7, s_of(x))) << "kernel";
  EXPECT_NE(base, record(&kKernelA, 33, false, x + 0, 7, s_of(x))) << "grid";
  EXPECT_NE(base, record(&kKernelA, 32, true, x + 0, 7, s_of(x))) << "dependent launch";
  EXPECT_NE(base, record(&kKernelA, 32, false, x + 1, 7, s_of(x))) << "pointer";
  EXPECT_NE(base, record(&kKernelA, 32, false, x + 0, 8, s_of(x))) << "scalar";
  EXPECT_NE(base, record(&kKernelA, 32, false, x + 0, 7, Args{x, 5})) << "struct member";
  EXPECT_NE(base, record(&kKernelA, 32, false, x + 0, int64_t{7}, s_of(x))) << "argument size";
  EXPECT_NE(record(&kKernelA, 32, false, 0), record(&kKernelA, 32, false, static_cast<const void*>(nullptr)))
      << "0 as an int and a null pointer";
}

TEST(CudaLaunchTap, NullptrIsANullPointer) {
  EXPECT_EQ(record(&kKernelA, 1, false, nullptr), record(&kKernelA, 1, false, static_cast<const void*>(nullptr)));
}

TEST(CudaLaunchTap, LaunchesAppendInOrder) {
  LaunchTap t;
  t.add(&kKernelA, 1, 1, 1, 32, 1, 1, 0, false, 1);
  t.add(&kKernelB, 1, 1, 1, 32, 1, 1, 0, false, 2);
  LaunchTap u;
  u.add(&kKernelB, 1, 1, 1, 32, 1, 1, 0, false, 2);
  u.add(&kKernelA, 1, 1, 1, 32, 1, 1, 0, false, 1);
  EXPECT_EQ(t.bytes.size(), u.bytes.size());
  EXPECT_NE(t.bytes, u.bytes);
}

}  // namespace
}  // namespace tars::engine::cuda
