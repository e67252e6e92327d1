#pragma once
// The kernel emulator (force-included into every .cu file of the emulated
// build, TARS_CUDA_EMU): the CUDA backend's kernels compiled as host C++ and
// run on the CPU, one fiber per CUDA thread, so their logic (indexing, block
// and warp barriers, shuffles, shared memory, bounds) is tested on machines
// without a GPU. It says nothing about speed, nor about the hardware's own
// arithmetic (the host compiler does not contract a * b + c into one fused
// operation, nvcc does), so the GPU tests' tolerances still apply.
//
// What it models:
//  - threadIdx / blockIdx / blockDim / gridDim;
//  - __shared__ as static storage: blocks run one after another, so each
//    block sees its own (uninitialized, as on a GPU: left over from the last);
//  - __syncthreads and __syncwarp as barriers of the block's or the warp's
//    threads that have not exited (a deadlock, such as a barrier reached by
//    part of a block, aborts with a message);
//  - __shfl_sync / __shfl_xor_sync as an exchange among a warp's 32 lanes;
//  - the integer and rounding intrinsics the kernels use;
//  - programmatic dependent launches (TARS_LAUNCH_PDL) as ordinary ones, with
//    the check that every thread called pdl_prologue().
// Launches run at once, in order (every stream is synchronous), or are
// recorded while a stream captures a graph (emu_runtime.cpp). Each is
// reported to the thread's LaunchTap as the real ones are.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "engine/cuda/launch_tap.h"

namespace tars::emu {

extern uint3 g_block_idx;
extern dim3 g_block_dim, g_grid_dim;
const uint3& thread_idx();
void syncthreads();
void syncwarp();
// This lane's v in, lane src's out (src_is_xor: lane ^ src); 8 bytes at most.
uint64_t shuffle(uint64_t v, int src, bool src_is_xor);
// Runs body once per thread of every block of the grid (or records the
// launch while the stream captures). pdl: a programmatic dependent launch
// (TARS_LAUNCH_PDL), whose every thread must call pdl_prologue().
void launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, std::function<void()> body,
            bool pdl = false);
// Called by pdl_prologue() (engine/cuda/cuda_launch.cuh).
void pdl_prologue_called();

template <class T>
T shfl(T v, int src, bool src_is_xor) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(bits, src, src_is_xor);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

inline int dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) {
    c += static_cast<int>(static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * i))) *
         static_cast<int>(static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i)));
  }
  return c;
}
inline unsigned vsub4(unsigned a, unsigned b) {
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= ((((a >> (8 * i)) & 0xffu) - ((b >> (8 * i)) & 0xffu)) & 0xffu) << (8 * i);
  return r;
}
inline int float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }  // the default mode: to even
inline long long clock64() {  // a cycle counter: nanoseconds of the host's steady clock
  return static_cast<long long>(std::chrono::steady_clock::now().time_since_epoch().count());
}
inline float uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// A launch: TARS_LAUNCH(grid, block, smem, stream, kernel)(args...) becomes
// Launch(grid, block, smem, stream, call)(args...), call(args...) calling
// the kernel. The arguments are copied once, as a launch copies them, and
// every thread's call gets them by value.
template <class Call>
class Launch {
 public:
  Launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Call call, bool pdl = false)
      : call_(call), grid_(grid), block_(block), smem_(smem), stream_(stream), pdl_(pdl) {}
  template <class... A>
  void operator()(A&&... a) const {
    if (auto* tap = ::tars::engine::cuda::t_launch_tap) {  // as cuda_launch.cuh's KernelLaunch
      tap->add(&kCallId, grid_.x, grid_.y, grid_.z, block_.x, block_.y, block_.z, smem_, pdl_, a...);
      if (tap->skip) return;
    }
    auto args = std::make_shared<std::tuple<std::decay_t<A>...>>(std::forward<A>(a)...);
    launch(grid_, block_, smem_, stream_, [call = call_, args] { std::apply(call, *args); }, pdl_);
  }

 private:
  static constexpr char kCallId = 0;  // the kernel's name for a LaunchTap: one per launch site and kernel
  Call call_;
  dim3 grid_, block_;
  size_t smem_;
  cudaStream_t stream_;
  bool pdl_;
};

}  // namespace tars::emu

// CUDA's device min / max (any two arithmetic types, in their common type).
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}

#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#undef __shared__
#define __shared__ static
#define threadIdx (::tars::emu::thread_idx())
#define blockIdx (::tars::emu::g_block_idx)
#define blockDim (::tars::emu::g_block_dim)
#define gridDim (::tars::emu::g_grid_dim)
#define __syncthreads() ::tars::emu::syncthreads()
#define __syncwarp(...) ::tars::emu::syncwarp()
#define __shfl_xor_sync(mask, v, o) ::tars::emu::shfl((v), (o), true)
#define __shfl_sync(mask, v, src) ::tars::emu::shfl((v), (src), false)
#define __dp4a(a, b, c) ::tars::emu::dp4a((a), (b), (c))
#define __vsub4(a, b) ::tars::emu::vsub4((a), (b))
#define __ldg(p) (*(p))
#define __float2int_rn(x) ::tars::emu::float2int_rn(x)
#define clock64() ::tars::emu::clock64()
#define __uint_as_float(u) ::tars::emu::uint_as_float(u)
#define __fmul_rn(a, b) ((a) * (b))
#define __fadd_rn(a, b) ((a) + (b))
#define __fsub_rn(a, b) ((a) - (b))
