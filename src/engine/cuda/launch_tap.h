#pragma once
// A record of the kernel launches the calling thread makes: each launch's
// kernel, grid, block, shared bytes, whether it is a dependent launch, and
// the bytes of its arguments. The CUDA backend taps a decode step's launches
// (TARS_LAUNCH / TARS_LAUNCH_PDL report to the tap) to know that the step is
// the one its CUDA graph already holds: the same kernels with the same
// arguments. Then it replays the graph, and the step's launches are only
// recorded, not made (LaunchTap::skip). Host-only and free of CUDA, so the
// tests check it on every machine.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace tars::engine::cuda {

struct LaunchTap {
  std::vector<unsigned char> bytes;  // the launches, one after another
  bool skip = false;                 // record only: make no launch

  // kernel: anything that names the kernel (its address).
  template <class... A>
  void add(const void* kernel, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
           size_t smem, bool pdl, const A&... args) {
    put(kernel);
    const uint64_t config[] = {gx, gy, gz, bx, by, bz, smem, pdl ? 1u : 0u, sizeof...(A)};
    put(config);
    (put_arg(args), ...);
  }

 private:
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const unsigned char*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  template <class T>
  void put_arg(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "a kernel argument must be copyable as bytes");
    if constexpr (std::is_same_v<T, std::nullptr_t>) {
      put_arg(static_cast<const void*>(nullptr));  // a nullptr_t's own bytes are unspecified
    } else {
      // The size too: 0 as an int and as a pointer are two arguments.
      put(static_cast<uint32_t>(sizeof(T)));
      put(v);
    }
  }
};

// The calling thread's tap, or null (launches are only made).
inline thread_local LaunchTap* t_launch_tap = nullptr;

}  // namespace tars::engine::cuda
