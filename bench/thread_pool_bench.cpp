// Dispatch overhead of the engine's thread pool, which a decode step pays a
// few hundred times per token:
//   - round trip of a parallel_for with no work (the caller may well do it
//     all before a worker wakes: that is the pool working as designed);
//   - a parallel_for_dynamic of 64 chunks of about 0.5 us each (32 us of
//     work, the size of a small decode matmul): time per call against the
//     same work on one thread, and the share of chunks the workers took.
//
//   bench_thread_pool_bench [threads...]   (default: 1 2)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "engine/thread_pool.h"

namespace {

// About `iters` dependent multiply-adds: work the compiler cannot remove.
double spin_work(int64_t iters, double x) {
  for (int64_t i = 0; i < iters; ++i) x = x * 1.0000001 + 1e-9;
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> counts;
  for (int i = 1; i < argc; ++i) counts.push_back(std::atoi(argv[i]));
  if (counts.empty()) counts = {1, 2};
  constexpr int kIters = 5000;
  // Calibrate the chunk to about 0.5 us.
  volatile double seed = 1.0;  // keeps the work from being computed at compile time
  int64_t chunk_iters = 1000;
  {
    const auto t0 = std::chrono::steady_clock::now();
    volatile double v = spin_work(10000000, seed);
    (void)v;
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    chunk_iters = static_cast<int64_t>(500.0 / (ns / 1e7));
  }
  std::printf("%8s %16s %22s %18s %16s\n", "threads", "empty us/call", "64x0.5us us/call", "speedup vs 1", "worker share");
  double one_thread_us = 0;
  for (int threads : counts) {
    tars::engine::ThreadPool pool(threads);
    std::atomic<int64_t> sink{0};
    auto time_it = [&](auto&& dispatch) {
      for (int i = 0; i < 200; ++i) dispatch();  // warm-up
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kIters; ++i) dispatch();
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kIters;
    };
    const double empty = time_it([&] {
      pool.parallel_for(64, 1, [&](int64_t b, int64_t e) { sink.fetch_add(e - b, std::memory_order_relaxed); });
    });
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<int64_t> by_workers{0}, total{0};
    const double work = time_it([&] {
      pool.parallel_for_dynamic(64, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          volatile double v = spin_work(chunk_iters, seed);
          (void)v;
        }
        total.fetch_add(e - b, std::memory_order_relaxed);
        if (std::this_thread::get_id() != caller) by_workers.fetch_add(e - b, std::memory_order_relaxed);
      });
    });
    if (threads == 1) one_thread_us = work;
    std::printf("%8d %16.2f %22.2f %18.2f %15.0f%%\n", threads, empty, work,
                one_thread_us > 0 ? one_thread_us / work : 1.0, 100.0 * by_workers.load() / total.load());
  }
  return 0;
}
