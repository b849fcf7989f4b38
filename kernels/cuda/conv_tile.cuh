// The implicit-GEMM convolution kernel (kernels/cuda/conv.h): one mainloop
// (4-stage cp.async pipeline, ldmatrix or plain LDS fragments, mma.sync)
// templated on the element type and on a gather policy that says how the A
// and B tiles are read from global memory and where the results go
// (forward, backward-data, backward-weight are three policies, in
// conv_fwd.cu and conv_bwd.cu). Also the host-side argument checks shared by
// the launchers. Included only by the conv .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cpu/depthwise.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/conv_index.h"
#include "kernels/cuda/mma.cuh"

namespace graft::kernels::cuda::convk {

using convidx::Geom;

// ---- tile configuration ---------------------------------------------------------------------
constexpr int kThreads = 256;  // 8 warps: 2 along M x 4 along N
constexpr int kStages = 4;
constexpr int kTile = convidx::kTileMN;  // 128 x 128 output tile per block
constexpr int kWarpM = 64, kWarpN = 32;  // per warp: 4 m16 fragments x 4 n8 fragments
static_assert(2 * kWarpM == kTile && 4 * kWarpN == kTile, "8 warps tile the 128x128 block as 2 x 4");
static_assert(kThreads == 256, "the loaders below assume 256 threads: 2 x 16-byte chunks per operand per stage");

template <typename T>
struct Elem {
  static constexpr int kBytes = sizeof(T);
  static constexpr int kVec = 16 / kBytes;          // elements per 16-byte chunk
  static constexpr int kBK = convidx::kKBytes / kBytes;  // k per stage: 32 (16-bit) or 16 (f32)
  static constexpr int kMmaK = kBytes == 4 ? 8 : 16;
};

template <typename T, bool kAK, bool kBK>
struct Smem {
  static constexpr int kA = convidx::smem_tile_bytes(kAK, sizeof(T));
  static constexpr int kB = convidx::smem_tile_bytes(kBK, sizeof(T));
  static constexpr int kStage = kA + kB;
  static constexpr int kTotal = kStages * kStage;
  static_assert(kA % 128 == 0 && kB % 128 == 0, "tiles keep 16-byte (and 128-byte) alignment");
};

// Everything a block needs, passed by value (__grid_constant__: no local copy).
struct Args {
  Geom q;
  const void* a;  // forward: x; backward-data: dy; backward-weight: dy
  const void* b;  // forward: w; backward-data: transposed w; backward-weight: x
  void* out;      // forward: y; backward-data: dx; backward-weight: f32 partials
  int M, N, K;    // GEMM sizes per group
  int k_tiles_per_split, splits;  // backward-data: splits = stride phases in this launch
  int phase_base;                 // backward-data: first stride phase of this launch
  int64_t split_stride;           // backward-weight: floats per split in the partials
  bool vec;              // 16-byte cp.async gathers (see conv.h for when)
  bool plain;            // 1x1, stride 1, unpadded: A rows are dense
  bool pair_out;         // outputs stored two at a time
  // forward epilogue
  const float* scale;
  const float* shift;
  const void* residual;
  int act;
};

template <typename T>
__device__ __forceinline__ T zero_elem() {
  return from_f32<T>(0.0f);
}

// Fills one 16-byte chunk of a K-contiguous tile: tile row `row`, elements
// k0 + kc*kVec .. +kVec-1, offsets from at(k) (-1: zero).
template <typename T, class At>
__device__ __forceinline__ void load_chunk_kcontig(char* tile, const T* src, bool vec, int row, int kc, int k0,
                                                   const At& at) {
  constexpr int V = Elem<T>::kVec;
  char* dst = tile + convidx::smem_offset(true, sizeof(T), row, kc * V);
  const int k = k0 + kc * V;
  if (vec) {
    const int off = at(k);
    mma::cp_async16(dst, off >= 0 ? src + off : src, off >= 0);
  } else {
    T* d = reinterpret_cast<T*>(dst);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const int off = at(k + e);
      d[e] = off >= 0 ? src[off] : zero_elem<T>();
    }
  }
}
// Fills one 16-byte chunk of an MN-contiguous tile: k row `krow`, mn
// elements mc*kVec .. +kVec-1, offsets from at(e) for element e of the chunk.
template <typename T, class At>
__device__ __forceinline__ void load_chunk_mncontig(char* tile, const T* src, bool vec, int krow, int mc,
                                                    const At& at) {
  constexpr int V = Elem<T>::kVec;
  char* dst = tile + convidx::smem_offset(false, sizeof(T), mc * V, krow);
  if (vec) {
    const int off = at(0);
    mma::cp_async16(dst, off >= 0 ? src + off : src, off >= 0);
  } else {
    T* d = reinterpret_cast<T*>(dst);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const int off = at(e);
      d[e] = off >= 0 ? src[off] : zero_elem<T>();
    }
  }
}

// ---- fragments + MMA for one stage --------------------------------------------------------
// f16/bf16: ldmatrix, lane addresses from convidx::ldsm_a_offset / ldsm_b_offset
// (the lane-to-element maps are derived there and checked on the host by
// tests/cuda/test_conv.cpp, which simulates ldmatrix on those addresses).
// f32 (TF32): plain 4-byte reads at the (row, k) mma.cuh gives for m16n8k8.
template <typename T, bool kAK, bool kBK>
__device__ __forceinline__ void mma_stage(float (&acc)[4][4][4], const char* sa, const char* sb, int wm, int wn,
                                          int lane) {
  using convidx::smem_offset;
  constexpr int EB = sizeof(T);
  if constexpr (EB == 2) {
#pragma unroll
    for (int k0 = 0; k0 < Elem<T>::kBK; k0 += 16) {
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int mb = wm + mi * 16;
        if constexpr (kAK)
          mma::ldmatrix_x4(a[mi], sa + convidx::ldsm_a_offset(true, lane, mb, k0));
        else
          mma::ldmatrix_x4_trans(a[mi], sa + convidx::ldsm_a_offset(false, lane, mb, k0));
      }
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        const int nb = wn + np * 16;
        uint32_t t4[4];
        if constexpr (kBK)
          mma::ldmatrix_x4(t4, sb + convidx::ldsm_b_offset(true, lane, nb, k0));
        else
          mma::ldmatrix_x4_trans(t4, sb + convidx::ldsm_b_offset(false, lane, nb, k0));
        b[2 * np][0] = t4[0];
        b[2 * np][1] = t4[1];
        b[2 * np + 1][0] = t4[2];
        b[2 * np + 1][1] = t4[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma::mma_m16n8k16<T>(acc[mi][ni], a[mi], b[ni]);
    }
  } else {
    const int g = lane >> 2, t = lane & 3;
    auto lds = [](const char* base, bool kc, int mn, int k) {
      return mma::to_tf32(*reinterpret_cast<const float*>(base + smem_offset(kc, 4, mn, k)));
    };
#pragma unroll
    for (int k0 = 0; k0 < Elem<T>::kBK; k0 += 8) {
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int m = wm + mi * 16 + g;  // a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]
        a[mi][0] = lds(sa, kAK, m, k0 + t);
        a[mi][1] = lds(sa, kAK, m + 8, k0 + t);
        a[mi][2] = lds(sa, kAK, m, k0 + t + 4);
        a[mi][3] = lds(sa, kAK, m + 8, k0 + t + 4);
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int n = wn + ni * 8 + g;  // b[0] = B[k = t][n = g], b[1] = B[t + 4][g]
        b[ni][0] = lds(sb, kBK, n, k0 + t);
        b[ni][1] = lds(sb, kBK, n, k0 + t + 4);
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma::mma_m16n8k8_tf32(acc[mi][ni], a[mi], b[ni]);
    }
  }
}

// ---- the mainloop -----------------------------------------------------------------------------
// Policy P<T> provides: kAK, kBK (tile layouts), a constructor (args, m0, n0,
// group, split, tid) that precomputes the thread's row state and sets k_total
// (the GEMM's K for this block; backward-data's depends on the phase) and
// k_tile_begin (this block's first k tile: nonzero for backward-weight's K
// splits; it then runs at most k_tiles_per_split tiles), load_a/load_b
// (tile, k0) issuing the thread's two chunks of each operand, and store(m, n,
// v0, v1) for the elements (m, n) and (m, n + 1) of the group's GEMM output.
// Grid: x = M tiles, y = N tiles, z = groups * splits (split fastest).
template <typename T, template <typename> class P>
__global__ void __launch_bounds__(kThreads, 2) conv_igemm_kernel(const __grid_constant__ Args args) {
  using Pol = P<T>;
  using S = Smem<T, Pol::kAK, Pol::kBK>;
  constexpr int BK = Elem<T>::kBK;
  GRAFT_DYNAMIC_SMEM(char, smem);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp & 1) * kWarpM, wn = (warp >> 1) * kWarpN;
  const int group = blockIdx.z / args.splits, split = blockIdx.z - group * args.splits;
  const int m0 = blockIdx.x * kTile, n0 = blockIdx.y * kTile;
  Pol pol(args, m0, n0, group, split, tid);

  const int total_tiles = (pol.k_total + BK - 1) / BK;
  const int kt0 = pol.k_tile_begin;
  const int ktiles = max(0, min(args.k_tiles_per_split, total_tiles - kt0));

  float acc[4][4][4];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

  // Prologue: stages 0 .. kStages-2 in flight (one commit group each, empty past the end).
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) {
      char* st = smem + s * S::kStage;
      pol.load_a(st, (kt0 + s) * BK);
      pol.load_b(st + S::kA, (kt0 + s) * BK);
    }
    mma::cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    // Groups committed so far: kStages-1 + kt; waiting until kStages-2 remain
    // completes group kt (this stage). The barrier then also orders every
    // warp's reads of stage kt-1 before the refill of that buffer below.
    mma::cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < ktiles) {
      char* st = smem + (next % kStages) * S::kStage;
      pol.load_a(st, (kt0 + next) * BK);
      pol.load_b(st + S::kA, (kt0 + next) * BK);
    }
    mma::cp_async_commit();
    const char* sa = smem + (kt % kStages) * S::kStage;
    mma_stage<T, Pol::kAK, Pol::kBK>(acc, sa, sa + S::kA, wm, wn, lane);
  }
  mma::cp_async_wait<0>();

  // Epilogue: acc[mi][ni][0..1] = D[g][2t, 2t+1], [2..3] = D[g+8][2t, 2t+1] of the
  // fragment at (wm + mi*16, wn + ni*8).
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int m = m0 + wm + mi * 16 + g, n = n0 + wn + ni * 8 + 2 * t;
      pol.store(m, n, acc[mi][ni][0], acc[mi][ni][1]);
      pol.store(m + 8, n, acc[mi][ni][2], acc[mi][ni][3]);
    }
}

// Raises the kernel's dynamic shared memory limit once, then launches.
template <typename T, template <typename> class P>
void launch_igemm(const Args& args, int groups, cudaStream_t stream) {
  using Pol = P<T>;
  using S = Smem<T, Pol::kAK, Pol::kBK>;
  static const cudaError_t attr = cudaFuncSetAttribute(conv_igemm_kernel<T, P>,
                                                       cudaFuncAttributeMaxDynamicSharedMemorySize, S::kTotal);
  GRAFT_KERNEL_CUDA_CHECK(attr);
  const dim3 grid(static_cast<unsigned>((args.M + kTile - 1) / kTile),
                  static_cast<unsigned>((args.N + kTile - 1) / kTile),
                  static_cast<unsigned>(groups * args.splits));
  conv_igemm_kernel<T, P><<<grid, kThreads, S::kTotal, stream>>>(args);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

// ---- host-side checks -------------------------------------------------------------------------
[[noreturn]] inline void fail(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}
inline void require_ptr(const char* fn, const void* p, const char* name) {
  if (!p) fail(fn, std::string(name) + " is null");
}
constexpr int64_t kMaxElems = INT32_MAX - 2 * kTile;  // int32 offsets, plus a tile of slack
constexpr int64_t kMaxExtent = int64_t(1) << 30;

// Validates p for launcher fn and narrows it to int.
inline Geom check_geometry(const char* fn, const Conv2dParams& p) {
  auto pos = [&](int64_t v, const char* name) {
    if (v < 1 || v > kMaxExtent) fail(fn, std::string(name) + " = " + std::to_string(v) + " must be in [1, 2^30]");
  };
  pos(p.n, "n"), pos(p.h, "h"), pos(p.w, "w"), pos(p.c, "c"), pos(p.o, "o"), pos(p.kh, "kh"), pos(p.kw, "kw");
  pos(p.stride_h, "stride_h"), pos(p.stride_w, "stride_w"), pos(p.dilation_h, "dilation_h");
  pos(p.dilation_w, "dilation_w"), pos(p.groups, "groups");
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0) fail(fn, "padding must be >= 0");
  if (p.h + p.pad_top + p.pad_bottom > kMaxExtent || p.w + p.pad_left + p.pad_right > kMaxExtent)
    fail(fn, "padded input extent exceeds 2^30");
  if (p.c % p.groups != 0) fail(fn, "c = " + std::to_string(p.c) + " is not a multiple of groups");
  if (p.o % p.groups != 0) fail(fn, "o = " + std::to_string(p.o) + " is not a multiple of groups");
  if (p.groups > 65535) fail(fn, "groups = " + std::to_string(p.groups) + " exceeds 65535");
  if (cpu::is_depthwise(p))
    fail(fn, "depthwise convolution (groups == c == o): use the depthwise launchers (kernels/cuda/depthwise.h)");
  if (p.dilation_h * (p.kh - 1) + 1 > p.h + p.pad_top + p.pad_bottom ||
      p.dilation_w * (p.kw - 1) + 1 > p.w + p.pad_left + p.pad_right)
    fail(fn, "kernel (with dilation) is larger than the padded input: empty output");
  const int64_t oh = p.out_h(), ow = p.out_w();
  // Products in double: the factors are each <= 2^30, so int64 could overflow.
  const double lim = double(kMaxElems);
  if (double(p.n) * double(p.h) * double(p.w) * double(p.c) > lim)
    fail(fn, "x has more than 2^31 - 257 elements (int32 index overflow)");
  if (double(p.n) * double(oh) * double(ow) * double(p.o) > lim)
    fail(fn, "y has more than 2^31 - 257 elements (int32 index overflow)");
  if (double(p.o) * double(p.kh) * double(p.kw) * double(p.c / p.groups) > lim)
    fail(fn, "w has more than 2^31 - 257 elements (int32 index overflow)");
  Geom q;
  q.n = int(p.n), q.h = int(p.h), q.w = int(p.w), q.c = int(p.c), q.o = int(p.o);
  q.kh = int(p.kh), q.kw = int(p.kw), q.sh = int(p.stride_h), q.sw = int(p.stride_w);
  q.pt = int(p.pad_top), q.pl = int(p.pad_left), q.dh = int(p.dilation_h), q.dw = int(p.dilation_w);
  q.groups = int(p.groups), q.cg = int(p.c / p.groups), q.og = int(p.o / p.groups);
  q.oh = int(oh), q.ow = int(ow);
  return q;
}

inline bool is_plain(const Conv2dParams& p) {
  return p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
         p.pad_bottom == 0 && p.pad_right == 0;
}
inline bool aligned_to(const void* p, size_t bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

}  // namespace graft::kernels::cuda::convk
