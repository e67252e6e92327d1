#include "engine/tensor_type.h"

#include <array>
#include <limits>

namespace tars::engine {

namespace {

// One row per TensorType. Block layouts (bytes per block) follow the ggml
// block structs: e.g. Q4_0 = f16 scale + 32 4-bit values = 2 + 16 = 18;
// Q4_K = f16 d + f16 dmin + 12 bytes of 6-bit scales + 128 bytes of nibbles.
struct TypeRow {
  TensorType type;
  TensorTypeTraits traits;
};

constexpr std::array<TypeRow, 20> kTypeRows = {{
    {TensorType::kF32, {"F32", 1, 4, true}},
    {TensorType::kF16, {"F16", 1, 2, true}},
    {TensorType::kQ4_0, {"Q4_0", 32, 18, true}},
    {TensorType::kQ4_1, {"Q4_1", 32, 20, true}},
    {TensorType::kQ5_0, {"Q5_0", 32, 22, true}},
    {TensorType::kQ5_1, {"Q5_1", 32, 24, true}},
    {TensorType::kQ8_0, {"Q8_0", 32, 34, true}},
    {TensorType::kQ8_1, {"Q8_1", 32, 36, false}},
    {TensorType::kQ2_K, {"Q2_K", 256, 84, false}},
    {TensorType::kQ3_K, {"Q3_K", 256, 110, false}},
    {TensorType::kQ4_K, {"Q4_K", 256, 144, true}},
    {TensorType::kQ5_K, {"Q5_K", 256, 176, true}},
    {TensorType::kQ6_K, {"Q6_K", 256, 210, true}},
    {TensorType::kQ8_K, {"Q8_K", 256, 292, false}},
    {TensorType::kI8, {"I8", 1, 1, false}},
    {TensorType::kI16, {"I16", 1, 2, false}},
    {TensorType::kI32, {"I32", 1, 4, false}},
    {TensorType::kI64, {"I64", 1, 8, false}},
    {TensorType::kF64, {"F64", 1, 8, false}},
    {TensorType::kBF16, {"BF16", 1, 2, true}},
}};

// Type numbers GGUF defines (or once defined) that tars has no block layout
// for. Only used to word error messages: "IQ2_XXS is not supported" helps a
// user more than "unknown type 16".
struct ForeignRow {
  uint32_t number;
  std::string_view name;
};
constexpr std::array<ForeignRow, 20> kForeignRows = {{
    {4, "Q4_2"},     {5, "Q4_3"},     {16, "IQ2_XXS"},   {17, "IQ2_XS"},
    {18, "IQ3_XXS"}, {19, "IQ1_S"},   {20, "IQ4_NL"},    {21, "IQ3_S"},
    {22, "IQ2_S"},   {23, "IQ4_XS"},  {29, "IQ1_M"},     {31, "Q4_0_4_4"},
    {32, "Q4_0_4_8"}, {33, "Q4_0_8_8"}, {34, "TQ1_0"},   {35, "TQ2_0"},
    {36, "IQ4_NL_4_4"}, {37, "IQ4_NL_4_8"}, {38, "IQ4_NL_8_8"}, {39, "MXFP4"},
}};

}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type) {
  for (const auto& row : kTypeRows) {
    if (static_cast<uint32_t>(row.type) == type) return row.traits;
  }
  return std::nullopt;
}

std::string_view tensor_type_name(TensorType type) {
  auto t = tensor_type_traits(static_cast<uint32_t>(type));
  return t ? t->name : std::string_view("?");
}

std::optional<TensorType> tensor_type_from_name(std::string_view name) {
  for (const auto& row : kTypeRows) {
    if (row.traits.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) {
      char c = name[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      same = c == row.traits.name[i];
    }
    if (same) return row.type;
  }
  return std::nullopt;
}

std::string_view tensor_type_foreign_name(uint32_t type) {
  for (const auto& row : kForeignRows) {
    if (row.number == type) return row.name;
  }
  return {};
}

std::optional<uint64_t> tensor_type_row_bytes(TensorType type, uint64_t n_elems) {
  auto t = tensor_type_traits(static_cast<uint32_t>(type));
  if (!t || n_elems % t->block_elems != 0) return std::nullopt;
  uint64_t blocks = n_elems / t->block_elems;
  if (blocks > std::numeric_limits<uint64_t>::max() / t->block_bytes) return std::nullopt;
  return blocks * t->block_bytes;
}

}  // namespace tars::engine
