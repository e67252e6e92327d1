// The kernel emulator's scheduler (cuda_emu.h) and the part of the CUDA
// runtime API the backend calls, on host memory: one emulated device, every
// stream synchronous, graphs recorded as lists of launches and copies.
// Linked into the emulated test binary instead of libcudart.
#include <cuda_runtime.h>

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
  Barrier block;
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
  --s.warps[f->warp].live;
  release_if_complete(s.block);
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
  Fiber* f = sched().current;
  if (!f) fail("pdl_prologue() outside a kernel");
  f->pdl_called = true;
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
    for (unsigned z = 0; z < grid.z; ++z) {
      for (unsigned y = 0; y < grid.y; ++y) {
        for (unsigned x = 0; x < grid.x; ++x) {
          g_block_idx = make_uint3(x, y, z);
          run_block(body, block);
        }
      }
    }
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
  *p = aligned(bytes);
  dev().allocations[*p] = bytes;
  dev().used += bytes;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(dev().mu);
  auto it = dev().allocations.find(p);
  if (it == dev().allocations.end()) return dev().last = cudaErrorInvalidValue;
  dev().used -= it->second;
  dev().allocations.erase(it);
  ::operator delete(p, std::align_val_t{256});
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
  tars::emu::enqueue([=] { std::memmove(dst, src, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
  tars::emu::enqueue([=] {
    for (size_t r = 0; r < height; ++r) {
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    }
  });
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  tars::emu::enqueue([=] { std::memset(p, value, bytes); });
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
