// Fused (flash-attention-2 style) attention on tensor cores: see attention.h.
//
// Forward (attn_fwd_kernel<T, D>): one CTA of 4 warps per (b, h, query
// block of 128 rows at d <= 64, 64 at d 128); each warp owns 2 (resp. 1)
// m-tiles of 16 query rows. The Q block stays in shared memory; K and V
// tiles of 64 keys stream through two shared-memory buffers with cp.async
// (tile n+1 loads while tile n computes). Per tile, warp and m-tile:
//   S (16 x 64, f32 registers) = Q K^T    (mma m16n8k16; A = Q by ldmatrix, B = K by ldmatrix)
//   scale, mask, causal / past-the-end keys -> -inf; online softmax in f32
//   (running max m and partial sum l per row, rows g and g+8 of each thread,
//   the max reduced over the 4 threads of a quad with shuffles; l is kept
//   per thread and reduced once at the end - every thread of a quad rescales
//   by the same alpha so the partial sums stay consistent);
//   P -> bf16/f16 in registers, re-used as the A operand, O (16 x D) += P V
//   (B = V by ldmatrix.trans). Why no shuffle is needed: the accumulator of
//   n-tile j gives a thread rows g, g+8 and columns 8j+2t, +1; the A fragment
//   of k-step kk asks it for rows g, g+8 and columns 16kk+2t, +1 (regs 0, 1)
//   and 16kk+8+2t, +1 (regs 2, 3) - i.e. n-tiles 2kk and 2kk+1, the same
//   rows, the same pairs of adjacent columns, low column in the low half
//   (attention_index.h: c_to_a_tile / c_to_a_float, checked by a host test).
// Then O /= l, written in the input dtype; lse = m + log l per row (f32).
// The score matrix never touches device memory.
//
// Backward: attn_bwd_delta_kernel (delta = rowsum(dO * O), one warp per row),
// then attn_bwd_kernel<T, D>: one CTA of 4 warps per (b, h, 64-key block),
// each warp owning 16 keys; the CTA loops over query blocks of 64 rows (32 at
// d 128, see bwd_block_m; Q, dO, lse, delta double-buffered by cp.async) and
// per block computes, transposed so that keys are the mma M dimension:
//   S^T = K Q^T, P^T = exp(S^T - lse)        (recomputed, f32)
//   dV += (P^T o Z) dO                        (A = P^T from registers, B = dO by ldmatrix.trans)
//   dP^T = V dO^T                             (A = V by ldmatrix, B = dO by ldmatrix)
//   dS^T = scale * P^T o (dP^T o Z - delta)   (Z: dropout keep / (1 - p), 1 without dropout)
//   dK += dS^T Q                              (A = dS^T from registers, B = Q by ldmatrix.trans)
//   dS^T -> shared memory; dQ (rows x D) += dS K (A = dS by ldmatrix.trans of dS^T,
//   B = K by ldmatrix.trans), added with f32 atomicAdd into the workspace.
// dK and dV are written once by the CTA that owns the keys (deterministic);
// attn_convert_kernel turns the f32 dQ into the input dtype.
//
// Never run on a GPU yet.
#include "kernels/cuda/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_index.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mma.cuh"

namespace graft::kernels::cuda {

namespace {

namespace ai = attention_index;
using mma::cp_async16;
using mma::cp_async_commit;
using mma::cp_async_wait;
using mma::ldmatrix_x4;
using mma::ldmatrix_x4_trans;
using mma::mma_m16n8k16;
using mma::pack2;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBlockN = 64;  // keys per forward tile, per backward CTA
constexpr int kPad = ai::kSmemPad;
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kBlockN == 16 * kWarps, "backward: each warp owns 16 keys");
static_assert(kBlockN % 16 == 0, "tiles are whole k-steps of 16");

// Forward: each warp owns fwd_m_tiles 16-row m-tiles, so every K and V
// fragment it loads from shared memory feeds that many mma (at one m-tile per
// warp the ldmatrix traffic is about as large as the tensor-core time). Two
// m-tiles at d <= 64 (128-row CTAs); one at d 128, where a second O
// accumulator (64 more floats per thread) would not fit in registers.
template <int D>
constexpr int fwd_m_tiles() {
  return D <= 64 ? 2 : 1;
}
template <int D>
constexpr int fwd_block_m() {
  return 16 * kWarps * fwd_m_tiles<D>();
}
template <int D>
constexpr int fwd_smem_bytes() {  // Q + 2 x K + 2 x V, 16-bit elements
  return (fwd_block_m<D>() + 4 * kBlockN) * (D + kPad) * 2;
}
// Backward query rows per step: 64, but 32 at d 128, where the dK and dV
// accumulators (2 x 64 floats per thread) plus S^T and dP^T (2 x 32 floats at
// 64 rows) would reach the 255-register limit (spills on sm_80).
template <int D>
constexpr int bwd_block_m() {
  return D >= 128 ? 32 : 64;
}
template <int D>
constexpr int bwd_smem_bytes() {  // K, V, 2 x Q, 2 x dO, dS^T (16-bit) + 2 x (lse, delta) f32
  constexpr int m = bwd_block_m<D>();
  return (2 * kBlockN + 4 * m) * (D + kPad) * 2 + kBlockN * (m + kPad) * 2 + 4 * m * 4;
}

// Largest opt-in shared memory per block over sm_80+ parts is 99 KiB (sm_86/89; sm_80 163, sm_90 227).
static_assert(fwd_smem_bytes<128>() <= 99 * 1024 && fwd_smem_bytes<64>() <= 99 * 1024 &&
                  bwd_smem_bytes<128>() <= 99 * 1024 && bwd_smem_bytes<64>() <= 99 * 1024,
              "shared memory per CTA fits every sm_80+ GPU");

struct Args {
  const void* q;
  const void* k;
  const void* v;
  const float* mask;  // null: none
  int64_t mask_sb, mask_sh, mask_sq, mask_sk;
  int heads;
  int seq_q, seq_k;
  float scale;
  bool causal;
  bool vec;  // every 16-bit tensor pointer is 16-byte aligned: cp.async 16-byte copies
  // dropout
  bool dropout;
  float drop_p, drop_scale;
  uint64_t seed, offset;
  // forward outputs
  void* out;
  float* lse;
  // backward
  const void* o;
  const void* dout;
  const float* lse_in;
  const float* delta;
  float* dq_acc;  // null: dQ not wanted
  void* dk;       // null: not wanted
  void* dv;       // null: not wanted
};

// Copies a tile of ROWS x D 16-bit elements (row r from gmem + r * D) into
// shared memory with row stride D + kPad; rows >= rows_valid are zero-filled.
// 16-byte cp.async when `vec`, otherwise 16-bit loads and stores (still zero-filled).
template <int D, int ROWS>
__device__ __forceinline__ void load_tile(uint16_t* smem, const uint16_t* gmem, int rows_valid, bool vec) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static_assert(D % 8 == 0, "rows are whole 16-byte chunks");
#pragma unroll
  for (int c = threadIdx.x; c < ROWS * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    uint16_t* dst = smem + r * (D + kPad) + col;
    const bool ok = r < rows_valid;
    const uint16_t* src = gmem + static_cast<int64_t>(ok ? r : 0) * D + col;
    if (vec) {
      cp_async16(dst, src, ok);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) dst[e] = ok ? src[e] : uint16_t{0};
    }
  }
}

// Dropout decisions (cpu::dropout_forward's mapping), attention_index.h.
__device__ __forceinline__ bool dropout_keep(const Args& a, uint64_t e) {
  return ai::dropout_keep(a.seed, a.offset, e, a.drop_p);
}
__device__ __forceinline__ void dropout_keep2(const Args& a, uint64_t e, bool& k0, bool& k1) {
  ai::dropout_keep2(a.seed, a.offset, e, a.drop_p, k0, k1);
}

// Score of (query i, key j) from the raw product: scale, mask, -inf outside.
__device__ __forceinline__ float score(const Args& a, const float* mask_bh, float acc, int i, int j) {
  if (j >= a.seq_k || (a.causal && j > i)) return -INFINITY;
  float x = acc * a.scale;
  if (mask_bh != nullptr && i < a.seq_q) x += __ldg(mask_bh + i * a.mask_sq + j * a.mask_sk);
  return x;
}

// =================================== forward ===================================================
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attn_fwd_kernel(const Args a) {
  static_assert(D % 16 == 0 && D <= 128, "head dim: whole k-steps, accumulator fits registers");
  constexpr int kMT = fwd_m_tiles<D>();   // 16-row m-tiles per warp
  constexpr int kBM = fwd_block_m<D>();   // query rows per CTA
  static_assert(kBM == 16 * kMT * kWarps, "each warp owns kMT m-tiles of 16 rows");
  constexpr int kStride = D + kPad;
  GRAFT_DYNAMIC_SMEM(unsigned char, smem_raw);
  uint16_t* sQ = reinterpret_cast<uint16_t*>(smem_raw);  // kBM x kStride
  uint16_t* sK = sQ + kBM * kStride;                      // 2 x kBlockN x kStride
  uint16_t* sV = sK + 2 * kBlockN * kStride;              // 2 x kBlockN x kStride

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = ai::frag_g(lane), t = ai::frag_t(lane);
  const int Sq = a.seq_q, Sk = a.seq_k;
  const int nqb = (Sq + kBM - 1) / kBM;
  const int bh = blockIdx.x / nqb, q0 = (blockIdx.x % nqb) * kBM;
  const int b = bh / a.heads, h = bh % a.heads;

  const uint16_t* Q = static_cast<const uint16_t*>(a.q) + (static_cast<int64_t>(bh) * Sq + q0) * D;
  const uint16_t* K = static_cast<const uint16_t*>(a.k) + static_cast<int64_t>(bh) * Sk * D;
  const uint16_t* V = static_cast<const uint16_t*>(a.v) + static_cast<int64_t>(bh) * Sk * D;
  const float* mask_bh = a.mask ? a.mask + b * a.mask_sb + h * a.mask_sh : nullptr;

  // Causal: keys past the block's last query row are hidden from every row of it.
  const int k_end = a.causal ? min(Sk, q0 + kBM) : Sk;
  const int nkt = (k_end + kBlockN - 1) / kBlockN;

  load_tile<D, kBM>(sQ, Q, Sq - q0, a.vec);
  if (nkt > 0) {
    load_tile<D, kBlockN>(sK, K, Sk, a.vec);
    load_tile<D, kBlockN>(sV, V, Sk, a.vec);
  }
  cp_async_commit();

  // The warp's rows: m-tile mi covers local rows warp * 16 * kMT + 16 * mi + 0..15;
  // this thread holds C rows g and g + 8 of each m-tile.
  const int wrow = warp * 16 * kMT;
  int row[kMT][2];
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
    row[mi][0] = q0 + wrow + 16 * mi + g;
    row[mi][1] = q0 + wrow + 16 * mi + g + 8;
  }
  float o[kMT][D / 8][4];
  float m[kMT][2];  // running max (quad-uniform)
  float l[kMT][2];  // this thread's share of the running sum
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
#pragma unroll
    for (int j = 0; j < D / 8; ++j) o[mi][j][0] = o[mi][j][1] = o[mi][j][2] = o[mi][j][3] = 0.f;
    m[mi][0] = m[mi][1] = -INFINITY;
    l[mi][0] = l[mi][1] = 0.f;
  }

  for (int n = 0; n < nkt; ++n) {
    const int buf = n & 1;
    if (n + 1 < nkt) {  // prefetch tile n+1 into the other buffer (freed by the barrier ending n-1)
      const int k1 = (n + 1) * kBlockN;
      load_tile<D, kBlockN>(sK + (buf ^ 1) * kBlockN * kStride, K + static_cast<int64_t>(k1) * D, Sk - k1, a.vec);
      load_tile<D, kBlockN>(sV + (buf ^ 1) * kBlockN * kStride, V + static_cast<int64_t>(k1) * D, Sk - k1, a.vec);
      cp_async_commit();
      cp_async_wait<1>();  // tile n (and Q) landed; tile n+1 may still fly
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint16_t* cK = sK + buf * kBlockN * kStride;
    const uint16_t* cV = sV + buf * kBlockN * kStride;

    // S = Q K^T for this warp's rows and the tile's 64 keys; each K fragment
    // serves all kMT m-tiles.
    float s[kMT][kBlockN / 8][4];
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) s[mi][j][0] = s[mi][j][1] = s[mi][j][2] = s[mi][j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[kMT][4];
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi)
        ldmatrix_x4(qa[mi],
                    sQ + (wrow + 16 * mi + ai::ldsm_a_row(lane)) * kStride + kk * 16 + ai::ldsm_a_col(lane));
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t kb[4];
        ldmatrix_x4(kb, cK + (np * 16 + ai::ldsm_bnk_n(lane)) * kStride + kk * 16 + ai::ldsm_bnk_k(lane));
        const uint32_t b0[2] = {kb[0], kb[1]}, b1[2] = {kb[2], kb[3]};
#pragma unroll
        for (int mi = 0; mi < kMT; ++mi) {
          mma_m16n8k16<T>(s[mi][2 * np], qa[mi], b0);
          mma_m16n8k16<T>(s[mi][2 * np + 1], qa[mi], b1);
        }
      }
    }

    const int key0 = n * kBlockN;
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      // Scale, mask, -inf outside; online softmax per row.
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          s[mi][j][c] = score(a, mask_bh, s[mi][j][c], row[mi][c >> 1], key0 + 8 * j + ai::c_col(lane, c));

#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = m[mi][r];
#pragma unroll
        for (int j = 0; j < kBlockN / 8; ++j) mx = fmaxf(mx, fmaxf(s[mi][j][2 * r], s[mi][j][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the quad shares row g (+8)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // Every score so far -inf: shift by 0 so exp(-inf - shift) = 0, never NaN.
        const float shift = mx == -INFINITY ? 0.f : mx;
        const float alpha = exp2f((m[mi][r] - shift) * kLog2e);  // 0 when the old max was -inf
        m[mi][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < kBlockN / 8; ++j) {
          s[mi][j][2 * r] = exp2f((s[mi][j][2 * r] - shift) * kLog2e);
          s[mi][j][2 * r + 1] = exp2f((s[mi][j][2 * r + 1] - shift) * kLog2e);
          sum += s[mi][j][2 * r] + s[mi][j][2 * r + 1];
        }
        l[mi][r] = l[mi][r] * alpha + sum;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          o[mi][j][2 * r] *= alpha;
          o[mi][j][2 * r + 1] *= alpha;
        }
      }

      if (a.dropout) {  // on the probabilities that multiply V; l keeps the undropped sum
#pragma unroll
        for (int j = 0; j < kBlockN / 8; ++j)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int i = row[mi][r], key = key0 + 8 * j + 2 * t;
            bool k0 = false, k1 = false;
            if (i < Sq && key < Sk) {
              dropout_keep2(a, ai::dropout_element(bh, Sq, Sk, i, key), k0, k1);
              if (key + 1 >= Sk) k1 = false;
            }
            s[mi][j][2 * r] = k0 ? s[mi][j][2 * r] * a.drop_scale : 0.f;
            s[mi][j][2 * r + 1] = k1 ? s[mi][j][2 * r + 1] * a.drop_scale : 0.f;
          }
      }
    }

    // O += P V: P (16 x 64 per m-tile) from the S registers as A fragments
    // (c_to_a_*), V by ldmatrix.trans, each V fragment serving all m-tiles.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t pa[kMT][4];
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
        for (int reg = 0; reg < 4; ++reg) {
          const int tile = ai::c_to_a_tile(kk, reg), c = ai::c_to_a_float(reg, 0);
          pa[mi][reg] = pack2<T>(s[mi][tile][c], s[mi][tile][c + 1]);
        }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, cV + (kk * 16 + ai::ldsm_bkn_k(lane)) * kStride + dp * 16 + ai::ldsm_bkn_n(lane));
        const uint32_t b0[2] = {vb[0], vb[1]}, b1[2] = {vb[2], vb[3]};
#pragma unroll
        for (int mi = 0; mi < kMT; ++mi) {
          mma_m16n8k16<T>(o[mi][2 * dp], pa[mi], b0);
          mma_m16n8k16<T>(o[mi][2 * dp + 1], pa[mi], b1);
        }
      }
    }
    __syncthreads();  // every warp is done with `buf` before iteration n+1 prefetches into it
  }
  cp_async_wait<0>();  // (nkt == 0: Q's copy)

  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = l[mi][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const bool empty = m[mi][r] == -INFINITY;  // fully masked row (or Sk == 0): output 0, lse -inf
      const float inv = empty ? 0.f : 1.f / sum;
      const int i = row[mi][r];
      if (i < Sq) {
        T* orow = out + (static_cast<int64_t>(bh) * Sq + i) * D;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          orow[8 * j + 2 * t] = from_f32<T>(o[mi][j][2 * r] * inv);
          orow[8 * j + 2 * t + 1] = from_f32<T>(o[mi][j][2 * r + 1] * inv);
        }
        if (t == 0) a.lse[static_cast<int64_t>(bh) * Sq + i] = empty ? -INFINITY : m[mi][r] + logf(sum);
      }
    }
}

// =================================== backward ==================================================
// delta[row] = sum_d dO[row][d] * O[row][d] (f32); one warp per row.
template <typename T>
__global__ void attn_bwd_delta_kernel(const T* __restrict__ o, const T* __restrict__ dout, float* __restrict__ delta,
                                      int64_t rows, int d) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  const int lane = threadIdx.x & 31;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
    float s = 0.f;
    for (int c = lane; c < d; c += 32) s += to_f32<T>(o[r * d + c]) * to_f32<T>(dout[r * d + c]);
    s = warp_sum(s);
    if (lane == 0) delta[r] = s;
  }
}

template <typename T>
__global__ void attn_convert_kernel(const float* __restrict__ src, T* __restrict__ dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = from_f32<T>(src[i]);
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attn_bwd_kernel(const Args a) {
  static_assert(D % 32 == 0 && D <= 128, "head dim: dQ chunks of 32 columns");
  constexpr int kBM = bwd_block_m<D>();  // queries per step
  static_assert(kBM % 16 == 0 && kBM <= 64, "whole k-steps; at most 32 dropout bits");
  constexpr int kStride = D + kPad;
  constexpr int kSStride = kBM + kPad;  // dS^T rows (keys) of kBM queries
  GRAFT_DYNAMIC_SMEM(unsigned char, smem_raw);
  uint16_t* sK = reinterpret_cast<uint16_t*>(smem_raw);  // kBlockN x kStride
  uint16_t* sV = sK + kBlockN * kStride;                   // kBlockN x kStride
  uint16_t* sQ = sV + kBlockN * kStride;                   // 2 x kBM x kStride
  uint16_t* sdO = sQ + 2 * kBM * kStride;              // 2 x kBM x kStride
  uint16_t* sdS = sdO + 2 * kBM * kStride;             // kBlockN x kSStride
  float* sL = reinterpret_cast<float*>(sdS + kBlockN * kSStride);  // 2 x kBM
  float* sDelta = sL + 2 * kBM;                                // 2 x kBM

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = ai::frag_g(lane), t = ai::frag_t(lane);
  const int Sq = a.seq_q, Sk = a.seq_k;
  const int nkb = (Sk + kBlockN - 1) / kBlockN;
  const int bh = blockIdx.x / nkb, k0 = (blockIdx.x % nkb) * kBlockN;
  const int b = bh / a.heads, h = bh % a.heads;

  const uint16_t* Qbh = static_cast<const uint16_t*>(a.q) + static_cast<int64_t>(bh) * Sq * D;
  const uint16_t* dObh = static_cast<const uint16_t*>(a.dout) + static_cast<int64_t>(bh) * Sq * D;
  const float* lse_bh = a.lse_in + static_cast<int64_t>(bh) * Sq;
  const float* delta_bh = a.delta + static_cast<int64_t>(bh) * Sq;
  const float* mask_bh = a.mask ? a.mask + b * a.mask_sb + h * a.mask_sh : nullptr;

  load_tile<D, kBlockN>(sK, static_cast<const uint16_t*>(a.k) + (static_cast<int64_t>(bh) * Sk + k0) * D, Sk - k0,
                        a.vec);
  load_tile<D, kBlockN>(sV, static_cast<const uint16_t*>(a.v) + (static_cast<int64_t>(bh) * Sk + k0) * D, Sk - k0,
                        a.vec);

  // Query block `qb` into stage `st`: Q, dO by cp.async; lse and delta by plain
  // stores. Rows past Sq and fully masked rows (lse -inf) get lse = +inf, so
  // their P = exp(s - lse) is 0 and they contribute nothing.
  auto load_stage = [&](int qb, int st) {
    const int i0 = qb * kBM;
    load_tile<D, kBM>(sQ + st * kBM * kStride, Qbh + static_cast<int64_t>(i0) * D, Sq - i0, a.vec);
    load_tile<D, kBM>(sdO + st * kBM * kStride, dObh + static_cast<int64_t>(i0) * D, Sq - i0, a.vec);
    for (int r = threadIdx.x; r < kBM; r += kThreads) {
      const int i = i0 + r;
      const float L = i < Sq ? lse_bh[i] : INFINITY;
      sL[st * kBM + r] = L == -INFINITY ? INFINITY : L;
      sDelta[st * kBM + r] = i < Sq ? delta_bh[i] : 0.f;
    }
  };

  const int nqb = (Sq + kBM - 1) / kBM;
  // Causal: query rows before k0 see none of these keys.
  const int qb_begin = a.causal ? min(k0 / kBM, nqb) : 0;
  if (qb_begin < nqb) load_stage(qb_begin, 0);
  cp_async_commit();

  const int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};  // this thread's C rows
  float dv[D / 8][4], dk[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) dv[j][c] = dk[j][c] = 0.f;

  for (int qb = qb_begin; qb < nqb; ++qb) {
    const int st = (qb - qb_begin) & 1;
    if (qb + 1 < nqb) {
      load_stage(qb + 1, st ^ 1);  // stage st^1 was freed by the barrier ending the previous step
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int i0 = qb * kBM;
    const uint16_t* cQ = sQ + st * kBM * kStride;
    const uint16_t* cdO = sdO + st * kBM * kStride;
    const float* cL = sL + st * kBM;
    const float* cDelta = sDelta + st * kBM;

    // S^T = K Q^T: this warp's 16 keys x kBM queries.
    float p[kBM / 8][4];
#pragma unroll
    for (int j = 0; j < kBM / 8; ++j) p[j][0] = p[j][1] = p[j][2] = p[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ka[4];
      ldmatrix_x4(ka, sK + (warp * 16 + ai::ldsm_a_row(lane)) * kStride + kk * 16 + ai::ldsm_a_col(lane));
#pragma unroll
      for (int np = 0; np < kBM / 16; ++np) {
        uint32_t qb4[4];
        ldmatrix_x4(qb4, cQ + (np * 16 + ai::ldsm_bnk_n(lane)) * kStride + kk * 16 + ai::ldsm_bnk_k(lane));
        const uint32_t b0[2] = {qb4[0], qb4[1]}, b1[2] = {qb4[2], qb4[3]};
        mma_m16n8k16<T>(p[2 * np], ka, b0);
        mma_m16n8k16<T>(p[2 * np + 1], ka, b1);
      }
    }
    // P^T = exp(S^T - lse[query]). Dropout: bit 4j + c of `dropped` marks a dropped
    // element; the factor Z is then 0, else 1 / (1 - p) (1 without dropout).
    static_assert(kBM / 8 * 4 <= 32, "one bit per accumulator element");
    uint32_t dropped = 0;
#pragma unroll
    for (int j = 0; j < kBM / 8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int qi = 8 * j + ai::c_col(lane, c), kj = key[c >> 1];
        const float x = score(a, mask_bh, p[j][c], i0 + qi, kj);
        p[j][c] = exp2f((x - cL[qi]) * kLog2e);
        if (a.dropout) {
          const bool keep = i0 + qi < Sq && kj < Sk &&
                            dropout_keep(a, ai::dropout_element(bh, Sq, Sk, i0 + qi, kj));
          if (!keep) dropped |= 1u << (4 * j + c);
        }
      }
    const float keep_scale = a.dropout ? a.drop_scale : 1.f;
    auto zf = [&](int j, int c) { return (dropped >> (4 * j + c)) & 1u ? 0.f : keep_scale; };

    // dV += (P^T o Z) dO: A = P^T o Z (registers), B = dO [query][d] by ldmatrix.trans.
    if (a.dv != nullptr) {
#pragma unroll
      for (int kk = 0; kk < kBM / 16; ++kk) {
        uint32_t pa[4];
#pragma unroll
        for (int reg = 0; reg < 4; ++reg) {
          const int tile = ai::c_to_a_tile(kk, reg), c = ai::c_to_a_float(reg, 0);
          pa[reg] = pack2<T>(p[tile][c] * zf(tile, c), p[tile][c + 1] * zf(tile, c + 1));
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t ob[4];
          ldmatrix_x4_trans(ob, cdO + (kk * 16 + ai::ldsm_bkn_k(lane)) * kStride + dp * 16 + ai::ldsm_bkn_n(lane));
          const uint32_t b0[2] = {ob[0], ob[1]}, b1[2] = {ob[2], ob[3]};
          mma_m16n8k16<T>(dv[2 * dp], pa, b0);
          mma_m16n8k16<T>(dv[2 * dp + 1], pa, b1);
        }
      }
    }

    if (a.dk != nullptr || a.dq_acc != nullptr) {
      // dP^T = V dO^T: A = V rows of this warp's keys, B = dO [query][d] (non-transposed).
      float dp_[kBM / 8][4];
#pragma unroll
      for (int j = 0; j < kBM / 8; ++j) dp_[j][0] = dp_[j][1] = dp_[j][2] = dp_[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t va[4];
        ldmatrix_x4(va, sV + (warp * 16 + ai::ldsm_a_row(lane)) * kStride + kk * 16 + ai::ldsm_a_col(lane));
#pragma unroll
        for (int np = 0; np < kBM / 16; ++np) {
          uint32_t ob[4];
          ldmatrix_x4(ob, cdO + (np * 16 + ai::ldsm_bnk_n(lane)) * kStride + kk * 16 + ai::ldsm_bnk_k(lane));
          const uint32_t b0[2] = {ob[0], ob[1]}, b1[2] = {ob[2], ob[3]};
          mma_m16n8k16<T>(dp_[2 * np], va, b0);
          mma_m16n8k16<T>(dp_[2 * np + 1], va, b1);
        }
      }
      // dS^T = scale * P^T o (dP^T o Z - delta), in place of P; also to shared memory as T.
#pragma unroll
      for (int j = 0; j < kBM / 8; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int qi = 8 * j + ai::c_col(lane, c);
          p[j][c] = a.scale * p[j][c] * (dp_[j][c] * zf(j, c) - cDelta[qi]);
        }
#pragma unroll
      for (int j = 0; j < kBM / 8; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r) {  // C rows g (r = 0), g + 8 (r = 1); columns 8j + 2t, +1
          uint16_t* dst = sdS + (warp * 16 + g + 8 * r) * kSStride + 8 * j + 2 * t;
          *reinterpret_cast<uint32_t*>(dst) = pack2<T>(p[j][2 * r], p[j][2 * r + 1]);
        }

      // dK += dS^T Q: A = dS^T (registers), B = Q [query][d] by ldmatrix.trans.
      if (a.dk != nullptr) {
#pragma unroll
        for (int kk = 0; kk < kBM / 16; ++kk) {
          uint32_t pa[4];
#pragma unroll
          for (int reg = 0; reg < 4; ++reg) {
            const int tile = ai::c_to_a_tile(kk, reg), c = ai::c_to_a_float(reg, 0);
            pa[reg] = pack2<T>(p[tile][c], p[tile][c + 1]);
          }
#pragma unroll
          for (int dp = 0; dp < D / 16; ++dp) {
            uint32_t qb4[4];
            ldmatrix_x4_trans(qb4, cQ + (kk * 16 + ai::ldsm_bkn_k(lane)) * kStride + dp * 16 + ai::ldsm_bkn_n(lane));
            const uint32_t b0[2] = {qb4[0], qb4[1]}, b1[2] = {qb4[2], qb4[3]};
            mma_m16n8k16<T>(dk[2 * dp], pa, b0);
            mma_m16n8k16<T>(dk[2 * dp + 1], pa, b1);
          }
        }
      }
      __syncthreads();  // dS^T complete in shared memory

      // dQ (kBM queries x D) += dS K: 16-row x 32-column tiles spread over the warps.
      // A = dS [query][key] by ldmatrix.trans of dS^T [key][query]; B = K [key][d] by ldmatrix.trans.
      if (a.dq_acc != nullptr) {
        constexpr int kRowTiles = kBM / 16, kColChunks = D / 32;
        for (int tile = warp; tile < kRowTiles * kColChunks; tile += kWarps) {
          const int mt = tile % kRowTiles, ch = tile / kRowTiles;
          float acc[4][4];
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
          for (int kk = 0; kk < kBlockN / 16; ++kk) {
            uint32_t dsa[4];
            ldmatrix_x4_trans(dsa, sdS + (kk * 16 + ai::ldsm_akm_k(lane)) * kSStride + mt * 16 + ai::ldsm_akm_m(lane));
#pragma unroll
            for (int dp = 0; dp < 2; ++dp) {
              uint32_t kb[4];
              ldmatrix_x4_trans(kb, sK + (kk * 16 + ai::ldsm_bkn_k(lane)) * kStride + ch * 32 + dp * 16 +
                                        ai::ldsm_bkn_n(lane));
              const uint32_t b0[2] = {kb[0], kb[1]}, b1[2] = {kb[2], kb[3]};
              mma_m16n8k16<T>(acc[2 * dp], dsa, b0);
              mma_m16n8k16<T>(acc[2 * dp + 1], dsa, b1);
            }
          }
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int i = i0 + mt * 16 + g + 8 * r;
            if (i < Sq) {
              float* dst = a.dq_acc + (static_cast<int64_t>(bh) * Sq + i) * D + ch * 32 + 2 * t;
#pragma unroll
              for (int j = 0; j < 4; ++j) {
                atomicAdd(dst + 8 * j, acc[j][2 * r]);
                atomicAdd(dst + 8 * j + 1, acc[j][2 * r + 1]);
              }
            }
          }
        }
      }
    }
    __syncthreads();  // stage st and sdS are free for the next step
  }
  cp_async_wait<0>();

  // dK, dV rows of this CTA's keys (zero where no query sees them).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int kj = key[r];
    if (kj >= Sk) continue;
    const int64_t off = (static_cast<int64_t>(bh) * Sk + kj) * D;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      const int col = 8 * j + 2 * t;
      if (a.dk != nullptr) {
        static_cast<T*>(a.dk)[off + col] = from_f32<T>(dk[j][2 * r]);
        static_cast<T*>(a.dk)[off + col + 1] = from_f32<T>(dk[j][2 * r + 1]);
      }
      if (a.dv != nullptr) {
        static_cast<T*>(a.dv)[off + col] = from_f32<T>(dv[j][2 * r]);
        static_cast<T*>(a.dv)[off + col + 1] = from_f32<T>(dv[j][2 * r + 1]);
      }
    }
  }
}

// =================================== host side =================================================
[[noreturn]] void fail(const char* launcher, const std::string& what) {
  throw std::invalid_argument(std::string(launcher) + ": " + what);
}

// Shared argument checks of both launchers. Returns false when there is nothing to compute.
bool check_common(const char* fn, DataType dt, const AttentionParams& p, const void* q, const void* k, const void* v,
                  const float* mask, int64_t mask_elements, const AttentionDropout& drop) {
  if (dt != DataType::bf16 && dt != DataType::f16)
    fail(fn, std::string("dtype ") + dtype_name(dt) +
                 " is not supported: the tensor-core kernel takes bf16 and f16 (f32 attention runs on the CPU twin)");
  if (p.batch < 0 || p.heads < 0 || p.seq_q < 0 || p.seq_k < 0)
    fail(fn, "batch, heads, seq_q and seq_k must be >= 0");
  if (p.head_dim != 32 && p.head_dim != 64 && p.head_dim != 128)
    fail(fn, "head_dim " + std::to_string(p.head_dim) + " is not supported (32, 64 or 128)");
  if (p.head_dim_v != p.head_dim)
    fail(fn, "head_dim_v " + std::to_string(p.head_dim_v) + " must equal head_dim " + std::to_string(p.head_dim));
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (p.seq_q > kIntMax || p.seq_k > kIntMax || p.heads > kIntMax || p.batch * p.heads > kIntMax)
    fail(fn, "batch * heads, seq_q and seq_k must fit in int32");
  {
    const int64_t bh = p.batch * p.heads;
    const int64_t blocks = std::max((p.seq_q + 63) / 64, (p.seq_k + kBlockN - 1) / kBlockN);  // >= any launch's
    if (bh > 0 && blocks > kIntMax / bh) fail(fn, "batch * heads * sequence blocks exceeds the grid limit (2^31 - 1)");
  }
  if (!(drop.p >= 0.f && drop.p <= 1.f)) fail(fn, "dropout p must be in [0, 1]");
  if (p.batch == 0 || p.heads == 0 || p.seq_q == 0) return false;
  if (q == nullptr) fail(fn, "q is null");
  if (p.seq_k > 0 && (k == nullptr || v == nullptr)) fail(fn, "k or v is null");
  if (mask != nullptr && p.seq_k > 0) {
    if (p.mask_stride_b < 0 || p.mask_stride_h < 0 || p.mask_stride_q < 0 || p.mask_stride_k < 0)
      fail(fn, "mask strides must be >= 0");
    // The largest offset the strides reach for (B, H, Sq, Sk), in 128 bits.
    const __int128 last = static_cast<__int128>(p.batch - 1) * p.mask_stride_b +
                          static_cast<__int128>(p.heads - 1) * p.mask_stride_h +
                          static_cast<__int128>(p.seq_q - 1) * p.mask_stride_q +
                          static_cast<__int128>(p.seq_k - 1) * p.mask_stride_k;
    if (last >= static_cast<__int128>(mask_elements))
      fail(fn, "mask (mask_elements " + std::to_string(mask_elements) +
                   ") does not broadcast to the score shape (B, H, Sq, Sk) with the given mask strides");
  }
  return true;
}

Args make_args(const AttentionParams& p, const void* q, const void* k, const void* v, const float* mask,
               const AttentionDropout& drop) {
  Args a{};
  a.q = q;
  a.k = k;
  a.v = v;
  a.mask = p.seq_k > 0 ? mask : nullptr;
  a.mask_sb = p.mask_stride_b;
  a.mask_sh = p.mask_stride_h;
  a.mask_sq = p.mask_stride_q;
  a.mask_sk = p.mask_stride_k;
  a.heads = static_cast<int>(p.heads);
  a.seq_q = static_cast<int>(p.seq_q);
  a.seq_k = static_cast<int>(p.seq_k);
  a.scale = p.scale;
  a.causal = p.causal;
  a.dropout = drop.p > 0.f;
  a.drop_p = drop.p;
  a.drop_scale = drop.p < 1.f ? 1.f / (1.f - drop.p) : 0.f;
  a.seed = drop.rng.seed;
  a.offset = drop.rng.offset;
  return a;
}

template <typename T, int D>
void launch_forward(const Args& a, int64_t bh, cudaStream_t stream) {
  constexpr int smem = fwd_smem_bytes<D>();
  static bool attr_set = false;  // raise the dynamic shared-memory limit once per instantiation
  if (!attr_set) {
    GRAFT_KERNEL_CUDA_CHECK(
        cudaFuncSetAttribute(attn_fwd_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    attr_set = true;
  }
  constexpr int kBM = fwd_block_m<D>();
  const int64_t nqb = (a.seq_q + kBM - 1) / kBM;
  attn_fwd_kernel<T, D><<<static_cast<unsigned>(bh * nqb), kThreads, smem, stream>>>(a);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, int D>
void launch_backward(const Args& a, int64_t bh, cudaStream_t stream) {
  constexpr int smem = bwd_smem_bytes<D>();
  static bool attr_set = false;
  if (!attr_set) {
    GRAFT_KERNEL_CUDA_CHECK(
        cudaFuncSetAttribute(attn_bwd_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    attr_set = true;
  }
  const int64_t nkb = (a.seq_k + kBlockN - 1) / kBlockN;
  attn_bwd_kernel<T, D><<<static_cast<unsigned>(bh * nkb), kThreads, smem, stream>>>(a);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void dispatch_forward(int64_t d, const Args& a, int64_t bh, cudaStream_t stream) {
  if (d == 32) launch_forward<T, 32>(a, bh, stream);
  else if (d == 64) launch_forward<T, 64>(a, bh, stream);
  else launch_forward<T, 128>(a, bh, stream);
}
template <typename T>
void dispatch_backward(int64_t d, const Args& a, int64_t bh, cudaStream_t stream) {
  if (d == 32) launch_backward<T, 32>(a, bh, stream);
  else if (d == 64) launch_backward<T, 64>(a, bh, stream);
  else launch_backward<T, 128>(a, bh, stream);
}

bool all_aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p != nullptr && !aligned16(p)) return false;
  return true;
}

}  // namespace

void attention_forward(DataType dt, const AttentionParams& p, const void* q, const void* k, const void* v,
                       const float* mask, int64_t mask_elements, const AttentionDropout& drop, void* out, float* lse,
                       cudaStream_t stream) {
  constexpr const char* fn = "attention_forward";
  if (!check_common(fn, dt, p, q, k, v, mask, mask_elements, drop)) return;
  if (out == nullptr || lse == nullptr) fail(fn, "out or lse is null");
  Args a = make_args(p, q, k, v, mask, drop);
  a.out = out;
  a.lse = lse;
  a.vec = all_aligned16({q, k, v});
  const int64_t bh = p.batch * p.heads;
  if (dt == DataType::bf16) dispatch_forward<__nv_bfloat16>(p.head_dim, a, bh, stream);
  else dispatch_forward<__half>(p.head_dim, a, bh, stream);
}

int64_t attention_backward_workspace_bytes(const AttentionParams& p) {
  return p.batch * p.heads * p.seq_q * (p.head_dim + 1) * static_cast<int64_t>(sizeof(float));
}

void attention_backward(DataType dt, const AttentionParams& p, const void* q, const void* k, const void* v,
                        const float* mask, int64_t mask_elements, const AttentionDropout& drop, const void* out,
                        const void* dout, const float* lse, void* dq, void* dk, void* dv, void* workspace,
                        cudaStream_t stream) {
  constexpr const char* fn = "attention_backward";
  if (!check_common(fn, dt, p, q, k, v, mask, mask_elements, drop)) return;
  if (dq == nullptr && dk == nullptr && dv == nullptr) return;  // nothing wanted
  if (out == nullptr || dout == nullptr || lse == nullptr) fail(fn, "out, dout or lse is null");
  if (workspace == nullptr) fail(fn, "workspace is null (attention_backward_workspace_bytes)");
  if ((reinterpret_cast<uintptr_t>(workspace) & 3u) != 0) fail(fn, "workspace must be 4-byte aligned");

  const int64_t bh = p.batch * p.heads, D = p.head_dim;
  const int64_t rows = bh * p.seq_q, nq = rows * D;
  float* dq_acc = static_cast<float*>(workspace);
  float* delta = dq_acc + nq;

  Args a = make_args(p, q, k, v, mask, drop);
  a.o = out;
  a.dout = dout;
  a.lse_in = lse;
  a.delta = delta;
  a.dq_acc = dq != nullptr ? dq_acc : nullptr;
  a.dk = dk;
  a.dv = dv;
  a.vec = all_aligned16({q, k, v, dout});

  if (dq != nullptr) GRAFT_KERNEL_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, nq * sizeof(float), stream));
  const bool bf = dt == DataType::bf16;
  if (p.seq_k > 0) {
    if (bf)
      attn_bwd_delta_kernel<__nv_bfloat16><<<grid_for(rows, 8), 256, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(out), static_cast<const __nv_bfloat16*>(dout), delta, rows,
          static_cast<int>(D));
    else
      attn_bwd_delta_kernel<__half><<<grid_for(rows, 8), 256, 0, stream>>>(
          static_cast<const __half*>(out), static_cast<const __half*>(dout), delta, rows, static_cast<int>(D));
    GRAFT_KERNEL_LAUNCH_CHECK();
    if (bf) dispatch_backward<__nv_bfloat16>(D, a, bh, stream);
    else dispatch_backward<__half>(D, a, bh, stream);
  }
  if (dq != nullptr) {
    if (bf)
      attn_convert_kernel<__nv_bfloat16><<<grid_for(nq, 256), 256, 0, stream>>>(dq_acc,
                                                                               static_cast<__nv_bfloat16*>(dq), nq);
    else
      attn_convert_kernel<__half><<<grid_for(nq, 256), 256, 0, stream>>>(dq_acc, static_cast<__half*>(dq), nq);
    GRAFT_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace graft::kernels::cuda
