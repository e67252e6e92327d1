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

inline bool cuda_next_kernels() {
  static const bool on = [] {
    const char* v = std::getenv("TARS_CUDA_NEXT");
    return v && std::string(v) == "1";
  }();
  return on;
}

}  // namespace tars::engine::cuda
