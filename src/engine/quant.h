#pragma once
// Quantized block formats of GGUF, and the reference (scalar) conversions
// between them and float.
//
// A quantized row is a sequence of blocks; each block holds `block_elems`
// consecutive elements of the row as small integers plus one or more scales.
// The structs below are the exact on-disk layouts (little-endian, no padding)
// shared with every other GGUF tool: a tensor's bytes can be reinterpreted as
// an array of them. FP16 fields are kept as raw uint16_t bits (see half.h).
//
// Two block sizes exist:
//   - "legacy" types (Q4_0 ... Q8_1): 32 elements, one FP16 scale (and min).
//   - k-quants (Q4_K, Q5_K, Q6_K, Q8_K): super-blocks of 256 elements split
//     into sub-blocks of 16 or 32 with their own small integer scales, which
//     are themselves scaled by an FP16 (or float) super-block scale.
//
// The dequantizers reproduce, bit for bit, the float values other GGUF tools
// compute (the fixtures in ../shared/models/reference/quant hold their
// sha256). Every product in them is exact in float, so each value is the
// correctly rounded result of its formula, whatever the operation order or
// FMA use (quant_internal.h explains); faster kernels must give the same bits.

#include <cstddef>
#include <cstdint>

#include "engine/tensor_type.h"

namespace tars::engine {

inline constexpr int kQuantBlock = 32;    // elements per legacy block (QK4_0 ... QK8_1)
inline constexpr int kQuantSuper = 256;   // elements per k-quant super-block (QK_K)
inline constexpr int kQuantKScales = 12;  // bytes of packed 6-bit scales/mins in Q4_K/Q5_K

// ---- legacy blocks: 32 elements --------------------------------------------
//
// Element order in the 4/5-bit types: byte qs[j] (j < 16) holds element j in
// its low nibble and element j + 16 in its high nibble.

// y = (q - 8) * d, q in 0..15.
struct BlockQ4_0 {
  uint16_t d;       // FP16 scale
  uint8_t qs[16];   // 4-bit quants: element j low nibble, j+16 high nibble
};

// y = q * d + m, q in 0..15.
struct BlockQ4_1 {
  uint16_t d;       // FP16 scale
  uint16_t m;       // FP16 offset (the block's minimum)
  uint8_t qs[16];   // 4-bit quants, as in Q4_0
};

// y = (q - 16) * d, q in 0..31: 4 low bits in qs, the 5th bit in qh.
struct BlockQ5_0 {
  uint16_t d;       // FP16 scale
  uint8_t qh[4];    // little-endian uint32: bit j is the 5th bit of element j
  uint8_t qs[16];   // low 4 bits: element j low nibble, j+16 high nibble
};

// y = q * d + m, q in 0..31.
struct BlockQ5_1 {
  uint16_t d;       // FP16 scale
  uint16_t m;       // FP16 offset (the block's minimum)
  uint8_t qh[4];    // little-endian uint32: bit j is the 5th bit of element j
  uint8_t qs[16];   // low 4 bits, as in Q5_0
};

// y = q * d, q in -127..127 (the quantizer never writes -128).
struct BlockQ8_0 {
  uint16_t d;       // FP16 scale
  int8_t qs[32];    // quants, in element order
};

// Q8_0 plus the block sum; used for activations in dot products with Q4_1 /
// Q5_1 (whose min term needs sum(x)).
struct BlockQ8_1 {
  uint16_t d;       // FP16 scale
  uint16_t s;       // FP16 d * sum(qs)
  int8_t qs[32];    // quants, in element order
};

// ---- k-quants: super-blocks of 256 elements ---------------------------------
//
// Q4_K / Q5_K: 8 sub-blocks of 32, each with a 6-bit scale sc and a 6-bit
// min mn: y = (d * sc) * q - (dmin * mn). The 16 six-bit numbers are packed
// into 12 bytes, for sub-block j:
//   j < 4:  sc = scales[j] & 63,                 mn = scales[j+4] & 63
//   j >= 4: sc = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
//           mn = (scales[j+4] >> 4) | (scales[j]   >> 6) << 4
// Quants come in 4 chunks of 64 elements: byte qs[32*c + l] holds element
// 64c + l (sub-block 2c) in its low nibble and element 64c + 32 + l
// (sub-block 2c+1) in its high nibble.

struct BlockQ4_K {
  uint16_t d;                     // FP16 super-block scale of the 6-bit scales
  uint16_t dmin;                  // FP16 super-block scale of the 6-bit mins
  uint8_t scales[kQuantKScales];  // packed 6-bit scales and mins (see above)
  uint8_t qs[128];                // 4-bit quants (see above)
};

// As Q4_K plus a 5th bit per element: bit 2c of qh[l] is the 5th bit of
// element 64c + l, bit 2c+1 that of element 64c + 32 + l (c = chunk 0..3).
struct BlockQ5_K {
  uint16_t d;                     // FP16 super-block scale of the 6-bit scales
  uint16_t dmin;                  // FP16 super-block scale of the 6-bit mins
  uint8_t scales[kQuantKScales];  // packed 6-bit scales and mins (as Q4_K)
  uint8_t qh[32];                 // 5th bits (see above)
  uint8_t qs[128];                // low 4 bits (as Q4_K)
};

// 16 sub-blocks of 16 with signed 8-bit scales: y = (d * scales[j]) * (q - 32),
// q in 0..63, j = element / 16. The super-block is two halves of 128; in half
// h (ql += 64h, qh += 32h), for l in 0..31:
//   element 128h + l      : ql[l]      low nibble, qh[l] bits 0-1
//   element 128h + l + 32 : ql[l + 32] low nibble, qh[l] bits 2-3
//   element 128h + l + 64 : ql[l]      high nibble, qh[l] bits 4-5
//   element 128h + l + 96 : ql[l + 32] high nibble, qh[l] bits 6-7
struct BlockQ6_K {
  uint8_t ql[128];    // low 4 bits of the quants (see above)
  uint8_t qh[64];     // high 2 bits of the quants (see above)
  int8_t scales[16];  // per-16-element scales
  uint16_t d;         // FP16 super-block scale
};

// Activations for k-quant dot products: y = d * q.
struct BlockQ8_K {
  float d;             // float scale (not FP16)
  int8_t qs[256];      // quants, in element order
  int16_t bsums[16];   // sum of qs over each group of 16 elements
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Block geometry of the types this module converts.
struct QuantBlockInfo {
  int64_t block_elems;  // elements per block (1 for F32/F16/BF16)
  size_t block_bytes;   // bytes per block
};

// True for F32, F16, BF16 and every quantized type above.
bool quant_supported(TensorType t);

// Geometry of a supported type. Throws tars::Error(kUnsupported) otherwise.
QuantBlockInfo quant_block_info(TensorType t);

// Bytes of a row of `n` elements. Throws tars::Error(kInvalidArgument) when
// n is negative or not a multiple of the block size, kUnsupported for a type
// this module does not convert.
size_t quant_row_bytes(TensorType t, int64_t n);

// Converts `n` elements (a whole number of blocks) from type `t` at `src` to
// float at `dst`. The reference implementation: scalar, and bit-exact with
// other GGUF tools. Throws like quant_row_bytes.
void dequantize_row(TensorType t, const void* src, float* dst, int64_t n);

// Converts `n` floats (a whole number of blocks) to type `t`. F16/BF16 round
// to nearest even. The legacy types round each element to the nearest level
// of a scale chosen from the block's range; the k-quants search their
// sub-block scales and mins to minimise the squared error. The scales are
// FP16, which bounds what the formats can hold: blocks whose values are
// beyond about 65504 * 127 (Q8_0) are clipped, and k-quant super-blocks whose
// values are all below about 1e-5 lose most of their precision (the FP16
// super-scale underflows); real weights are far from both. Non-finite inputs
// never crash, but give meaningless blocks. Throws like quant_row_bytes.
void quantize_row(TensorType t, const float* src, void* dst, int64_t n);

}  // namespace tars::engine
