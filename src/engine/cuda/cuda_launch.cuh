#pragma once
// Every kernel launch of the CUDA backend goes through TARS_LAUNCH:
//   TARS_LAUNCH(grid, block, shared_bytes, stream, kernel)(arguments...)
// With nvcc it is the triple-chevron launch. The kernel emulator of the
// tests (tests/gpu/emu, TARS_CUDA_EMU) compiles the same sources as host C++
// and runs each launch on the CPU, one fiber per CUDA thread, so the kernels'
// logic is tested on machines without a GPU.
#ifdef TARS_CUDA_EMU
#define TARS_LAUNCH(grid, block, smem, stream, ...) \
  ::tars::emu::Launch(grid, block, smem, stream, [](auto... a) { __VA_ARGS__(a...); })
#else
#define TARS_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#endif
