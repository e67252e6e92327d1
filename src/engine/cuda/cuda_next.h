#pragma once
// TARS_CUDA_NEXT=1: the kernel variants prepared for the next GPU
// measurement, not yet run on a GPU when they were written (see
// BENCHMARKS.md, "Fused decode kernels"):
//  - the integer mat-vec's variant 4: each chunk's words loaded into
//    registers all at once, the chunk's 8-bit activations in shared memory;
//  - decode attention with the key loop unrolled for head sizes 64 and 128,
//    and (F16 cache) a tile's value rows all loaded before they are summed;
//  - the one-row norm with the row in registers (up to 1024 threads), its
//    8-bit form written from them;
//  - long-context decode attention split over key ranges, then merged.
// Off by default until bench/gpu_check.sh has tested and timed them (it runs
// the GPU tests and the decode benchmarks with and without).
#include <cstdlib>
#include <string>

namespace tars::engine::cuda {

// Whether environment variable `name` is "1" (the CUDA backend's switches).
inline bool cuda_switch_on(const char* name) {
  const char* v = std::getenv(name);
  return v && std::string(v) == "1";
}

inline bool cuda_next_kernels() {
  static const bool on = cuda_switch_on("TARS_CUDA_NEXT");
  return on;
}

}  // namespace tars::engine::cuda
