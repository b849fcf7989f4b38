// Index arithmetic of the implicit-GEMM convolution (kernels/cuda/conv.h):
// which element of x, dy or w sits at (row, k) of each pass's A and B
// operand, and where a tile element lives in shared memory. Plain C++
// usable on host and device (the host tests check every formula against the
// direct convolution definition: tests/cuda/test_conv.cpp), int32 throughout
// (the launchers check that every tensor's element count fits).
//
// A "row" state is what a thread computes once per tile row before the K
// loop; the `*_at` functions then give the element offset for one k, or -1
// where the operand is zero (padding, a tap between output positions, past
// the end of M, N or K).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GRAFT_CONV_HD __host__ __device__ __forceinline__
#else
#define GRAFT_CONV_HD inline
#endif

namespace graft::kernels::cuda::convidx {

// Conv2dParams narrowed to int (checked by the launchers), plus derived sizes.
struct Geom {
  int n, h, w, c, o;
  int kh, kw, sh, sw, pt, pl, dh, dw;
  int groups, cg, og, oh, ow;
};

// Forward: A[m][k] = x at output pixel m = (img, oy, ox), tap k = (r, s, ci)
// (ci fastest, the weight's KH, KW, C/g order), within group `group`.
struct PixelRow {
  int base;    // offset of (img, 0, 0, group * cg) in x (or of the pixel itself when plain)
  int y0, x0;  // top-left input coordinate of the window
  bool valid;  // m < M
};
GRAFT_CONV_HD PixelRow fwd_a_row(const Geom& q, int group, int m) {
  const int M = q.n * q.oh * q.ow;
  if (m >= M) return PixelRow{0, 0, 0, false};
  const int ohw = q.oh * q.ow, img = m / ohw, rem = m - img * ohw, oy = rem / q.ow, ox = rem - oy * q.ow;
  return PixelRow{img * q.h * q.w * q.c + group * q.cg, oy * q.sh - q.pt, ox * q.sw - q.pl, true};
}
GRAFT_CONV_HD int fwd_a_at(const Geom& q, const PixelRow& row, int k) {
  const int K = q.kh * q.kw * q.cg;
  if (!row.valid || k >= K) return -1;
  const int rs = k / q.cg, ci = k - rs * q.cg, r = rs / q.kw, s = rs - r * q.kw;
  const int iy = row.y0 + r * q.dh, ix = row.x0 + s * q.dw;
  if (iy < 0 || iy >= q.h || ix < 0 || ix >= q.w) return -1;
  return row.base + (iy * q.w + ix) * q.c + ci;
}

// Backward-data: A[m][k] = dy at input pixel m = (img, iy, ix), tap k =
// (r, s, oc): the output position oy with oy * sh - pt + r * dh = iy, if one
// exists (divisible and in range), else zero.
struct InputRow {
  int base;    // offset of (img, 0, 0, group * og) in dy
  int y0, x0;  // iy + pt, ix + pl
  bool valid;
};
GRAFT_CONV_HD InputRow bwd_data_a_row(const Geom& q, int group, int m) {
  const int M = q.n * q.h * q.w;
  if (m >= M) return InputRow{0, 0, 0, false};
  const int hw = q.h * q.w, img = m / hw, rem = m - img * hw, iy = rem / q.w, ix = rem - iy * q.w;
  return InputRow{img * q.oh * q.ow * q.o + group * q.og, iy + q.pt, ix + q.pl, true};
}
GRAFT_CONV_HD int bwd_data_a_at(const Geom& q, const InputRow& row, int k) {
  const int K = q.kh * q.kw * q.og;
  if (!row.valid || k >= K) return -1;
  const int rs = k / q.og, oc = k - rs * q.og, r = rs / q.kw, s = rs - r * q.kw;
  const int ty = row.y0 - r * q.dh, tx = row.x0 - s * q.dw;
  if (ty < 0 || tx < 0) return -1;
  const int oy = ty / q.sh, ox = tx / q.sw;
  if (oy * q.sh != ty || ox * q.sw != tx || oy >= q.oh || ox >= q.ow) return -1;
  return row.base + (oy * q.ow + ox) * q.o + oc;
}

// A dense operand row (a weight row, or a pixel row of a 1x1 unpadded
// stride-1 conv): element `base + k` for k < K.
struct DenseRow {
  int base;
  bool valid;
};
GRAFT_CONV_HD int dense_at(const DenseRow& row, int k, int K) { return (row.valid && k < K) ? row.base + k : -1; }
// Forward B row oc (output channel within the group): w (O, KH, KW, C/g).
GRAFT_CONV_HD DenseRow fwd_b_row(const Geom& q, int group, int oc) {
  if (oc >= q.og) return DenseRow{0, false};
  return DenseRow{(group * q.og + oc) * (q.kh * q.kw * q.cg), true};
}
// Backward-data B row ci: the transposed weight wt (groups, C/g, KH, KW, O/g).
GRAFT_CONV_HD DenseRow bwd_data_b_row(const Geom& q, int group, int ci) {
  if (ci >= q.cg) return DenseRow{0, false};
  return DenseRow{(group * q.cg + ci) * (q.kh * q.kw * q.og), true};
}
// Offset in wt of w's element (o, r, s, ci) (the transpose kernel's map).
GRAFT_CONV_HD int transposed_weight_at(const Geom& q, int o, int rs, int ci) {
  const int group = o / q.og, oc = o - group * q.og;
  return ((group * q.cg + ci) * (q.kh * q.kw) + rs) * q.og + oc;
}
// 1x1 stride-1 unpadded forward / backward-data: pixel m's channels of the group.
GRAFT_CONV_HD DenseRow plain_row(int m, int M, int channels, int group_offset) {
  if (m >= M) return DenseRow{0, false};
  return DenseRow{m * channels + group_offset, true};
}

// Backward-weight: the GEMM runs over K = output pixels. A[m = oc][k = pix] =
// dy[pix][group * og + oc] (M-contiguous), B[k = pix][n = (r, s, ci)] = x at
// the input position tap n of output pixel pix reads (N-contiguous in ci).
GRAFT_CONV_HD int bwd_weight_a_at(const Geom& q, int group, int oc, int pix) {
  const int K = q.n * q.oh * q.ow;
  if (oc >= q.og || pix >= K) return -1;
  return pix * q.o + group * q.og + oc;
}
struct TapCol {
  int ty, tx;  // r * dh - pt, s * dw - pl
  int ci;      // group * cg + ci: the channel in x
  bool valid;
};
GRAFT_CONV_HD TapCol bwd_weight_b_col(const Geom& q, int group, int n) {
  if (n >= q.kh * q.kw * q.cg) return TapCol{0, 0, 0, false};
  const int rs = n / q.cg, ci = n - rs * q.cg, r = rs / q.kw, s = rs - r * q.kw;
  return TapCol{r * q.dh - q.pt, s * q.dw - q.pl, group * q.cg + ci, true};
}
GRAFT_CONV_HD int bwd_weight_b_at(const Geom& q, const TapCol& col, int pix) {
  const int K = q.n * q.oh * q.ow;
  if (!col.valid || pix >= K) return -1;
  const int ohw = q.oh * q.ow, img = pix / ohw, rem = pix - img * ohw, oy = rem / q.ow, ox = rem - oy * q.ow;
  const int iy = oy * q.sh + col.ty, ix = ox * q.sw + col.tx;
  if (iy < 0 || iy >= q.h || ix < 0 || ix >= q.w) return -1;
  return ((img * q.h + iy) * q.w + ix) * q.c + col.ci;
}

// ---- shared-memory tile layout -------------------------------------------------------------
// Both operand tiles hold 128 "mn" rows (M for A, N for B) by kBK k, where a
// k step is 64 bytes of elements (32 f16/bf16, 16 f32).
// K-contiguous tiles (forward, backward-data): row mn at mn * 80 bytes (64
// data + 16 pad), k inside it. The 80-byte stride puts the 8 rows an
// ldmatrix reads (16 bytes each) in 8 distinct 16-byte bank groups, and the
// TF32 fragment reads (row g, word t) in 32 distinct banks.
// MN-contiguous tiles (backward-weight): row k at k * kRowBytes, mn inside
// it; kRowBytes = 128 * elem + 16 (f16/bf16: 272, = 16 mod 128, conflict-free
// ldmatrix) or + 32 (f32: 544 = 136 words, 8 mod 32 banks: word (k = t, mn =
// g) lands in bank 8t + g, distinct).
constexpr int kTileMN = 128;
constexpr int kKBytes = 64;
constexpr int kKContigRowBytes = kKBytes + 16;
constexpr int mn_contig_row_bytes(int elem_bytes) { return kTileMN * elem_bytes + (elem_bytes == 4 ? 32 : 16); }
GRAFT_CONV_HD int smem_offset(bool k_contig, int elem_bytes, int mn, int k) {
  return k_contig ? mn * kKContigRowBytes + k * elem_bytes : k * mn_contig_row_bytes(elem_bytes) + mn * elem_bytes;
}
constexpr int smem_tile_bytes(bool k_contig, int elem_bytes) {
  return k_contig ? kTileMN * kKContigRowBytes : (kKBytes / elem_bytes) * mn_contig_row_bytes(elem_bytes);
}

// ---- ldmatrix row addresses (16-bit elements) ----------------------------------------------
// ldmatrix.x4: lane l gives the address of row r = l & 7 of 8x8 matrix j = l >> 3.
// A fragment of the 16x16 block at (mb, k0) (mma.cuh: a[0..3] = (m 0-7, k 0-7),
// (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)):
//   K-contiguous (stored rows are m): row m = mb + r + (j & 1) * 8 at k = k0 + (j >> 1) * 8.
//   M-contiguous (stored rows are k; read with .trans): row k = k0 + r + (j >> 1) * 8 at
//   m = mb + (j & 1) * 8.
GRAFT_CONV_HD int ldsm_a_offset(bool k_contig, int lane, int mb, int k0) {
  const int j = lane >> 3, r = lane & 7;
  return k_contig ? smem_offset(true, 2, mb + r + (j & 1) * 8, k0 + (j >> 1) * 8)
                  : smem_offset(false, 2, mb + (j & 1) * 8, k0 + r + (j >> 1) * 8);
}
// B fragments of two n8 blocks at nb and nb + 8, k0 .. k0 + 15: registers 0, 1 = b[0], b[1]
// of the first (k 0-7, k 8-15), 2, 3 = of the second. A stored row of a K-contiguous
// tile is one n, so ldmatrix without .trans gives B[k = 2t, 2t+1][n = g]:
//   K-contiguous: row n = nb + r + (j >> 1) * 8 at k = k0 + (j & 1) * 8.
//   N-contiguous (.trans): row k = k0 + r + (j & 1) * 8 at n = nb + (j >> 1) * 8.
GRAFT_CONV_HD int ldsm_b_offset(bool k_contig, int lane, int nb, int k0) {
  const int j = lane >> 3, r = lane & 7;
  return k_contig ? smem_offset(true, 2, nb + r + (j >> 1) * 8, k0 + (j & 1) * 8)
                  : smem_offset(false, 2, nb + (j >> 1) * 8, k0 + r + (j & 1) * 8);
}

}  // namespace graft::kernels::cuda::convidx
