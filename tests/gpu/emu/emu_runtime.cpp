// The kernel emulator's scheduler (cuda_emu.h) and the part of the CUDA
// runtime API the backend calls, on host memory: one emulated device, every
// stream synchronous, graphs recorded as lists of launches and copies.
// Linked into the emulated test binary instead of libcudart.
//
// Dependent launches (TARS_LAUNCH_PDL): on a GPU, the code of such a kernel
// before its pdl_prologue() may run while the kernel before it (one that
// called pdl_prologue(), so let it start) still runs, so that code must read
// nothing that kernel writes. Launches here run one after another; to show
// such a read, the emulator write-protects device memory while a dependent
// launch runs and keeps each page's bytes from before its first write. The
// next dependent launch's first and last blocks then see those pages as they
// were before, until every thread of the block has reached pdl_prologue().
// A kernel that reads the previous kernel's results too early computes with
// stale values, and the tests' comparisons fail.
#include <cuda_runtime.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "cuda_emu.h"

struct CUstream_st {
  int unused = 0;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at{};
};
struct CUgraph_st {
  std::vector<std::function<void()>> steps;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> steps;
};

// Switching between fibers: saves the callee-saved registers (and the
// floating-point control words) on the current stack, stores its pointer in
// *save, loads load as the stack pointer and restores the same from it.
// System V x86-64 only; a fresh fiber's stack is laid out (make_stack) so the
// first switch to it "returns" into its entry function.
extern "C" void tars_emu_switch(void** save, void* load);
#if defined(__x86_64__)
asm(R"(
    .text
    .globl tars_emu_switch
    .type tars_emu_switch, @function
tars_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size tars_emu_switch, .-tars_emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
#else
#error "the kernel emulator's fiber switch is written for x86-64"
#endif

namespace tars::emu {

uint3 g_block_idx{};
dim3 g_block_dim{}, g_grid_dim{};

namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr unsigned kMaxThreads = 1024;

struct Fiber {
  void* sp = nullptr;  // saved stack pointer while switched out
  uint3 tid{};
  unsigned warp = 0, lane = 0;
  bool done = false;
  bool pdl_called = false;  // pdl_prologue() ran (TARS_LAUNCH_PDL)
};

struct Barrier {
  unsigned arrived = 0, live = 0;
  uint64_t generation = 0;
};

struct Scheduler {
  void* main = nullptr;  // the scheduler's saved stack pointer
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  bool pdl = false;  // the launch is a programmatic dependent one
  bool gate = false;  // this block waits at pdl_prologue() for all its threads (PdlTracker)
  Barrier block;
  Barrier prologue;  // where it waits
  std::vector<Barrier> warps;
  std::vector<std::array<uint64_t, 32>> slots;  // each warp's shuffle values
  uint64_t progress = 0;                        // arrivals and exits (deadlock check)
};

Scheduler& sched() {
  static Scheduler s;
  return s;
}

std::recursive_mutex& launch_mutex() {
  static std::recursive_mutex m;
  return m;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "tars kernel emulator: %s (block %u,%u,%u thread %u,%u,%u)\n", what, g_block_idx.x,
               g_block_idx.y, g_block_idx.z, sched().current ? sched().current->tid.x : 0,
               sched().current ? sched().current->tid.y : 0, sched().current ? sched().current->tid.z : 0);
  std::abort();
}

void yield() {
  Scheduler& s = sched();
  Fiber* f = s.current;
  tars_emu_switch(&f->sp, s.main);
}

void release_if_complete(Barrier& b) {
  if (b.arrived > 0 && b.arrived >= b.live) {
    b.arrived = 0;
    ++b.generation;
  }
}

void arrive_and_wait(Barrier& b) {
  Scheduler& s = sched();
  ++s.progress;
  const uint64_t gen = b.generation;
  ++b.arrived;
  release_if_complete(b);
  while (b.generation == gen) yield();
}

void fiber_main() {
  Scheduler& s = sched();
  (*s.body)();
  Fiber* f = s.current;
  if (s.pdl && !f->pdl_called) fail("a kernel launched with TARS_LAUNCH_PDL never called pdl_prologue()");
  f->done = true;
  ++s.progress;
  --s.block.live;
  --s.prologue.live;
  --s.warps[f->warp].live;
  release_if_complete(s.block);
  release_if_complete(s.prologue);
  release_if_complete(s.warps[f->warp]);
  tars_emu_switch(&f->sp, s.main);  // never resumed
  std::abort();
}

// A fresh fiber's stack: what tars_emu_switch pops (control words, six
// registers) and then the entry point as the return address, placed so that
// the entry function starts with the stack aligned as a call leaves it.
void* make_stack(char* base, size_t bytes) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(base) + bytes) & ~uintptr_t{15};
  top -= 8;  // the entry's stack pointer (after the return) is 8 mod 16
  auto* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = reinterpret_cast<uint64_t>(&fiber_main);  // returned into
  for (int i = 0; i < 6; ++i) *--sp = 0;            // rbp, rbx, r12 to r15
  *--sp = 0x037F00001F80ull;                        // mxcsr (low word), x87 control word
  return sp;
}

void run_block(const std::function<void()>& body, dim3 block) {
  Scheduler& s = sched();
  const unsigned n = block.x * block.y * block.z;
  const unsigned n_warps = (n + 31) / 32;
  s.fibers.assign(n, Fiber{});
  while (s.stacks.size() < n) s.stacks.push_back(std::unique_ptr<char[]>(new char[kStackBytes]));
  s.warps.assign(n_warps, Barrier{});
  s.slots.assign(n_warps, {});
  s.block = Barrier{};
  s.block.live = n;
  s.prologue = Barrier{};
  s.prologue.live = n;
  s.body = &body;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = s.fibers[i];
    f.tid = make_uint3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
    f.warp = i / 32;
    f.lane = i % 32;
    ++s.warps[f.warp].live;
    f.sp = make_stack(s.stacks[i].get(), kStackBytes);
  }
  // Rounds alternate between running the threads in order and in reverse:
  // a read of shared memory that lacks its barrier then sees the other
  // threads' writes missing in one of the two orders.
  unsigned remaining = n;
  for (bool reverse = false; remaining > 0; reverse = !reverse) {
    const uint64_t before = s.progress;
    const uint64_t block_gen = s.block.generation;
    for (unsigned k = 0; k < n; ++k) {
      Fiber& f = s.fibers[reverse ? n - 1 - k : k];
      if (f.done) continue;
      s.current = &f;
      tars_emu_switch(&s.main, f.sp);
      if (f.done) --remaining;
    }
    s.current = nullptr;
    if (remaining > 0 && s.progress == before && s.block.generation == block_gen) {
      fail("deadlock: threads wait at a barrier or shuffle that the others never reach");
    }
  }
}

// Graph capture: while on, launches and copies are recorded, not run.
struct Capture {
  bool on = false;
  std::vector<std::function<void()>> steps;
};
Capture& capture() {
  static Capture c;
  return c;
}

// Runs step now, or records it while capturing.
void enqueue(std::function<void()> step) {
  if (capture().on) {
    capture().steps.push_back(std::move(step));
  } else {
    step();
  }
}

// Dependent launches (see the top of this file): which device pages a
// dependent launch wrote, with their bytes from before.
class PdlTracker {
 public:
  static constexpr size_t kPage = 4096;
  static constexpr size_t kLogPages = 4096;  // pages logged per kernel (16 MiB); more: no check after it

  static PdlTracker& get() {
    static PdlTracker t;
    return t;
  }

  // Device memory comes whole pages at a time (cudaMalloc), so that the
  // pages of an allocation are its own.
  void add_range(void* p, size_t bytes) {
    ranges_.emplace_back(reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(p) + bytes);
    std::sort(ranges_.begin(), ranges_.end());
  }
  void remove_range(void* p) {
    std::erase_if(ranges_, [&](const auto& r) { return r.first == reinterpret_cast<uintptr_t>(p); });
    prev_valid_ = false;  // its pages may be in the log
  }
  // A copy or fill on the stream: the kernel after it cannot overlap the one before.
  void memory_op() { prev_valid_ = false; }

  // A launch starts: a dependent one is logged (device memory write-protected).
  void begin(bool pdl) {
    check_prev_ = pdl && prev_valid_;
    std::swap(cur_, prev_);
    cur_.pages.clear();
    cur_.overflow = false;
    recording_ = pdl;
    if (recording_) protect(PROT_READ);
  }
  // The launch ended: its log is what the next dependent launch is checked with.
  void end() {
    if (recording_) protect(PROT_READ | PROT_WRITE);
    prev_valid_ = recording_ && !cur_.overflow;
    recording_ = false;
    check_prev_ = false;
  }
  // Whether block `index` of `count` is shown the previous kernel's pages as
  // they were: the first and the last block of a checked launch.
  bool check_block(unsigned index, unsigned count) const {
    return check_prev_ && !prev_.pages.empty() && (index == 0 || index + 1 == count);
  }
  // The previous kernel's pages as they were before it (show_old), then as
  // it left them (show_new: every thread of the block reached pdl_prologue()).
  void show_old() {
    now_.resize(prev_.pages.size() * kPage);
    for (size_t i = 0; i < prev_.pages.size(); ++i) {
      auto* page = reinterpret_cast<unsigned char*>(prev_.pages[i]);
      mprotect(page, kPage, PROT_READ | PROT_WRITE);
      std::memcpy(now_.data() + i * kPage, page, kPage);
      std::memcpy(page, prev_.old.data() + i * kPage, kPage);
    }
  }
  void show_new() {
    for (size_t i = 0; i < prev_.pages.size(); ++i) {
      auto* page = reinterpret_cast<unsigned char*>(prev_.pages[i]);
      std::memcpy(page, now_.data() + i * kPage, kPage);
      // Write-protected again, unless this kernel has written it already.
      if (std::find(cur_.pages.begin(), cur_.pages.end(), prev_.pages[i]) == cur_.pages.end()) {
        mprotect(page, kPage, PROT_READ);
      }
    }
  }

  // A write fault at addr: true when it is a logged kernel's first write to
  // a device page (now in the log, and writable).
  bool on_fault(uintptr_t addr) {
    if (!recording_) return false;
    const auto it = std::upper_bound(ranges_.begin(), ranges_.end(), std::make_pair(addr, ~uintptr_t{0}));
    if (it == ranges_.begin() || addr >= std::prev(it)->second) return false;
    const uintptr_t page = addr & ~(kPage - 1);
    if (cur_.pages.size() < kLogPages) {
      std::memcpy(cur_.old.data() + cur_.pages.size() * kPage, reinterpret_cast<const void*>(page), kPage);
      cur_.pages.push_back(page);  // within the reserved capacity: no allocation in the handler
    } else {
      cur_.overflow = true;
    }
    mprotect(reinterpret_cast<void*>(page), kPage, PROT_READ | PROT_WRITE);
    return true;
  }

 private:
  struct Log {
    std::vector<uintptr_t> pages;    // first written in this order
    std::vector<unsigned char> old;  // their bytes before, kPage each
    bool overflow = false;
  };
  PdlTracker() {
    for (Log* l : {&cur_, &prev_}) {
      l->pages.reserve(kLogPages);
      l->old.resize(kLogPages * kPage);
    }
    struct sigaction sa {};
    sa.sa_sigaction = &PdlTracker::handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_action_);
  }
  static void handler(int, siginfo_t* info, void*) {
    if (get().on_fault(reinterpret_cast<uintptr_t>(info->si_addr))) return;
    // Not ours: as if this handler were not there (the fault happens again).
    sigaction(SIGSEGV, &get().old_action_, nullptr);
  }
  void protect(int prot) {  // adjacent allocations (mmap places them so) in one call
    for (size_t i = 0; i < ranges_.size();) {
      size_t j = i + 1;
      while (j < ranges_.size() && ranges_[j].first == ranges_[j - 1].second) ++j;
      mprotect(reinterpret_cast<void*>(ranges_[i].first), ranges_[j - 1].second - ranges_[i].first, prot);
      i = j;
    }
  }

  std::vector<std::pair<uintptr_t, uintptr_t>> ranges_;  // device allocations [begin, end), sorted
  Log cur_, prev_;                  // the running (or last) launch's log, and the one before
  std::vector<unsigned char> now_;  // prev_'s pages as the kernel left them, while they show their old bytes
  bool prev_valid_ = false;  // prev_ is the log of a dependent launch right before (nothing in between)
  bool check_prev_ = false;  // this launch is checked against prev_
  bool recording_ = false;   // this launch is logged
  struct sigaction old_action_ {};
};

}  // namespace

const uint3& thread_idx() {
  Fiber* f = sched().current;
  if (!f) fail("threadIdx read outside a kernel");
  return f->tid;
}

void syncthreads() {
  if (!sched().current) fail("__syncthreads outside a kernel");
  arrive_and_wait(sched().block);
}

void syncwarp() {
  Scheduler& s = sched();
  if (!s.current) fail("__syncwarp outside a kernel");
  arrive_and_wait(s.warps[s.current->warp]);
}

uint64_t shuffle(uint64_t v, int src, bool src_is_xor) {
  Scheduler& s = sched();
  Fiber* f = s.current;
  if (!f) fail("a shuffle outside a kernel");
  auto& slot = s.slots[f->warp];
  slot[f->lane] = v;
  arrive_and_wait(s.warps[f->warp]);
  const unsigned from = (src_is_xor ? (f->lane ^ static_cast<unsigned>(src)) : static_cast<unsigned>(src)) % 32;
  if (f->warp * 32 + from >= s.fibers.size() || s.fibers[f->warp * 32 + from].done) {
    fail("a shuffle reads a lane that does not exist or has exited");
  }
  const uint64_t out = slot[from];
  arrive_and_wait(s.warps[f->warp]);
  return out;
}

void pdl_prologue_called() {
  Scheduler& s = sched();
  Fiber* f = s.current;
  if (!f) fail("pdl_prologue() outside a kernel");
  if (f->pdl_called) fail("pdl_prologue() called twice");
  f->pdl_called = true;
  if (s.gate) {  // every thread of the block reaches it, then the kernel before has ended
    arrive_and_wait(s.prologue);
    if (s.gate) {
      s.gate = false;
      PdlTracker::get().show_new();
    }
  }
}

void launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t, std::function<void()> body, bool pdl) {
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535) {
    std::fprintf(stderr, "tars kernel emulator: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)\n",
                 grid.x, grid.y, grid.z, block.x, block.y, block.z);
    std::abort();
  }
  if (shared_bytes != 0) {
    std::fprintf(stderr, "tars kernel emulator: dynamic shared memory is not emulated\n");
    std::abort();
  }
  enqueue([grid, block, pdl, body = std::move(body)] {
    std::lock_guard<std::recursive_mutex> lock(launch_mutex());
    sched().pdl = pdl;
    const uint3 saved_block = g_block_idx;
    const dim3 saved_dim = g_block_dim, saved_grid = g_grid_dim;
    g_block_dim = block;
    g_grid_dim = grid;
    PdlTracker& tracker = PdlTracker::get();
    tracker.begin(pdl);
    const unsigned n_blocks = grid.x * grid.y * grid.z;
    unsigned index = 0;
    for (unsigned z = 0; z < grid.z; ++z) {
      for (unsigned y = 0; y < grid.y; ++y) {
        for (unsigned x = 0; x < grid.x; ++x, ++index) {
          g_block_idx = make_uint3(x, y, z);
          sched().gate = tracker.check_block(index, n_blocks);
          if (sched().gate) tracker.show_old();
          run_block(body, block);
          if (sched().gate) fail("a block ended before all its threads reached pdl_prologue()");
        }
      }
    }
    tracker.end();
    g_block_idx = saved_block;
    g_block_dim = saved_dim;
    g_grid_dim = saved_grid;
  });
}

}  // namespace tars::emu

// ---- the runtime API, as far as the backend uses it --------------------------
namespace {

constexpr size_t kDeviceBytes = size_t{16} << 30;  // what the emulated device reports

struct Device {
  std::mutex mu;
  std::unordered_map<void*, size_t> allocations;
  size_t used = 0;
  int current = 0;
  cudaError_t last = cudaSuccess;
};
Device& dev() {
  static Device d;
  return d;
}

void* aligned(size_t bytes) {
  return ::operator new(bytes == 0 ? 1 : bytes, std::align_val_t{256});
}

// Device memory: whole pages, so that they can be write-protected on their
// own (tars::emu::PdlTracker).
size_t device_bytes(size_t bytes) {
  constexpr size_t kPage = tars::emu::PdlTracker::kPage;
  return (std::max<size_t>(bytes, 1) + kPage - 1) / kPage * kPage;
}

}  // namespace

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return dev().last = cudaErrorInvalidDevice;
  dev().current = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = dev().current;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "tars kernel emulator");
  prop->totalGlobalMem = kDeviceBytes;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 4;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  for (int i = 0; i < 16; ++i) prop->uuid.bytes[i] = static_cast<char>(0xe0 + i);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  *value = attr == cudaDevAttrMultiProcessorCount ? 4 : 0;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  std::lock_guard<std::mutex> lock(dev().mu);
  *total = kDeviceBytes;
  *free_bytes = kDeviceBytes > dev().used ? kDeviceBytes - dev().used : 0;
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = dev().last;
  dev().last = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return dev().last; }

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory (emulated device)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    default: return "emulated CUDA error";
  }
}

const char* cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated"; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::lock_guard<std::mutex> lock(dev().mu);
  if (dev().used + bytes > kDeviceBytes) {
    *p = nullptr;
    return dev().last = cudaErrorMemoryAllocation;
  }
  void* m = mmap(nullptr, device_bytes(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    *p = nullptr;
    return dev().last = cudaErrorMemoryAllocation;
  }
  *p = m;
  dev().allocations[*p] = bytes;
  dev().used += bytes;
  tars::emu::PdlTracker::get().add_range(*p, device_bytes(bytes));
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(dev().mu);
  auto it = dev().allocations.find(p);
  if (it == dev().allocations.end()) return dev().last = cudaErrorInvalidValue;
  dev().used -= it->second;
  tars::emu::PdlTracker::get().remove_range(p);
  munmap(p, device_bytes(it->second));
  dev().allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = aligned(bytes);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) { return cudaMallocHost(p, bytes); }

cudaError_t cudaFreeHost(void* p) {
  if (p) ::operator delete(p, std::align_val_t{256});
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return tars::emu::capture().on ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  tars::emu::enqueue([=] {
    tars::emu::PdlTracker::get().memory_op();
    std::memmove(dst, src, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
  tars::emu::enqueue([=] {
    tars::emu::PdlTracker::get().memory_op();
    for (size_t r = 0; r < height; ++r) {
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    }
  });
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  tars::emu::enqueue([=] {
    tars::emu::PdlTracker::get().memory_op();
    std::memset(p, value, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  tars::emu::enqueue([e] { e->at = std::chrono::steady_clock::now(); });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  auto& c = tars::emu::capture();
  if (c.on) return cudaErrorIllegalState;
  c.on = true;
  c.steps.clear();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  auto& c = tars::emu::capture();
  if (!c.on) return cudaErrorIllegalState;
  c.on = false;
  *graph = new CUgraph_st{std::move(c.steps)};
  c.steps.clear();
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  *exec = new CUgraphExec_st{g->steps};
  return cudaSuccess;
}

cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t g, cudaGraphExecUpdateResultInfo* info) {
  // A real update fails when the topology changed; the backend then
  // instantiates anew. Here every recording can replace the steps, but the
  // node count is compared so that the backend's fallback path also runs.
  if (exec->steps.size() != g->steps.size()) {
    if (info) info->result = cudaGraphExecUpdateErrorTopologyChanged;
    return cudaErrorGraphExecUpdateFailure;
  }
  exec->steps = g->steps;
  if (info) info->result = cudaGraphExecUpdateSuccess;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  for (const auto& step : exec->steps) step();
  return cudaSuccess;
}

}  // extern "C"
