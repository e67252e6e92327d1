#include "engine/thread_pool.h"

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace tars::engine {
namespace {

// Spins before sleeping: a decode step dispatches again within microseconds.
constexpr int kSpinIterations = 20000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  wake_.fetch_add(1, std::memory_order_release);
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// A worker joins the current job only while it is open, by adding itself to
// the state's active count; the caller closes the job once every task is
// taken and no worker is active, so a worker never touches a finished job.
void ThreadPool::worker() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t w = wake_.load(std::memory_order_acquire);
    for (int spin = 0; w == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      w = wake_.load(std::memory_order_acquire);
    }
    if (w == seen) {
      wake_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = w;
    if (stop_.load(std::memory_order_acquire)) return;
    uint64_t s = state_.load(std::memory_order_acquire);
    bool joined = false;
    while (!(s & kClosed)) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;  // came too late: the caller did the work
    for (;;) {
      const int t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks_) break;
      call_(ctx_, t);
    }
    state_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::run_erased(Call call, void* ctx) {
  if (n_threads_ == 1) {
    call(ctx, 0);
    return;
  }
  // The previous job is closed (no worker active): publish the next one.
  call_ = call;
  ctx_ = ctx;
  n_tasks_ = n_threads_;
  next_.store(1, std::memory_order_relaxed);  // task 0 is the caller's
  generation_ += 1;
  state_.store(generation_ << 32, std::memory_order_release);  // open, no worker active
  wake_.fetch_add(1, std::memory_order_release);
  wake_.notify_all();
  call(ctx, 0);
  for (;;) {  // then whatever the workers have not taken yet
    const int t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= n_tasks_) break;
    call(ctx, t);
  }
  // Close the job once no worker is inside it; late workers then stay out.
  uint64_t s = state_.load(std::memory_order_acquire);
  for (int spin = 0;; ++spin) {
    if ((s & kActiveMask) == 0 &&
        state_.compare_exchange_weak(s, s | kClosed, std::memory_order_acq_rel, std::memory_order_acquire)) {
      break;
    }
    if (spin < kSpinIterations) cpu_relax();
    else std::this_thread::yield();
    s = state_.load(std::memory_order_acquire);
  }
}

int physical_core_count() {
  // Count distinct (physical id, core id) pairs; fall back to the logical count.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "physical id") phys = value;
    if (key == "core id") cores.insert({phys, value});
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

}  // namespace tars::engine
