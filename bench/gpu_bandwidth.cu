// Device memory bandwidth: a large device-to-device copy timed with CUDA
// events (1 GiB, 20 repetitions after a warm-up). A copy reads and writes
// every byte, so the figure is 2 x bytes / time. Prints one line:
//   device=<name> bandwidth_gbs=<GB/s>
// Used by bench/gpu_check.sh to state decode speed as a fraction of the
// bandwidth limit. Exits 1 (with the reason) without a device.
#include <cuda_runtime.h>

#include <cstdio>

#define CHECK(expr)                                                                       \
  do {                                                                                    \
    cudaError_t e_ = (expr);                                                              \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)

int main() {
  const size_t bytes = size_t{1} << 30;
  const int reps = 20;
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  void *a = nullptr, *b = nullptr;
  CHECK(cudaMalloc(&a, bytes));
  CHECK(cudaMalloc(&b, bytes));
  CHECK(cudaMemset(a, 1, bytes));
  CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));  // warm-up
  cudaEvent_t t0, t1;
  CHECK(cudaEventCreate(&t0));
  CHECK(cudaEventCreate(&t1));
  CHECK(cudaEventRecord(t0));
  for (int i = 0; i < reps; ++i) CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
  CHECK(cudaEventRecord(t1));
  CHECK(cudaEventSynchronize(t1));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, t0, t1));
  const double gbs = 2.0 * static_cast<double>(bytes) * reps / (ms * 1e-3) / 1e9;
  std::printf("device=%s bandwidth_gbs=%.1f\n", prop.name, gbs);
  cudaFree(a);
  cudaFree(b);
  return 0;
}
