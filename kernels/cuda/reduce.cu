#include "kernels/cuda/reduce.h"

#include <algorithm>

#include "kernels/cpu/elementwise.h"  // order_dims_by_stride
#include "kernels/cuda/ew_common.cuh"

namespace graft::kernels::cuda {

namespace {

using ew::Pack;

// A group of dims (innermost first) with input and output strides.
struct Dims {
  int n = 0;
  int64_t size[kMaxDims] = {};
  int64_t in[kMaxDims] = {};
  int64_t out[kMaxDims] = {};
  int64_t count() const {
    int64_t c = 1;
    for (int d = 0; d < n; ++d) c *= size[d];
    return c;
  }
};

// Input and output offsets of the flat (row-major) index i over d.
__device__ __forceinline__ void dims_offsets(const Dims& d, int64_t i, int64_t& in, int64_t& out) {
  in = 0;
  out = 0;
#pragma unroll
  for (int k = 0; k < kMaxDims; ++k) {
    if (k >= d.n) break;
    const int64_t q = i / d.size[k];
    const int64_t r = i - q * d.size[k];
    i = q;
    in += r * d.in[k];
    out += r * d.out[k];
  }
}

// Input offset of the i-th summed element: one dim needs no division.
template <bool kOneDim>
__device__ __forceinline__ int64_t red_offset(const Dims& red, int64_t i) {
  if constexpr (kOneDim) {
    return i * red.in[0];
  } else {
    int64_t in, out;
    dims_offsets(red, i, in, out);
    return in;
  }
}

// How a ReduceParams is computed (a function of the shape only).
struct Plan {
  int64_t n_out = 0, n_in = 0;
  bool inner = true;  // the innermost run is summed (else kept: column sums)
  Dims kept, red;     // inner: red includes the innermost run; outer: red = summed rows
  int64_t n_red = 1;  // elements summed per output (inner) or rows (outer)
  int64_t K = 1, si = 0, so = 0;  // outer: the kept innermost run
  int64_t splits = 1;
  int64_t chunk = 0;  // summed elements (inner) or rows (outer) per split
  size_t workspace_bytes() const { return splits > 1 ? static_cast<size_t>(n_out * splits) * sizeof(float) : 0; }
};

constexpr int64_t kInnerChunkMin = 8192;  // elements per block-sized piece of a split row
constexpr int64_t kInnerPiecesMax = 8192;
constexpr int64_t kOuterBlocksTarget = 2048;
constexpr int64_t kOuterRowsMin = 64;  // rows per (tile, split) block at least

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Plan make_plan(const char* fn, const cpu::ReduceParams& p) {
  if (p.ndim < 0 || p.ndim > kMaxDims)
    ew::bad_argument(fn, "argument 'p': ndim " + std::to_string(p.ndim) + " is outside [0, " +
                             std::to_string(kMaxDims) + "]");
  Plan pl;
  StridedIter<2> it;  // operand 0: input, 1: output (row-major over the kept dims, 0 on reduced)
  it.ndim = p.ndim;
  int64_t n_out = 1, n_in = 1;
  for (int d = p.ndim - 1; d >= 0; --d) {
    if (p.size[d] < 0)
      ew::bad_argument(fn, "argument 'p': size[" + std::to_string(d) + "] is negative (" + std::to_string(p.size[d]) +
                               ")");
    it.size[d] = p.size[d];
    it.stride[0][d] = p.stride[d];
    it.stride[1][d] = p.reduce[d] ? 0 : n_out;
    if (!p.reduce[d]) n_out *= p.size[d];
    n_in *= p.size[d];
  }
  pl.n_out = n_out;
  pl.n_in = n_in;
  if (n_out == 0 || n_in == 0) return pl;
  cpu::order_dims_by_stride(it, 0);
  it.coalesce();

  // Dims outermost-first from the iterator; stored innermost first.
  const int inner = it.ndim - 1;
  pl.inner = it.stride[1][inner] == 0;
  auto push = [](Dims& g, int64_t s, int64_t si, int64_t so) {
    for (int k = g.n; k > 0; --k) {  // prepend: the dims come outermost first
      g.size[k] = g.size[k - 1];
      g.in[k] = g.in[k - 1];
      g.out[k] = g.out[k - 1];
    }
    g.size[0] = s;
    g.in[0] = si;
    g.out[0] = so;
    ++g.n;
  };
  const int last_outer = pl.inner ? it.ndim : inner;  // inner: the run joins red
  for (int d = 0; d < last_outer; ++d) {
    if (it.stride[1][d] == 0) push(pl.red, it.size[d], it.stride[0][d], 0);
    else push(pl.kept, it.size[d], it.stride[0][d], it.stride[1][d]);
  }
  if (pl.red.n == 0) push(pl.red, 1, 0, 0);  // nothing summed: one "row"
  pl.n_red = pl.red.count();

  if (pl.inner) {
    if (pl.n_red > kInnerChunkMin) {
      pl.splits = std::min(ceil_div(pl.n_red, kInnerChunkMin), std::max<int64_t>(1, kInnerPiecesMax / n_out));
    }
    if (pl.splits > 1) {
      pl.chunk = ceil_div(ceil_div(pl.n_red, pl.splits), 8) * 8;  // a multiple of every pack width
      pl.splits = ceil_div(pl.n_red, pl.chunk);
    }
  } else {
    pl.K = it.size[inner];
    pl.si = it.stride[0][inner];
    pl.so = it.stride[1][inner];
    const int64_t tiles = pl.kept.count() * ceil_div(pl.K, 32);
    if (tiles > 0x7fffffffLL)
      ew::bad_argument(fn, "argument 'p': " + std::to_string(tiles) + " column tiles exceed the grid");
    const int64_t want = ceil_div(kOuterBlocksTarget, tiles);
    pl.splits = std::max<int64_t>(1, std::min({want, ceil_div(pl.n_red, kOuterRowsMin), int64_t{65535}}));
    pl.chunk = ceil_div(pl.n_red, pl.splits);
    pl.splits = ceil_div(pl.n_red, pl.chunk);
  }
  return pl;
}

// ---- inner case: sums along the innermost run -----------------------------------------------

// A warp per output (grid-stride over outputs). kVec: rows are contiguous,
// aligned and a multiple of the pack width (then red.n == 1, red.in[0] == 1).
template <typename T, bool kOneDim, bool kVec>
__global__ void sum_rows_warp_kernel(Dims kept, Dims red, int64_t n_out, int64_t n_red, const T* __restrict__ x,
                                     float* __restrict__ out, float scale) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); o < n_out;
       o += warps) {
    int64_t base, oo;
    dims_offsets(kept, o, base, oo);
    const T* row = x + base;
    float acc = 0.f;
    if constexpr (kVec) {
      constexpr int V = Pack<T>::kN;
      for (int64_t j = lane; j < n_red / V; j += 32) {
        const Pack<T> pk = ew::load_pack(row + j * V);
#pragma unroll
        for (int q = 0; q < V; ++q) acc += to_f32<T>(pk.v[q]);
      }
    } else {
      for (int64_t j = lane; j < n_red; j += 32) acc += to_f32<T>(row[red_offset<kOneDim>(red, j)]);
    }
    acc = warp_sum(acc);
    if (lane == 0) out[oo] = scale * acc;
  }
}

// Long rows: block (s, o) sums elements [s * chunk, (s + 1) * chunk) of output
// o's row into ws[out_offset(o) * splits + s].
template <typename T, bool kOneDim, bool kVec>
__global__ void sum_rows_split_kernel(Dims kept, Dims red, int64_t n_red, int64_t chunk, const T* __restrict__ x,
                                      float* __restrict__ ws) {
  __shared__ float scratch[32];
  const int64_t s = blockIdx.x, o = blockIdx.y, splits = gridDim.x;
  int64_t base, oo;
  dims_offsets(kept, o, base, oo);
  const T* row = x + base;
  const int64_t lo = s * chunk, hi = lo + chunk < n_red ? lo + chunk : n_red;
  float acc = 0.f;
  if constexpr (kVec) {  // lo and hi are multiples of V (chunk is a multiple of 8, n_red of V)
    constexpr int V = Pack<T>::kN;
    for (int64_t j = lo / V + threadIdx.x; j < hi / V; j += blockDim.x) {
      const Pack<T> pk = ew::load_pack(row + j * V);
#pragma unroll
      for (int q = 0; q < V; ++q) acc += to_f32<T>(pk.v[q]);
    }
  } else {
    for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) acc += to_f32<T>(row[red_offset<kOneDim>(red, j)]);
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) ws[oo * splits + s] = acc;
}

// ---- outer case: column sums ---------------------------------------------------------------------

// Block (32, 8) over a tile of 32 columns of one kept segment and rows
// [s * chunk, (s + 1) * chunk): each thread sums every 8th row of its column,
// then row 0 of the block adds the 8 partials in order. Writes scale * sum to
// out when there is one split, else the partial to ws[out_offset * splits + s].
template <typename T, bool kOneDim>
__global__ void sum_cols_kernel(Dims kept, Dims red, int64_t K, int64_t si, int64_t so, int64_t n_rows, int64_t chunk,
                                int64_t col_tiles, const T* __restrict__ x, float* __restrict__ out,
                                float* __restrict__ ws, float scale) {
  __shared__ float part[8][33];
  const int64_t tile = blockIdx.x % col_tiles, seg = blockIdx.x / col_tiles;
  const int64_t s = blockIdx.y, splits = gridDim.y;
  const int64_t k = tile * 32 + threadIdx.x;
  int64_t base, obase;
  dims_offsets(kept, seg, base, obase);
  float acc = 0.f;
  if (k < K) {
    const T* col = x + base + k * si;
    const int64_t lo = s * chunk, hi = lo + chunk < n_rows ? lo + chunk : n_rows;
    for (int64_t r = lo + threadIdx.y; r < hi; r += 8) acc += to_f32<T>(col[red_offset<kOneDim>(red, r)]);
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && k < K) {
    float total = 0.f;
#pragma unroll
    for (int q = 0; q < 8; ++q) total += part[q][threadIdx.x];
    const int64_t oo = obase + k * so;
    if (splits == 1) out[oo] = scale * total;
    else ws[oo * splits + s] = total;
  }
}

// ---- second pass and the empty case -----------------------------------------------------------------

// out[o] = scale * (ws[o * splits] + ... ) in a fixed order: a warp per output.
__global__ void sum_partials_kernel(int64_t n_out, int64_t splits, const float* __restrict__ ws,
                                    float* __restrict__ out, float scale) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); o < n_out;
       o += warps) {
    float acc = 0.f;
    for (int64_t j = lane; j < splits; j += 32) acc += ws[o * splits + j];
    acc = warp_sum(acc);
    if (lane == 0) out[o] = scale * acc;
  }
}

__global__ void fill_kernel(int64_t n, float v, float* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = v;
}

template <typename T>
void run_sum(const Plan& pl, const T* x, float* out, float* ws, float scale, cudaStream_t stream) {
  constexpr int kThreads = ew::kThreads;
  constexpr int kWarps = kThreads / 32;
  const bool one_dim = pl.red.n == 1;
  if (pl.inner) {
    constexpr int V = Pack<T>::kN;
    bool vec = one_dim && pl.red.in[0] == 1 && aligned16(x) && pl.n_red % V == 0;
    for (int d = 0; d < pl.kept.n; ++d) vec = vec && pl.kept.in[d] % V == 0;
    if (pl.splits == 1) {
      const unsigned grid = grid_for(pl.n_out, kWarps);
      if (vec)
        sum_rows_warp_kernel<T, true, true><<<grid, kThreads, 0, stream>>>(pl.kept, pl.red, pl.n_out, pl.n_red, x, out, scale);
      else if (one_dim)
        sum_rows_warp_kernel<T, true, false><<<grid, kThreads, 0, stream>>>(pl.kept, pl.red, pl.n_out, pl.n_red, x, out, scale);
      else
        sum_rows_warp_kernel<T, false, false><<<grid, kThreads, 0, stream>>>(pl.kept, pl.red, pl.n_out, pl.n_red, x, out, scale);
      GRAFT_KERNEL_LAUNCH_CHECK();
      return;
    }
    const dim3 grid(static_cast<unsigned>(pl.splits), static_cast<unsigned>(pl.n_out));
    if (vec)
      sum_rows_split_kernel<T, true, true><<<grid, kThreads, 0, stream>>>(pl.kept, pl.red, pl.n_red, pl.chunk, x, ws);
    else if (one_dim)
      sum_rows_split_kernel<T, true, false><<<grid, kThreads, 0, stream>>>(pl.kept, pl.red, pl.n_red, pl.chunk, x, ws);
    else
      sum_rows_split_kernel<T, false, false><<<grid, kThreads, 0, stream>>>(pl.kept, pl.red, pl.n_red, pl.chunk, x, ws);
    GRAFT_KERNEL_LAUNCH_CHECK();
  } else {
    const int64_t col_tiles = ceil_div(pl.K, 32);
    const dim3 grid(static_cast<unsigned>(pl.kept.count() * col_tiles), static_cast<unsigned>(pl.splits));
    const dim3 block(32, 8);
    if (one_dim)
      sum_cols_kernel<T, true><<<grid, block, 0, stream>>>(pl.kept, pl.red, pl.K, pl.si, pl.so, pl.n_red, pl.chunk,
                                                           col_tiles, x, out, ws, scale);
    else
      sum_cols_kernel<T, false><<<grid, block, 0, stream>>>(pl.kept, pl.red, pl.K, pl.si, pl.so, pl.n_red, pl.chunk,
                                                            col_tiles, x, out, ws, scale);
    GRAFT_KERNEL_LAUNCH_CHECK();
    if (pl.splits == 1) return;
  }
  sum_partials_kernel<<<grid_for(pl.n_out, kWarps), kThreads, 0, stream>>>(pl.n_out, pl.splits, ws, out, scale);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

}  // namespace

size_t sum_workspace_bytes(const cpu::ReduceParams& p) { return make_plan("sum_workspace_bytes", p).workspace_bytes(); }

void sum_forward(const cpu::ReduceParams& p, DataType dt, const void* x, float* out, void* workspace,
                 size_t workspace_bytes, cudaStream_t stream) {
  constexpr const char* fn = "sum_forward";
  ew::check_dtype(fn, dt);
  const Plan pl = make_plan(fn, p);
  if (pl.n_out == 0) return;
  ew::check_ptr(fn, "out", out);
  if (pl.n_in == 0) {  // empty sums: 0 (and 0 * inf = NaN for the mean of nothing), as the twin
    fill_kernel<<<grid_for(pl.n_out, ew::kThreads), ew::kThreads, 0, stream>>>(pl.n_out, 0.f * p.scale, out);
    GRAFT_KERNEL_LAUNCH_CHECK();
    return;
  }
  ew::check_ptr(fn, "x", x);
  const size_t need = pl.workspace_bytes();
  if (need > 0) {
    ew::check_ptr(fn, "workspace", workspace);
    if (workspace_bytes < need)
      ew::bad_argument(fn, "argument 'workspace_bytes' is " + std::to_string(workspace_bytes) + ", needs " +
                               std::to_string(need) + " (sum_workspace_bytes)");
    if (!aligned16(workspace)) ew::bad_argument(fn, "argument 'workspace' is not 16-byte aligned");
  }
  GRAFT_DISPATCH_FLOAT(dt, T, {
    run_sum<T>(pl, static_cast<const T*>(x), out, static_cast<float*>(workspace), p.scale, stream);
  });
}

}  // namespace graft::kernels::cuda
