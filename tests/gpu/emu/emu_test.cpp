// The kernel emulator's own checks (cuda_emu.h): the CUDA semantics the
// backend's kernels rely on, and that it stops on the mistakes it claims to
// find instead of computing something.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "engine/cuda/cuda_launch.cuh"

namespace {

// out[block][t] = sum over the block of in, via shuffles then shared memory.
__global__ void block_sum_kernel(const int* in, int* out) {
  __shared__ int partial[32];
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  int v = in[blockIdx.x * blockDim.x + t];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  int total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += partial[w];
  out[blockIdx.x * blockDim.x + t] = total;
}

// out[t] = in[t ^ 1] via __shfl_sync from a computed lane, then a rotation
// through shared memory (barrier between write and read).
__global__ void exchange_kernel(const float* in, float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  const float mine = __shfl_sync(0xffffffffu, in[t], (t % 32) ^ 1);
  s[t] = mine;
  __syncthreads();
  out[t] = s[(t + 1) % blockDim.x];
}

// Threads of warp 1 leave early; warp 0 still meets at its barriers.
__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x >= 32) return;
  int v = static_cast<int>(threadIdx.x);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  out[threadIdx.x] = v;
}

// Half a warp waits at the block's barrier, the other half at the warp's:
// undefined on a GPU (a hang or worse); the emulator must stop with a message.
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncwarp();
  }
  out[threadIdx.x] = 1;
}

// Reads a neighbour's shared-memory slot without a barrier: a race on a GPU.
__global__ void missing_barrier_kernel(int* out) {
  __shared__ int s[64];
  s[threadIdx.x] = static_cast<int>(threadIdx.x) + 1000 * static_cast<int>(blockIdx.x);
  __syncwarp();  // only the warp's own lanes are ordered
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[(threadIdx.x + 32) % 64];
}

// A kernel fit for programmatic dependent launch, and one that is not (it
// would read its inputs before the kernel before it has finished).
__global__ void pdl_ready_kernel(int* out) {
  tars::engine::cuda::pdl_prologue();
  out[threadIdx.x] = 1;
}
__global__ void pdl_unready_kernel(int* out) { out[threadIdx.x] = 1; }

// A dependent pair: the first writes x, the second reads it before its
// prologue (too early: the first may still be running) or after it.
__global__ void pdl_write_kernel(int* x, int v) {
  tars::engine::cuda::pdl_prologue();
  x[blockIdx.x * blockDim.x + threadIdx.x] = v;
}
__global__ void pdl_read_early_kernel(const int* x, int* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int early = x[i];
  tars::engine::cuda::pdl_prologue();
  out[i] = early;
}
__global__ void pdl_read_late_kernel(const int* x, int* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  tars::engine::cuda::pdl_prologue();
  out[i] = x[i];
}

TEST(KernelEmulator, ShufflesAndSharedMemoryFollowCudaSemantics) {
  const int blocks = 3, threads = 128;
  std::vector<int> in(blocks * threads), out(in.size(), -1);
  std::iota(in.begin(), in.end(), 1);
  TARS_LAUNCH(blocks, threads, 0, nullptr, block_sum_kernel)(in.data(), out.data());
  for (int b = 0; b < blocks; ++b) {
    const int want = std::accumulate(in.begin() + b * threads, in.begin() + (b + 1) * threads, 0);
    for (int t = 0; t < threads; ++t) ASSERT_EQ(out[b * threads + t], want) << "block " << b << " thread " << t;
  }

  std::vector<float> fin(64), fout(64, -1.0f);
  std::iota(fin.begin(), fin.end(), 0.0f);
  TARS_LAUNCH(1, 64, 0, nullptr, exchange_kernel)(fin.data(), fout.data());
  for (int t = 0; t < 64; ++t) {
    const int from = (t + 1) % 64;  // s[from] holds in[from ^ 1]
    EXPECT_EQ(fout[t], fin[from ^ 1]) << t;
  }
}

TEST(KernelEmulator, ExitedThreadsLeaveTheBarriers) {
  std::vector<int> out(64, -1);
  TARS_LAUNCH(1, 64, 0, nullptr, early_exit_kernel)(out.data());
  for (int t = 0; t < 32; ++t) EXPECT_EQ(out[t], 31 * 32 / 2) << t;
  for (int t = 32; t < 64; ++t) EXPECT_EQ(out[t], -1) << t;
}

// The race above gives some thread the wrong (previous block's) value: the
// emulator runs the threads in both orders, so such a kernel fails its test.
TEST(KernelEmulator, ARaceOnSharedMemoryShowsUp) {
  const int blocks = 2;
  std::vector<int> out(64 * blocks, -1);
  TARS_LAUNCH(blocks, 64, 0, nullptr, missing_barrier_kernel)(out.data());
  int wrong = 0;
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < 64; ++t) wrong += out[b * 64 + t] != (t + 32) % 64 + 1000 * b;
  }
  EXPECT_GT(wrong, 0);
}

TEST(KernelEmulatorDeathTest, BarrierReachedByPartOfTheBlockStops) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<int> out(32, 0);
  EXPECT_DEATH(TARS_LAUNCH(1, 32, 0, nullptr, divergent_barrier_kernel)(out.data()), "deadlock");
}

TEST(KernelEmulatorDeathTest, DependentLaunchWithoutItsPrologueStops) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<int> out(32, 0);
  TARS_LAUNCH_PDL(1, 32, 0, nullptr, pdl_ready_kernel)(out.data());
  EXPECT_EQ(out[31], 1);
  EXPECT_DEATH(TARS_LAUNCH_PDL(1, 32, 0, nullptr, pdl_unready_kernel)(out.data()), "never called pdl_prologue");
}

// What a dependent launch reads before pdl_prologue() is device memory as it
// was before the kernel before it (in its first and last block; on a GPU it
// may be either), so a kernel that reads its inputs too early computes with
// stale ones; after the prologue it sees them.
TEST(KernelEmulator, DependentLaunchSeesTheKernelBeforeOnlyAfterItsPrologue) {
  const int blocks = 3, threads = 64, n = blocks * threads;
  int* x = nullptr;
  int* out = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&x), n * sizeof(int)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&out), n * sizeof(int)), cudaSuccess);
  TARS_LAUNCH_PDL(blocks, threads, 0, nullptr, pdl_write_kernel)(x, 1);
  TARS_LAUNCH_PDL(blocks, threads, 0, nullptr, pdl_write_kernel)(x, 2);
  TARS_LAUNCH_PDL(blocks, threads, 0, nullptr, pdl_read_early_kernel)(x, out);
  std::vector<int> host(n);
  std::memcpy(host.data(), out, n * sizeof(int));  // emulated device memory is host memory
  for (int i = 0; i < n; ++i) {
    const bool checked = i < threads || i >= (blocks - 1) * threads;  // the first and last blocks
    EXPECT_EQ(host[i], checked ? 1 : 2) << i;
  }
  TARS_LAUNCH_PDL(blocks, threads, 0, nullptr, pdl_write_kernel)(x, 3);
  TARS_LAUNCH_PDL(blocks, threads, 0, nullptr, pdl_read_late_kernel)(x, out);
  std::memcpy(host.data(), out, n * sizeof(int));
  for (int i = 0; i < n; ++i) EXPECT_EQ(host[i], 3) << i;
  // A copy between the two: the kernel after it cannot overlap the one before.
  TARS_LAUNCH_PDL(blocks, threads, 0, nullptr, pdl_write_kernel)(x, 4);
  ASSERT_EQ(cudaMemsetAsync(out, 0, n * sizeof(int), nullptr), cudaSuccess);
  TARS_LAUNCH_PDL(blocks, threads, 0, nullptr, pdl_read_early_kernel)(x, out);
  std::memcpy(host.data(), out, n * sizeof(int));
  for (int i = 0; i < n; ++i) EXPECT_EQ(host[i], 4) << i;
  cudaFree(x);
  cudaFree(out);
}

TEST(KernelEmulatorDeathTest, InvalidLaunchConfigurationStops) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<int> out(2048, 0);
  EXPECT_DEATH(TARS_LAUNCH(1, 2048, 0, nullptr, early_exit_kernel)(out.data()), "invalid launch configuration");
}

}  // namespace
