#pragma once
// Tensor element types as GGUF numbers them (ggml_type). The numbering is part
// of the file format: never renumber. Block layouts live in quant.h.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tars::engine {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct TensorTypeTraits {
  std::string_view name;   // "F32", "Q4_K", ...
  uint32_t block_elems;    // elements per block (1 for plain types)
  uint32_t block_bytes;    // bytes per block
  bool supported;          // tars can dequantize / compute with it
};

// Traits of a type in the enum above; nullopt for any other number (one GGUF
// does not define, or one tars has no block layout for, such as the IQ types).
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type);
std::string_view tensor_type_name(TensorType type);
// Case-insensitive ("q4_k" finds kQ4_K); nullopt for a name not in the table.
std::optional<TensorType> tensor_type_from_name(std::string_view name);
// The name of a type number GGUF defines (or once defined) but tars has no
// traits for ("IQ2_XXS" for 16); empty for a number nobody defines. For
// error messages only.
std::string_view tensor_type_foreign_name(uint32_t type);

// Bytes that `n_elems` elements (a multiple of the block size) take;
// nullopt when n_elems is not a whole number of blocks or overflows.
std::optional<uint64_t> tensor_type_row_bytes(TensorType type, uint64_t n_elems);

}  // namespace tars::engine
