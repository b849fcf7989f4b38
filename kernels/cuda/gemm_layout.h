// The index arithmetic of the tensor-core GEMM (kernels/cuda/gemm.cu), as
// constexpr functions that compile for the host too, so that
// tests/cuda/test_gemm.cpp can check them on a machine without a GPU:
// shared-memory tile layouts and their padding, the row address each lane
// hands to ldmatrix, the mma.sync fragment-to-element maps (as documented in
// kernels/cuda/mma.cuh), the cp.async chunk assignment, and the order in which
// CTAs walk the output tiles. Plain C++ (no CUDA headers).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GRAFT_GEMM_HD __host__ __device__
#else
#define GRAFT_GEMM_HD
#endif

namespace graft::kernels::cuda::gemm_layout {

// ---- shared-memory tile of one operand, one pipeline stage ---------------------------------
// An operand tile covers kMN indices of the "outer" dimension (m for A, n for
// B) by kBK indices of k. It is stored the way the operand lies in global
// memory, so that every cp.async copies 16 contiguous bytes:
//  - k-contiguous (A not transposed, B transposed): kMN rows of kBK elements,
//    element (mn, k) at mn * pitch + k; fragments come from plain ldmatrix;
//  - mn-contiguous (A transposed, B not transposed): kBK rows of kMN elements,
//    element (mn, k) at k * pitch + mn; fragments come from ldmatrix.trans.
// Rows are padded by 16 bytes (k-contiguous) or 8 elements (mn-contiguous) so
// that the reads below hit distinct banks (checked by the host test):
//  - ldmatrix: each 8-address phase reads 8 rows of 16 bytes; with a pitch of
//    80 bytes (k-contig, 16-bit: 32 + 8 elements) the rows start in 16-byte
//    bank groups 5r mod 8, with 272 bytes (mn-contig, 128 + 8) in 17r mod 8,
//    with 144 bytes (64 + 8) in 9r mod 8: all 8 distinct;
//  - TF32 LDS of 4-byte words (a[i] = A[g][t] etc.): k-contig pitch 20 words
//    puts lane (g, t) in bank 20g + t mod 32, mn-contig pitch 136 (or 72)
//    words in bank 8t + g mod 32: 32 distinct banks either way.
template <int kMN, int kBK, int kElemBytes, bool kKContig>
struct SmemTile {
  static constexpr bool kKContiguous = kKContig;
  static constexpr int kChunkElems = 16 / kElemBytes;             // elements per 16-byte cp.async
  static constexpr int kPad = kKContig ? kChunkElems : 8;         // elements
  static constexpr int kRows = kKContig ? kMN : kBK;              // rows as stored
  static constexpr int kCols = kKContig ? kBK : kMN;              // contiguous extent of a row
  static constexpr int kPitch = kCols + kPad;                     // elements between rows
  static constexpr int kElems = kRows * kPitch;                   // one stage
  static constexpr int kBytes = kElems * kElemBytes;
  static constexpr int kChunksPerRow = kCols / kChunkElems;
  static constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kElemBytes == 2 || kElemBytes == 4, "16-bit or 32-bit elements");
  static_assert(kCols % kChunkElems == 0, "a row is a whole number of 16-byte chunks");
  static_assert((kPitch * kElemBytes) % 16 == 0, "every row starts 16-byte aligned (cp.async, ldmatrix)");
  static_assert(kMN % 16 == 0 && kBK % 16 == 0, "tiles are whole 16x16 blocks");

  GRAFT_GEMM_HD static constexpr int offset(int mn, int k) { return kKContig ? mn * kPitch + k : k * kPitch + mn; }

  // The element offset whose address lane `lane` gives to ldmatrix.x4 (plain
  // for k-contiguous, .trans for mn-contiguous) to load the 16 (mn) x 16 (k)
  // block at (mn0, k0). Lanes 8i..8i+7 address matrix i; the matrices are
  // i = 0: (mn 0-7, k 0-7), 1: (mn 8-15, k 0-7), 2: (mn 0-7, k 8-15), 3: (mn 8-15, k 8-15),
  // so register r[i] of every lane holds, in both cases, the elements
  // (mn = mn0 + (i & 1) * 8 + lane / 4, k = k0 + (i >> 1) * 8 + 2 (lane % 4), +1):
  //  - plain: the 8 rows of matrix i are mn rows, 8 k-contiguous elements each;
  //    lane L receives row L/4, columns 2(L%4), +1;
  //  - .trans: the 8 rows of matrix i are k rows, 8 mn-contiguous elements
  //    each; the transpose hands lane L the elements (k = 2(L%4), +1; mn = L/4).
  GRAFT_GEMM_HD static constexpr int ldmatrix_offset(int mn0, int k0, int lane) {
    const int i = lane >> 3, r = lane & 7;
    return kKContig ? offset(mn0 + (i & 1) * 8 + r, k0 + (i >> 1) * 8)   // row r of matrix i: an mn row
                    : offset(mn0 + (i & 1) * 8, k0 + (i >> 1) * 8 + r);  // row r of matrix i: a k row
  }

  // For B (mn = n), the x4 registers above cover two 8-wide n-tiles: n-tile
  // `nt` (0 or 1) takes b[reg] = r[x4_reg_for_b(nt, reg)], i.e. {r[0], r[2]}
  // for n 0-7 and {r[1], r[3]} for n 8-15 (b[0]: k 0-7, b[1]: k 8-15).
  GRAFT_GEMM_HD static constexpr int x4_reg_for_b(int nt, int reg) { return nt + 2 * reg; }

  // 16-byte chunk c of the tile (c < kChunks): its stored row and first column.
  GRAFT_GEMM_HD static constexpr int chunk_row(int c) { return c / kChunksPerRow; }
  GRAFT_GEMM_HD static constexpr int chunk_col(int c) { return (c % kChunksPerRow) * kChunkElems; }
};

// ---- mma.sync fragment maps (kernels/cuda/mma.cuh), lane -> element -----------------------
// g = lane / 4, t = lane % 4. `reg` is the register index, `half` the 16-bit
// half of it (0 = low) for the 16-bit shapes.
// m16n8k16 A (16 x 16): a[reg] holds A[row][k], A[row][k + 1].
GRAFT_GEMM_HD constexpr int mma16_a_row(int reg, int lane) { return (lane >> 2) + (reg & 1) * 8; }
GRAFT_GEMM_HD constexpr int mma16_a_k(int reg, int half, int lane) { return (lane & 3) * 2 + half + (reg >> 1) * 8; }
// m16n8k16 B (16 x 8, element (k, n)).
GRAFT_GEMM_HD constexpr int mma16_b_k(int reg, int half, int lane) { return (lane & 3) * 2 + half + reg * 8; }
GRAFT_GEMM_HD constexpr int mma16_b_n(int lane) { return lane >> 2; }
// m16n8k8 .tf32 A (16 x 8) and B (8 x 8): one element per register.
GRAFT_GEMM_HD constexpr int mma8_a_row(int reg, int lane) { return (lane >> 2) + (reg & 1) * 8; }
GRAFT_GEMM_HD constexpr int mma8_a_k(int reg, int lane) { return (lane & 3) + (reg >> 1) * 4; }
GRAFT_GEMM_HD constexpr int mma8_b_k(int reg, int lane) { return (lane & 3) + reg * 4; }
GRAFT_GEMM_HD constexpr int mma8_b_n(int lane) { return lane >> 2; }
// Accumulator C/D (16 x 8, f32), both shapes: d[reg] = D[row][col].
GRAFT_GEMM_HD constexpr int mma_c_row(int reg, int lane) { return (lane >> 2) + (reg >> 1) * 8; }
GRAFT_GEMM_HD constexpr int mma_c_col(int reg, int lane) { return (lane & 3) * 2 + (reg & 1); }

// ---- CTA order over the output tiles --------------------------------------------------------
// The grid is 1-D over tiles_m x tiles_n output tiles. Consecutive CTAs walk
// down a group of up to kGroupM tile rows before moving one tile column right,
// so the CTAs resident at one time share a few A row-blocks and B column-blocks
// in L2 (instead of sweeping all of A for every column of B).
constexpr int kGroupM = 8;
struct TileCoord {
  int m, n;
};
GRAFT_GEMM_HD constexpr TileCoord tile_of_block(int block, int tiles_m, int tiles_n) {
  const int width = kGroupM * tiles_n;  // CTAs per group of kGroupM tile rows
  const int group = block / width;
  const int first_m = group * kGroupM;
  const int rows_in_group = (tiles_m - first_m) < kGroupM ? (tiles_m - first_m) : kGroupM;
  const int in_group = block - group * width;
  return TileCoord{first_m + in_group % rows_in_group, in_group / rows_in_group};
}

}  // namespace graft::kernels::cuda::gemm_layout
