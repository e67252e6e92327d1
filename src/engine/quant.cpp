// Dispatch of dequantize_row / quantize_row by tensor type, and the plain
// types (F32, F16, BF16). The block converters live in quant_legacy.cpp and
// quant_k.cpp.

#include "engine/quant.h"

#include <cstring>
#include <string>

#include "common/error.h"
#include "engine/half.h"
#include "engine/quant_internal.h"

namespace tars::engine {

namespace qd = quant_detail;

namespace {

// "Q4_K (type 12)": the name when GGUF defines one, always the number.
std::string type_label(TensorType t) {
  return std::string(tensor_type_name(t)) + " (type " + std::to_string(static_cast<uint32_t>(t)) +
         ")";
}

// Number of blocks in a row of n elements, after checking n.
int64_t row_blocks(TensorType t, int64_t n, const char* what) {
  const QuantBlockInfo info = quant_block_info(t);
  if (n < 0 || n % info.block_elems != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + ": a row of " + std::to_string(n) + " elements is not a " +
                    "whole number of " + std::to_string(info.block_elems) + "-element blocks of " +
                    type_label(t));
  }
  return n / info.block_elems;
}

}  // namespace

bool quant_supported(TensorType t) {
  switch (t) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
    case TensorType::kQ4_0:
    case TensorType::kQ4_1:
    case TensorType::kQ5_0:
    case TensorType::kQ5_1:
    case TensorType::kQ8_0:
    case TensorType::kQ8_1:
    case TensorType::kQ4_K:
    case TensorType::kQ5_K:
    case TensorType::kQ6_K:
    case TensorType::kQ8_K:
      return true;
    default:
      return false;
  }
}

QuantBlockInfo quant_block_info(TensorType t) {
  switch (t) {
    case TensorType::kF32: return {1, 4};
    case TensorType::kF16: return {1, 2};
    case TensorType::kBF16: return {1, 2};
    case TensorType::kQ4_0: return {kQuantBlock, sizeof(BlockQ4_0)};
    case TensorType::kQ4_1: return {kQuantBlock, sizeof(BlockQ4_1)};
    case TensorType::kQ5_0: return {kQuantBlock, sizeof(BlockQ5_0)};
    case TensorType::kQ5_1: return {kQuantBlock, sizeof(BlockQ5_1)};
    case TensorType::kQ8_0: return {kQuantBlock, sizeof(BlockQ8_0)};
    case TensorType::kQ8_1: return {kQuantBlock, sizeof(BlockQ8_1)};
    case TensorType::kQ4_K: return {kQuantSuper, sizeof(BlockQ4_K)};
    case TensorType::kQ5_K: return {kQuantSuper, sizeof(BlockQ5_K)};
    case TensorType::kQ6_K: return {kQuantSuper, sizeof(BlockQ6_K)};
    case TensorType::kQ8_K: return {kQuantSuper, sizeof(BlockQ8_K)};
    default:
      throw Error(ErrorCode::kUnsupported,
                  "tensor type " + type_label(t) + " cannot be converted to or from float by tars");
  }
}

size_t quant_row_bytes(TensorType t, int64_t n) {
  return static_cast<size_t>(row_blocks(t, n, "quant_row_bytes")) * quant_block_info(t).block_bytes;
}

void dequantize_row(TensorType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = row_blocks(t, n, "dequantize_row");
  switch (t) {
    case TensorType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case TensorType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case TensorType::kQ4_0: return qd::dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case TensorType::kQ4_1: return qd::dequantize_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case TensorType::kQ5_0: return qd::dequantize_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case TensorType::kQ5_1: return qd::dequantize_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case TensorType::kQ8_0: return qd::dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case TensorType::kQ8_1: return qd::dequantize_q8_1(static_cast<const BlockQ8_1*>(src), dst, nb);
    case TensorType::kQ4_K: return qd::dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
    case TensorType::kQ5_K: return qd::dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb);
    case TensorType::kQ6_K: return qd::dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
    case TensorType::kQ8_K: return qd::dequantize_q8_k(static_cast<const BlockQ8_K*>(src), dst, nb);
    default: break;  // quant_block_info already threw
  }
}

void quantize_row(TensorType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = row_blocks(t, n, "quantize_row");
  switch (t) {
    case TensorType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case TensorType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
      return;
    }
    case TensorType::kQ4_0: return qd::quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case TensorType::kQ4_1: return qd::quantize_q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
    case TensorType::kQ5_0: return qd::quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case TensorType::kQ5_1: return qd::quantize_q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
    case TensorType::kQ8_0: return qd::quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case TensorType::kQ8_1: return qd::quantize_q8_1(src, static_cast<BlockQ8_1*>(dst), nb);
    case TensorType::kQ4_K: return qd::quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
    case TensorType::kQ5_K: return qd::quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), nb);
    case TensorType::kQ6_K: return qd::quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
    case TensorType::kQ8_K: return qd::quantize_q8_k(src, static_cast<BlockQ8_K*>(dst), nb);
    default: break;
  }
}

}  // namespace tars::engine
