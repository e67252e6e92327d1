#pragma once
// Every kernel launch of the CUDA backend goes through TARS_LAUNCH or
// TARS_LAUNCH_PDL:
//   TARS_LAUNCH(grid, block, shared_bytes, stream, kernel)(arguments...)
// With nvcc it is the triple-chevron launch (KernelLaunch). The kernel emulator of the
// tests (tests/gpu/emu, TARS_CUDA_EMU) compiles the same sources as host C++
// and runs each launch on the CPU, one fiber per CUDA thread, so the kernels'
// logic is tested on machines without a GPU.
//
// TARS_LAUNCH_PDL (the decode step's kernels): with TARS_CUDA_PDL=1 on a
// card of compute capability 9.0 or more, a programmatic dependent launch: the
// kernel's blocks may be scheduled while the kernel before it finishes, and
// wait in pdl_prologue() (griddepcontrol.wait) until it has, so the launch
// latency between two dependent kernels is hidden. Every kernel launched so
// must call pdl_prologue() before it reads anything another kernel writes
// (the emulator checks that every thread calls it); elsewhere it is an
// ordinary launch.
//
// Both report each launch to the calling thread's LaunchTap when it has one
// (launch_tap.h), and make no launch when the tap says skip.
#include <cuda_runtime.h>

#include <utility>

#include "engine/cuda/cuda_next.h"  // cuda_switch_on
#include "engine/cuda/launch_tap.h"

namespace tars::engine::cuda {

// Attribute A of the current device, asked once per device; 0 where it
// cannot be read.
template <cudaDeviceAttr A>
int device_attribute() {
  static int cached[64] = {};  // 0: not asked yet; -1: unreadable
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 0;
  if (cached[dev] == 0) {
    int v = 0;
    cached[dev] = cudaDeviceGetAttribute(&v, A, dev) == cudaSuccess && v > 0 ? v : -1;
  }
  return cached[dev] > 0 ? cached[dev] : 0;
}

// TARS_CUDA_PDL=1 and the current device supports it.
inline bool pdl_on() {
  static const bool wanted = cuda_switch_on("TARS_CUDA_PDL");
  return wanted && device_attribute<cudaDevAttrComputeCapabilityMajor>() >= 9;
}

// The first statement of a kernel launched with TARS_LAUNCH_PDL: waits for
// the kernel before it (and its memory) to be complete, then lets the next
// one be scheduled. A kernel may first load what no kernel writes (its
// weights, its parameters), so that those loads overlap the end of the
// kernel before; nothing another kernel writes may be read, and nothing
// written, before it.
__device__ __forceinline__ void pdl_prologue() {
#if defined(TARS_CUDA_EMU)
  ::tars::emu::pdl_prologue_called();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#if !defined(TARS_CUDA_EMU)
// TARS_LAUNCH(...)(args) and TARS_LAUNCH_PDL(...)(args) (pdl true).
template <class K>
class KernelLaunch {
 public:
  KernelLaunch(K kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl)
      : kernel_(kernel), grid_(grid), block_(block), smem_(smem), stream_(stream), pdl_(pdl) {}
  template <class... A>
  void operator()(A&&... a) const {
    if (LaunchTap* tap = t_launch_tap) {
      tap->add(reinterpret_cast<const void*>(kernel_), grid_.x, grid_.y, grid_.z, block_.x, block_.y, block_.z,
               smem_, pdl_, a...);
      if (tap->skip) return;
    }
    if (!pdl_ || !pdl_on()) {
      kernel_<<<grid_, block_, smem_, stream_>>>(std::forward<A>(a)...);
      return;
    }
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid_;
    cfg.blockDim = block_;
    cfg.dynamicSmemBytes = smem_;
    cfg.stream = stream_;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    cudaLaunchKernelEx(&cfg, kernel_, std::forward<A>(a)...);  // errors: cudaGetLastError, as for <<<>>>
  }

 private:
  K kernel_;
  dim3 grid_, block_;
  size_t smem_;
  cudaStream_t stream_;
  bool pdl_;
};
#endif

}  // namespace tars::engine::cuda

#ifdef TARS_CUDA_EMU
#define TARS_LAUNCH(grid, block, smem, stream, ...) \
  ::tars::emu::Launch(grid, block, smem, stream, [](auto... a) { __VA_ARGS__(a...); })
#define TARS_LAUNCH_PDL(grid, block, smem, stream, ...) \
  ::tars::emu::Launch(grid, block, smem, stream, [](auto... a) { __VA_ARGS__(a...); }, true)
#else
#define TARS_LAUNCH(grid, block, smem, stream, ...) \
  ::tars::engine::cuda::KernelLaunch<decltype(&__VA_ARGS__)>(&__VA_ARGS__, grid, block, smem, stream, false)
#define TARS_LAUNCH_PDL(grid, block, smem, stream, ...) \
  ::tars::engine::cuda::KernelLaunch<decltype(&__VA_ARGS__)>(&__VA_ARGS__, grid, block, smem, stream, true)
#endif
