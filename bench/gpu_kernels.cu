// Times the CUDA backend's kernels one by one on 7B-shaped operands (dim
// 4096, FFN 11008, 32 heads of 128) and prints each one's time and its rate:
// GB/s of memory it must move (mat-vecs, dequantization, norms) or TFLOPS
// (GEMMs), so each can be set against the device's bandwidth
// (bench_gpu_bandwidth) and the model-level figures of `tars bench`.
// Operand values are fixed byte patterns: speed does not depend on them.
//
//   bench_gpu_kernels [--reps 50]
// (TARS_CUDA_NEXT=1 in the environment times the prepared attention and norm
// variants, engine/cuda/cuda_next.h; the mat-vec rows show all variants.)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/cuda_blas.h"
#include "engine/cuda/cuda_kernels.h"
#include "engine/quant.h"

using namespace tars::engine;
using namespace tars::engine::cuda;

namespace {

#define CK(x)                                                                                        \
  do {                                                                                               \
    cudaError_t e_ = (x);                                                                            \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));        \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

cudaStream_t g_stream;
int g_reps = 50;

void* dev(size_t bytes, int pattern) {
  void* p = nullptr;
  CK(cudaMalloc(&p, bytes));
  CK(cudaMemset(p, pattern, bytes));
  return p;
}

// Microseconds per call of f (after warm-up), timed with events over g_reps calls.
template <class F>
double time_us(F&& f) {
  for (int i = 0; i < 3; ++i) f();
  CK(cudaGetLastError());
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  CK(cudaEventRecord(a, g_stream));
  for (int i = 0; i < g_reps; ++i) f();
  CK(cudaEventRecord(b, g_stream));
  CK(cudaEventSynchronize(b));
  CK(cudaGetLastError());
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 1000.0 * ms / g_reps;
}

void row(const std::string& what, double us, double bytes, double flops) {
  std::printf("%-44s %9.2f us", what.c_str(), us);
  if (bytes > 0) std::printf("  %8.1f GB/s", bytes / us / 1e3);
  if (flops > 0) std::printf("  %8.1f TFLOPS", flops / us / 1e6);
  std::printf("\n");
}

size_t row_bytes(TensorType t, int64_t cols) {
  switch (t) {
    case TensorType::kQ4_0: return cols / 32 * sizeof(BlockQ4_0);
    case TensorType::kQ8_0: return cols / 32 * sizeof(BlockQ8_0);
    case TensorType::kQ4_K: return cols / 256 * sizeof(BlockQ4_K);
    case TensorType::kQ6_K: return cols / 256 * sizeof(BlockQ6_K);
    default: return cols * 2;
  }
}

const char* name(TensorType t) {
  switch (t) {
    case TensorType::kQ4_0: return "Q4_0";
    case TensorType::kQ8_0: return "Q8_0";
    case TensorType::kQ4_K: return "Q4_K";
    case TensorType::kQ6_K: return "Q6_K";
    default: return "F16";
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0) g_reps = std::atoi(argv[i + 1]);
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs; %d reps per figure\n", prop.name, prop.multiProcessorCount, g_reps);
  CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  const int64_t dim = 4096, ffn = 11008;

  // 8-bit activations and the integer mat-vec, per type and shape.
  const int64_t max_cols = ffn;
  float* x = static_cast<float*>(dev(max_cols * 4, 0));
  std::vector<float> xh(max_cols);
  for (int64_t i = 0; i < max_cols; ++i) xh[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  CK(cudaMemcpy(x, xh.data(), max_cols * 4, cudaMemcpyHostToDevice));
  int8_t* qx = static_cast<int8_t*>(dev(max_cols, 0));
  float* dx = static_cast<float*>(dev(max_cols / 32 * 4, 0));
  int* sx = static_cast<int*>(dev(max_cols / 32 * 4, 0));
  float* y = static_cast<float*>(dev(32000 * 4 * 512, 0));
  row("quantize_q8 4096", time_us([&] { launch_quantize_q8(x, dim, qx, dx, sx, g_stream); }), dim * 4.0 + dim, 0);
  launch_quantize_q8(x, ffn, qx, dx, sx, g_stream);
  struct Shape {
    int64_t rows, cols;
  };
  // Each shape through both mat-vec variants (launch_matvec_q8_multi), and
  // Q/K/V and gate/up as one launch of 3 and 2 matrices.
  for (TensorType t : {TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ6_K, TensorType::kQ8_0}) {
    struct Case {
      int64_t rows, cols;
      int parts;
    };
    for (Case c : {Case{dim, dim, 1}, Case{ffn, dim, 1}, Case{dim, ffn, 1}, Case{32000, dim, 1}, Case{dim, dim, 3},
                   Case{ffn, dim, 2}}) {
      const size_t rb = row_bytes(t, c.cols), bytes = rb * c.rows;
      // Enough copies of the operands, used in turn, that together they
      // exceed the L2 cache several times over: each launch reads its
      // matrices from device memory, as in a model's decode step (one copy,
      // timed again and again, is served from L2 when it fits there).
      const int copies = static_cast<int>(std::min<size_t>(64, 1 + (size_t{256} << 20) / (bytes * c.parts)));
      std::vector<void*> ws;
      std::vector<std::vector<MatvecQ8Part>> parts(copies);
      for (int k = 0; k < copies; ++k) {
        for (int i = 0; i < c.parts; ++i) {
          ws.push_back(dev(bytes, 0x3C));
          parts[k].push_back({ws.back(), c.rows, nullptr, y + i * c.rows});
        }
      }
      const std::string what = std::string("matvec_q8 ") + name(t) + " " + (c.parts > 1 ? std::to_string(c.parts) + "x" : "") +
                               std::to_string(c.rows) + "x" + std::to_string(c.cols);
      for (int v : {1, 2, 3, 4, 5}) {
        if (v == 5 && t == TensorType::kQ6_K) continue;  // no unit of whole words: variant 1
        int turn = 0;
        const double us = time_us([&] {
          const auto& p = parts[turn++ % copies];
          launch_matvec_q8_multi(t, p.data(), c.parts, rb, c.cols, qx, dx, sx, g_stream, v);
        });
        row(what + " v" + std::to_string(v), us, static_cast<double>(bytes) * c.parts, 0);
      }
      for (void* w : ws) CK(cudaFree(w));
    }
  }

  // Dequantization to half (the batched path), and the FP16 GEMM after it.
  void* wh = dev(ffn * dim * 2, 0);
  for (TensorType t : {TensorType::kQ4_0, TensorType::kQ4_K}) {
    const size_t rb = row_bytes(t, dim), bytes = rb * ffn;
    void* w = dev(bytes, 0x3C);
    const double us = time_us([&] { launch_dequantize_f16(t, w, rb, dim, ffn, wh, g_stream); });
    row(std::string("dequantize_f16 ") + name(t) + " 11008x4096", us, static_cast<double>(bytes) + ffn * dim * 2.0, 0);
    CK(cudaFree(w));
  }
  std::string why;
  std::unique_ptr<Blas> blas = Blas::open(g_stream, true, &why);
  if (!blas) {
    std::printf("cuBLAS not loaded: %s\n", why.c_str());
  } else {
    void* xb = dev(512 * ffn * 2, 0x3C);
    for (Shape s : {Shape{dim, dim}, Shape{ffn, dim}, Shape{dim, ffn}, Shape{2048, 2048}, Shape{256, 2048}}) {
      for (int n : {512, 128}) {
        const double us = time_us([&] { blas->gemm_f16_nt(wh, xb, s.rows, s.cols, n, y, s.rows); });
        row("gemm_f16 " + std::to_string(s.rows) + "x" + std::to_string(s.cols) + " n=" + std::to_string(n), us, 0,
            2.0 * s.rows * s.cols * n);
      }
    }
    CK(cudaFree(xb));
  }

  // Row operations on one token and on a 512-token batch.
  float* act = static_cast<float*>(dev(512 * ffn * 4, 0));
  float* wn = static_cast<float*>(dev(dim * 4, 0));
  for (int n : {1, 512}) {
    row("rms_norm 4096 n=" + std::to_string(n), time_us([&] { launch_rms_norm(act, wn, n, dim, 1e-5f, g_stream); }),
        2.0 * n * dim * 4, 0);
  }
  row("swiglu 11008", time_us([&] { launch_swiglu(act, act + ffn, ffn, g_stream); }), 3.0 * ffn * 4, 0);

  // Attention over an F16 cache: 32 heads of 128, one token at 128 and 1024
  // keys, and a causal 512-token prompt.
  {
    const int n_head = 32, hd = 128, kv_dim = n_head * hd, n_ctx = 2048;
    void* kc = dev(static_cast<size_t>(n_ctx) * kv_dim * 2, 0x2C);
    void* vc = dev(static_cast<size_t>(n_ctx) * kv_dim * 2, 0x2C);
    float* q = static_cast<float*>(dev(512 * kv_dim * 4, 0));
    float* o = static_cast<float*>(dev(512 * kv_dim * 4, 0));
    int64_t* row0 = static_cast<int64_t*>(dev(512 * 8, 0));
    int32_t* nk = static_cast<int32_t*>(dev(512 * 4, 0));
    for (int keys : {128, 1024}) {
      CK(cudaMemcpy(nk, &keys, 4, cudaMemcpyHostToDevice));
      const double us = time_us(
          [&] { launch_attention(q, kc, vc, true, kv_dim, row0, nk, 1, n_head, n_head, hd, 0.088f, o, g_stream); });
      row("attention n=1, " + std::to_string(keys) + " keys", us, 2.0 * keys * kv_dim * 2, 0);
    }
    std::vector<int32_t> causal(512);
    for (int t = 0; t < 512; ++t) causal[t] = t + 1;
    CK(cudaMemcpy(nk, causal.data(), 512 * 4, cudaMemcpyHostToDevice));
    const double us = time_us(
        [&] { launch_attention(q, kc, vc, true, kv_dim, row0, nk, 512, n_head, n_head, hd, 0.088f, o, g_stream); });
    row("attention n=512 causal", us, 0, 2.0 * 2.0 * n_head * hd * (512.0 * 513.0 / 2.0));
  }
  CK(cudaStreamSynchronize(g_stream));
  return 0;
}
