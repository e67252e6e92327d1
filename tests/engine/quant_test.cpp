// Quantized block formats (engine/quant.h): geometry and errors, hand-built
// blocks whose values are worked out by hand from the format description,
// and random blocks decoded element by element by an independent decoder in
// double precision. Together these pin the layouts independently of the
// fixtures (tests/model/quant_reference_test.cpp checks those).
// Round-trip error bounds are in quant_roundtrip_test.cpp.

#include "engine/quant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/half.h"
#include "engine/tensor_type.h"

namespace tars::engine {
namespace {

const TensorType kBlockTypes[] = {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0,
                                  TensorType::kQ5_1, TensorType::kQ8_0, TensorType::kQ8_1,
                                  TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K,
                                  TensorType::kQ8_K};

std::string name(TensorType t) { return std::string(tensor_type_name(t)); }

template <typename Block>
std::vector<float> dequant(TensorType t, const Block& b) {
  const QuantBlockInfo info = quant_block_info(t);
  EXPECT_EQ(info.block_bytes, sizeof(Block));
  std::vector<float> y(info.block_elems, NAN);
  dequantize_row(t, &b, y.data(), info.block_elems);
  return y;
}

// ---- geometry and errors ----

TEST(Quant, GeometryMatchesTensorTypeTable) {
  for (TensorType t : kBlockTypes) {
    const auto traits = tensor_type_traits(static_cast<uint32_t>(t));
    ASSERT_TRUE(traits) << name(t);
    const QuantBlockInfo info = quant_block_info(t);
    EXPECT_EQ(info.block_elems, traits->block_elems) << name(t);
    EXPECT_EQ(info.block_bytes, traits->block_bytes) << name(t);
    EXPECT_EQ(quant_row_bytes(t, 4096), *tensor_type_row_bytes(t, 4096)) << name(t);
    EXPECT_TRUE(quant_supported(t));
  }
  EXPECT_EQ(quant_row_bytes(TensorType::kF32, 10), 40u);
  EXPECT_EQ(quant_row_bytes(TensorType::kF16, 10), 20u);
  EXPECT_EQ(quant_row_bytes(TensorType::kBF16, 10), 20u);
  EXPECT_EQ(quant_row_bytes(TensorType::kQ4_0, 64), 36u);
  EXPECT_EQ(quant_row_bytes(TensorType::kQ4_K, 512), 288u);
  EXPECT_EQ(quant_row_bytes(TensorType::kQ6_K, 0), 0u);
}

TEST(Quant, RowsThatAreNotWholeBlocksAreRefused) {
  float f[512] = {};
  uint8_t b[1024] = {};
  try {
    quant_row_bytes(TensorType::kQ4_0, 33);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("Q4_0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("33"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dequantize_row(TensorType::kQ4_K, b, f, 128), Error);
  EXPECT_THROW(quantize_row(TensorType::kQ8_0, f, b, 48), Error);
  EXPECT_THROW(quantize_row(TensorType::kQ8_0, f, b, -32), Error);
}

TEST(Quant, TypesWithoutAConverterAreRefused) {
  float f[256] = {};
  uint8_t b[1024] = {};
  for (TensorType t : {TensorType::kQ2_K, TensorType::kQ3_K, TensorType::kI8, TensorType::kF64}) {
    EXPECT_FALSE(quant_supported(t));
    try {
      dequantize_row(t, b, f, 256);
      FAIL() << name(t);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      EXPECT_NE(std::string(e.what()).find(name(t)), std::string::npos) << e.what();
    }
    EXPECT_THROW(quantize_row(t, f, b, 256), Error);
  }
}

// ---- hand-built blocks ----
// FP16 bits used below: 0x3c00 = 1, 0x3800 = 0.5, 0x3400 = 0.25,
// 0x3000 = 0.125, 0x4000 = 2, 0x3e00 = 1.5, 0xbc00 = -1, 0x4900 = 10.

TEST(Quant, HandBuiltQ4_0) {
  BlockQ4_0 b{};
  b.d = 0x3800;  // 0.5
  std::memset(b.qs, 0x88, sizeof b.qs);  // every element q = 8 -> 0
  b.qs[0] = 0x1f;  // element 0: q = 15 -> (15-8)*0.5 = 3.5; element 16: q = 1 -> -3.5
  b.qs[1] = 0x80;  // element 1: q = 0 -> -4; element 17: q = 8 -> 0
  b.qs[15] = 0xc8;  // element 15: 0; element 31: q = 12 -> 2
  std::vector<float> want(32, 0.0f);
  want[0] = 3.5f;
  want[16] = -3.5f;
  want[1] = -4.0f;
  want[31] = 2.0f;
  EXPECT_EQ(dequant(TensorType::kQ4_0, b), want);
}

TEST(Quant, HandBuiltQ4_1) {
  BlockQ4_1 b{};
  b.d = 0x3400;  // 0.25
  b.m = 0xbc00;  // -1
  b.qs[0] = 0xf0;  // element 0: 0*0.25-1 = -1; element 16: 15*0.25-1 = 2.75
  b.qs[2] = 0x37;  // element 2: 7*0.25-1 = 0.75; element 18: 3*0.25-1 = -0.25
  std::vector<float> want(32, -1.0f);  // q = 0 everywhere else
  want[16] = 2.75f;
  want[2] = 0.75f;
  want[18] = -0.25f;
  EXPECT_EQ(dequant(TensorType::kQ4_1, b), want);
}

TEST(Quant, HandBuiltQ5_0) {
  BlockQ5_0 b{};
  b.d = 0x4000;  // 2
  // qh as a little-endian uint32: bits 0, 5 and 16 set.
  const uint32_t qh = (1u << 0) | (1u << 5) | (1u << 16);
  std::memcpy(b.qh, &qh, 4);
  b.qs[0] = 0x3f;  // element 0: 15|16 = 31 -> (31-16)*2 = 30; element 16: 3|16 = 19 -> 6
  // element 5: 0|16 = 16 -> 0; element 21: 0 -> -32 (like every other element)
  std::vector<float> want(32, -32.0f);
  want[0] = 30.0f;
  want[16] = 6.0f;
  want[5] = 0.0f;
  EXPECT_EQ(dequant(TensorType::kQ5_0, b), want);
}

TEST(Quant, HandBuiltQ5_1) {
  BlockQ5_1 b{};
  b.d = 0x3800;  // 0.5
  b.m = 0x4900;  // 10
  const uint32_t qh = 1u << 31;  // 5th bit of element 31
  std::memcpy(b.qh, &qh, 4);
  b.qs[15] = 0x21;  // element 15: 1 -> 10.5; element 31: 2|16 = 18 -> 9 + 10 = 19
  std::vector<float> want(32, 10.0f);
  want[15] = 10.5f;
  want[31] = 19.0f;
  EXPECT_EQ(dequant(TensorType::kQ5_1, b), want);
}

TEST(Quant, HandBuiltQ8_0AndQ8_1) {
  BlockQ8_0 b{};
  b.d = 0x3000;  // 0.125
  b.qs[0] = -127;  // -15.875
  b.qs[31] = 64;   // 8
  b.qs[7] = -128;  // -16 (readable even though our quantizer never writes it)
  std::vector<float> want(32, 0.0f);
  want[0] = -15.875f;
  want[31] = 8.0f;
  want[7] = -16.0f;
  EXPECT_EQ(dequant(TensorType::kQ8_0, b), want);

  BlockQ8_1 c{};
  c.d = 0x3e00;  // 1.5
  c.s = 0x7bff;  // the sum field is not used to dequantize
  c.qs[3] = -2;  // -3
  c.qs[30] = 5;  // 7.5
  std::vector<float> want1(32, 0.0f);
  want1[3] = -3.0f;
  want1[30] = 7.5f;
  EXPECT_EQ(dequant(TensorType::kQ8_1, c), want1);
}

// Scales shared by the Q4_K and Q5_K blocks: d = 1, dmin = 0.5 and
//   sub-block 0: sc = 1,  mn = 2   (bytes 0 and 4, low 6 bits)
//   sub-block 1: sc = 3,  mn = 4   (bytes 1 and 5, low 6 bits)
//   sub-block 5: sc = 33 = 0b10'0001, mn = 31 = 0b01'1111: low 4 bits in
//                byte 9 (sc low nibble, mn high nibble), top 2 bits in the
//                top bits of bytes 1 (sc: 0b10) and 5 (mn: 0b01)
//   all other sub-blocks: sc = mn = 0.
void fill_k_scales(uint16_t* d, uint16_t* dmin, uint8_t* scales) {
  *d = 0x3c00;
  *dmin = 0x3800;
  std::memset(scales, 0, kQuantKScales);
  scales[0] = 1;
  scales[4] = 2;
  scales[1] = 0x80 | 3;
  scales[5] = 0x40 | 4;
  scales[9] = 0xf1;
}

TEST(Quant, HandBuiltQ4_K) {
  BlockQ4_K b{};
  fill_k_scales(&b.d, &b.dmin, b.scales);
  b.qs[0] = 0x7a;   // element 0 (sub-block 0): 1*10 - 0.5*2 = 9; element 32 (sub 1): 3*7 - 2 = 19
  b.qs[64] = 0xf0;  // element 128 (sub 4): 0; element 160 (sub 5): 33*15 - 0.5*31 = 479.5
  std::vector<float> want(256, 0.0f);
  for (int i = 0; i < 32; ++i) want[i] = -1.0f;          // q = 0: -dmin*mn = -1
  for (int i = 32; i < 64; ++i) want[i] = -2.0f;         // -0.5*4
  for (int i = 160; i < 192; ++i) want[i] = -15.5f;      // -0.5*31
  want[0] = 9.0f;
  want[32] = 19.0f;
  want[160] = 479.5f;
  EXPECT_EQ(dequant(TensorType::kQ4_K, b), want);
}

TEST(Quant, HandBuiltQ5_K) {
  BlockQ5_K b{};
  fill_k_scales(&b.d, &b.dmin, b.scales);
  b.qs[0] = 0x7a;
  b.qh[0] = 0x01;  // bit 0 (sub-block 0) of byte 0: element 0 gets q = 10 + 16 = 26
  b.qh[1] = 0x20;  // bit 5 (sub-block 5) of byte 1: element 64*2 + 32 + 1 = 161 gets q = 16
  std::vector<float> want(256, 0.0f);
  for (int i = 0; i < 32; ++i) want[i] = -1.0f;
  for (int i = 32; i < 64; ++i) want[i] = -2.0f;
  for (int i = 160; i < 192; ++i) want[i] = -15.5f;
  want[0] = 25.0f;     // 1*26 - 1
  want[32] = 19.0f;    // 3*7 - 2
  want[161] = 512.5f;  // 33*16 - 15.5
  EXPECT_EQ(dequant(TensorType::kQ5_K, b), want);
}

TEST(Quant, HandBuiltQ6_K) {
  BlockQ6_K b{};
  b.d = 0x3800;  // 0.5
  b.scales[0] = 2;      // elements 0..15
  b.scales[2] = -3;     // elements 32..47
  b.scales[4] = 5;      // elements 64..79
  b.scales[6] = 1;      // elements 96..111
  b.scales[9] = 4;      // elements 144..159
  b.scales[15] = -128;  // elements 240..255
  // With ql = qh = 0 every element has q = -32: y = 0.5 * sc * -32 = -16 * sc.
  std::vector<float> want(256);
  for (int i = 0; i < 256; ++i) want[i] = -16.0f * b.scales[i / 16];
  // First half, l = 0: ql[0] = 0xA5, ql[32] = 0x03, qh[0] = 0b11'01'10'01.
  b.ql[0] = 0xa5;
  b.ql[32] = 0x03;
  b.qh[0] = 0xd9;
  want[0] = 0.5f * 2 * ((5 | 1 << 4) - 32);    // -11
  want[32] = 0.5f * -3 * ((3 | 2 << 4) - 32);  // -4.5
  want[64] = 0.5f * 5 * ((10 | 1 << 4) - 32);  // -15
  want[96] = 0.5f * 1 * ((0 | 3 << 4) - 32);   // 8
  // Second half (ql += 64, qh += 32): element 150 = 128 + 22, first quarter.
  b.ql[64 + 22] = 0x0f;
  b.qh[32 + 22] = 0x03;
  want[150] = 0.5f * 4 * 31;  // 62
  EXPECT_EQ(want[0], -11.0f);
  EXPECT_EQ(want[96], 8.0f);
  EXPECT_EQ(want[255], 2048.0f);  // 0.5 * -128 * -32
  EXPECT_EQ(dequant(TensorType::kQ6_K, b), want);
}

TEST(Quant, HandBuiltQ8_K) {
  BlockQ8_K b{};
  b.d = 0.25f;  // a float, not FP16
  b.qs[0] = 100;
  b.qs[255] = -128;
  std::vector<float> want(256, 0.0f);
  want[0] = 25.0f;
  want[255] = -32.0f;
  EXPECT_EQ(dequant(TensorType::kQ8_K, b), want);
}

// ---- random blocks against a double-precision decoder ----
//
// ref_value decodes element i of one block straight from the format
// description, in double. Every value it forms is exact in double (products
// of at most 11 + 7 + 5 significant bits, sums spanning at most 51 bits), so
// rounding it once to float gives the correctly rounded value, which is what
// dequantize_row must return, bit for bit.

double h(const uint8_t* p) {  // FP16 at p
  uint16_t v;
  std::memcpy(&v, p, 2);
  return fp16_to_fp32(v);
}

int nibble(uint8_t byte, bool high) { return high ? byte >> 4 : byte & 15; }

// 6-bit scale (which = 0) or min (which = 1) of sub-block j of Q4_K / Q5_K:
// the first four of each are the low 6 bits of bytes 0-3 (scales) and 4-7
// (mins); the last four take their low 4 bits from the nibbles of bytes
// 8-11 (scale low, min high) and their top 2 bits from the top 2 bits of
// bytes 0-3 (scales) or 4-7 (mins).
int k_six_bit(const uint8_t* s, int j, int which) {
  if (j < 4) return s[j + 4 * which] & 63;
  return nibble(s[8 + j - 4], which == 1) | (s[j - 4 + 4 * which] >> 6) << 4;
}

double ref_value(TensorType t, const uint8_t* b, int i) {
  switch (t) {
    case TensorType::kQ4_0:
      return (nibble(b[2 + i % 16], i >= 16) - 8) * h(b);
    case TensorType::kQ4_1:
      return nibble(b[4 + i % 16], i >= 16) * h(b) + h(b + 2);
    case TensorType::kQ5_0: {
      const int hi = (b[2 + i / 8] >> (i % 8)) & 1;  // bit i of the 32-bit qh
      return ((nibble(b[6 + i % 16], i >= 16) | hi << 4) - 16) * h(b);
    }
    case TensorType::kQ5_1: {
      const int hi = (b[4 + i / 8] >> (i % 8)) & 1;
      return (nibble(b[8 + i % 16], i >= 16) | hi << 4) * h(b) + h(b + 2);
    }
    case TensorType::kQ8_0:
      return static_cast<int8_t>(b[2 + i]) * h(b);
    case TensorType::kQ8_1:
      return static_cast<int8_t>(b[4 + i]) * h(b);
    case TensorType::kQ4_K:
    case TensorType::kQ5_K: {
      const int j = i / 32;  // sub-block
      const bool five = t == TensorType::kQ5_K;
      const uint8_t* qs = b + 16 + (five ? 32 : 0);
      int q = nibble(qs[32 * (i / 64) + i % 32], j % 2 == 1);
      if (five) q |= ((b[16 + i % 32] >> j) & 1) << 4;  // bit j of qh[i % 32]
      return h(b) * k_six_bit(b + 4, j, 0) * q - h(b + 2) * k_six_bit(b + 4, j, 1);
    }
    case TensorType::kQ6_K: {
      const int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
      const uint8_t* ql = b + 64 * half;
      const uint8_t* qh = b + 128 + 32 * half;
      const int lo = nibble(ql[l + 32 * (quarter % 2)], quarter >= 2);
      const int hi = (qh[l] >> (2 * quarter)) & 3;
      const int8_t sc = static_cast<int8_t>(b[192 + i / 16]);
      return h(b + 208) * sc * ((lo | hi << 4) - 32);
    }
    case TensorType::kQ8_K: {
      float d;
      std::memcpy(&d, b, 4);
      return static_cast<double>(d) * static_cast<int8_t>(b[4 + i]);
    }
    default:
      ADD_FAILURE() << "no reference for " << name(t);
      return 0;
  }
}

// A random finite FP16 (any sign, subnormals included) at p.
void random_fp16(std::mt19937& rng, uint8_t* p) {
  uint16_t v;
  do {
    v = static_cast<uint16_t>(rng());
  } while ((v & 0x7c00) == 0x7c00);
  std::memcpy(p, &v, 2);
}

TEST(Quant, RandomBlocksMatchDoublePrecisionDecoder) {
  std::mt19937 rng(7);
  for (TensorType t : kBlockTypes) {
    const QuantBlockInfo info = quant_block_info(t);
    const int n_blocks = 400;
    std::vector<uint8_t> bytes(info.block_bytes * n_blocks);
    for (auto& byte : bytes) byte = static_cast<uint8_t>(rng());
    for (int k = 0; k < n_blocks; ++k) {
      uint8_t* b = bytes.data() + k * info.block_bytes;
      switch (t) {  // make the scale fields finite
        case TensorType::kQ4_1:
        case TensorType::kQ5_1:
        case TensorType::kQ8_1:
        case TensorType::kQ4_K:
        case TensorType::kQ5_K:
          random_fp16(rng, b + 2);
          [[fallthrough]];
        case TensorType::kQ4_0:
        case TensorType::kQ5_0:
        case TensorType::kQ8_0:
          random_fp16(rng, b);
          break;
        case TensorType::kQ6_K:
          random_fp16(rng, b + 208);
          break;
        case TensorType::kQ8_K: {
          const float d = std::ldexp(static_cast<float>(rng() % 1000 + 1), -static_cast<int>(rng() % 40));
          std::memcpy(b, &d, 4);
          break;
        }
        default:
          break;
      }
    }
    std::vector<float> y(info.block_elems * n_blocks);
    dequantize_row(t, bytes.data(), y.data(), static_cast<int64_t>(y.size()));
    int mismatches = 0;
    for (int k = 0; k < n_blocks; ++k) {
      for (int i = 0; i < info.block_elems; ++i) {
        const float want = static_cast<float>(ref_value(t, bytes.data() + k * info.block_bytes, i));
        const float got = y[k * info.block_elems + i];
        if (std::bit_cast<uint32_t>(want) != std::bit_cast<uint32_t>(got) && mismatches++ < 5) {
          ADD_FAILURE() << name(t) << " block " << k << " element " << i << ": got " << got
                        << ", want " << want;
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << name(t);
  }
}

TEST(Quant, PlainTypesConvert) {
  const float x[4] = {1.0f, -2.5f, 65504.0f, 0x1p-24f};
  uint16_t h16[4];
  quantize_row(TensorType::kF16, x, h16, 4);
  EXPECT_EQ(h16[0], 0x3c00);
  EXPECT_EQ(h16[1], 0xc100);
  EXPECT_EQ(h16[2], 0x7bff);
  EXPECT_EQ(h16[3], 0x0001);
  float y[4];
  dequantize_row(TensorType::kF16, h16, y, 4);
  EXPECT_EQ(std::vector<float>(y, y + 4), std::vector<float>(x, x + 4));
  uint16_t b16[4];
  quantize_row(TensorType::kBF16, x, b16, 4);
  EXPECT_EQ(b16[0], 0x3f80);
  EXPECT_EQ(b16[1], 0xc020);
  dequantize_row(TensorType::kBF16, b16, y, 4);
  EXPECT_EQ(y[1], -2.5f);
  EXPECT_EQ(y[2], 65536.0f);  // 65504 rounds to 65536 in BF16 (8 significant bits)
  float f32[4];
  quantize_row(TensorType::kF32, x, f32, 4);
  dequantize_row(TensorType::kF32, f32, y, 4);
  EXPECT_EQ(std::memcmp(x, y, sizeof x), 0);
}

}  // namespace
}  // namespace tars::engine
