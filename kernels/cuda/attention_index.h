// Lane -> element maps of the fused attention kernels (kernels/cuda/attention.cu),
// written as plain constexpr functions usable from host and device code, so the
// host-only test (tests/cuda/test_attention.cpp) can check them against a
// direct model of ldmatrix and mma.m16n8k16 without a GPU.
//
// Notation as kernels/cuda/mma.cuh: lane 0..31, g = lane / 4, t = lane % 4.
// "reg" is a 32-bit fragment register, "half" its low (0) or high (1) 16 bits;
// for the f32 accumulator "c" is the float index 0..3.
#pragma once

#include <cstdint>

#include "kernels/cpu/philox.h"

#if defined(__CUDACC__)
#define GRAFT_ATTN_HD __host__ __device__ __forceinline__ constexpr
#define GRAFT_ATTN_HDI __host__ __device__ __forceinline__
#else
#define GRAFT_ATTN_HD inline constexpr
#define GRAFT_ATTN_HDI inline
#endif

namespace graft::kernels::cuda::attention_index {

// Shared-memory tiles are row-major 16-bit elements with rows padded by 8
// elements (16 bytes): a row of 32/64/128 elements then starts 4 banks
// further than the row above (mod 32 banks), so the 8 row addresses of one
// ldmatrix 8x8 matrix hit 8 disjoint groups of 4 banks (no conflicts), and
// every row start stays 16-byte aligned for cp.async and ldmatrix.
constexpr int kSmemPad = 8;

GRAFT_ATTN_HD int frag_g(int lane) { return lane >> 2; }
GRAFT_ATTN_HD int frag_t(int lane) { return lane & 3; }

// ---- mma.m16n8k16 fragments (mma.cuh) ----------------------------------------------------------
// C/D (16x8, f32): c 0,1 -> row g, cols 2t, 2t+1; c 2,3 -> row g+8.
GRAFT_ATTN_HD int c_row(int lane, int c) { return frag_g(lane) + 8 * (c >> 1); }
GRAFT_ATTN_HD int c_col(int lane, int c) { return 2 * frag_t(lane) + (c & 1); }
// A (16x16): reg 0 -> (g, 2t..), reg 1 -> (g+8, 2t..), reg 2 -> (g, 2t+8..), reg 3 -> (g+8, 2t+8..).
GRAFT_ATTN_HD int a_row(int lane, int reg) { return frag_g(lane) + 8 * (reg & 1); }
GRAFT_ATTN_HD int a_col(int lane, int reg, int half) { return 2 * frag_t(lane) + 8 * (reg >> 1) + half; }
// B (16x8, element (k, n)): reg 0 -> k 2t.., reg 1 -> k 2t+8..; n = g.
GRAFT_ATTN_HD int b_k(int lane, int reg, int half) { return 2 * frag_t(lane) + 8 * reg + half; }
GRAFT_ATTN_HD int b_n(int lane) { return frag_g(lane); }

// ---- accumulator re-used as an A operand (P in P.V, P^T and dS^T in the backward) -------------
// A 16 x (16 * kk_count) accumulator is held as n-tiles of 8 columns: tile j
// holds columns 8j..8j+7 in the C layout. The A operand of k-step kk (columns
// 16kk..16kk+15) register reg is pack2(C[tile][c], C[tile][c + 1]) with
//   tile = 2kk + (reg >> 1),  c = 2 * (reg & 1).
// Why this is exact: A reg `reg` half `h` holds row g + 8(reg&1), column
// 2t + 8(reg>>1) + h of the k-step; C float c of tile j holds row g + 8(c>>1),
// column 8j + 2t + (c&1). With j = 2kk + (reg>>1) and c = 2(reg&1) + h both
// give row g + 8(reg&1) and (absolute) column 16kk + 8(reg>>1) + 2t + h: each
// thread already owns, in registers, exactly the elements its A fragment
// needs, in the same low/high order. No shuffle, no shared memory.
GRAFT_ATTN_HD int c_to_a_tile(int kk, int reg) { return 2 * kk + (reg >> 1); }
GRAFT_ATTN_HD int c_to_a_float(int reg, int half) { return 2 * (reg & 1) + half; }

// ---- ldmatrix.x4 row addresses (lane l supplies the address of row l % 8 of matrix l / 8) -----
// A operand (16 rows x 16 k) from a row-major [row][k] tile, no transpose.
// Matrices: 0 = (rows 0-7, k 0-7), 1 = (rows 8-15, k 0-7), 2 = (rows 0-7, k 8-15),
// 3 = (rows 8-15, k 8-15) -> r[0..3] = a[0..3].
GRAFT_ATTN_HD int ldsm_a_row(int lane) { return lane & 15; }
GRAFT_ATTN_HD int ldsm_a_col(int lane) { return (lane >> 4) * 8; }

// B operands of TWO adjacent n-tiles (16 n x 16 k) from a tile stored [n][k]
// (K in Q.K^T: rows are keys, columns the head dimension), no transpose.
// Matrices: 0 = (n 0-7, k 0-7), 1 = (n 0-7, k 8-15), 2 = (n 8-15, k 0-7),
// 3 = (n 8-15, k 8-15) -> {r[0], r[1]} = b of n-tile 0, {r[2], r[3]} = b of n-tile 1.
// (Non-transposed: a thread receives stored row g, columns 2t, 2t+1 = B(k 2t.., n g).)
GRAFT_ATTN_HD int ldsm_bnk_n(int lane) { return ((lane >> 4) << 3) + (lane & 7); }
GRAFT_ATTN_HD int ldsm_bnk_k(int lane) { return ((lane >> 3) & 1) * 8; }

// B operands of TWO adjacent n-tiles from a tile stored [k][n] (V in P.V:
// rows are keys = k, columns the head dimension = n), with .trans.
// Matrices: 0 = (k 0-7, n 0-7), 1 = (k 8-15, n 0-7), 2 = (k 0-7, n 8-15),
// 3 = (k 8-15, n 8-15) -> {r[0], r[1]} = b of n-tile 0, {r[2], r[3]} = b of n-tile 1.
// (Transposed: a thread receives stored rows 2t, 2t+1 of column g = B(k 2t.., n g).)
GRAFT_ATTN_HD int ldsm_bkn_k(int lane) { return (((lane >> 3) & 1) << 3) + (lane & 7); }
GRAFT_ATTN_HD int ldsm_bkn_n(int lane) { return (lane >> 4) * 8; }

// A operand (16 m x 16 k) from a tile stored [k][m] (dS^T stored [key][query],
// read as dS = A with m = query, k = key), with .trans.
// Matrices: 0 = (m 0-7, k 0-7), 1 = (m 8-15, k 0-7), 2 = (m 0-7, k 8-15),
// 3 = (m 8-15, k 8-15) -> r[0..3] = a[0..3]; matrix i is stored at
// k rows 8(i >> 1).., m columns 8(i & 1)..
GRAFT_ATTN_HD int ldsm_akm_k(int lane) { return ((lane >> 4) << 3) + (lane & 7); }
GRAFT_ATTN_HD int ldsm_akm_m(int lane) { return ((lane >> 3) & 1) * 8; }

// ---- dropout -----------------------------------------------------------------------------------
// Flat index of probability (bh, i, j) in the (B*H, Sq, Sk) tensor: the element
// cpu::dropout_forward would draw for it (Philox block offset + e / 4, lane e % 4).
GRAFT_ATTN_HD uint64_t dropout_element(int64_t bh, int64_t seq_q, int64_t seq_k, int64_t i, int64_t j) {
  return static_cast<uint64_t>((bh * seq_q + i) * seq_k + j);
}

GRAFT_ATTN_HDI uint32_t philox_lane(const Philox4& r, uint32_t lane) {
  return lane == 0 ? r.v[0] : lane == 1 ? r.v[1] : lane == 2 ? r.v[2] : r.v[3];  // no run-time array index
}
// Keep decision of flat element e: uniform(block offset + e/4, lane e%4) >= p.
GRAFT_ATTN_HDI bool dropout_keep(uint64_t seed, uint64_t offset, uint64_t e, float p) {
  const Philox4 r = philox_block(seed, offset + (e >> 2));
  return philox_uniform(philox_lane(r, static_cast<uint32_t>(e & 3))) >= p;
}
// Decisions of elements e and e + 1 from one Philox block unless e % 4 == 3
// (then e + 1 is lane 0 of the next block).
GRAFT_ATTN_HDI void dropout_keep2(uint64_t seed, uint64_t offset, uint64_t e, float p, bool& k0, bool& k1) {
  const Philox4 r = philox_block(seed, offset + (e >> 2));
  const uint32_t l = static_cast<uint32_t>(e & 3);
  k0 = philox_uniform(philox_lane(r, l)) >= p;
  if (l == 3) {
    k1 = philox_uniform(philox_block(seed, offset + (e >> 2) + 1).v[0]) >= p;
  } else {
    k1 = philox_uniform(philox_lane(r, l + 1)) >= p;
  }
}

}  // namespace graft::kernels::cuda::attention_index
