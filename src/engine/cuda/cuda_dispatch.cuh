#pragma once
// Host-side dispatch from a run-time TensorType to a kernel template.
#include <type_traits>

#include "engine/tensor_type.h"

namespace tars::engine::cuda {

template <TensorType T>
using TypeTag = std::integral_constant<TensorType, T>;

// Calls f(TypeTag<T>{}) for the supported weight type t; returns false for
// any other type (the caller reports it).
template <class F>
bool dispatch_weight_type(TensorType t, F&& f) {
  switch (t) {
    case TensorType::kF32: f(TypeTag<TensorType::kF32>{}); return true;
    case TensorType::kF16: f(TypeTag<TensorType::kF16>{}); return true;
    case TensorType::kBF16: f(TypeTag<TensorType::kBF16>{}); return true;
    case TensorType::kQ4_0: f(TypeTag<TensorType::kQ4_0>{}); return true;
    case TensorType::kQ4_1: f(TypeTag<TensorType::kQ4_1>{}); return true;
    case TensorType::kQ5_0: f(TypeTag<TensorType::kQ5_0>{}); return true;
    case TensorType::kQ5_1: f(TypeTag<TensorType::kQ5_1>{}); return true;
    case TensorType::kQ8_0: f(TypeTag<TensorType::kQ8_0>{}); return true;
    case TensorType::kQ4_K: f(TypeTag<TensorType::kQ4_K>{}); return true;
    case TensorType::kQ5_K: f(TypeTag<TensorType::kQ5_K>{}); return true;
    case TensorType::kQ6_K: f(TypeTag<TensorType::kQ6_K>{}); return true;
    default: return false;
  }
}

__host__ __device__ constexpr bool is_plain_type(TensorType t) {
  return t == TensorType::kF32 || t == TensorType::kF16 || t == TensorType::kBF16;
}

// Blocks of `threads` covering n items, capped (kernels grid-stride the rest).
inline unsigned grid_for(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 16) b = 65535LL * 16;
  return static_cast<unsigned>(b);
}

}  // namespace tars::engine::cuda
