#pragma once
// Row-interleaved weight panels: the layout the AVX-512 integer products
// read quantized weights in (kernels_cpu.h, "panels").
//
// A panel holds kGemmRows (16) consecutive rows of a weight matrix. Its
// quants are interleaved so that one 64-byte load gives 4 consecutive quants
// of each of the 16 rows: bytes 4r..4r+3 belong to row r. vpdpbusd of such a
// vector with 4 activation quants of one token (broadcast) adds 16 partial
// dot products at once. The bytes per weight stay those of the file type:
// the packing only moves bits (Q4_K/Q5_K +3%, their 6-bit scales unpacked).
//
// A panel is a sequence of units, one per block (legacy types, 32 elements)
// or super-block (k-quants, 256), laid out as below; "[16]" is one value per
// row, "q[a][b][16][4]" vectors of 16 rows x 4 bytes. Quant values are the
// unsigned codes of the file (0..15, 0..31, 0..63) except Q8_0, stored + 128;
// the product subtracts each type's offset through the activation sums
// (GemmActs::corr = -offset x block sum).
//
//   Q4_0  (288 B)  d[16] fp16 | qs[4][16][4]: qs[m] = bytes 4m..4m+3 of each
//                  row's qs (low nibbles: elements 4m.., high: 16+4m..)
//   Q4_1  (320 B)  d[16] | m[16] fp16 | qs as Q4_0
//   Q5_0  (352 B)  d[16] | h[8] u64 | qs as Q4_0; bit 4r+i of h[g] is the 5th
//                  bit of element 4g+i of row r
//   Q5_1  (384 B)  d[16] | m[16] | h[8] | qs
//   Q8_0  (544 B)  d[16] | q[8][16][4] = element 4g+i + 128
//   Q4_K (2368 B)  d[16] | dmin[16] fp16 | sc[8][16] | mn[8][16] u8 (6-bit
//                  values, sub-block j) | qs[4][8][16][4]: qs[c][g] = bytes
//                  32c+4g.. of each row's qs (low nibbles: sub-block 2c,
//                  elements 4g..; high: sub-block 2c+1)
//   Q5_K (2880 B)  as Q4_K, then h[8][8] u64: bit 4r+i of h[j][g] is the 5th
//                  bit of element 32j+4g+i of row r
//   Q6_K (3360 B)  d[16] fp16 | sc[16][16] i8 (sub-block j of 16) |
//                  ql[2][8][2][16][4]: ql[h][lg][s] = bytes 64h+32s+4lg.. |
//                  qh[2][8][16][4]: qh[h][lg] = bytes 32h+4lg.. of each row's qh
//                  (element 128h+32p+l: low bits ql[64h+32(p%2)+l] nibble p/2,
//                  high bits qh[32h+l] >> 2p)

#include <cstddef>
#include <cstdint>

#include "engine/tensor_type.h"

namespace tars::engine::cpu {

struct PanelLayout {
  int unit_elems;     // elements per unit: 32, or 256 for the k-quants
  size_t unit_bytes;  // bytes of one unit of a panel (16 rows)
  int offset;         // value the quant codes carry above the signed quant (0 with a min)
  int act_block;      // elements per activation scale block in the product (32, 16 for Q6_K)
};

// The layout of a type; false for a type without one.
bool panel_layout(TensorType t, PanelLayout* out);

}  // namespace tars::engine::cpu
