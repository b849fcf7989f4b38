// Depthwise NHWC convolution on the GPU; the description and the rules are in
// depthwise.h and its CPU twin kernels/cpu/depthwise.h.
//
// Thread layout shared by all kernels: threadIdx.x walks the channel vectors
// of the block's channel tile (blockIdx.y picks the tile: blockDim.x vectors
// of V channels), so a warp's 16-byte accesses to one pixel are contiguous;
// the other thread dimensions walk pixels (tiles of kTileW adjacent pixels
// along W in the specialised kernels, one pixel in the generic ones) in a
// grid-stride loop. Geometry is int32 (the launchers check the sizes).
#include "kernels/cuda/depthwise.h"

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/depthwise_index.h"

namespace graft::kernels::cuda {

namespace {

using vec::load_f32;
using vec::Pack;
using vec::store_f32;

constexpr int kThreads = 256;  // threads per block, every kernel
using dw_index::kTileW;  // adjacent pixels along W per thread (specialised kernels)
constexpr int kMaxChannelVecs = 32;  // channel vectors per block tile (one warp's width)
// Resident blocks per SM the specialised kernels ask ptxas for: 3 (<= 80
// registers) for 3x3, 2 (<= 128) for 5x5, whose 5 x 8 filter values and 4 x 8
// accumulators need ~110, and for the stride-2 backward-data (4 bytes spilled
// at 80). Without a minimum ptxas picked ~80 for 3x3 and spilled a few bytes.
template <int K, int S = 1>
constexpr int kMinBlocks = K == 3 && S == 1 ? 3 : 2;


struct Geometry {
  int n, h, w, c, oh, ow;
  int kh, kw, sh, sw, pt, pl, dh, dw;
};

struct Epi {
  const float* scale;
  const float* shift;
  int act;  // DwActivation
};

// act: 0 none, 1 relu, 2 relu6, 3 silu (DwActivation). Written as selects
// rather than a switch, which ptxas turned into a jump table with spills.
__device__ __forceinline__ float activate(float v, int act) {
  if (act == 0) return v;
  if (act == 3) return v / (1.f + expf(-v));
  const float r = fmaxf(v, 0.f);
  return act == 2 ? fminf(r, 6.f) : r;
}

// The V channels' scale (1 when absent) and shift (0 when absent), loaded once per tile.
template <int V>
__device__ __forceinline__ void load_epilogue(const Epi& ep, int c0, float (&sc)[V], float (&sh)[V]) {
#pragma unroll
  for (int l = 0; l < V; ++l) {
    sc[l] = ep.scale ? __ldg(ep.scale + c0 + l) : 1.f;
    sh[l] = ep.shift ? __ldg(ep.shift + c0 + l) : 0.f;
  }
}
template <int V>
__device__ __forceinline__ void apply_epilogue(float (&v)[V], const float (&sc)[V], const float (&sh)[V], int act) {
#pragma unroll
  for (int l = 0; l < V; ++l) v[l] = activate(fmaf(v[l], sc[l], sh[l]), act);
}

// The block's filters, (taps, channel tile) in f32: ws[tap * ct + cl] = w[(c_base + cl) * taps + tap]
// (0 past C). Reads w contiguously. Every thread of the block calls it.
template <typename T>
__device__ __forceinline__ void stage_weights(const T* __restrict__ w, float* ws, int c, int taps, int c_base, int ct) {
  const int nthreads = blockDim.x * blockDim.y * blockDim.z;
  const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  for (int i = tid; i < taps * ct; i += nthreads) {
    const int cl = i / taps, tap = i - cl * taps;
    ws[tap * ct + cl] = c_base + cl < c ? to_f32(w[c_base * taps + i]) : 0.f;
  }
}

// The thread's V filter values for each of the K taps of row `a`.
// ct and threadIdx.x * V are multiples of 4 (V is 4 or 8 here), so the reads are float4.
template <int K, int V>
__device__ __forceinline__ void load_row_weights(const float* ws, int a, int ct, float (&wr)[K][V]) {
  static_assert(V % 4 == 0, "the specialised kernels run on 16-byte channel vectors");
#pragma unroll
  for (int b = 0; b < K; ++b)
#pragma unroll
    for (int l = 0; l < V; l += 4) {
      const float4 q = *reinterpret_cast<const float4*>(ws + (a * K + b) * ct + threadIdx.x * V + l);
      wr[b][l] = q.x, wr[b][l + 1] = q.y, wr[b][l + 2] = q.z, wr[b][l + 3] = q.w;
    }
}

// kTileOrder: the specialised kernels number their tiles (n, column strip,
// row) with the row fastest, so the pixel slots of a block (threadIdx.y or .z)
// hold consecutive rows of one kTileW-wide strip: the K input rows that
// neighbouring output rows share are then read by the same block at about the
// same time (L1 hits) instead of by K different blocks (L2 traffic).

// ---- forward ------------------------------------------------------------------------------------

// K x K, stride S, dilation 1. Thread: V channels x kTileW adjacent output
// pixels of one row; per filter row it reads the (kTileW-1)*S + K input
// columns once and feeds each to every output that uses it.
template <typename T, int V, int K, int S>
__global__ void __launch_bounds__(kThreads, kMinBlocks<K>)
    dw_forward_fixed(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y, Epi ep, Geometry g) {
  GRAFT_DYNAMIC_SMEM(float, ws);
  constexpr int TW = kTileW, NI = dw_index::fwd_columns(K, S);
  const int ct = blockDim.x * V, c_base = blockIdx.y * ct;
  stage_weights(w, ws, g.c, K * K, c_base, ct);
  __syncthreads();
  const int c0 = c_base + threadIdx.x * V;
  if (c0 >= g.c) return;  // after the block's only barrier
  const int owt = (g.ow + TW - 1) / TW;
  const int tiles = g.n * g.oh * owt;
  for (int64_t tile64 = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; tile64 < tiles;
       tile64 += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int tile = static_cast<int>(tile64);
    const int oh = tile % g.oh, strip = tile / g.oh;  // rows fastest: see kTileOrder
    const int ow0 = (strip % owt) * TW, n = strip / owt;
    float acc[TW][V];
#pragma unroll
    for (int t = 0; t < TW; ++t)
#pragma unroll
      for (int l = 0; l < V; ++l) acc[t][l] = 0.f;
    const int iw0 = ow0 * S - g.pl;
#pragma unroll
    for (int a = 0; a < K; ++a) {
      const int ih = oh * S - g.pt + a;
      if (ih < 0 || ih >= g.h) continue;
      float wr[K][V];
      load_row_weights<K, V>(ws, a, ct, wr);
      const T* xrow = x + (n * g.h + ih) * g.w * g.c + c0;
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int iw = iw0 + j;
        if (iw < 0 || iw >= g.w) continue;
        float xv[V];
        load_f32<T, V>(xrow + iw * g.c, xv);
#pragma unroll
        for (int t = 0; t < TW; ++t) {
          const int b = dw_index::fwd_tap(j, t, S);  // the tap joining input column j to output t
          if (b >= 0 && b < K) {
#pragma unroll
            for (int l = 0; l < V; ++l) acc[t][l] = fmaf(xv[l], wr[b][l], acc[t][l]);
          }
        }
      }
    }
    float sc[V], sh[V];
    load_epilogue<V>(ep, c0, sc, sh);
    T* yrow = y + ((n * g.oh + oh) * g.ow + ow0) * g.c + c0;
#pragma unroll
    for (int t = 0; t < TW; ++t) {
      if (ow0 + t >= g.ow) break;
      apply_epilogue<V>(acc[t], sc, sh, ep.act);
      store_f32<T, V>(yrow + t * g.c, acc[t]);
    }
  }
}

// Any geometry: one output pixel per thread, taps in a run-time loop, the
// filter read from global memory (cached).
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    dw_forward_generic(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y, Epi ep, Geometry g) {
  const int c0 = (blockIdx.y * blockDim.x + threadIdx.x) * V;
  if (c0 >= g.c) return;
  const int taps = g.kh * g.kw;
  const int pixels = g.n * g.oh * g.ow;
  for (int64_t p64 = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; p64 < pixels;
       p64 += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int pix = static_cast<int>(p64);
    const int ow = pix % g.ow, row = pix / g.ow;
    const int oh = row % g.oh, n = row / g.oh;
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.f;
    for (int a = 0; a < g.kh; ++a) {
      const int ih = oh * g.sh - g.pt + a * g.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int b = 0; b < g.kw; ++b) {
        const int iw = ow * g.sw - g.pl + b * g.dw;
        if (iw < 0 || iw >= g.w) continue;
        float xv[V];
        load_f32<T, V>(x + ((n * g.h + ih) * g.w + iw) * g.c + c0, xv);
        const int tap = a * g.kw + b;
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] = fmaf(xv[l], to_f32(w[(c0 + l) * taps + tap]), acc[l]);
      }
    }
    float sc[V], sh[V];
    load_epilogue<V>(ep, c0, sc, sh);
    apply_epilogue<V>(acc, sc, sh, ep.act);
    store_f32<T, V>(y + pix * g.c + c0, acc);
  }
}

// ---- backward-data ------------------------------------------------------------------------------

// dx[ih, iw0 + t] for t < kTileW, one filter row `a` whose output row is `dyrow`:
// with base = iw0 + pad_left = S * qb + P, tap b reaches dx column iw0 + t from
// dy column q = qb + (P + t - b) / S when S divides P + t - b. The dy columns
// are q = qb + j for j in [JLO, JHI]; each is read once and fed to every
// (t, b) pair it serves. P is compile-time so the pairing is unrolled.
template <typename T, int V, int K, int S, int P>
__device__ __forceinline__ void dw_backward_data_row(const T* dyrow, int qb, int ow_limit, int c_stride,
                                                     const float (&wr)[K][V], float (&acc)[kTileW][V]) {
  constexpr int TW = kTileW;
  constexpr int JLO = dw_index::bwd_jlo(K, S, P), JHI = dw_index::bwd_jhi(S, P);
#pragma unroll
  for (int j = JLO; j <= JHI; ++j) {
    const int q = qb + j;
    if (q < 0 || q >= ow_limit) continue;
    float gv[V];
    load_f32<T, V>(dyrow + q * c_stride, gv);
#pragma unroll
    for (int t = 0; t < TW; ++t) {
      const int b = dw_index::bwd_tap(P, t, S, j);  // P + t - b == S * j
      if (b >= 0 && b < K) {
#pragma unroll
        for (int l = 0; l < V; ++l) acc[t][l] = fmaf(gv[l], wr[b][l], acc[t][l]);
      }
    }
  }
}

// K x K, stride S, dilation 1: thread = V channels x kTileW adjacent dx pixels.
template <typename T, int V, int K, int S>
__global__ void __launch_bounds__(kThreads, kMinBlocks<K, S>)
    dw_backward_data_fixed(const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx, Geometry g) {
  static_assert(kTileW % S == 0, "tile start must keep the phase (iw0 + pad_left) % S uniform");
  static_assert(S == 1 || S == 2, "phases 0..S-1 are dispatched below for S <= 2");
  GRAFT_DYNAMIC_SMEM(float, ws);
  constexpr int TW = kTileW;
  const int ct = blockDim.x * V, c_base = blockIdx.y * ct;
  stage_weights(w, ws, g.c, K * K, c_base, ct);
  __syncthreads();
  const int c0 = c_base + threadIdx.x * V;
  if (c0 >= g.c) return;
  const int iwt = (g.w + TW - 1) / TW;
  const int tiles = g.n * g.h * iwt;
  const int phase = g.pl % S;  // (iw0 + pl) % S, iw0 being a multiple of TW (so of S)
  for (int64_t tile64 = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; tile64 < tiles;
       tile64 += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int tile = static_cast<int>(tile64);
    const int ih = tile % g.h, strip = tile / g.h;  // rows fastest: see kTileOrder
    const int iw0 = (strip % iwt) * TW, n = strip / iwt;
    const int qb = (iw0 + g.pl) / S;
    float acc[TW][V];
#pragma unroll
    for (int t = 0; t < TW; ++t)
#pragma unroll
      for (int l = 0; l < V; ++l) acc[t][l] = 0.f;
#pragma unroll
    for (int a = 0; a < K; ++a) {
      const int th = ih + g.pt - a;  // = oh * S for the dy row this filter row reads
      if (th < 0 || th % S != 0 || th / S >= g.oh) continue;
      float wr[K][V];
      load_row_weights<K, V>(ws, a, ct, wr);
      const T* dyrow = dy + (n * g.oh + th / S) * g.ow * g.c + c0;
      if (S == 1 || phase == 0) dw_backward_data_row<T, V, K, S, 0>(dyrow, qb, g.ow, g.c, wr, acc);
      else dw_backward_data_row<T, V, K, S, (S > 1 ? 1 : 0)>(dyrow, qb, g.ow, g.c, wr, acc);
    }
    T* dxrow = dx + ((n * g.h + ih) * g.w + iw0) * g.c + c0;
#pragma unroll
    for (int t = 0; t < TW; ++t) {
      if (iw0 + t >= g.w) break;
      store_f32<T, V>(dxrow + t * g.c, acc[t]);
    }
  }
}

// Any geometry: one dx pixel per thread, the taps that reach it in a run-time loop.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    dw_backward_data_generic(const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx, Geometry g) {
  const int c0 = (blockIdx.y * blockDim.x + threadIdx.x) * V;
  if (c0 >= g.c) return;
  const int taps = g.kh * g.kw;
  const int pixels = g.n * g.h * g.w;
  for (int64_t p64 = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; p64 < pixels;
       p64 += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int pix = static_cast<int>(p64);
    const int iw = pix % g.w, row = pix / g.w;
    const int ih = row % g.h, n = row / g.h;
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.f;
    for (int a = 0; a < g.kh; ++a) {
      const int th = ih + g.pt - a * g.dh;
      if (th < 0 || th % g.sh != 0 || th / g.sh >= g.oh) continue;
      const int oh = th / g.sh;
      for (int b = 0; b < g.kw; ++b) {
        const int tw = iw + g.pl - b * g.dw;
        if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.ow) continue;
        float gv[V];
        load_f32<T, V>(dy + ((n * g.oh + oh) * g.ow + tw / g.sw) * g.c + c0, gv);
        const int tap = a * g.kw + b;
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] = fmaf(gv[l], to_f32(w[(c0 + l) * taps + tap]), acc[l]);
      }
    }
    store_f32<T, V>(dx + pix * g.c + c0, acc);
  }
}

// ---- backward-weight ----------------------------------------------------------------------------
//
// Stage 1 writes partial[(slice * taps + tap) * C + c]: slice = blockIdx.x, the
// sum over the output tiles that slice's threads visit (a fixed assignment,
// reduced across the block's pixel threads in a fixed order). Stage 2 adds the
// slices in order. The number of slices depends only on the shape.

// K x K, stride S, dilation 1. Block (channel vectors, K filter rows, PY pixel
// slots): the thread for filter row `a` accumulates the K taps of that row over
// kTileW-wide output tiles, reading the tile's dy once and each input column once.
template <typename T, int V, int K, int S>
__global__ void __launch_bounds__(kThreads, kMinBlocks<K>)
    dw_backward_weight_fixed(const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ partial,
                             Geometry g) {
  GRAFT_DYNAMIC_SMEM(float, red);  // [blockDim.z][K rows][K taps][ct]
  constexpr int TW = kTileW, NI = dw_index::fwd_columns(K, S);
  const int ct = blockDim.x * V, c_base = blockIdx.y * ct;
  const int c0 = c_base + threadIdx.x * V;
  const int a = threadIdx.y;  // filter row
  float acc[K][V];
#pragma unroll
  for (int b = 0; b < K; ++b)
#pragma unroll
    for (int l = 0; l < V; ++l) acc[b][l] = 0.f;
  if (c0 < g.c) {
    const int owt = (g.ow + TW - 1) / TW;
    const int tiles = g.n * g.oh * owt;
    for (int64_t tile64 = blockIdx.x * static_cast<int64_t>(blockDim.z) + threadIdx.z; tile64 < tiles;
         tile64 += static_cast<int64_t>(gridDim.x) * blockDim.z) {
      const int tile = static_cast<int>(tile64);
      const int oh = tile % g.oh, strip = tile / g.oh;  // rows fastest: see kTileOrder
      const int ow0 = (strip % owt) * TW, n = strip / owt;
      const int ih = oh * S - g.pt + a;
      if (ih < 0 || ih >= g.h) continue;
      float gv[TW][V];
      const T* dyrow = dy + ((n * g.oh + oh) * g.ow + ow0) * g.c + c0;
#pragma unroll
      for (int t = 0; t < TW; ++t) {
        if (ow0 + t < g.ow) {
          load_f32<T, V>(dyrow + t * g.c, gv[t]);
        } else {
#pragma unroll
          for (int l = 0; l < V; ++l) gv[t][l] = 0.f;
        }
      }
      const T* xrow = x + (n * g.h + ih) * g.w * g.c + c0;
      const int iw0 = ow0 * S - g.pl;
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int iw = iw0 + j;
        if (iw < 0 || iw >= g.w) continue;
        float xv[V];
        load_f32<T, V>(xrow + iw * g.c, xv);
#pragma unroll
        for (int t = 0; t < TW; ++t) {
          const int b = dw_index::fwd_tap(j, t, S);
          if (b >= 0 && b < K) {
#pragma unroll
            for (int l = 0; l < V; ++l) acc[b][l] = fmaf(gv[t][l], xv[l], acc[b][l]);
          }
        }
      }
    }
  }
  // Block reduction over the pixel slots (threadIdx.z), in slot order.
  const int taps = K * K;
#pragma unroll
  for (int b = 0; b < K; ++b)
#pragma unroll
    for (int l = 0; l < V; ++l) red[(threadIdx.z * taps + a * K + b) * ct + threadIdx.x * V + l] = acc[b][l];
  __syncthreads();
  if (threadIdx.z == 0 && c0 < g.c) {
    float* out = partial + static_cast<int64_t>(blockIdx.x) * taps * g.c;
#pragma unroll
    for (int b = 0; b < K; ++b)
#pragma unroll
      for (int l = 0; l < V; ++l) {
        float s = 0.f;
        for (int z = 0; z < static_cast<int>(blockDim.z); ++z) s += red[(z * taps + a * K + b) * ct + threadIdx.x * V + l];
        out[(a * K + b) * g.c + c0 + l] = s;
      }
  }
}

// Any geometry: blockIdx.z is the tap; block (channel vectors, PY pixel slots),
// one output pixel per slot per step.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    dw_backward_weight_generic(const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ partial,
                               Geometry g) {
  GRAFT_DYNAMIC_SMEM(float, red);  // [blockDim.y][ct]
  const int ct = blockDim.x * V;
  const int c0 = (blockIdx.y * blockDim.x + threadIdx.x) * V;
  const int tap = blockIdx.z, a = tap / g.kw, b = tap - a * g.kw;
  float acc[V];
#pragma unroll
  for (int l = 0; l < V; ++l) acc[l] = 0.f;
  if (c0 < g.c) {
    const int pixels = g.n * g.oh * g.ow;
    for (int64_t p64 = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; p64 < pixels;
         p64 += static_cast<int64_t>(gridDim.x) * blockDim.y) {
      const int pix = static_cast<int>(p64);
      const int ow = pix % g.ow, row = pix / g.ow;
      const int oh = row % g.oh, n = row / g.oh;
      const int ih = oh * g.sh - g.pt + a * g.dh, iw = ow * g.sw - g.pl + b * g.dw;
      if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
      float gv[V], xv[V];
      load_f32<T, V>(dy + pix * g.c + c0, gv);
      load_f32<T, V>(x + ((n * g.h + ih) * g.w + iw) * g.c + c0, xv);
#pragma unroll
      for (int l = 0; l < V; ++l) acc[l] = fmaf(gv[l], xv[l], acc[l]);
    }
  }
#pragma unroll
  for (int l = 0; l < V; ++l) red[threadIdx.y * ct + threadIdx.x * V + l] = acc[l];
  __syncthreads();
  if (threadIdx.y == 0 && c0 < g.c) {
    const int taps = g.kh * g.kw;
    float* out = partial + (static_cast<int64_t>(blockIdx.x) * taps + tap) * g.c;
#pragma unroll
    for (int l = 0; l < V; ++l) {
      float s = 0.f;
      for (int y = 0; y < static_cast<int>(blockDim.y); ++y) s += red[y * ct + threadIdx.x * V + l];
      out[c0 + l] = s;
    }
  }
}

// grad_w[c * taps + tap] = sum over slices s (in order) of partial[(s * taps + tap) * C + c].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    dw_backward_weight_finish(const float* __restrict__ partial, T* __restrict__ grad_w, int slices, int taps, int c) {
  const int total = taps * c;
  // int64 loop: total may come close to 2^31 (checked only against INT_MAX), so i + stride could overflow int.
  for (int64_t i64 = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i64 < total;
       i64 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(i64);
    const int tap = i / c, ch = i - tap * c;
    float s = 0.f;
    for (int k = 0; k < slices; ++k) s += partial[static_cast<int64_t>(k) * total + i];
    grad_w[ch * taps + tap] = from_f32<T>(s);
  }
}

// ---- host side ----------------------------------------------------------------------------------

[[noreturn]] void bad(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}

void check_ptr(const char* fn, const void* p, const char* name) {
  if (!p) bad(fn, std::string(name) + " is null");
}

std::string params_str(const Conv2dParams& p) {
  auto s = [](int64_t v) { return std::to_string(v); };
  return "input NHWC " + s(p.n) + "x" + s(p.h) + "x" + s(p.w) + "x" + s(p.c) + ", o " + s(p.o) + ", groups " +
         s(p.groups) + ", kernel " + s(p.kh) + "x" + s(p.kw) + ", stride " + s(p.stride_h) + "x" + s(p.stride_w) +
         ", pads (t,l,b,r) " + s(p.pad_top) + "," + s(p.pad_left) + "," + s(p.pad_bottom) + "," + s(p.pad_right) +
         ", dilation " + s(p.dilation_h) + "x" + s(p.dilation_w);
}

// Validates dt and p; returns false in *work for an empty tensor (nothing to do).
Geometry make_geometry(const char* fn, DataType dt, const Conv2dParams& p, bool* work) {
  if (dt != DataType::f32 && dt != DataType::f16 && dt != DataType::bf16)
    bad(fn, "unknown dtype " + std::to_string(static_cast<int>(dt)));
  const std::string where = " (" + params_str(p) + ")";
  if (p.n < 0 || p.h < 0 || p.w < 0 || p.c < 0) bad(fn, "negative input size" + where);
  if (p.groups != p.c || p.o != p.c)
    bad(fn, "not depthwise: groups and o must equal c (channel multiplier 1)" + where);
  if (p.kh < 1 || p.kw < 1) bad(fn, "kernel kh/kw must be >= 1" + where);
  if (p.stride_h < 1 || p.stride_w < 1) bad(fn, "stride must be >= 1" + where);
  if (p.dilation_h < 1 || p.dilation_w < 1) bad(fn, "dilation must be >= 1" + where);
  if (p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0) bad(fn, "negative padding" + where);
  // Each factor bounded first, so the products below cannot overflow int64.
  const int64_t lim = INT_MAX / 4;
  if (p.h > lim || p.w > lim || p.c > lim || p.n > lim || p.kh > lim || p.kw > lim || p.stride_h > lim ||
      p.stride_w > lim || p.dilation_h > lim || p.dilation_w > lim || p.pad_top > lim || p.pad_left > lim ||
      p.pad_bottom > lim || p.pad_right > lim || p.kh * p.dilation_h > lim || p.kw * p.dilation_w > lim)
    bad(fn, "size too large for 32-bit indexing" + where);
  const int64_t oh = p.out_h(), ow = p.out_w();
  if (oh < 1 || ow < 1) bad(fn, "kernel (with dilation) larger than the padded input: no output" + where);
  if (p.kh * p.kw > 65535) bad(fn, "kh * kw must be <= 65535" + where);
  if (p.c > 2000000) bad(fn, "c too large (> 2000000 channels)" + where);
  if (p.c * p.kh * p.kw > INT_MAX) bad(fn, "filter too large for 32-bit indexing (c * kh * kw >= 2^31)" + where);
  // Every index the kernels form, padding included, stays below this extent.
  const int64_t ext_h = p.h + p.pad_top + p.pad_bottom + p.kh * p.dilation_h;
  const int64_t ext_w = p.w + p.pad_left + p.pad_right + p.kw * p.dilation_w;
  const double in_ext = double(p.n) * double(ext_h) * double(ext_w) * double(p.c);
  const double out_ext = double(p.n) * double(oh + 1) * double(ow + kTileW) * double(p.c);
  if (in_ext > double(INT_MAX) || out_ext > double(INT_MAX))
    bad(fn, "tensor too large for 32-bit indexing (N * padded H * padded W * C must be < 2^31)" + where);
  *work = p.n > 0 && p.h > 0 && p.w > 0 && p.c > 0;
  Geometry g;
  g.n = int(p.n), g.h = int(p.h), g.w = int(p.w), g.c = int(p.c), g.oh = int(oh), g.ow = int(ow);
  g.kh = int(p.kh), g.kw = int(p.kw), g.sh = int(p.stride_h), g.sw = int(p.stride_w);
  g.pt = int(p.pad_top), g.pl = int(p.pad_left), g.dh = int(p.dilation_h), g.dw = int(p.dilation_w);
  return g;
}

template <typename T>
constexpr int vec_width() {
  return 16 / static_cast<int>(sizeof(T));
}

// 16-byte vectors when C is a multiple of the width and each activation pointer is aligned
// (the filter is read element by element, so its alignment does not matter).
template <typename T>
bool use_vector(int c, std::initializer_list<const void*> ptrs) {
  if (c % vec_width<T>() != 0) return false;
  for (const void* q : ptrs)
    if (!aligned16(q)) return false;
  return true;
}

// 3x3 or 5x5 (square), equal strides 1 or 2, no dilation: the specialised kernels.
// Returns K (3 or 5) and S, or 0.
int fixed_kernel(const Geometry& g, int* stride) {
  if (g.kh != g.kw || (g.kh != 3 && g.kh != 5) || g.sh != g.sw || (g.sh != 1 && g.sh != 2) || g.dh != 1 ||
      g.dw != 1)
    return 0;
  *stride = g.sh;
  return g.kh;
}

// Channel vectors split into nearly equal block tiles of at most kMaxChannelVecs.
struct ChannelTiles {
  int vecs_per_block, tiles;
};
ChannelTiles channel_tiles(int c, int v) {
  const int vecs = (c + v - 1) / v;
  const int tiles = (vecs + kMaxChannelVecs - 1) / kMaxChannelVecs;
  return {(vecs + tiles - 1) / tiles, tiles};
}

int sm_count() {
  int dev = 0, sms = 0;
  GRAFT_KERNEL_CUDA_CHECK(cudaGetDevice(&dev));
  GRAFT_KERNEL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return std::max(sms, 1);
}

// Grid x for a grid-stride loop over `items` with `per_block` items per block step:
// enough blocks for ~8 per SM across all channel tiles, never more than needed.
unsigned pixel_blocks(int64_t items, int per_block, int channel_tiles) {
  const int64_t need = (items + per_block - 1) / per_block;
  const int64_t cap = std::max<int64_t>(1, int64_t(sm_count()) * 8 / channel_tiles);
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(need, cap)));
}

// Slices for backward-weight: a function of the shape only (so the summation
// order, and the result, do not depend on the device): about 1024 blocks in
// all, but each pixel slot at least 16 steps of work (groups = pixel-slot
// steps in all), so small images do not spend more on partials than on data.
int weight_slices(int64_t groups, int64_t blocks_per_slice) {
  const int64_t want = std::max<int64_t>(1, 1024 / blocks_per_slice);
  return static_cast<int>(std::max<int64_t>(1, std::min((groups + 15) / 16, want)));
}

// cudaFuncSetAttribute once per kernel when its dynamic shared memory exceeds 48 KB
// (not reached with the tiles above; kept as a guard).
template <typename Kernel>
void allow_smem(Kernel k, size_t bytes) {
  if (bytes > 48 * 1024)
    GRAFT_KERNEL_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <typename T, int K, int S>
void launch_forward_fixed(const T* x, const T* w, T* y, const Epi& ep, const Geometry& g, cudaStream_t stream) {
  constexpr int V = vec_width<T>();
  const ChannelTiles ctl = channel_tiles(g.c, V);
  const int py = std::max(1, kThreads / ctl.vecs_per_block);
  const int64_t tiles = int64_t(g.n) * g.oh * ((g.ow + kTileW - 1) / kTileW);
  const dim3 grid(pixel_blocks(tiles, py, ctl.tiles), ctl.tiles), block(ctl.vecs_per_block, py);
  const size_t smem = size_t(K) * K * ctl.vecs_per_block * V * sizeof(float);
  allow_smem(dw_forward_fixed<T, V, K, S>, smem);
  dw_forward_fixed<T, V, K, S><<<grid, block, smem, stream>>>(x, w, y, ep, g);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, int V>
void launch_forward_generic(const T* x, const T* w, T* y, const Epi& ep, const Geometry& g, cudaStream_t stream) {
  const ChannelTiles ctl = channel_tiles(g.c, V);
  const int py = std::max(1, kThreads / ctl.vecs_per_block);
  const int64_t pixels = int64_t(g.n) * g.oh * g.ow;
  const dim3 grid(pixel_blocks(pixels, py, ctl.tiles), ctl.tiles), block(ctl.vecs_per_block, py);
  dw_forward_generic<T, V><<<grid, block, 0, stream>>>(x, w, y, ep, g);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, int K, int S>
void launch_backward_data_fixed(const T* dy, const T* w, T* dx, const Geometry& g, cudaStream_t stream) {
  constexpr int V = vec_width<T>();
  const ChannelTiles ctl = channel_tiles(g.c, V);
  const int py = std::max(1, kThreads / ctl.vecs_per_block);
  const int64_t tiles = int64_t(g.n) * g.h * ((g.w + kTileW - 1) / kTileW);
  const dim3 grid(pixel_blocks(tiles, py, ctl.tiles), ctl.tiles), block(ctl.vecs_per_block, py);
  const size_t smem = size_t(K) * K * ctl.vecs_per_block * V * sizeof(float);
  allow_smem(dw_backward_data_fixed<T, V, K, S>, smem);
  dw_backward_data_fixed<T, V, K, S><<<grid, block, smem, stream>>>(dy, w, dx, g);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, int V>
void launch_backward_data_generic(const T* dy, const T* w, T* dx, const Geometry& g, cudaStream_t stream) {
  const ChannelTiles ctl = channel_tiles(g.c, V);
  const int py = std::max(1, kThreads / ctl.vecs_per_block);
  const int64_t pixels = int64_t(g.n) * g.h * g.w;
  const dim3 grid(pixel_blocks(pixels, py, ctl.tiles), ctl.tiles), block(ctl.vecs_per_block, py);
  dw_backward_data_generic<T, V><<<grid, block, 0, stream>>>(dy, w, dx, g);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

// Scratch for the partial sums, from the stream-ordered pool, freed on the stream.
struct StreamScratch {
  float* p = nullptr;
  cudaStream_t stream;
  StreamScratch(size_t floats, cudaStream_t s) : stream(s) {
    GRAFT_KERNEL_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p), std::max<size_t>(floats, 1) * sizeof(float), s));
  }
  ~StreamScratch() { cudaFreeAsync(p, stream); }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
};

template <typename T>
void launch_weight_finish(const float* partial, T* grad_w, int slices, const Geometry& g, cudaStream_t stream) {
  const int taps = g.kh * g.kw;
  dw_backward_weight_finish<T><<<grid_for(int64_t(taps) * g.c, kThreads), kThreads, 0, stream>>>(partial, grad_w,
                                                                                                  slices, taps, g.c);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, int K, int S>
void launch_backward_weight_fixed(const T* x, const T* dy, T* grad_w, const Geometry& g, cudaStream_t stream) {
  constexpr int V = vec_width<T>();
  const ChannelTiles ctl = channel_tiles(g.c, V);
  // blockDim.z is at most 64 (a single-vector channel tile with K = 3 would ask for 85).
  const int pz = std::min(64, std::max(1, kThreads / (ctl.vecs_per_block * K)));
  const int64_t tiles = int64_t(g.n) * g.oh * ((g.ow + kTileW - 1) / kTileW);
  const int slices = weight_slices((tiles + pz - 1) / pz, ctl.tiles);
  const dim3 grid(slices, ctl.tiles), block(ctl.vecs_per_block, K, pz);
  const size_t smem = size_t(pz) * K * K * ctl.vecs_per_block * V * sizeof(float);
  StreamScratch partial(size_t(slices) * K * K * g.c, stream);
  allow_smem(dw_backward_weight_fixed<T, V, K, S>, smem);
  dw_backward_weight_fixed<T, V, K, S><<<grid, block, smem, stream>>>(x, dy, partial.p, g);
  GRAFT_KERNEL_LAUNCH_CHECK();
  launch_weight_finish<T>(partial.p, grad_w, slices, g, stream);
}

template <typename T, int V>
void launch_backward_weight_generic(const T* x, const T* dy, T* grad_w, const Geometry& g, cudaStream_t stream) {
  const ChannelTiles ctl = channel_tiles(g.c, V);
  const int py = std::max(1, kThreads / ctl.vecs_per_block);
  const int taps = g.kh * g.kw;
  const int64_t pixels = int64_t(g.n) * g.oh * g.ow;
  const int slices = weight_slices((pixels + py - 1) / py, int64_t(ctl.tiles) * taps);
  const dim3 grid(slices, ctl.tiles, taps), block(ctl.vecs_per_block, py);
  const size_t smem = size_t(py) * ctl.vecs_per_block * V * sizeof(float);
  StreamScratch partial(size_t(slices) * taps * g.c, stream);
  dw_backward_weight_generic<T, V><<<grid, block, smem, stream>>>(x, dy, partial.p, g);
  GRAFT_KERNEL_LAUNCH_CHECK();
  launch_weight_finish<T>(partial.p, grad_w, slices, g, stream);
}

// Calls f.template operator()<K, S>() for the specialised geometries; returns false otherwise.
template <typename F>
bool dispatch_fixed(const Geometry& g, F&& f) {
  int s = 0;
  const int k = fixed_kernel(g, &s);
  if (k == 3 && s == 1) f.template operator()<3, 1>();
  else if (k == 3 && s == 2) f.template operator()<3, 2>();
  else if (k == 5 && s == 1) f.template operator()<5, 1>();
  else if (k == 5 && s == 2) f.template operator()<5, 2>();
  else return false;
  return true;
}

// The specialised launches as functors, for dispatch_fixed.
template <typename T>
struct ForwardFixed {
  const T *x, *w;
  T* y;
  const Epi& ep;
  const Geometry& g;
  cudaStream_t s;
  template <int K, int S>
  void operator()() const { launch_forward_fixed<T, K, S>(x, w, y, ep, g, s); }
};
template <typename T>
struct BackwardDataFixed {
  const T *dy, *w;
  T* dx;
  const Geometry& g;
  cudaStream_t s;
  template <int K, int S>
  void operator()() const { launch_backward_data_fixed<T, K, S>(dy, w, dx, g, s); }
};
template <typename T>
struct BackwardWeightFixed {
  const T *x, *dy;
  T* dw;
  const Geometry& g;
  cudaStream_t s;
  template <int K, int S>
  void operator()() const { launch_backward_weight_fixed<T, K, S>(x, dy, dw, g, s); }
};

}  // namespace

// ---- launchers ----------------------------------------------------------------------------------

void depthwise_conv2d_forward(const void* x, const void* w, void* y, DataType dt, const Conv2dParams& p,
                              const DwEpilogue& epilogue, cudaStream_t stream) {
  const char* fn = "cuda::depthwise_conv2d_forward";
  bool work = false;
  const Geometry g = make_geometry(fn, dt, p, &work);
  const int act = static_cast<int>(epilogue.act);
  if (act < 0 || act > 3) bad(fn, "unknown epilogue activation " + std::to_string(act));
  if (!work) return;
  check_ptr(fn, x, "x");
  check_ptr(fn, w, "w");
  check_ptr(fn, y, "y");
  const Epi ep{epilogue.scale, epilogue.shift, act};
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* xt = static_cast<const T*>(x);
    const T* wt = static_cast<const T*>(w);
    T* yt = static_cast<T*>(y);
    if (use_vector<T>(g.c, {x, y})) {
      if (!dispatch_fixed(g, ForwardFixed<T>{xt, wt, yt, ep, g, stream}))
        launch_forward_generic<T, vec_width<T>()>(xt, wt, yt, ep, g, stream);
    } else {
      launch_forward_generic<T, 1>(xt, wt, yt, ep, g, stream);
    }
  });
}

void depthwise_conv2d_backward_data(const void* grad_y, const void* w, void* grad_x, DataType dt,
                                    const Conv2dParams& p, cudaStream_t stream) {
  const char* fn = "cuda::depthwise_conv2d_backward_data";
  bool work = false;
  const Geometry g = make_geometry(fn, dt, p, &work);
  if (!work) return;
  check_ptr(fn, grad_y, "grad_y");
  check_ptr(fn, w, "w");
  check_ptr(fn, grad_x, "grad_x");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* dyt = static_cast<const T*>(grad_y);
    const T* wt = static_cast<const T*>(w);
    T* dxt = static_cast<T*>(grad_x);
    if (use_vector<T>(g.c, {grad_y, grad_x})) {
      if (!dispatch_fixed(g, BackwardDataFixed<T>{dyt, wt, dxt, g, stream}))
        launch_backward_data_generic<T, vec_width<T>()>(dyt, wt, dxt, g, stream);
    } else {
      launch_backward_data_generic<T, 1>(dyt, wt, dxt, g, stream);
    }
  });
}

void depthwise_conv2d_backward_weight(const void* x, const void* grad_y, void* grad_w, DataType dt,
                                      const Conv2dParams& p, cudaStream_t stream) {
  const char* fn = "cuda::depthwise_conv2d_backward_weight";
  bool work = false;
  const Geometry g = make_geometry(fn, dt, p, &work);
  if (p.c == 0) return;  // no filter to write
  check_ptr(fn, grad_w, "grad_w");
  if (!work) {  // empty batch or image: the gradient is zero
    GRAFT_KERNEL_CUDA_CHECK(cudaMemsetAsync(grad_w, 0, size_t(p.c) * p.kh * p.kw * dtype_size(dt), stream));
    return;
  }
  check_ptr(fn, x, "x");
  check_ptr(fn, grad_y, "grad_y");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* xt = static_cast<const T*>(x);
    const T* dyt = static_cast<const T*>(grad_y);
    T* dwt = static_cast<T*>(grad_w);
    if (use_vector<T>(g.c, {x, grad_y})) {
      if (!dispatch_fixed(g, BackwardWeightFixed<T>{xt, dyt, dwt, g, stream}))
        launch_backward_weight_generic<T, vec_width<T>()>(xt, dyt, dwt, g, stream);
    } else {
      launch_backward_weight_generic<T, 1>(xt, dyt, dwt, g, stream);
    }
  });
}

}  // namespace graft::kernels::cuda
