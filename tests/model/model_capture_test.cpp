// Recorded decode steps (Backend::capture_begin / capture_end, what the CUDA
// backend turns into graphs) on any machine: a backend that wraps the CPU
// backend and, while recording, only stores each operation (with copies of
// its host arguments, as a graph holds them) and runs them at capture_end.
// The model must give the same logits as without recording, put nothing in
// a recording that needs the host (alloc, free, upload, download), record
// only one-token steps, and redo a step whose recording failed.
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>

#include "engine/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "support/greedy_steps.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

class RecordingBackend final : public Backend {
 public:
  enum class Mode { kReplay, kEndFails, kThrowWhileRecording };
  explicit RecordingBackend(Mode mode) : mode_(mode) {
    CpuBackendOptions o;
    o.n_threads = 2;
    cpu_ = backend_cpu_create(o);
  }

  int recordings = 0, replays = 0, aborts = 0, failed_ends = 0;
  int host_calls_while_recording = 0;  // alloc/free/upload/download inside a recording
  int multi_token_ops_recorded = 0;    // get_rows with n > 1 inside a recording

  std::string name() const override { return "recording-cpu"; }
  void* alloc(size_t bytes, MemoryKind kind) override {
    host_call();
    return cpu_->alloc(bytes, kind);
  }
  void free(void* p) override {
    host_call();
    cpu_->free(p);
  }
  size_t allocated(MemoryKind kind) const override { return cpu_->allocated(kind); }
  void upload(void* dst, const void* src, size_t bytes) override {
    host_call();
    cpu_->upload(dst, src, bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    host_call();
    cpu_->download(dst, src, bytes);
  }
  Weight load_weight(TensorType type, int64_t cols, int64_t rows, const void* host) override {
    host_call();
    return cpu_->load_weight(type, cols, rows, host);
  }

  void get_rows(const Weight& table, const int32_t* ids, int n, float* out) override {
    if (recording_ && n > 1) ++multi_token_ops_recorded;
    std::vector<int32_t> v(ids, ids + n);
    op([=, this] { cpu_->get_rows(table, v.data(), n, out); });
  }
  void matmul(const Weight& w, const float* x, int n, float* y, const Weight* bias) override {
    op([=, this] { cpu_->matmul(w, x, n, y, bias); });
  }
  void matmul_many(const float* x, int n, const MatmulOut* outs, int count) override {
    std::vector<MatmulOut> v(outs, outs + count);
    op([=, this] { cpu_->matmul_many(x, n, v.data(), count); });
  }
  void rms_norm(float* x, const Weight& w, int n, int d, float eps) override {
    op([=, this] { cpu_->rms_norm(x, w, n, d, eps); });
  }
  void layer_norm(float* x, const Weight& w, const Weight& b, int n, int d, float eps) override {
    op([=, this] { cpu_->layer_norm(x, w, b, n, d, eps); });
  }
  void rope(float* x, const BatchLayout& b, int n_heads, int head_dim, const RopeParams& p) override {
    auto pos = std::vector<int32_t>(b.pos, b.pos + b.n_tokens);
    auto seq = std::vector<int32_t>(b.seq, b.seq + b.n_tokens);
    op([=, this] { cpu_->rope(x, BatchLayout{b.n_tokens, pos.data(), seq.data()}, n_heads, head_dim, p); });
  }
  void kv_store(const KvLayer& kv, const float* k, const float* v, const BatchLayout& b) override {
    auto pos = std::vector<int32_t>(b.pos, b.pos + b.n_tokens);
    auto seq = std::vector<int32_t>(b.seq, b.seq + b.n_tokens);
    op([=, this] { cpu_->kv_store(kv, k, v, BatchLayout{b.n_tokens, pos.data(), seq.data()}); });
  }
  void attention(const float* q, const KvLayer& kv, const BatchLayout& b, const AttentionParams& p,
                 float* out) override {
    auto pos = std::vector<int32_t>(b.pos, b.pos + b.n_tokens);
    auto seq = std::vector<int32_t>(b.seq, b.seq + b.n_tokens);
    op([=, this] { cpu_->attention(q, kv, BatchLayout{b.n_tokens, pos.data(), seq.data()}, p, out); });
  }
  void add(float* a, const float* b, size_t n) override {
    op([=, this] { cpu_->add(a, b, n); });
  }
  void swiglu(float* gate, const float* up, size_t n) override {
    op([=, this] { cpu_->swiglu(gate, up, n); });
  }
  void gelu(float* x, size_t n) override {
    op([=, this] { cpu_->gelu(x, n); });
  }
  void copy_cols(const float* src, int src_stride, int col0, int cols, int n, float* dst) override {
    op([=, this] { cpu_->copy_cols(src, src_stride, col0, cols, n, dst); });
  }
  void gather_rows(const float* src, const int32_t* rows, int n, int d, float* dst) override {
    std::vector<int32_t> v(rows, rows + n);
    op([=, this] { cpu_->gather_rows(src, v.data(), n, d, dst); });
  }
  void attention_packed(const float* q, const float* k, const float* v, const SeqLayout& s,
                        const AttentionParams& p, float* out) override {
    cpu_->attention_packed(q, k, v, s, p, out);
  }
  void gelu_erf(float* x, size_t n) override { cpu_->gelu_erf(x, n); }
  void seq_mean(const float* x, const SeqLayout& s, int d, float* out) override { cpu_->seq_mean(x, s, d, out); }

  bool capture_begin() override {
    recording_ = true;
    ++recordings;
    tape_.clear();
    return true;
  }
  bool capture_end() override {
    recording_ = false;
    if (mode_ == Mode::kEndFails) {  // nothing ran
      ++failed_ends;
      tape_.clear();
      return false;
    }
    for (auto& f : tape_) f();
    tape_.clear();
    ++replays;
    return true;
  }
  void capture_abort() override {
    recording_ = false;
    ++aborts;
    tape_.clear();
  }

 private:
  void host_call() {
    if (recording_) ++host_calls_while_recording;
  }
  void op(std::function<void()> f) {
    if (!recording_) {
      f();
      return;
    }
    if (mode_ == Mode::kThrowWhileRecording && tape_.size() == 7) {
      throw std::runtime_error("recording: operation not supported");
    }
    tape_.push_back(std::move(f));
  }

  Mode mode_;
  std::unique_ptr<Backend> cpu_;
  bool recording_ = false;
  std::vector<std::function<void()>> tape_;
};

// A 9-token prompt, then 12 greedy decoding steps on `be`: every step's logits.
std::vector<float> generate(Backend& be, const std::string& model) {
  std::shared_ptr<const GgufFile> file = GgufFile::open(test::fixture(model));
  ModelOptions mo;
  mo.n_ctx = 64;
  mo.kv_type = TensorType::kF32;
  auto m = Model::load(file, be, mo);
  return test::greedy_steps(*m, 9, 12);
}

// The same on the plain CPU backend.
std::vector<float> direct(const std::string& model) {
  CpuBackendOptions o;
  o.n_threads = 2;
  auto cpu = backend_cpu_create(o);
  return generate(*cpu, model);
}

class ModelCapture : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelCapture, RecordedStepsGiveTheDirectLogits) {
  const auto expect = direct(GetParam());

  RecordingBackend rec(RecordingBackend::Mode::kReplay);
  EXPECT_EQ(generate(rec, GetParam()), expect);
  EXPECT_EQ(rec.recordings, 12);  // the decode steps, not the prompt
  EXPECT_EQ(rec.replays, 12);
  EXPECT_EQ(rec.host_calls_while_recording, 0);
  EXPECT_EQ(rec.multi_token_ops_recorded, 0);
}

TEST_P(ModelCapture, AFailedRecordingIsRunAgainDirectly) {
  const auto expect = direct(GetParam());

  RecordingBackend fails(RecordingBackend::Mode::kEndFails);
  EXPECT_EQ(generate(fails, GetParam()), expect);
  EXPECT_EQ(fails.failed_ends, 12);
  EXPECT_EQ(fails.replays, 0);

  RecordingBackend throws(RecordingBackend::Mode::kThrowWhileRecording);
  EXPECT_EQ(generate(throws, GetParam()), expect);
  EXPECT_EQ(throws.aborts, 12);
  EXPECT_EQ(throws.host_calls_while_recording, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, ModelCapture,
                         ::testing::Values("stories260K/stories260K.gguf", "reference/phi2-tiny.gguf",
                                           "reference/qwen2-tiny.gguf"),
                         [](const auto& info) {
                           std::string n = info.param.substr(info.param.find('/') + 1);
                           n = n.substr(0, n.find('.'));
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace tars::engine
