#pragma once
// The CUDA backend (src/engine/cuda/): every Backend operation on one NVIDIA
// device, weights and KV cache in device memory. Built when nvcc is found
// (TARS_CUDA, see the top CMakeLists); used only when a device is present at
// run time. Without a driver, device, or a build for the device's
// architecture, creation returns nullptr and says why, so the caller can
// fall back to backend_cpu_create().

#include <memory>
#include <string>

#include "engine/backend.h"

namespace tars::engine {

struct CudaBackendOptions {
  int device = 0;  // CUDA device ordinal (default: the first device)
  // Batched products (n > 1) through cuBLAS SGEMM (default: true, when
  // libcublas.so.13 loads); false uses the backend's own tiled kernel.
  bool use_cublas = true;
  // With use_cublas: true makes creation fail (the reason says why) when
  // cuBLAS cannot be loaded, instead of falling back to the own kernel with
  // a warning on stderr. The GPU tests set it, so a missing library is not
  // mistaken for a numerical bug.
  bool require_cublas = false;
  // false (default), the speed paths, as fast GPU engines do:
  //  - batched products (n > 1) of non-F32 weights in FP16 with FP32
  //    accumulation (cublasGemmEx: tensor cores where the card has them; the
  //    weights decoded to half, F16 weights used as they are, the
  //    activations rounded to half; needs cuBLAS);
  //  - the one-token mat-vec of quantized weights with the activations
  //    quantized to 8 bits per 32 elements (float scale amax/127) and
  //    integer dot products (dp4a), reading the weight blocks directly.
  // true: every product in FP32 on the dequantized weights (exact
  // arithmetic, as CpuBackendOptions::exact_activations; the consistency
  // tests compare it with the CPU's).
  bool exact_activations = false;
  // Decode steps (one token, one-part model) recorded as a CUDA graph and
  // replayed as one launch (Backend::capture_begin): hundreds of kernel
  // launches a step cost host time a large model's step does not have on a
  // fast card. A step that makes the launches the graph was captured from
  // replays it without a capture (only its metadata is copied); one that
  // does not is captured anew. Off by default until measured on a GPU; the
  // environment variable TARS_CUDA_GRAPHS=1 (or 0) overrides it, and
  // TARS_CUDA_RECAPTURE=1 captures every step. A recording that fails turns
  // graphs off for the backend's life, with a warning on stderr.
  bool graphs = false;
  // Fused decode-step kernels (default: true): the norm with its copy and
  // residual add, both ropes with the cache store, the 8-bit activations
  // written by the kernel that produces them (norm, attention, swiglu), and
  // one mat-vec launch for Q/K/V and one for gate/up: 9 kernels per layer
  // instead of 22, the same arithmetic (logits equal bit for bit). The
  // environment variable TARS_CUDA_FUSE=0 (or 1) overrides it.
  bool fuse = true;
};

// What the CUDA backend's speed paths did so far (zeros for a backend that
// is not CUDA): what the tests and the GPU check read to know that graphs
// (and the GEMM attention) really ran, and that the executable graph was
// updated in place rather than rebuilt each step.
struct CudaStats {
  size_t launches = 0;        // decode steps replayed as a graph
  size_t instantiations = 0;  // executable graphs built (1 when every update worked)
  size_t gemm_attention = 0;  // batches whose attention ran as cuBLAS products (see attention())
  size_t fused = 0;           // fused operations run (CudaBackendOptions::fuse)
  size_t q8_reused = 0;       // mat-vecs that used 8-bit activations a fused kernel wrote
  size_t split_attention = 0;  // attention calls split over key ranges (TARS_CUDA_NEXT=1, long contexts)
  size_t replays = 0;          // of the launches: steps that matched the graph, so it ran without a capture
  size_t mismatches = 0;       // steps checked against the graph that did not match it (run directly)
};
CudaStats backend_cuda_stats(const Backend& backend);

// The CUDA ordinal of the GPU NVML names by `uuid` ("GPU-xxxxxxxx-xxxx-...",
// node::GpuInfo::uuid), or -1 when no visible CUDA device has it (hidden by
// CUDA_VISIBLE_DEVICES, no driver, a build without CUDA). NVML's index and
// the CUDA ordinal may differ; the uuid does not.
int backend_cuda_ordinal_for_uuid(const std::string& uuid);
// A 16-byte device uuid in NVML's form: "GPU-" and 8-4-4-4-12 hex digits.
// Inline: the CUDA library (which links nothing of the engine's) uses it too.
inline std::string cuda_uuid_string(const unsigned char bytes[16]) {
  static const char* kHex = "0123456789abcdef";
  std::string s = "GPU-";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += kHex[bytes[i] >> 4];
    s += kHex[bytes[i] & 15];
  }
  return s;
}

// True when this build has the CUDA backend and a usable device exists;
// otherwise false with *reason set ("built without CUDA", "no CUDA device",
// "driver too old", ...).
bool backend_cuda_available(std::string* reason = nullptr);

// The backend, or nullptr with *reason set when it cannot run here.
std::unique_ptr<Backend> backend_cuda_create(const CudaBackendOptions& options, std::string* reason = nullptr);

}  // namespace tars::engine
