// Speed of the CPU backend's matrix products, per weight type and kernel
// level, on the TinyLlama-1.1B layer shapes. Reports both wall time and the
// CPU time of the process: on a machine shared with other jobs the CPU time
// (multiply-adds per CPU-second) is the steadier figure for comparing kernels.
//
//   bench_matmul [--threads N] [--tokens 1,512] [--types Q4_0,Q8_0,Q4_K] [--reps R]
//                [--levels scalar,avx2,avx512]
//
// Ends with a plain multi-threaded read of memory: the bandwidth the machine
// gives now, against which a decode step (tg128 t/s x model bytes) compares.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/kernels_cpu.h"
#include "engine/quant.h"

namespace {

using namespace tars::engine;

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

// GB/s of a plain read of a 512 MiB buffer by `threads` threads: the memory
// bandwidth the machine gives right now, the ceiling of a decode step whose
// weights come from memory (tg128 t/s x model bytes). The shapes above are
// repeated on the same matrix, so they partly run from the caches (the
// 4-bit output matrix, 37 MB, nearly fits a 32 MiB L3): not a memory figure.
double stream_gbps(int threads) {
  const size_t words = (size_t{512} << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(words, 1);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> th;
    std::vector<uint64_t> sums(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      th.emplace_back([&, t] {
        const uint64_t* p = buf.data() + words / threads * t;
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = 0; i + 4 <= words / threads; i += 4) {
          a += p[i];
          b += p[i + 1];
          c += p[i + 2];
          d += p[i + 3];
        }
        sums[t] = a + b + c + d;
      });
    }
    for (auto& x : th) x.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sums[0] == 0) std::printf("?");  // keeps the sums alive
    best = std::max(best, words * sizeof(uint64_t) / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 3;
  std::vector<std::string> types = {"Q4_0", "Q8_0", "Q4_K", "Q6_K", "F16"};
  std::vector<std::string> levels = {"avx512"};
  std::vector<int> tokens = {1, 512};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--threads") threads = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--types") types = split(v);
    else if (a == "--levels") levels = split(v);
    else if (a == "--tokens") {
      tokens.clear();
      for (auto& t : split(v)) tokens.push_back(std::stoi(t));
    }
  }
  struct Shape {
    const char* name;
    int64_t cols, rows;
  };
  const Shape shapes[] = {{"attn_q 2048x2048", 2048, 2048}, {"ffn_up 2048x5632", 2048, 5632},
                          {"ffn_down 5632x2048", 5632, 2048}, {"output 2048x32000", 2048, 32000}};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::printf("threads %d, detected level %s\n", threads,
              std::string(cpu::isa_name(cpu::isa_detected())).c_str());
  std::printf("%-8s %-7s %-20s %6s %10s %10s %10s %10s\n", "type", "level", "shape", "tokens", "wall ms",
              "cpu ms", "GMAC/cpu-s", "GB/s wt");
  for (const auto& tn : types) {
    const TensorType t = *tensor_type_from_name(tn);
    for (const Shape& s : shapes) {
      std::vector<float> wf(s.cols * s.rows);
      for (auto& v : wf) v = nd(rng);
      const size_t rb = quant_row_bytes(t, s.cols);
      std::vector<uint8_t> w(rb * s.rows);
      for (int64_t r = 0; r < s.rows; ++r) quantize_row(t, wf.data() + r * s.cols, w.data() + r * rb, s.cols);
      for (const auto& ln : levels) {
        const cpu::Isa isa = ln == "scalar" ? cpu::Isa::kScalar : ln == "avx2" ? cpu::Isa::kAvx2 : cpu::Isa::kAvx512;
        cpu::isa_set_override(isa);
        CpuBackendOptions o;
        o.n_threads = threads;
        auto be = backend_cpu_create(o);
        Weight wt = be->load_weight(t, s.cols, s.rows, w.data());
        for (int n : tokens) {
          std::vector<float> x(s.cols * n), y(s.rows * n);
          for (auto& v : x) v = nd(rng) * 50;
          be->matmul(wt, x.data(), n, y.data());  // warm-up
          const double c0 = cpu_seconds();
          const auto t0 = std::chrono::steady_clock::now();
          for (int r = 0; r < reps; ++r) be->matmul(wt, x.data(), n, y.data());
          const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
          const double cpu = (cpu_seconds() - c0) / reps;
          const double macs = static_cast<double>(s.cols) * s.rows * n;
          std::printf("%-8s %-7s %-20s %6d %10.3f %10.3f %10.1f %10.1f\n", tn.c_str(), ln.c_str(), s.name, n,
                      wall * 1e3, cpu * 1e3, macs / cpu / 1e9, w.size() / wall / 1e9);
        }
      }
    }
  }
  cpu::isa_clear_override();
  std::printf("plain read of 512 MiB, %d threads: %.1f GB/s (best of 3)\n", threads, stream_gbps(threads));
  return 0;
}
