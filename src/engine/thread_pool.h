#pragma once
// A fixed pool of worker threads for data-parallel loops. The calling thread
// takes part, so a pool of N threads starts N-1 workers. Dispatch is cheap
// (an atomic counter; workers spin briefly, then sleep with
// std::atomic::wait; the job is a plain function pointer and context, no
// allocation), because decoding one token issues hundreds of loops
// (bench_thread_pool measures the round trip).
//
// A job is size() tasks that any thread may take, the caller first: when a
// worker is slow to wake (another process holds its core, as happens on
// shared machines) the caller does its share instead of waiting for it.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace tars::engine {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(t) once for each t in [0, size()) and returns when all calls
  // have finished. The calling thread runs fn(0), then takes the tasks no
  // worker has taken yet; workers take the rest. Not re-entrant.
  template <class F>
  void run(F&& fn) {
    auto call = [](void* ctx, int t) { (*static_cast<std::remove_reference_t<F>*>(ctx))(t); };
    run_erased(call, &fn);
  }

  // Splits [0, n) into contiguous chunks, one per thread (chunk boundaries
  // are multiples of `grain`), and calls fn(begin, end) for each non-empty
  // one. The split depends only on n, grain and size(): reproducible.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t n_grains = (n + grain - 1) / grain;
    const int threads = static_cast<int>(std::min<int64_t>(n_threads_, n_grains));
    if (threads <= 1) {
      fn(int64_t{0}, n);
      return;
    }
    run([&](int t) {
      if (t >= threads) return;
      const int64_t g0 = n_grains * t / threads, g1 = n_grains * (t + 1) / threads;
      const int64_t b = g0 * grain, e = std::min(n, g1 * grain);
      if (b < e) fn(b, e);
    });
  }

  // Like parallel_for, but threads take chunks of `grain` from a shared
  // counter until none are left: a thread slowed down by other processes on
  // a shared machine does less of the work instead of holding up the rest.
  // Which thread computes which chunk varies; results must not depend on it.
  template <class F>
  void parallel_for_dynamic(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t n_grains = (n + grain - 1) / grain;
    if (n_threads_ == 1 || n_grains == 1) {
      fn(int64_t{0}, n);
      return;
    }
    std::atomic<int64_t> next{0};
    run([&](int) {
      for (;;) {
        const int64_t g = next.fetch_add(1, std::memory_order_relaxed);
        if (g >= n_grains) return;
        fn(g * grain, std::min(n, (g + 1) * grain));
      }
    });
  }

  // Like parallel_for_dynamic, but each chunk is a share of what is left
  // (remaining / (4 x size()), between min_grain and max_grain): big
  // contiguous chunks first, small ones at the end. A memory-bound loop (a
  // decode step's matrix-vector products) then streams long runs of its
  // data, and the threads still finish within one small chunk of each
  // other; max_grain bounds what a thread that loses its core holds up.
  template <class F>
  void parallel_for_guided(int64_t n, int64_t min_grain, int64_t max_grain, F&& fn) {
    if (n <= 0) return;
    min_grain = std::max<int64_t>(min_grain, 1);
    max_grain = std::max<int64_t>(max_grain, min_grain);
    if (n_threads_ == 1 || n <= min_grain) {
      fn(int64_t{0}, n);
      return;
    }
    const int64_t div = 4 * static_cast<int64_t>(n_threads_);
    std::atomic<int64_t> next{0};
    run([&](int) {
      int64_t b = next.load(std::memory_order_relaxed);
      for (;;) {
        if (b >= n) return;
        const int64_t e = std::min(n, b + std::clamp((n - b) / div, min_grain, max_grain));
        if (next.compare_exchange_weak(b, e, std::memory_order_relaxed)) {
          fn(b, e);
          b = next.load(std::memory_order_relaxed);
        }
      }
    });
  }

 private:
  using Call = void (*)(void* ctx, int task);
  void run_erased(Call call, void* ctx);
  void worker();

  // state_: the job's generation (high 32 bits), a closed flag, and the
  // number of workers inside the job (low bits).
  static constexpr uint64_t kClosed = uint64_t{1} << 31;
  static constexpr uint64_t kActiveMask = kClosed - 1;

  int n_threads_;
  std::vector<std::thread> workers_;
  Call call_ = nullptr;
  void* ctx_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> next_{0};               // next task to take
  uint64_t generation_ = 0;                // caller's count of jobs
  std::atomic<uint64_t> state_{kClosed};   // see above
  std::atomic<uint32_t> wake_{0};          // bumped per job; workers wait on it
  std::atomic<bool> stop_{false};
};

// The number of physical cores (the default for --threads), at least 1.
int physical_core_count();

}  // namespace tars::engine
