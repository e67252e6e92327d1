#pragma once
// The CPU backend's encoder operations (BERT): bidirectional attention over
// packed sequences, exact (erf) GELU, and mean pooling per sequence.
// backend_cpu.cpp calls these. Attention is built from existing kernels, not
// a new one: per (input, head) as two packed float products (gemm_f_pack /
// gemm_f_run, the matmul's kernels) where the level has them, else per token
// with the decoder's KernelTable::attn_group.

#include <cstdint>

#include "engine/backend.h"
#include "engine/thread_pool.h"

namespace tars::engine::cpu {

// Backend::attention_packed: token t of sequence s attends to every row of s
// (rows start[s] .. start[s+1]-1 of k and v), and to nothing else. The two
// paths differ only in float summation order (tests hold both to a double
// reference).
void attention_packed(ThreadPool& pool, const float* q, const float* k, const float* v,
                      const SeqLayout& s, const AttentionParams& p, float* out);

// x[i] = 0.5 x (1 + erf(x / sqrt 2)) over n floats. erf comes from a
// rational approximation (absolute error below 4e-7 in float arithmetic),
// written so the compiler vectorizes the loop: std::erf per element would
// cost a fifth of a MiniLM forward pass.
void gelu_erf(float* x, int64_t n);

// Backend::seq_mean: out[i] = mean of the rows of sequence i of x ([n x d]).
// Sums in double, so a 512-token sequence loses nothing to rounding.
void seq_mean(const float* x, const SeqLayout& s, int d, float* out);

}  // namespace tars::engine::cpu
