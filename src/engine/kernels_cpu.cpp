// Run-time choice of the kernel level (kernels_cpu.h) and the public entry
// points, which forward to the active level's table.
#include "engine/kernels_cpu.h"

#include <atomic>

#include "engine/kernels_internal.h"

namespace tars::engine::cpu {
namespace {

Isa detect() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vnni");
  if (avx512 && kernel_table_avx512()) return Isa::kAvx512;
  if (avx2 && kernel_table_avx2()) return Isa::kAvx2;
#endif
  return Isa::kScalar;
}

// The order of the checks matters: kernel_table_avx2/avx512 may only run
// once the CPU is known to have the level, which detect() guarantees by
// calling them last in each condition.
const KernelTable* table_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return kernel_table_avx512();
    case Isa::kAvx2: return kernel_table_avx2();
    default: return kernel_table_scalar();
  }
}

struct State {
  Isa detected;
  std::atomic<const KernelTable*> active;
  State() : detected(detect()), active(table_for(detected)) {}
};

State& state() {
  static State s;
  return s;
}

Isa clamp(Isa isa) {
  return static_cast<int>(isa) > static_cast<int>(isa_detected()) ? isa_detected() : isa;
}

int slot(TensorType t) {
  const int i = static_cast<int>(t);
  return i >= 0 && i < kTypeSlots ? i : -1;
}

}  // namespace

const KernelTable& active_table() { return *state().active.load(std::memory_order_relaxed); }

Isa isa_detected() { return state().detected; }
Isa isa_active() { return active_table().isa; }
void isa_set_override(Isa isa) { state().active.store(table_for(clamp(isa))); }
void isa_clear_override() { state().active.store(table_for(isa_detected())); }

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

bool vec_dot_act_type(TensorType w, TensorType* act) {
  switch (w) {
    case TensorType::kQ4_0:
    case TensorType::kQ5_0:
    case TensorType::kQ8_0: *act = TensorType::kQ8_0; return true;
    case TensorType::kQ4_1:
    case TensorType::kQ5_1: *act = TensorType::kQ8_1; return true;
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
    case TensorType::kQ6_K: *act = TensorType::kQ8_K; return true;
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16: *act = TensorType::kF32; return true;
    default: return false;
  }
}

VecDotFn vec_dot_fn(TensorType w, Isa isa) {
  const int i = slot(w);
  return i < 0 ? nullptr : table_for(clamp(isa))->vec_dot[i];
}

QuantizeActFn quantize_act_fn(TensorType a, Isa isa) {
  const int i = slot(a);
  return i < 0 ? nullptr : table_for(clamp(isa))->quantize_act[i];
}

VecDotFn vec_dot_fn(TensorType w) {
  const int i = slot(w);
  return i < 0 ? nullptr : active_table().vec_dot[i];
}

QuantizeActFn quantize_act_fn(TensorType a) {
  const int i = slot(a);
  return i < 0 ? nullptr : active_table().quantize_act[i];
}

float dot_f32(const float* a, const float* b, int64_t n) { return active_table().dot_f32(a, b, n); }
void axpy_f32(float s, const float* x, float* y, int64_t n) { active_table().axpy_f32(s, x, y, n); }
void axpy_f16(float s, const uint16_t* x, float* y, int64_t n) { active_table().axpy_f16(s, x, y, n); }
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) { active_table().f16_to_f32(src, dst, n); }
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) { active_table().f32_to_f16(src, dst, n); }
void swiglu(float* gate, const float* up, int64_t n) { active_table().swiglu(gate, up, n); }
float softmax_exp(float* x, int64_t n, float max) { return active_table().softmax_exp(x, n, max); }
void scale_mul(float* x, float s, const float* g, int64_t n) { active_table().scale_mul(x, s, g, n); }

}  // namespace tars::engine::cpu
