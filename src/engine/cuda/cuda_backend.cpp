// The CUDA backend: device memory, one stream, and the kernels of
// cuda_kernels.h. Host metadata (positions, slots, ids, offsets) is packed
// into one staging buffer and copied to device scratch before each operation
// that needs it; everything runs in order on the stream, and upload/download
// wait for it, so callers see the same semantics as the CPU backend.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_blas.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda/cuda_next.h"
#include "engine/cuda/launch_tap.h"
#include "engine/cuda/meta_ring.h"
#include "engine/quant.h"
#include "engine/rope_table.h"

namespace tars::engine::cuda {

[[noreturn]] void cuda_fail(cudaError_t e, const char* expr, const char* file, int line) {
  const ErrorCode code = e == cudaErrorMemoryAllocation ? ErrorCode::kUnavailable : ErrorCode::kInternal;
  throw Error(code, std::string("CUDA error at ") + file + ":" + std::to_string(line) + " (" + expr +
                        "): " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

namespace {

// Bytes of a row of `cols` elements of a type the kernels decode. Computed
// here from the block structs so this library needs nothing from tars_engine
// but headers; the block sizes are quant.h's.
size_t row_bytes(TensorType t, int64_t cols) {
  auto blocks = [&](int64_t elems, size_t bytes) {
    if (cols % elems != 0) {
      throw Error(ErrorCode::kInvalidArgument, "CUDA backend: a row of " + std::to_string(cols) +
                                                   " elements is not a whole number of blocks of " +
                                                   std::to_string(elems) + " (type " +
                                                   std::to_string(static_cast<uint32_t>(t)) + ")");
    }
    return static_cast<size_t>(cols / elems) * bytes;
  };
  switch (t) {
    case TensorType::kF32: return static_cast<size_t>(cols) * 4;
    case TensorType::kF16:
    case TensorType::kBF16: return static_cast<size_t>(cols) * 2;
    case TensorType::kQ4_0: return blocks(kQuantBlock, sizeof(BlockQ4_0));
    case TensorType::kQ4_1: return blocks(kQuantBlock, sizeof(BlockQ4_1));
    case TensorType::kQ5_0: return blocks(kQuantBlock, sizeof(BlockQ5_0));
    case TensorType::kQ5_1: return blocks(kQuantBlock, sizeof(BlockQ5_1));
    case TensorType::kQ8_0: return blocks(kQuantBlock, sizeof(BlockQ8_0));
    case TensorType::kQ4_K: return blocks(kQuantSuper, sizeof(BlockQ4_K));
    case TensorType::kQ5_K: return blocks(kQuantSuper, sizeof(BlockQ5_K));
    case TensorType::kQ6_K: return blocks(kQuantSuper, sizeof(BlockQ6_K));
    default:
      throw Error(ErrorCode::kUnsupported, "the CUDA backend cannot use tensors of GGUF type " +
                                               std::to_string(static_cast<uint32_t>(t)) +
                                               " (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                                               "Q4_K, Q5_K, Q6_K); use the CPU backend or requantize");
  }
}

// Why no device can be used, or "" when device `ordinal` can.
std::string device_problem(int ordinal) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver) {
    return "no usable NVIDIA driver: none is installed, or it is older than this build's CUDA runtime (CUDA " +
           std::to_string(CUDART_VERSION / 1000) + "); install or update the driver";
  }
  if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) return "no CUDA device found";
  if (e != cudaSuccess) return std::string("CUDA is not usable: ") + cudaGetErrorString(e);
  if (ordinal < 0 || ordinal >= count) {
    return "CUDA device " + std::to_string(ordinal) + " does not exist (" + std::to_string(count) + " found)";
  }
  return "";
}

// A device's uuid in NVML's form (engine::cuda_uuid_string).
std::string cuda_uuid_string_of(const cudaUUID_t& u) {
  unsigned char b[16];
  std::memcpy(b, u.bytes, 16);
  return cuda_uuid_string(b);
}

// The device this thread last made current through a CudaBackend (bind()).
thread_local int tls_device = -1;

const char* type_label(TensorType t) {
  switch (t) {
    case TensorType::kF32: return "F32";
    case TensorType::kF16: return "F16";
    case TensorType::kBF16: return "BF16";
    case TensorType::kQ4_0: return "Q4_0";
    case TensorType::kQ4_1: return "Q4_1";
    case TensorType::kQ5_0: return "Q5_0";
    case TensorType::kQ5_1: return "Q5_1";
    case TensorType::kQ8_0: return "Q8_0";
    case TensorType::kQ4_K: return "Q4_K";
    case TensorType::kQ5_K: return "Q5_K";
    case TensorType::kQ6_K: return "Q6_K";
    default: return "?";
  }
}

// GPU time per operation (TARS_CUDA_PROFILE=1): an event pair around each
// operation's work on the stream, summed per label and printed on stderr when
// the backend goes away. An event pair also counts the time the GPU waited
// for the host to queue the operation, so each one-token decode step starts
// behind a kernel that holds the GPU for a few milliseconds
// (kProfileHoldCycles) while the host queues the whole step: the decode
// steps' figures are the GPU's own time (the hold is in no operation). Off
// while a CUDA graph is recorded (events there would become graph nodes).
class OpTimer {
 public:
  explicit OpTimer(cudaStream_t s) : stream_(s) {}
  ~OpTimer() {
    resolve();
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  }
  void begin(std::string label) {
    label_ = std::move(label);
    start_ = event();
    cudaEventRecord(start_, stream_);
  }
  void end() {
    cudaEvent_t stop = event();
    cudaEventRecord(stop, stream_);
    pending_.push_back({std::move(label_), start_, stop});
    if (pending_.size() >= 16384) resolve();  // outside decode steps (they resolve in step())
  }
  // A decode step starts (before its hold is queued): a good moment to
  // wait for the events of earlier steps, where no later operation waits.
  void step() {
    ++steps_;
    if (pending_.size() >= 2048) resolve();
  }
  void report() {
    resolve();
    std::vector<std::pair<std::string, Total>> rows(totals_.begin(), totals_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    double all = 0;
    for (const auto& r : rows) all += r.second.ms;
    std::fprintf(stderr, "tars: CUDA time per operation (TARS_CUDA_PROFILE), total %.2f ms", all);
    if (steps_ > 0) std::fprintf(stderr, ", %zu one-token decode steps", steps_);
    std::fprintf(stderr, "\n");
    for (const auto& [label, t] : rows) {
      std::fprintf(stderr, "  %10.3f ms %5.1f%% %8zu calls %9.2f us/call  %s\n", t.ms, all > 0 ? 100.0 * t.ms / all : 0.0,
                   t.calls, 1000.0 * t.ms / static_cast<double>(t.calls), label.c_str());
    }
  }

 private:
  struct Pending {
    std::string label;
    cudaEvent_t start, stop;
  };
  struct Total {
    double ms = 0;
    size_t calls = 0;
  };
  cudaEvent_t event() {
    if (!pool_.empty() && free_ < pool_.size()) return pool_[free_++];
    cudaEvent_t e = nullptr;
    cudaEventCreate(&e);
    pool_.push_back(e);
    free_ = pool_.size();
    return e;
  }
  void resolve() {
    for (auto& p : pending_) {
      float ms = 0;
      cudaEventSynchronize(p.stop);
      if (cudaEventElapsedTime(&ms, p.start, p.stop) == cudaSuccess) {
        Total& t = totals_[p.label];
        t.ms += ms;
        ++t.calls;
      }
    }
    cudaGetLastError();
    pending_.clear();
    free_ = 0;
  }
  cudaStream_t stream_;
  std::string label_;
  cudaEvent_t start_ = nullptr;
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> pool_;
  size_t free_ = 0;
  std::unordered_map<std::string, Total> totals_;
  size_t steps_ = 0;
};

// About 5 ms on a 2 GHz GPU: more than the host takes to queue a 7B decode
// step with its event pairs (about 300 kernels, 600 events).
constexpr long long kProfileHoldCycles = 10'000'000;

// Ends an OpTimer's operation when it goes out of scope (nothing without one).
class OpScope {
 public:
  OpScope(OpTimer* t, std::string label) : t_(t) {
    if (t_) t_->begin(std::move(label));
  }
  ~OpScope() {
    if (t_) t_->end();
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpTimer* t_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const CudaBackendOptions& o)
      : device_(o.device), fast_(!o.exact_activations), graphs_(o.graphs), fuse_(o.fuse) {
    CUDA_CHECK(cudaSetDevice(device_));
    tls_device = device_;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (o.use_cublas) {
      blas_ = Blas::open(stream_, fast_, &blas_problem_);
      if (!blas_ && o.require_cublas) {
        cudaStreamDestroy(stream_);
        throw Error(ErrorCode::kUnavailable, "cuBLAS: " + blas_problem_);
      }
      if (!blas_) {
        std::fprintf(stderr, "tars: warning: CUDA batched products use the backend's own kernel (slower): %s\n",
                     blas_problem_.c_str());
      }
    }
    CUDA_CHECK(cudaMallocHost(&meta_host_, kMetaRing));
    CUDA_CHECK(cudaMalloc(&meta_dev_, kMetaRing));
    meta_ring_ = MetaRing(meta_host_, kMetaRing);
    if (graphs_) {
      CUDA_CHECK(cudaMallocHost(&step_host_, kStepArea));
      CUDA_CHECK(cudaMalloc(&step_dev_, kStepArea));
      CUDA_CHECK(cudaEventCreateWithFlags(&step_copied_, cudaEventDisableTiming));
    }
    if (const char* p = std::getenv("TARS_CUDA_PROFILE"); p && std::string(p) == "1") {
      timer_ = std::make_unique<OpTimer>(stream_);
    }
  }

  ~CudaBackend() override {
    // No throwing here: errors are ignored, the process may be exiting.
    bind();
    cudaStreamSynchronize(stream_);
    if (timer_) {
      timer_->report();
      timer_.reset();
    }
    blas_.reset();
    if (exec_) cudaGraphExecDestroy(exec_);
    for (auto& [p, a] : allocations_) cudaFree(p);
    for (Scratch* s : {&meta_, &wtmp_, &xh_, &xq_, &attn_, &split_}) cudaFree(s->ptr);
    cudaFree(meta_dev_);
    cudaFreeHost(meta_host_);
    if (step_copied_) cudaEventDestroy(step_copied_);
    cudaFree(step_dev_);
    cudaFreeHost(step_host_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  // Why the device cannot start: checked once before any work.
  std::string probe() { return launch_probe(stream_) == cudaSuccess ? "" : "no kernel image"; }

  // ---- memory ---------------------------------------------------------------
  void* alloc(size_t bytes, MemoryKind kind) override {
    bind();
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
    // The CPU backend hands out zeroed memory; model code may rely on it.
    CUDA_CHECK(cudaMemsetAsync(p, 0, std::max<size_t>(bytes, 1), stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::lock_guard<std::mutex> lock(mu_);
    allocations_[p] = {bytes, kind};
    bytes_[static_cast<int>(kind)] += bytes;
    return p;
  }

  // Never throws: model and encoder destructors call it, also while
  // unwinding from a CUDA error (a throw there would end the process and
  // hide that error). A failure is reported on stderr.
  void free(void* p) override {
    bind();
    if (!p) return;
    const cudaError_t sync = cudaStreamSynchronize(stream_);  // no queued kernel may still use it
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = allocations_.find(p);
      if (it == allocations_.end()) {
        std::fprintf(stderr, "tars: CUDA backend: free of a pointer it did not allocate\n");
        return;
      }
      bytes_[static_cast<int>(it->second.kind)] -= it->second.bytes;
      allocations_.erase(it);
    }
    const cudaError_t e = cudaFree(p);
    if (sync != cudaSuccess || e != cudaSuccess) {
      std::fprintf(stderr, "tars: CUDA backend: freeing device memory: %s\n",
                   cudaGetErrorString(sync != cudaSuccess ? sync : e));
    }
  }

  size_t allocated(MemoryKind kind) const override {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = bytes_[static_cast<int>(kind)];
    if (kind == MemoryKind::kCompute) {  // the backend's own scratch
      n += meta_.bytes + wtmp_.bytes + xh_.bytes + xq_.bytes + attn_.bytes + split_.bytes + kMetaRing +
           (step_dev_ ? kStepArea : 0);
    }
    return n;
  }

  void upload(void* dst, const void* src, size_t bytes) override {
    bind();
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void download(void* dst, const void* src, size_t bytes) override {
    bind();
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  Weight load_weight(TensorType type, int64_t cols, int64_t rows, const void* host) override {
    bind();
    const size_t rb = row_bytes(type, cols);
    const size_t bytes = rb * static_cast<size_t>(rows);
    if (rows == 1 && type != TensorType::kF32) {
      // 1-D vectors are used as float by every operation: convert once.
      void* raw = scratch(wtmp_, bytes);
      CUDA_CHECK(cudaMemcpyAsync(raw, host, bytes, cudaMemcpyHostToDevice, stream_));
      float* f = static_cast<float*>(alloc(static_cast<size_t>(cols) * sizeof(float), MemoryKind::kWeights));
      launch_dequantize(type, raw, rb, cols, 1, f, stream_);
      CUDA_CHECK(cudaGetLastError());
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      return {TensorType::kF32, cols, 1, f};
    }
    void* d = alloc(bytes, MemoryKind::kWeights);
    upload(d, host, bytes);
    return {type, cols, rows, d};
  }

  // ---- operations -------------------------------------------------------------
  void get_rows(const Weight& table, const int32_t* ids, int n, float* out) override {
    bind();
    const OpScope op_time = timed([&] { return std::string("get_rows ") + type_label(table.type); });
    if (n <= 0) return;
    for (int t = 0; t < n; ++t) {
      if (ids[t] < 0 || ids[t] >= table.rows) {
        throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(ids[t]) + " is outside the vocabulary (" +
                                                     std::to_string(table.rows) + " rows)");
      }
    }
    Meta m{MetaTag::kIds};
    const size_t o_ids = m.add(ids, n);
    const uint8_t* dm = upload_meta(m);
    launch_get_rows(table.type, table.data, row_bytes(table.type, table.cols), table.cols,
                    reinterpret_cast<const int32_t*>(dm + o_ids), n, out, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void matmul(const Weight& w, const float* x, int n, float* y, const Weight* bias) override {
    const bool have_q8 = q8_ready(x, w.cols);  // before bind(), which forgets it
    bind();
    if (n <= 0) return;
    const float* b = bias && *bias ? static_cast<const float*>(bias->data) : nullptr;
    const size_t rb = row_bytes(w.type, w.cols);
    if (n == 1 && fast_ && cuda_matvec_q8_supported(w.type)) {
      // 8-bit activations, integer dot products (cuda_matvec_q8.cu).
      const MatmulOut one{&w, y, bias};
      matvec_q8_many(x, &one, 1, have_q8);
      return;
    }
    if (n == 1) {
      const OpScope op_time = timed([&] { return std::string("matvec f32 ") + type_label(w.type) + shape(w); });
      launch_matvec(w.type, w.data, rb, w.cols, w.rows, x, b, y, stream_);
      CUDA_CHECK(cudaGetLastError());
      return;
    }
    if (blas_ && fast_ && w.type != TensorType::kF32) {
      matmul_f16(w, x, n, y);
    } else {
      matmul_f32(w, x, n, y);
    }
    if (b) {
      const OpScope op_time = timed([&] { return "add_bias"; });
      launch_add_bias(y, b, w.rows, n, stream_);
      CUDA_CHECK(cudaGetLastError());
    }
  }

  // Q/K/V and gate/up of a decode step: x quantized once for all of them.
  void matmul_many(const float* x, int n, const MatmulOut* outs, int count) override {
    const bool have_q8 = count > 0 && q8_ready(x, outs[0].w->cols);
    bind();
    bool q8 = n == 1 && fast_ && count > 0;
    for (int i = 0; q8 && i < count; ++i) {
      q8 = cuda_matvec_q8_supported(outs[i].w->type) && outs[i].w->cols == outs[0].w->cols;
    }
    if (q8) {
      matvec_q8_many(x, outs, count, have_q8);
    } else {
      Backend::matmul_many(x, n, outs, count);
    }
  }

  // One token through the 8-bit mat-vec for each of `outs` (same cols).
  // have_q8: a fused kernel already wrote x's 8-bit form (q8_ready). With
  // fusion, consecutive weights of one type go in one launch.
  void matvec_q8_many(const float* x, const MatmulOut* outs, int count, bool have_q8) {
    const int64_t cols = outs[0].w->cols;
    const Q8Row q = q8_buffers(cols);
    if (have_q8) {
      ++q8_reused_;
    } else {
      const OpScope op_time = timed([&] { return "quantize_q8"; });
      launch_quantize_q8(x, cols, q.qx, q.dx, q.sx, stream_);
      CUDA_CHECK(cudaGetLastError());
    }
    for (int i = 0; i < count;) {
      const Weight& w = *outs[i].w;
      MatvecQ8Part parts[kMaxMatvecParts];
      int k = 0;
      int64_t rows = 0;
      do {
        const MatmulOut& o = outs[i + k];
        parts[k] = {o.w->data, o.w->rows, o.bias && *o.bias ? static_cast<const float*>(o.bias->data) : nullptr, o.y};
        rows += o.w->rows;
        ++k;
      } while (fuse_ && k < kMaxMatvecParts && i + k < count && outs[i + k].w->type == w.type);
      const OpScope op_time = timed([&] {
        return std::string("matvec_q8 ") + type_label(w.type) + " [" + std::to_string(rows) + "x" +
               std::to_string(cols) + "]" + (k > 1 ? " x" + std::to_string(k) : "");
      });
      launch_matvec_q8_multi(w.type, parts, k, row_bytes(w.type, cols), cols, q.qx, q.dx, q.sx, stream_);
      CUDA_CHECK(cudaGetLastError());
      i += k;
    }
  }

  // x's 8-bit form in the mat-vec's scratch (one row of `cols`).
  Q8Row q8_buffers(int64_t cols) {
    const size_t groups = static_cast<size_t>(cols / 32);
    const size_t q_bytes = (static_cast<size_t>(cols) + 255) / 256 * 256;
    uint8_t* buf = static_cast<uint8_t*>(scratch(xq_, q_bytes + groups * (sizeof(float) + sizeof(int))));
    return {reinterpret_cast<int8_t*>(buf), reinterpret_cast<float*>(buf + q_bytes),
            reinterpret_cast<int*>(buf + q_bytes + groups * sizeof(float))};
  }

  // Whether the operation producing a one-row result should write its 8-bit
  // form for the mat-vec that follows: fast mode, fusion, one row of whole
  // groups.
  bool want_q8(int rows, int64_t cols) const { return fuse_ && fast_ && rows == 1 && cols % 32 == 0; }
  // Records that xq_ holds the 8-bit form of the row at x (cols floats),
  // good for the next operation only (bind() forgets it).
  void set_q8(const float* x, int64_t cols) {
    q8_src_ = x;
    q8_cols_ = cols;
  }
  bool q8_ready(const float* x, int64_t cols) const { return q8_src_ && q8_src_ == x && q8_cols_ == cols; }

  // FP16 inputs, FP32 accumulation (CudaBackendOptions::exact_activations): x
  // rounded to half once, the weights decoded to half a chunk of rows at a
  // time (F16 weights used in place), cublasGemmEx into the chunk's columns.
  void matmul_f16(const Weight& w, const float* x, int n, float* y) {
    untapped();  // cuBLAS
    const size_t rb = row_bytes(w.type, w.cols);
    void* xh = scratch(xh_, static_cast<size_t>(n) * w.cols * 2);
    const OpScope op_time = timed([&] { return "f32_to_f16"; });
    launch_f32_to_f16(x, static_cast<size_t>(n) * w.cols, xh, stream_);
    CUDA_CHECK(cudaGetLastError());
    const bool in_place = w.type == TensorType::kF16;
    // Twice the rows of the float path's chunk: the same scratch bytes.
    const int64_t chunk =
        in_place ? w.rows
                 : std::max<int64_t>(1, std::min<int64_t>(w.rows, 2 * kDequantFloats / std::max<int64_t>(1, w.cols)));
    for (int64_t r0 = 0; r0 < w.rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, w.rows - r0);
      const void* wh;
      if (in_place) {
        wh = w.data;
      } else {
        void* tmp = scratch(wtmp_, static_cast<size_t>(nr * w.cols) * 2);
        const OpScope op_time = timed([&] { return std::string("dequantize_f16 ") + type_label(w.type); });
        launch_dequantize_f16(w.type, static_cast<const uint8_t*>(w.data) + rb * r0, rb, w.cols, nr, tmp, stream_);
        CUDA_CHECK(cudaGetLastError());
        wh = tmp;
      }
      const OpScope op_time = timed([&] { return "gemm_f16 n>1" + shape(w); });
      blas_->gemm_f16_nt(wh, xh, nr, w.cols, n, y + r0, w.rows);
    }
  }

  void matmul_f32(const Weight& w, const float* x, int n, float* y) {
    if (blas_) untapped();
    const size_t rb = row_bytes(w.type, w.cols);
    // Batches: float weights as they are; others dequantized to float, a
    // chunk of rows at a time so the scratch stays bounded, then SGEMM into
    // the chunk's columns of y.
    const int64_t chunk = w.type == TensorType::kF32
                              ? w.rows
                              : std::max<int64_t>(1, std::min<int64_t>(w.rows, kDequantFloats / std::max<int64_t>(1, w.cols)));
    for (int64_t r0 = 0; r0 < w.rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, w.rows - r0);
      const float* wf;
      if (w.type == TensorType::kF32) {
        wf = static_cast<const float*>(w.data);
      } else {
        float* tmp = static_cast<float*>(scratch(wtmp_, static_cast<size_t>(nr * w.cols) * sizeof(float)));
        const OpScope op_time = timed([&] { return std::string("dequantize_f32 ") + type_label(w.type); });
        launch_dequantize(w.type, static_cast<const uint8_t*>(w.data) + rb * r0, rb, w.cols, nr, tmp, stream_);
        CUDA_CHECK(cudaGetLastError());
        wf = tmp;
      }
      const OpScope op_time = timed([&] { return "sgemm n>1" + shape(w); });
      if (blas_) {
        blas_->sgemm_nt(wf, x, nr, w.cols, n, y + r0, w.rows);
      } else {
        launch_sgemm_nt(wf, x, nr, w.cols, n, y + r0, w.rows, stream_);
        CUDA_CHECK(cudaGetLastError());
      }
    }
  }

  void rms_norm(float* x, const Weight& w, int n, int d, float eps) override {
    bind();
    const OpScope op_time = timed([&] { return "rms_norm"; });
    launch_rms_norm(x, static_cast<const float*>(w.data), n, d, eps, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void layer_norm(float* x, const Weight& w, const Weight& b, int n, int d, float eps) override {
    bind();
    const OpScope op_time = timed([&] { return "layer_norm"; });
    launch_layer_norm(x, static_cast<const float*>(w.data), b ? static_cast<const float*>(b.data) : nullptr, n, d, eps,
                      stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void rms_norm_to(const float* x, float* out, const Weight& w, int n, int d, float eps) override {
    if (!fuse_) return Backend::rms_norm_to(x, out, w, n, d, eps);
    norm_to(const_cast<float*>(x), nullptr, out, w, n, d, eps);
  }

  void add_rms_norm_to(float* x, const float* a, float* out, const Weight& w, int n, int d, float eps) override {
    if (!fuse_) return Backend::add_rms_norm_to(x, a, out, w, n, d, eps);
    norm_to(x, a, out, w, n, d, eps);
  }

  // out = rms_norm(x + a) (a may be null; then x is not written), with the
  // 8-bit form of a single row for the next mat-vec.
  void norm_to(float* x, const float* a, float* out, const Weight& w, int n, int d, float eps) {
    bind();
    const OpScope op_time = timed([&] { return a ? "add_rms_norm_to" : "rms_norm_to"; });
    const Q8Row q = want_q8(n, d) ? q8_buffers(d) : Q8Row{};
    launch_rms_norm_to(x, a, out, static_cast<const float*>(w.data), n, d, eps, q, stream_);
    CUDA_CHECK(cudaGetLastError());
    ++fused_;
    if (q.qx) set_q8(out, d);
  }

  void rope_store(float* q, float* k, const float* v, const KvLayer& kv, const BatchLayout& b, int n_head,
                  int n_head_kv, int head_dim, const RopeParams& p) override {
    if (!fuse_) return Backend::rope_store(q, k, v, kv, b, n_head, n_head_kv, head_dim, p);
    bind();
    if (b.n_tokens <= 0) return;
    const OpScope op_time = timed([&] { return "rope_store"; });
    TARS_CHECK(kv.kv_dim == n_head_kv * head_dim);
    const int n_rot = std::max(0, p.n_rot);
    TARS_CHECK(n_rot % 2 == 0 && n_rot <= head_dim);
    const float* cos_t = nullptr;
    const float* sin_t = nullptr;
    if (n_rot > 0) rope_tables(b, p, &cos_t, &sin_t);
    const CacheRows rows = cache_rows(kv, b);
    launch_rope_store(q, k, v, cos_t, sin_t, b.n_tokens, n_head, n_head_kv, head_dim, n_rot,
                      p.mode == RopeMode::kNeox, kv.k, kv.v, kv.type == TensorType::kF16, kv.n_ctx, rows.pos,
                      rows.seq, stream_);
    CUDA_CHECK(cudaGetLastError());
    ++fused_;
  }

  // The batch's rotary cos/sin table on the device (uploaded once per batch:
  // q and k of every layer share it; valid while its ring slot is, or in a
  // recorded step, for that step).
  void rope_tables(const BatchLayout& b, const RopeParams& p, const float** cos_t, const float** sin_t) {
    const bool rebuilt = rope_.update(b.pos, b.n_tokens, p);
    const bool sent = capturing_ ? rope_step_ == step_gen_ : rope_wraps_ == meta_ring_.wraps();
    if (rebuilt || !sent) {
      Meta m{MetaTag::kRope};
      const size_t o_cos = m.add(rope_.cos().data(), rope_.cos().size());
      const size_t o_sin = m.add(rope_.sin().data(), rope_.sin().size());
      bool in_ring = false;
      const uint8_t* dm = upload_meta(m, &in_ring);
      rope_cos_ = reinterpret_cast<const float*>(dm + o_cos);
      rope_sin_ = reinterpret_cast<const float*>(dm + o_sin);
      rope_wraps_.reset();
      if (in_ring) rope_wraps_ = meta_ring_.wraps();
      rope_step_ = capturing_ ? step_gen_ : 0;
    }
    *cos_t = rope_cos_;
    *sin_t = rope_sin_;
  }

  // Where a batch's k and v rows go in the cache (kv_store, rope_store): the
  // cache type and every token's slot and position checked, pos and seq on
  // the device.
  struct CacheRows {
    const int32_t* pos;
    const int32_t* seq;
  };
  CacheRows cache_rows(const KvLayer& kv, const BatchLayout& b) {
    TARS_CHECK(kv.type == TensorType::kF16 || kv.type == TensorType::kF32);
    for (int t = 0; t < b.n_tokens; ++t) TARS_CHECK(b.pos[t] >= 0 && b.pos[t] < kv.n_ctx && b.seq[t] >= 0);
    Meta m{MetaTag::kKvStore};
    const size_t o_pos = m.add(b.pos, b.n_tokens);
    const size_t o_seq = m.add(b.seq, b.n_tokens);
    const uint8_t* dm = upload_meta(m);
    return {reinterpret_cast<const int32_t*>(dm + o_pos), reinterpret_cast<const int32_t*>(dm + o_seq)};
  }

  void rope(float* x, const BatchLayout& b, int n_heads, int head_dim, const RopeParams& p) override {
    bind();
    const OpScope op_time = timed([&] { return b.n_tokens == 1 ? "rope n=1" : "rope n>1"; });
    if (b.n_tokens <= 0 || p.n_rot <= 0) return;
    TARS_CHECK(p.n_rot % 2 == 0 && p.n_rot <= head_dim);
    const float* cos_t = nullptr;
    const float* sin_t = nullptr;
    rope_tables(b, p, &cos_t, &sin_t);
    launch_rope(x, cos_t, sin_t, b.n_tokens, n_heads, head_dim, p.n_rot, p.mode == RopeMode::kNeox, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void kv_store(const KvLayer& kv, const float* k, const float* v, const BatchLayout& b) override {
    bind();
    const OpScope op_time = timed([&] { return "kv_store"; });
    if (b.n_tokens <= 0) return;
    const CacheRows rows = cache_rows(kv, b);
    launch_kv_store(kv.k, kv.v, kv.type == TensorType::kF16, kv.n_ctx, kv.kv_dim, k, v, rows.pos, rows.seq,
                    b.n_tokens, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void attention(const float* q, const KvLayer& kv, const BatchLayout& b, const AttentionParams& p,
                 float* out) override {
    bind();
    const OpScope op_time = timed([&] { return b.n_tokens == 1 ? "attention n=1" : "attention n>1"; });
    if (b.n_tokens <= 0) return;
    check_attention(p);
    TARS_CHECK(kv.kv_dim == p.n_head_kv * p.head_dim);
    std::vector<int64_t> row0(b.n_tokens);
    std::vector<int32_t> nk(b.n_tokens);
    int max_nk = 0;  // the most keys any token attends to
    for (int t = 0; t < b.n_tokens; ++t) {
      TARS_CHECK(b.pos[t] >= 0 && b.pos[t] < kv.n_ctx && b.seq[t] >= 0);
      row0[t] = static_cast<int64_t>(b.seq[t]) * kv.n_ctx;
      nk[t] = b.pos[t] + 1;
      max_nk = std::max(max_nk, nk[t]);
    }
    if (gemm_attention(q, kv, b, p, nk, max_nk, out)) return;
    const int64_t qdim = static_cast<int64_t>(p.n_head) * p.head_dim;
    const Q8Row q8 = want_q8(b.n_tokens, qdim) && p.head_dim % 32 == 0 ? q8_buffers(qdim) : Q8Row{};
    // Long contexts of a decode step (TARS_CUDA_NEXT): keys split over blocks.
    const int n_split = cuda_next_kernels() && b.n_tokens <= kSplitMaxTokens && max_nk >= kSplitMinKeys
                            ? (max_nk + kSplitKeys - 1) / kSplitKeys
                            : 1;
    run_attention(q, kv.k, kv.v, kv.type == TensorType::kF16, kv.kv_dim, row0, nk, p, out, q8, n_split);
    if (q8.qx) {
      ++fused_;
      set_q8(out, qdim);
    }
  }

  // A prompt batch of one sequence over an F16 cache, in the fast mode:
  // attention as tensor-core products, per query head h (KV head g):
  //   S_h = scale Q_h K_g^T  (tokens x keys 0 .. the batch's last position),
  //   P_h = softmax of each token's row over its own keys (pos + 1), 0 after,
  //   O_h = P_h V_g,
  // Q and P rounded to half (as the FP16 GEMMs round activations). The
  // attention kernel reads every key and value row once per query token: a
  // 512-token prompt took 790 us per 7B layer on an H100, half of the pass.
  // Heads go in chunks so S and P stay within kGemmAttentionBytes; false
  // (nothing done) when the batch does not qualify. keys: the largest of nk.
  bool gemm_attention(const float* q, const KvLayer& kv, const BatchLayout& b, const AttentionParams& p,
                      const std::vector<int32_t>& nk, int keys, float* out) {
    const int n = b.n_tokens;
    if (!fast_ || !blas_ || kv.type != TensorType::kF16 || n < kGemmAttentionMinTokens) return false;
    for (int t = 1; t < n; ++t) {
      if (b.seq[t] != b.seq[0]) return false;
    }
    const int ld = (keys + 7) / 8 * 8;  // S and P rows padded to 16-byte multiples (aligned tensor-core tiles)
    const size_t per_head = static_cast<size_t>(n) * ld * (sizeof(float) + 2);  // S and P of one head
    const int chunk = static_cast<int>(std::min<size_t>(p.n_head_kv, kGemmAttentionBytes / per_head));
    if (chunk < 1) return false;
    const OpScope op_time = timed([&] { return "attention n>1 (GEMM)"; });
    untapped();
    const int64_t hd = p.head_dim, qdim = static_cast<int64_t>(p.n_head) * hd;
    const int grp = p.n_head / p.n_head_kv;
    const size_t q_bytes = (static_cast<size_t>(n) * qdim * 2 + 255) / 256 * 256;
    const size_t s_elems = static_cast<size_t>(chunk) * n * ld;
    const size_t s_bytes = (s_elems * sizeof(float) + 255) / 256 * 256;
    uint8_t* buf = static_cast<uint8_t*>(scratch(attn_, q_bytes + s_bytes + s_elems * 2));
    uint8_t* qh = buf;
    float* sc = reinterpret_cast<float*>(buf + q_bytes);
    uint8_t* ph = buf + q_bytes + s_bytes;
    Meta m{MetaTag::kAttention};
    const size_t o_nk = m.add(nk.data(), nk.size());
    const int32_t* nk_dev = reinterpret_cast<const int32_t*>(upload_meta(m) + o_nk);
    launch_f32_to_f16(q, static_cast<size_t>(n) * qdim, qh, stream_);
    CUDA_CHECK(cudaGetLastError());
    const int64_t row0 = static_cast<int64_t>(b.seq[0]) * kv.n_ctx;
    const uint8_t* kb = static_cast<const uint8_t*>(kv.k) + row0 * kv.kv_dim * 2;
    const uint8_t* vb = static_cast<const uint8_t*>(kv.v) + row0 * kv.kv_dim * 2;
    const int64_t sk = static_cast<int64_t>(n) * ld;  // elements of one head's S and P
    for (int i = 0; i < grp; ++i) {  // query head g * grp + i of each KV head g
      for (int g0 = 0; g0 < p.n_head_kv; g0 += chunk) {
        const int gn = std::min(chunk, p.n_head_kv - g0);
        const int64_t h0 = static_cast<int64_t>(g0) * grp + i;
        // S^T (keys x tokens, column-major) = K^T Q^T for each head of the chunk.
        blas_->gemm_f16_batched(true, false, keys, n, static_cast<int>(hd), p.scale, kb + g0 * hd * 2, kv.kv_dim, hd,
                                qh + h0 * hd * 2, qdim, grp * hd, sc, ld, sk, gn);
        launch_masked_softmax(sc, ld, keys, gn * n, n, nk_dev, ph, stream_);
        CUDA_CHECK(cudaGetLastError());
        // O_h^T (head_dim x tokens, column-major, into out's columns of head h) = V^T P^T.
        blas_->gemm_f16_batched(false, false, static_cast<int>(hd), n, keys, 1.0f, vb + g0 * hd * 2, kv.kv_dim, hd,
                                ph, ld, sk, out + h0 * hd, qdim, grp * hd, gn);
      }
    }
    ++gemm_attention_;
    return true;
  }

  void add(float* a, const float* b, size_t n) override {
    bind();
    const OpScope op_time = timed([&] { return "add"; });
    launch_add(a, b, n, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  // A decode step's row (one token): its 8-bit form too, for the mat-vec
  // after it.
  void swiglu_rows(float* gate, const float* up, int rows, int64_t cols) override {
    if (!want_q8(rows, cols)) {
      swiglu(gate, up, static_cast<size_t>(rows) * static_cast<size_t>(cols));
      return;
    }
    bind();
    const OpScope op_time = timed([&] { return "swiglu_q8"; });
    const Q8Row q = q8_buffers(cols);
    launch_swiglu_q8(gate, up, static_cast<size_t>(cols), q, stream_);
    CUDA_CHECK(cudaGetLastError());
    ++fused_;
    set_q8(gate, cols);
  }

  void swiglu(float* gate, const float* up, size_t n) override {
    bind();
    const OpScope op_time = timed([&] { return "swiglu"; });
    launch_swiglu(gate, up, n, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void gelu(float* x, size_t n) override {
    bind();
    const OpScope op_time = timed([&] { return "gelu_tanh"; });
    launch_gelu_tanh(x, n, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void copy_cols(const float* src, int src_stride, int col0, int cols, int n, float* dst) override {
    bind();
    const OpScope op_time = timed([&] { return "copy_cols"; });
    if (n <= 0 || cols <= 0) return;
    static constexpr char kCopyCols = 0;
    if (tapped(&kCopyCols, dst, src, src_stride, col0, cols, n)) return;
    CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(cols) * sizeof(float), src + col0,
                                 static_cast<size_t>(src_stride) * sizeof(float), static_cast<size_t>(cols) * sizeof(float),
                                 static_cast<size_t>(n), cudaMemcpyDeviceToDevice, stream_));
  }

  void gather_rows(const float* src, const int32_t* rows, int n, int d, float* dst) override {
    bind();
    const OpScope op_time = timed([&] { return "gather_rows"; });
    if (n <= 0) return;
    Meta m{MetaTag::kRows};
    const size_t o_rows = m.add(rows, n);
    const uint8_t* dm = upload_meta(m);
    launch_gather_rows(src, reinterpret_cast<const int32_t*>(dm + o_rows), n, d, dst, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  void attention_packed(const float* q, const float* k, const float* v, const SeqLayout& s, const AttentionParams& p,
                        float* out) override {
    bind();
    const OpScope op_time = timed([&] { return "attention_packed"; });
    const int n = s.n_tokens();
    if (n <= 0) return;
    check_attention(p);
    std::vector<int64_t> row0(n);
    std::vector<int32_t> nk(n);
    for (int i = 0; i < s.n_seqs; ++i) {
      TARS_CHECK(s.start[i] <= s.start[i + 1]);
      for (int r = s.start[i]; r < s.start[i + 1]; ++r) {
        row0[r] = s.start[i];
        nk[r] = s.start[i + 1] - s.start[i];
      }
    }
    run_attention(q, k, v, false, static_cast<int64_t>(p.n_head_kv) * p.head_dim, row0, nk, p, out);
  }

  void gelu_erf(float* x, size_t n) override {
    bind();
    const OpScope op_time = timed([&] { return "gelu_erf"; });
    launch_gelu_erf(x, n, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

  // ---- recording: CUDA graphs (CudaBackendOptions::graphs) ------------------
  // A recorded decode step puts its metadata (token id, positions, key
  // counts, the rope table) in the step area at the same offsets every
  // step, and its launches go to the tap (launch_tap.h). When the executable
  // graph was captured from a step with exactly these launches (the same
  // kernels, configurations and arguments), the step's launches are not made
  // and the graph is replayed: one copy of the step area, one graph launch.
  // Otherwise (the first recorded step, or the step's shape changed: another
  // attention split, a step without logits) the step is captured, the one
  // executable graph updated in place (re-instantiated when the topology
  // changed) and launched. A step checked against the graph that does not
  // match it ran nothing: capture_end says so, the model runs it directly,
  // and the next step is captured. TARS_CUDA_RECAPTURE=1 captures every step.
  bool capture_begin() override {
    bind();
    if (timer_ && !graphs_) {
      // A decode step starts: hold the GPU while the host queues the step, so
      // no operation's event pair contains the GPU waiting for the host.
      timer_->step();
      launch_hold(kProfileHoldCycles, stream_);
    }
    if (!graphs_) return false;
    if (!graphs_warm_) {  // the first step runs directly: scratch reaches its size
      graphs_warm_ = true;
      return false;
    }
    CUDA_CHECK(cudaEventSynchronize(step_copied_));  // the last step's copy has read the staging
    step_ring_ = MetaRing(step_host_, kStepArea);
    ++step_gen_;
    rope_wraps_.reset();
    tap_.bytes.clear();
    untapped_ = false;
    static const bool recapture = cuda_switch_on("TARS_CUDA_RECAPTURE");
    replaying_ = replayable_ && !recapture;
    tap_.skip = replaying_;
    if (!replaying_) {
      const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
      if (e != cudaSuccess) {
        cudaGetLastError();  // not left for the next launch check to find
        graphs_off("cudaStreamBeginCapture", e);
        return false;
      }
    }
    t_launch_tap = &tap_;
    capturing_ = true;
    return true;
  }

  bool capture_end() override {
    bind();
    end_recording();
    if (replaying_) {
      replaying_ = false;
      if (untapped_ || tap_.bytes != graph_record_) {  // not the graph's step: it runs directly
        replayable_ = false;
        ++graph_mismatches_;
        return false;
      }
      if (!launch_step()) return false;
      ++graph_replays_;
      return true;
    }
    replayable_ = false;
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &g);
    if (e != cudaSuccess || !g) {
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();  // capture errors are not sticky: clear them
      graphs_off("cudaStreamEndCapture", e);
      return false;
    }
    if (exec_) {
      cudaGraphExecUpdateResultInfo info{};
      if (cudaGraphExecUpdate(exec_, g, &info) != cudaSuccess) {  // another shape: instantiate anew
        cudaGetLastError();
        cudaGraphExecDestroy(exec_);
        exec_ = nullptr;
      }
    }
    if (!exec_) {
      ++graph_instantiations_;
      e = cudaGraphInstantiate(&exec_, g, 0);
      if (e != cudaSuccess) {
        exec_ = nullptr;
        cudaGraphDestroy(g);
        cudaGetLastError();
        graphs_off("cudaGraphInstantiate", e);
        return false;
      }
    }
    cudaGraphDestroy(g);
    if (!launch_step()) return false;
    graph_record_.swap(tap_.bytes);
    replayable_ = !untapped_;
    return true;
  }

  void capture_abort() override {
    bind();
    end_recording();
    replayable_ = false;
    if (!replaying_) {
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
    }
    replaying_ = false;
    cudaGetLastError();  // capture errors are not sticky: clear them
    if (scratch_grew_) {  // not a failure of graphs: the next step runs directly and grows it
      scratch_grew_ = false;
      graphs_warm_ = false;
      return;
    }
    graphs_off("an operation failed while recording", cudaSuccess);
  }

  CudaStats stats() const {
    return {graph_launches_,  graph_instantiations_, gemm_attention_, fused_,
            q8_reused_,       split_attention_,      graph_replays_,  graph_mismatches_};
  }

  void seq_mean(const float* x, const SeqLayout& s, int d, float* out) override {
    bind();
    const OpScope op_time = timed([&] { return "seq_mean"; });
    if (s.n_seqs <= 0) return;
    Meta m{MetaTag::kSeqStart};
    const size_t o_start = m.add(s.start, s.n_seqs + 1);
    const uint8_t* dm = upload_meta(m);
    launch_seq_mean(x, reinterpret_cast<const int32_t*>(dm + o_start), s.n_seqs, d, out, stream_);
    CUDA_CHECK(cudaGetLastError());
  }

 private:
  struct Allocation {
    size_t bytes;
    MemoryKind kind;
  };
  // A device buffer that only grows.
  struct Scratch {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  // Which operation an upload is for (MetaRing::place's tag).
  enum class MetaTag { kIds, kRope, kKvStore, kRows, kSeqStart, kAttention };
  // Host metadata of one operation, packed with 8-byte alignment.
  struct Meta {
    explicit Meta(MetaTag t) : tag(t) {}
    MetaTag tag;
    std::vector<uint8_t> bytes;
    template <class T>
    size_t add(const T* p, size_t count) {
      const size_t off = (bytes.size() + 7) / 8 * 8;
      bytes.resize(off + count * sizeof(T));
      std::memcpy(bytes.data() + off, p, count * sizeof(T));
      return off;
    }
  };

  static constexpr int64_t kDequantFloats = int64_t{1} << 24;  // 64 MiB of dequantized weight rows per GEMM chunk
  static constexpr int kMaxHeadDim = 512;                       // cuda_attention.cu's shared-memory bound
  static constexpr int kGemmAttentionMinTokens = 32;            // smaller batches: the attention kernel
  static constexpr size_t kGemmAttentionBytes = size_t{32} << 20;  // bound on one head chunk's S and P
  static constexpr int kSplitMaxTokens = 4;    // split attention (TARS_CUDA_NEXT): decode batches only,
  static constexpr int kSplitMinKeys = 512;    // from this many keys,
  static constexpr int kSplitKeys = 256;       // in ranges of this many

  void* scratch(Scratch& s, size_t bytes) {
    if (bytes > s.bytes && capturing_) {  // growing waits for the stream: not while recording
      scratch_grew_ = true;
      throw Error(ErrorCode::kInternal, "CUDA backend: scratch must grow while recording");
    }
    if (bytes > s.bytes) {
      const size_t want = std::max(bytes, s.bytes * 2);
      CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may be in use
      CUDA_CHECK(cudaFree(s.ptr));
      {
        std::lock_guard<std::mutex> lock(mu_);
        s.ptr = nullptr;
        s.bytes = 0;
      }
      CUDA_CHECK(cudaMalloc(&s.ptr, want));
      std::lock_guard<std::mutex> lock(mu_);
      s.bytes = want;
    }
    return s.ptr;
  }

  // Copies the metadata to device scratch (in stream order: kernels queued
  // before still see their own metadata, as the copy runs after them).
  //
  // Through the pinned ring (meta_ring.h): a truly asynchronous copy (from
  // pageable memory the host would wait at every operation for the GPU to
  // catch up), skipped when a recent upload had the same bytes.
  // in_ring (optional): whether the bytes went into the ring (else into
  // scratch that the next large upload overwrites).
  const uint8_t* upload_meta(const Meta& m, bool* in_ring = nullptr) {
    const size_t n = m.bytes.size();
    if (in_ring) *in_ring = false;
    if (capturing_) return step_upload(m);
    if (auto slot = meta_ring_.place(m.bytes.data(), n, static_cast<int>(m.tag))) {
      if (in_ring) *in_ring = true;
      if (slot->wrapped) {
        CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued copies may still read the slot
        meta_ring_.stage(*slot, m.bytes.data(), n);
      }
      if (slot->copy) {
        CUDA_CHECK(cudaMemcpyAsync(meta_dev_ + slot->offset, meta_host_ + slot->offset, n, cudaMemcpyHostToDevice,
                                   stream_));
      }
      return meta_dev_ + slot->offset;
    }
    // Larger than the ring (a huge batch): the growing scratch.
    void* d = scratch(meta_, std::max<size_t>(m.bytes.size(), 256));
    if (!m.bytes.empty()) {
      // The source is pageable memory: the call returns once it is staged,
      // so m may go out of scope right after.
      CUDA_CHECK(cudaMemcpyAsync(d, m.bytes.data(), m.bytes.size(), cudaMemcpyHostToDevice, stream_));
    }
    return static_cast<const uint8_t*>(d);
  }

  static std::string shape(const Weight& w) {
    return " [" + std::to_string(w.rows) + "x" + std::to_string(w.cols) + "]";
  }

  // Times the rest of the calling scope as operation label() (only label()
  // is built, and only when profiling).
  template <class F>
  OpScope timed(F&& label) {
    const bool on = timer_ && !capturing_;
    return OpScope(on ? timer_.get() : nullptr, on ? std::string(label()) : std::string());
  }

  // Makes this backend's device the calling thread's current one (it is per
  // host thread: a model loads on one thread and a scheduler thread runs
  // it). Every entry point calls it; it costs a compare when nothing changes.
  void bind() const {
    q8_src_ = nullptr;  // the 8-bit form is good for the operation right after its producer only
    if (tls_device != device_) {
      cudaSetDevice(device_);
      tls_device = device_;
    }
  }

  // A recorded step's metadata in the step area, a metadata ring of its own
  // that starts empty every step: each upload lands at the offset it had in
  // the step before (one equal to a recent upload of its kind, as every
  // layer's positions are, shares its bytes), copied to the device with the
  // whole area when the step is launched (launch_step).
  const uint8_t* step_upload(const Meta& m) {
    const auto slot = step_ring_.place(m.bytes.data(), m.bytes.size(), static_cast<int>(m.tag));
    if (!slot || slot->wrapped) {
      throw Error(ErrorCode::kInternal, "CUDA backend: a recorded step's metadata exceeds its " +
                                            std::to_string(kStepArea) + "-byte area");
    }
    return step_dev_ + slot->offset;
  }

  // The step area to the device, then the executable graph; false (graphs
  // turned off) when the graph could not be launched: nothing of the step ran.
  bool launch_step() {
    if (step_ring_.used() > 0) {
      CUDA_CHECK(cudaMemcpyAsync(step_dev_, step_host_, step_ring_.used(), cudaMemcpyHostToDevice, stream_));
    }
    CUDA_CHECK(cudaEventRecord(step_copied_, stream_));
    const cudaError_t e = cudaGraphLaunch(exec_, stream_);
    if (e != cudaSuccess) {
      cudaGetLastError();
      graphs_off("cudaGraphLaunch", e);
      return false;
    }
    ++graph_launches_;
    return true;
  }

  // A recording (capture or check) ends: launches are made again, and the
  // rope table is sent again (its copy was the step area's).
  void end_recording() {
    capturing_ = false;
    t_launch_tap = nullptr;
    rope_wraps_.reset();
  }

  // Stream work other than a kernel launch, reported to the tap as one:
  // true when the tap says not to do it (a step checked against the graph).
  template <class... A>
  bool tapped(const void* id, const A&... a) {
    LaunchTap* t = t_launch_tap;  // set while this thread records a step
    if (!t) return false;
    t->add(id, 0, 0, 0, 0, 0, 0, 0, false, a...);
    return t->skip;
  }
  // Stream work the tap cannot describe (cuBLAS) in a recorded step: the
  // step is not replayed.
  void untapped() {
    if (capturing_) untapped_ = true;
  }

  void graphs_off(const char* what, cudaError_t e) {
    graphs_ = false;
    std::fprintf(stderr, "tars: warning: CUDA graphs turned off (%s%s%s); decode steps launch each kernel\n", what,
                 e == cudaSuccess ? "" : ": ", e == cudaSuccess ? "" : cudaGetErrorString(e));
  }

  static void check_attention(const AttentionParams& p) {
    if (p.head_dim <= 0 || p.head_dim > kMaxHeadDim) {
      throw Error(ErrorCode::kUnsupported, "the CUDA backend's attention supports head sizes up to " +
                                               std::to_string(kMaxHeadDim) + ", not " + std::to_string(p.head_dim));
    }
    TARS_CHECK(p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0);
  }

  void run_attention(const float* q, const void* k, const void* v, bool f16, int64_t kv_stride,
                     const std::vector<int64_t>& row0, const std::vector<int32_t>& nk, const AttentionParams& p,
                     float* out, Q8Row q8 = {}, int n_split = 1) {
    Meta m{MetaTag::kAttention};
    const size_t o_row0 = m.add(row0.data(), row0.size());
    const size_t o_nk = m.add(nk.data(), nk.size());
    const uint8_t* dm = upload_meta(m);
    const int n = static_cast<int>(row0.size());
    if (n_split > 1) {
      float* part = static_cast<float*>(
          scratch(split_, static_cast<size_t>(n) * p.n_head * n_split * (p.head_dim + 2) * sizeof(float)));
      launch_attention_split(q, k, v, f16, kv_stride, reinterpret_cast<const int64_t*>(dm + o_row0),
                             reinterpret_cast<const int32_t*>(dm + o_nk), n, p.n_head, p.n_head_kv, p.head_dim,
                             p.scale, out, n_split, kSplitKeys, part, stream_, q8);
      ++split_attention_;
    } else {
      launch_attention(q, k, v, f16, kv_stride, reinterpret_cast<const int64_t*>(dm + o_row0),
                       reinterpret_cast<const int32_t*>(dm + o_nk), n, p.n_head, p.n_head_kv, p.head_dim, p.scale, out,
                       stream_, q8);
    }
    CUDA_CHECK(cudaGetLastError());
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Blas> blas_;
  std::string blas_problem_;  // why cuBLAS is not used, when it is not
  Scratch meta_;              // per-operation metadata larger than the ring (kCompute)
  static constexpr size_t kMetaRing = size_t{4} << 20;
  uint8_t* meta_host_ = nullptr;  // pinned staging of the metadata ring
  uint8_t* meta_dev_ = nullptr;   // its device twin (kCompute)
  MetaRing meta_ring_{nullptr, 0};  // which part of both each upload uses
  RopeTable rope_;                  // the current batch's rotary cos/sin (host)
  const float* rope_cos_ = nullptr;  // the table's device copy
  const float* rope_sin_ = nullptr;
  // meta_ring_.wraps() when that copy went into the ring: it is valid while
  // the ring has not wrapped since; none: it must be sent again (it went to
  // the overflow scratch, or a recording must send it).
  std::optional<size_t> rope_wraps_;
  Scratch wtmp_;              // dequantized weight chunks, raw 1-D weights (kCompute)
  Scratch xh_;                // activations rounded to half for the FP16 GEMM (kCompute)
  Scratch xq_;                // 8-bit activations of the mat-vec (kCompute)
  Scratch attn_;              // the GEMM attention's half Q, scores and probabilities (kCompute)
  Scratch split_;             // the split attention's partial states (kCompute)
  size_t split_attention_ = 0;  // attention calls split over key ranges
  size_t gemm_attention_ = 0;  // batches gemm_attention() ran
  size_t fused_ = 0;           // fused operations run
  size_t q8_reused_ = 0;       // mat-vecs that found their 8-bit activations written
  mutable const float* q8_src_ = nullptr;  // the row whose 8-bit form xq_ holds (set_q8)
  int64_t q8_cols_ = 0;
  bool fast_ = true;          // !CudaBackendOptions::exact_activations
  bool graphs_ = false;       // CudaBackendOptions::graphs, until a recording fails
  bool fuse_ = true;          // CudaBackendOptions::fuse
  bool graphs_warm_ = false;  // a step has run directly (capture_begin)
  cudaGraphExec_t exec_ = nullptr;  // the decode step's executable graph
  size_t graph_launches_ = 0;
  size_t graph_instantiations_ = 0;
  bool capturing_ = false;     // between capture_begin and capture_end/abort (a capture or a check)
  bool scratch_grew_ = false;  // the recording was abandoned because scratch had to grow
  // Graph replay (capture_begin):
  LaunchTap tap_;                           // the recorded step's launches
  std::vector<unsigned char> graph_record_;  // the launches of the step exec_ was captured from
  bool replayable_ = false;  // exec_ holds graph_record_'s launches and nothing the tap missed
  bool replaying_ = false;   // this recording is a check against exec_, not a capture
  bool untapped_ = false;    // the recording did stream work the tap does not see
  size_t graph_replays_ = 0;
  size_t graph_mismatches_ = 0;
  static constexpr size_t kStepArea = size_t{256} << 10;  // a recorded step's metadata bytes
  uint8_t* step_host_ = nullptr;  // pinned staging of the step area (graphs only)
  uint8_t* step_dev_ = nullptr;   // its device twin, which the graph's kernels read
  cudaEvent_t step_copied_ = nullptr;  // the step area's last copy (the host waits for it to restage)
  MetaRing step_ring_{nullptr, 0};  // which part of the step area each upload of this step uses
  size_t step_gen_ = 0;   // recorded steps begun
  size_t rope_step_ = 0;  // the step whose area holds the rope table's copy (0: none)
  std::unique_ptr<OpTimer> timer_;  // TARS_CUDA_PROFILE=1
  mutable std::mutex mu_;
  std::unordered_map<void*, Allocation> allocations_;
  size_t bytes_[3] = {0, 0, 0};
};

}  // namespace

CudaStats cuda_stats(const Backend& backend) {
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  return cuda ? cuda->stats() : CudaStats{};
}

int cuda_ordinal_for_uuid(const std::string& uuid) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    if (cuda_uuid_string_of(prop.uuid) == uuid) return i;
  }
  cudaGetLastError();
  return -1;
}

bool cuda_backend_available(std::string* reason) {
  const std::string problem = device_problem(0);
  if (reason) *reason = problem;
  return problem.empty();
}

std::unique_ptr<Backend> cuda_backend_create(const CudaBackendOptions& options, std::string* reason) {
  std::string problem = device_problem(options.device);
  if (problem.empty()) {
    try {
      auto be = std::make_unique<CudaBackend>(options);
      if (be->probe().empty()) return be;
      cudaDeviceProp prop{};
      cudaGetDeviceProperties(&prop, options.device);
      problem = "this build has no kernels for " + std::string(prop.name) + " (compute capability " +
                std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                "); rebuild with that architecture in TARS_CUDA_ARCHS";
    } catch (const Error& e) {
      problem = e.what();
    }
  }
  if (reason) *reason = problem;
  return nullptr;
}

}  // namespace tars::engine::cuda
