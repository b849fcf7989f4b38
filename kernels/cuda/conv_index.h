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

// Backward-data, decomposed by stride phase. Input pixel iy receives dy from
// the taps r with (iy + pt - r * dh) divisible by sh; which taps those are
// depends only on (iy + pt) mod sh. So the input rows are split into phases by
// iy0 = iy mod sh (iy0 < min(sh, h); the same for columns), and within one
// phase the contributing taps are a fixed arithmetic progression r0, r0 +
// rstep, ... (r * dh = (iy0 + pt) mod sh). Each phase is then a dense GEMM
// over its own taps only: no MMA work on taps that fall between output
// positions. Stride 1 is a single phase with every tap.
struct Phase {
  int iy0, ix0;       // first input row / column of the phase
  int ny, nx;         // input rows / columns in the phase
  int r0, rstep, nr;  // contributing taps r = r0 + i * rstep, i < nr (nr may be 0)
  int s0, sstep, ns;
  int M, K;           // GEMM sizes of the phase: n * ny * nx pixels, nr * ns * og
};
GRAFT_CONV_HD int gcd_int(int a, int b) {
  while (b != 0) {
    const int t = a % b;
    a = b;
    b = t;
  }
  return a;
}
// One axis: start i0 (< min(stride, in)) -> extent and tap progression.
GRAFT_CONV_HD void phase_axis(int i0, int pad, int stride, int dil, int in, int k, int& n, int& t0, int& tstep,
                              int& nt) {
  const int p = (i0 + pad) % stride;
  n = (in - 1 - i0) / stride + 1;
  tstep = stride / gcd_int(dil, stride);
  t0 = k;  // the smallest solution of t * dil = p (mod stride) is below tstep <= stride
  for (int t = 0; t < k && t < tstep; ++t)
    if ((t * dil) % stride == p) {
      t0 = t;
      break;
    }
  nt = t0 < k ? (k - 1 - t0) / tstep + 1 : 0;
}
GRAFT_CONV_HD int bwd_data_phase_count(const Geom& q) {
  return (q.sh < q.h ? q.sh : q.h) * (q.sw < q.w ? q.sw : q.w);
}
GRAFT_CONV_HD Phase bwd_data_phase(const Geom& q, int phase) {
  const int npx = q.sw < q.w ? q.sw : q.w;
  Phase f;
  f.iy0 = phase / npx;
  f.ix0 = phase - f.iy0 * npx;
  phase_axis(f.iy0, q.pt, q.sh, q.dh, q.h, q.kh, f.ny, f.r0, f.rstep, f.nr);
  phase_axis(f.ix0, q.pl, q.sw, q.dw, q.w, q.kw, f.nx, f.s0, f.sstep, f.ns);
  f.M = q.n * f.ny * f.nx;
  f.K = f.nr * f.ns * q.og;
  return f;
}
// The largest phase (iy0 = ix0 = 0): n * ceil(h / sh) * ceil(w / sw) pixels.
GRAFT_CONV_HD int bwd_data_max_phase_m(const Geom& q) {
  return q.n * ((q.h + q.sh - 1) / q.sh) * ((q.w + q.sw - 1) / q.sw);
}
// Input pixel (img * h + iy) * w + ix of the phase's row m < f.M.
GRAFT_CONV_HD int bwd_data_pixel(const Geom& q, const Phase& f, int m) {
  const int per = f.ny * f.nx, img = m / per, rem = m - img * per, jy = rem / f.nx, jx = rem - jy * f.nx;
  return (img * q.h + f.iy0 + jy * q.sh) * q.w + f.ix0 + jx * q.sw;
}
// A[m][k] = dy at the phase's input pixel m, tap k = (ri, si, oc) (oc fastest)
// of the phase's progression: the output position (iy + pt - r * dh) / sh,
// exact by construction, or zero where it is outside the output.
struct InputRow {
  int base;    // offset of (img, 0, 0, group * og) in dy
  int y0, x0;  // iy + pt, ix + pl
  bool valid;
};
GRAFT_CONV_HD InputRow bwd_data_a_row(const Geom& q, const Phase& f, int group, int m) {
  if (m >= f.M) return InputRow{0, 0, 0, false};
  const int per = f.ny * f.nx, img = m / per, rem = m - img * per, jy = rem / f.nx, jx = rem - jy * f.nx;
  return InputRow{img * q.oh * q.ow * q.o + group * q.og, f.iy0 + jy * q.sh + q.pt, f.ix0 + jx * q.sw + q.pl, true};
}
GRAFT_CONV_HD int bwd_data_a_at(const Geom& q, const Phase& f, const InputRow& row, int k) {
  if (!row.valid || k >= f.K) return -1;
  const int rs = k / q.og, oc = k - rs * q.og, ri = rs / f.ns, si = rs - ri * f.ns;
  const int ty = row.y0 - (f.r0 + ri * f.rstep) * q.dh, tx = row.x0 - (f.s0 + si * f.sstep) * q.dw;
  if (ty < 0 || tx < 0) return -1;
  const int oy = ty / q.sh, ox = tx / q.sw;
  if (oy >= q.oh || ox >= q.ow) return -1;
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
// Backward-data B[n = ci][k] for the phase's tap k = (ri, si, oc): wt at tap
// (r0 + ri * rstep, s0 + si * sstep), output channel oc.
GRAFT_CONV_HD int bwd_data_b_at(const Geom& q, const Phase& f, const DenseRow& row, int k) {
  if (!row.valid || k >= f.K) return -1;
  const int rs = k / q.og, oc = k - rs * q.og, ri = rs / f.ns, si = rs - ri * f.ns;
  return row.base + ((f.r0 + ri * f.rstep) * q.kw + f.s0 + si * f.sstep) * q.og + oc;
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
