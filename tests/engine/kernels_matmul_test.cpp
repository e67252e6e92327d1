// Packed products (gemm_q / gemm_f) against the scalar dot products, whole
// matrix products of the CPU backend (fast 8-bit-activation path against the
// exact float path, within the bound 8-bit activations allow) at several
// token and thread counts and at every level, and the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/backend.h"
#include "engine/half.h"
#include "engine/kernels_cpu.h"
#include "engine/quant.h"
#include "engine/thread_pool.h"
#include "kernels_test_util.h"

namespace tars::engine {
namespace {

using namespace test_kernels;
using cpu::Isa;

std::vector<float> normal(int64_t n, float sd, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// ---- packed products ------------------------------------------------------------

TEST(KernelsGemm, PanelProductMatchesDoublePrecision) {
  if (!cpu::panel_q_available(TensorType::kQ4_0)) GTEST_SKIP() << "no packed products at this level";
  std::mt19937 rng(11);
  for (TensorType t : quant_weight_types()) {
    TensorType at;
    cpu::vec_dot_act_type(t, &at);
    ASSERT_TRUE(cpu::panel_q_available(t)) << type_name(t);
    for (int64_t k : {256, 768}) {
      const size_t rb = quant_row_bytes(t, k), ab = quant_row_bytes(at, k);
      for (int rows : {16, 5}) {
        for (int n : {1, 3, 8, 17}) {
          std::vector<uint8_t> w;
          for (int r = 0; r < rows; ++r) {
            auto row = random_weight_row(t, k, false, rng);
            w.insert(w.end(), row.begin(), row.end());
          }
          std::vector<uint8_t> a;
          for (int i = 0; i < n; ++i) {
            auto row = random_act_row(at, k, false, rng);
            a.insert(a.end(), row.begin(), row.end());
          }
          std::vector<uint8_t> scratch(cpu::gemm_acts_bytes(t, k, n)), panel(cpu::panel_q_bytes(t, k));
          cpu::gemm_acts_build(t, a.data(), ab, k, n, 0, n, scratch.data());
          const cpu::GemmActs acts = cpu::gemm_acts_build(t, a.data(), ab, k, n, 0, 0, scratch.data());
          cpu::panel_q_pack(t, w.data(), rb, rows, k, panel.data());
          std::vector<float> bias = normal(rows, 1.0f, rng);
          const int64_t ys = rows + 3;  // a wider output, to check the stride
          std::vector<float> y(n * ys, 12345.0f);
          cpu::panel_q_run(t, panel.data(), acts, n, rows, bias.data(), y.data(), ys);
          for (int i = 0; i < n; ++i) {
            for (int r = 0; r < rows; ++r) {
              double abs;
              const double ref = ref_dot(t, w.data() + r * rb, a.data() + i * ab, k, &abs) + bias[r];
              EXPECT_LE(std::abs(y[i * ys + r] - ref), 4e-6 * (abs + std::abs(bias[r])))
                  << type_name(t) << " k " << k << " rows " << rows << " n " << n << " token " << i << " row " << r;
            }
            for (int64_t r = rows; r < ys; ++r) EXPECT_EQ(y[i * ys + r], 12345.0f) << "wrote past the panel's rows";
          }
        }
      }
    }
  }
}

// With unit scales every output is an integer sum: the panel product must
// give exactly the scalar dot product's value.
TEST(KernelsGemm, PanelProductIntegerPartsAreExact) {
  if (!cpu::panel_q_available(TensorType::kQ4_0)) GTEST_SKIP() << "no packed products at this level";
  std::mt19937 rng(15);
  for (TensorType t : quant_weight_types()) {
    TensorType at;
    cpu::vec_dot_act_type(t, &at);
    const int64_t k = 256, rows = 16;
    const int n = 9;
    const size_t rb = quant_row_bytes(t, k), ab = quant_row_bytes(at, k);
    std::vector<uint8_t> w, a;
    for (int r = 0; r < rows; ++r) {
      auto row = random_weight_row(t, k, true, rng);
      w.insert(w.end(), row.begin(), row.end());
    }
    for (int i = 0; i < n; ++i) {
      auto row = random_act_row(at, k, true, rng, 15);
      a.insert(a.end(), row.begin(), row.end());
    }
    std::vector<uint8_t> scratch(cpu::gemm_acts_bytes(t, k, n)), panel(cpu::panel_q_bytes(t, k));
    cpu::gemm_acts_build(t, a.data(), ab, k, n, 0, n, scratch.data());
    const cpu::GemmActs acts = cpu::gemm_acts_build(t, a.data(), ab, k, n, 0, 0, scratch.data());
    cpu::panel_q_pack(t, w.data(), rb, rows, k, panel.data());
    std::vector<float> y(n * rows);
    cpu::panel_q_run(t, panel.data(), acts, n, rows, nullptr, y.data(), rows);
    for (int i = 0; i < n; ++i) {
      for (int r = 0; r < rows; ++r) {
        double abs;
        const double ref = ref_dot(t, w.data() + r * rb, a.data() + i * ab, k, &abs);
        ASSERT_LT(abs, 16777216.0);
        EXPECT_EQ(static_cast<double>(y[i * rows + r]), ref) << type_name(t) << " token " << i << " row " << r;
        EXPECT_EQ(y[i * rows + r], cpu::vec_dot_fn(t, Isa::kScalar)(w.data() + r * rb, a.data() + i * ab, k));
      }
    }
  }
}

TEST(KernelsGemm, PackedFloatProductMatchesDouble) {
  if (!cpu::gemm_f_available()) GTEST_SKIP() << "no packed products at this level";
  std::mt19937 rng(12);
  for (TensorType t : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ4_K}) {
    for (int64_t k : {256, 257}) {
      if (t == TensorType::kQ4_K && k % 256) continue;  // an odd length only for the plain types
      const int rows = 13;
      const size_t rb = quant_row_bytes(t, k);
      std::vector<uint8_t> w(rb * rows);
      std::vector<float> wf = normal(k * rows, 1.0f, rng);
      for (int r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * k, w.data() + r * rb, k);
      std::vector<float> wd(k * rows);
      for (int r = 0; r < rows; ++r) dequantize_row(t, w.data() + r * rb, wd.data() + r * k, k);
      for (int n : {1, 12, 13, 30}) {
        std::vector<float> x = normal(k * n, 1.0f, rng);
        std::vector<float> panel(cpu::gemm_f_panel_bytes(k) / sizeof(float)), y(n * rows);
        cpu::gemm_f_pack(t, w.data(), rb, rows, k, panel.data());
        cpu::gemm_f_run(panel.data(), k, x.data(), k, n, rows, nullptr, y.data(), rows);
        for (int i = 0; i < n; ++i) {
          for (int r = 0; r < rows; ++r) {
            double ref = 0, abs = 0;
            for (int64_t j = 0; j < k; ++j) {
              ref += static_cast<double>(wd[r * k + j]) * x[i * k + j];
              abs += std::abs(static_cast<double>(wd[r * k + j]) * x[i * k + j]);
            }
            EXPECT_LE(std::abs(y[i * rows + r] - ref), 1e-6 * abs * std::sqrt(static_cast<double>(k)))
                << type_name(t) << " k " << k << " n " << n;
          }
        }
      }
    }
  }
}

// ---- whole products through the backend -------------------------------------------

std::vector<float> backend_matmul(TensorType t, const std::vector<uint8_t>& w, int64_t cols, int64_t rows,
                                  const std::vector<float>& x, int n, int threads, bool exact,
                                  const std::vector<float>* bias) {
  CpuBackendOptions o;
  o.n_threads = threads;
  o.exact_activations = exact;
  auto be = backend_cpu_create(o);
  Weight wt = be->load_weight(t, cols, rows, w.data());
  Weight bw;
  if (bias) bw = be->load_weight(TensorType::kF32, rows, 1, bias->data());
  std::vector<float> y(static_cast<size_t>(n) * rows, NAN);
  be->matmul(wt, x.data(), n, y.data(), bias ? &bw : nullptr);
  return y;
}

// Fast (8-bit activations) against exact (float activations) for every
// weight type, at several token and thread counts and at every level. The
// bound per output: sum_i |w_i| * half a quantization step of x_i's block
// (plus the FP16 rounding of the block sums Q4_1 / Q5_1 use), plus float
// rounding; results must not depend on the thread count.
class MatmulLevels : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (GetParam() > static_cast<int>(cpu::isa_detected())) GTEST_SKIP() << "level not on this machine";
    cpu::isa_set_override(static_cast<Isa>(GetParam()));
  }
  void TearDown() override { cpu::isa_clear_override(); }
};

TEST_P(MatmulLevels, FastPathIsWithinTheActivationQuantizationBound) {
  std::mt19937 rng(13);
  const int64_t cols = 512, rows = 40;
  for (TensorType t : quant_weight_types()) {
    TensorType at;
    cpu::vec_dot_act_type(t, &at);
    const size_t rb = quant_row_bytes(t, cols);
    std::vector<float> wf = normal(cols * rows, 0.05f, rng);
    std::vector<uint8_t> w(rb * rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w.data() + r * rb, cols);
    std::vector<float> wd(cols * rows);
    for (int64_t r = 0; r < rows; ++r) dequantize_row(t, w.data() + r * rb, wd.data() + r * cols, cols);
    const std::vector<float> bias = normal(rows, 1.0f, rng);
    for (int n : {1, 3, 17, 64}) {
      const std::vector<float> x = normal(cols * n, 1.0f, rng);
      const std::vector<float> exact = backend_matmul(t, w, cols, rows, x, n, 2, true, &bias);
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        const std::vector<float> fast = backend_matmul(t, w, cols, rows, x, n, threads, false, &bias);
        if (first.empty()) {
          first = fast;
        } else {
          EXPECT_EQ(std::memcmp(first.data(), fast.data(), first.size() * sizeof(float)), 0)
              << type_name(t) << " n " << n << ": results differ between 1 and " << threads << " threads";
        }
      }
      // The bound, from the activation blocks the kernels quantize to.
      const size_t ab = quant_row_bytes(at, cols);
      std::vector<uint8_t> aq(ab);
      for (int i = 0; i < n; ++i) {
        cpu::quantize_act_fn(at, Isa::kScalar)(x.data() + i * cols, aq.data(), cols);
        const DoubleAct da = act_double(at, aq.data(), cols);
        const int64_t be = block_elems(at);
        std::vector<double> half_step(cols);
        for (int64_t b = 0; b < cols / be; ++b) {
          double amax = 0;
          for (int64_t j = 0; j < be; ++j) amax = std::max(amax, std::abs(static_cast<double>(x[i * cols + b * be + j])));
          for (int64_t j = 0; j < be; ++j) half_step[b * be + j] = amax / 127 / 2 * (1 + std::ldexp(1.0, -10));
        }
        for (int64_t r = 0; r < rows; ++r) {
          double bound = 0, abs = std::abs(bias[r]);
          for (int64_t j = 0; j < cols; ++j) {
            bound += std::abs(static_cast<double>(wd[r * cols + j])) * half_step[j];
            abs += std::abs(static_cast<double>(wd[r * cols + j]) * x[i * cols + j]);
          }
          const DoubleRow dr = weight_double(t, w.data() + r * rb, cols);
          for (size_t b = 0; b < dr.block_m.size(); ++b) {
            bound += std::abs(dr.block_m[b] * da.block_s[b]) * std::ldexp(1.0, -11);
          }
          const double got = first[i * rows + r], want = exact[i * rows + r];
          EXPECT_LE(std::abs(got - want), bound * 1.01 + 1e-5 * abs)
              << type_name(t) << " n " << n << " token " << i << " row " << r << " bound " << bound;
        }
      }
    }
  }
}

// Float weights: the packed product (many tokens) and the row-by-row dots
// (few tokens) agree with double precision.
TEST_P(MatmulLevels, FloatWeightsMatchDouble) {
  std::mt19937 rng(14);
  const int64_t cols = 320, rows = 24;
  for (TensorType t : {TensorType::kF32, TensorType::kF16, TensorType::kBF16}) {
    const size_t rb = quant_row_bytes(t, cols);
    std::vector<float> wf = normal(cols * rows, 1.0f, rng);
    std::vector<uint8_t> w(rb * rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w.data() + r * rb, cols);
    std::vector<float> wd(cols * rows);
    for (int64_t r = 0; r < rows; ++r) dequantize_row(t, w.data() + r * rb, wd.data() + r * cols, cols);
    for (int n : {1, 3, 17, 64}) {
      const std::vector<float> x = normal(cols * n, 1.0f, rng);
      for (int threads : {1, 2}) {
        const std::vector<float> y = backend_matmul(t, w, cols, rows, x, n, threads, false, nullptr);
        for (int i = 0; i < n; ++i) {
          for (int64_t r = 0; r < rows; ++r) {
            double ref = 0, abs = 0;
            for (int64_t j = 0; j < cols; ++j) {
              ref += static_cast<double>(wd[r * cols + j]) * x[i * cols + j];
              abs += std::abs(static_cast<double>(wd[r * cols + j]) * x[i * cols + j]);
            }
            EXPECT_LE(std::abs(y[i * rows + r] - ref), 2e-5 * abs) << type_name(t) << " n " << n;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Level, MatmulLevels, ::testing::Values(0, 1, 2),
                         [](const auto& info) { return level_name(static_cast<Isa>(info.param)); });

// ---- thread pool -------------------------------------------------------------------------

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 7, 100, 1001}) {
      for (int64_t grain : {1, 16}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          EXPECT_EQ(b % grain, 0);
          for (int64_t i = b; i < e; ++i) hits[i]++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "static, threads " << threads;
        std::vector<std::atomic<int>> dyn(n);
        pool.parallel_for_dynamic(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) dyn[i]++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(dyn[i].load(), 1) << "dynamic, threads " << threads;
        // Guided: chunks within [min, max] except the last, which may be short.
        const int64_t max_grain = grain * 4;
        std::vector<std::atomic<int>> gd(n);
        std::atomic<int> short_chunks{0};
        pool.parallel_for_guided(n, grain, max_grain, [&](int64_t b, int64_t e) {
          EXPECT_LE(e - b, std::max(max_grain, threads == 1 ? n : max_grain));
          if (e - b < grain) {
            EXPECT_EQ(e, n) << "only the last chunk may be shorter than min_grain";
            short_chunks++;
          }
          for (int64_t i = b; i < e; ++i) gd[i]++;
        });
        EXPECT_LE(short_chunks.load(), 1);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(gd[i].load(), 1) << "guided, threads " << threads;
      }
    }
  }
}

// Every task runs exactly once (any thread may take any task but 0, which
// is the caller's), and run() returns only after all of them.
TEST(ThreadPool, RunCallsEveryTaskOnceAndCallerTakesTaskZero) {
  ThreadPool pool(4);
  for (int rep = 0; rep < 200; ++rep) {
    std::atomic<int> calls[4] = {0, 0, 0, 0};
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<bool> caller_ran_zero{false};
    pool.run([&](int t) {
      calls[t]++;
      if (t == 0 && std::this_thread::get_id() == caller) caller_ran_zero = true;
    });
    for (int t = 0; t < 4; ++t) ASSERT_EQ(calls[t].load(), 1) << "task " << t;
    ASSERT_TRUE(caller_ran_zero.load());
  }
}

// A job finishes even when the workers are slow to wake: the caller takes
// their tasks (a worker that arrives late must not run a finished job).
TEST(ThreadPool, CallerDoesTheWorkOfLateWorkers) {
  ThreadPool pool(2);
  for (int rep = 0; rep < 2000; ++rep) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for_dynamic(100, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    ASSERT_EQ(sum.load(), 4950);
  }
}

// The backend's weight accounting: repacking a matrix into panels (at its
// first product) replaces the file's bytes of it, so the figure stays within
// a few percent (Q4_K panels unpack the 6-bit scales: +3%).
// matmul_many (Q/K/V and gate/up of a decode step in one job) gives exactly
// what the products one by one give (those are checked against the exact
// path and double precision above): same types, mixed types (Q4_K_M mixes
// Q4_K and Q6_K), with biases, float weights and exact mode (which fall
// back to one product at a time), at several token and thread counts.
TEST_P(MatmulLevels, ManyProductsEqualTheProductsOneByOne) {
  std::mt19937 rng(17);
  const int64_t cols = 512;
  const std::vector<std::vector<TensorType>> groups = {
      {TensorType::kQ4_0, TensorType::kQ4_0, TensorType::kQ4_0},
      {TensorType::kQ8_0, TensorType::kQ8_0},
      {TensorType::kQ4_K, TensorType::kQ4_K, TensorType::kQ6_K},
      {TensorType::kQ5_K, TensorType::kQ4_1, TensorType::kQ5_0},
      {TensorType::kQ4_0, TensorType::kF16},
  };
  const int row_counts[] = {40, 16, 21};
  for (const auto& types : groups) {
    const int count = static_cast<int>(types.size());
    std::vector<std::vector<uint8_t>> w(count);
    std::vector<std::vector<float>> bias(count);
    for (int i = 0; i < count; ++i) {
      const int64_t rows = row_counts[i % 3];
      const size_t rb = quant_row_bytes(types[i], cols);
      const std::vector<float> wf = normal(cols * rows, 0.05f, rng);
      w[i].resize(rb * rows);
      for (int64_t r = 0; r < rows; ++r) quantize_row(types[i], wf.data() + r * cols, w[i].data() + r * rb, cols);
      bias[i] = normal(rows, 1.0f, rng);
    }
    for (bool exact : {false, true}) {
      for (int n : {1, 3, 8, 17}) {
        const std::vector<float> x = normal(cols * n, 1.0f, rng);
        for (int threads : {1, 2, 3}) {
          CpuBackendOptions o;
          o.n_threads = threads;
          o.exact_activations = exact;
          auto be = backend_cpu_create(o);
          std::vector<Weight> wt(count), bw(count);
          std::vector<std::vector<float>> one(count), many(count);
          std::vector<MatmulOut> outs(count);
          for (int i = 0; i < count; ++i) {
            const int64_t rows = row_counts[i % 3];
            wt[i] = be->load_weight(types[i], cols, rows, w[i].data());
            bw[i] = be->load_weight(TensorType::kF32, rows, 1, bias[i].data());
            one[i].assign(static_cast<size_t>(n) * rows, NAN);
            many[i].assign(static_cast<size_t>(n) * rows, NAN);
            outs[i] = {&wt[i], many[i].data(), i % 2 ? &bw[i] : nullptr};
          }
          for (int i = 0; i < count; ++i) be->matmul(wt[i], x.data(), n, one[i].data(), outs[i].bias);
          be->matmul_many(x.data(), n, outs.data(), count);
          for (int i = 0; i < count; ++i) {
            EXPECT_EQ(std::memcmp(one[i].data(), many[i].data(), one[i].size() * sizeof(float)), 0)
                << type_name(types[i]) << " (product " << i << ") n " << n << " threads " << threads
                << (exact ? " exact" : "");
          }
        }
      }
    }
  }
}

TEST(KernelsGemm, RepackedWeightsKeepTheMemoryFigure) {
  std::mt19937 rng(16);
  std::vector<TensorType> types = quant_weight_types();
  types.insert(types.end(), {TensorType::kF32, TensorType::kF16, TensorType::kBF16});
  for (TensorType t : types) {
    const int64_t cols = 512, rows = 48;
    const size_t rb = quant_row_bytes(t, cols);
    std::vector<float> wf = normal(cols * rows, 0.05f, rng);
    std::vector<uint8_t> w(rb * rows);
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w.data() + r * rb, cols);
    auto be = backend_cpu_create({});
    Weight wt = be->load_weight(t, cols, rows, w.data());
    const size_t before = be->allocated(MemoryKind::kWeights);
    EXPECT_EQ(before, w.size());
    std::vector<float> x = normal(cols, 1.0f, rng), y(rows);
    be->matmul(wt, x.data(), 1, y.data());
    const double after = static_cast<double>(be->allocated(MemoryKind::kWeights));
    EXPECT_NEAR(after, static_cast<double>(before), 0.03 * before) << type_name(t);
  }
}

}  // namespace
}  // namespace tars::engine
