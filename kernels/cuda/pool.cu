// NHWC pooling on the GPU; the description and the rules are in pool.h and
// its CPU twin kernels/cpu/pool.h. Each kernel mirrors the twin's loop order
// (window positions in the same order, the same divisor expressions), so the
// f32 results agree with the twin to rounding.
#include "kernels/cuda/pool.h"

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "kernels/cuda/common.cuh"

namespace graft::kernels::cuda {

namespace {

using vec::load_f32;
using vec::Pack;
using vec::store_f32;

constexpr int kThreads = 256;

// The geometry in int32 (the launchers check that every element offset fits).
struct Geometry {
  int n, h, w, c, oh, ow;
  int kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
  bool count_include_pad;
};

// One dim of an average window, as the twin's avg_spans: the input positions
// [begin, end) inside the input, and the divisor contribution.
struct Span {
  int begin, end, count;
};
__device__ __forceinline__ Span avg_span(int o, int in, int kernel, int stride, int pad_begin, int pad_end,
                                         bool count_include_pad) {
  const int start = o * stride - pad_begin;
  const int stop = min(start + kernel, in + pad_end);  // ceil_mode may reach past the padding
  const int b = max(start, 0), e = min(stop, in);
  return {b, e, count_include_pad ? stop - start : e - b};
}

// ---- max pooling ------------------------------------------------------------------------------

template <typename T, int V, bool kSaveIndex>
__global__ void max_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int32_t* __restrict__ argmax,
                                          Geometry g) {
  const int cv = g.c / V;
  const int64_t total = static_cast<int64_t>(g.n) * g.oh * g.ow * cv;
  for (int64_t i64 = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i64 < total;
       i64 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(i64);
    const int c0 = (i % cv) * V;
    int pix = i / cv;
    const int ow = pix % g.ow;
    pix /= g.ow;
    const int oh = pix % g.oh, n = pix / g.oh;
    const T* xn = x + n * g.h * g.w * g.c + c0;
    float best[V];
    int32_t idx[V];
#pragma unroll
    for (int l = 0; l < V; ++l) best[l] = -INFINITY, idx[l] = -1;  // a window with no input position
    bool first = true;
    const int h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
    for (int kh = 0; kh < g.kh; ++kh) {
      const int ih = h0 + kh * g.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int kw = 0; kw < g.kw; ++kw) {
        const int iw = w0 + kw * g.dw;
        if (iw < 0 || iw >= g.w) continue;
        float v[V];
        load_f32<T, V>(xn + (ih * g.w + iw) * g.c, v);
        const int32_t pos = ih * g.w + iw;
#pragma unroll
        for (int l = 0; l < V; ++l) {
          const bool take = first || v[l] > best[l] || v[l] != v[l];  // first maximum wins; NaN propagates
          best[l] = take ? v[l] : best[l];
          idx[l] = take ? pos : idx[l];
        }
        first = false;
      }
    }
    store_f32<T, V>(y + static_cast<int64_t>(i) * V, best);  // exact: best holds values read from T
    if (kSaveIndex) {
      Pack<int32_t, V> k;
#pragma unroll
      for (int l = 0; l < V; ++l) k.v[l] = idx[l];
      *reinterpret_cast<Pack<int32_t, V>*>(argmax + static_cast<int64_t>(i) * V) = k;
    }
  }
}

// Gather: input position (n, ih, iw) sums grad_y over the windows that cover
// it and chose it. The covering windows are found as the twin's
// for_each_covering: oh = (ih + pad - k * dilation) / stride where divisible.
template <typename T, int V>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ grad_y, const int32_t* __restrict__ argmax,
                                           T* __restrict__ grad_x, Geometry g) {
  const int cv = g.c / V;
  const int64_t total = static_cast<int64_t>(g.n) * g.h * g.w * cv;
  for (int64_t i64 = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i64 < total;
       i64 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(i64);
    const int c0 = (i % cv) * V;
    int pix = i / cv;
    const int iw = pix % g.w;
    pix /= g.w;
    const int ih = pix % g.h, n = pix / g.h;
    const int32_t pos = ih * g.w + iw;
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.f;
    for (int kh = 0; kh < g.kh; ++kh) {
      const int th = ih + g.pt - kh * g.dh;
      if (th < 0) break;  // th only decreases with kh
      if (th % g.sh != 0) continue;
      const int oh = th / g.sh;
      if (oh >= g.oh) continue;
      for (int kw = 0; kw < g.kw; ++kw) {
        const int tw = iw + g.pl - kw * g.dw;
        if (tw < 0) break;
        if (tw % g.sw != 0) continue;
        const int ow = tw / g.sw;
        if (ow >= g.ow) continue;
        const int o = ((n * g.oh + oh) * g.ow + ow) * g.c + c0;
        float gv[V];
        load_f32<T, V>(grad_y + o, gv);
        const Pack<int32_t, V> id = *reinterpret_cast<const Pack<int32_t, V>*>(argmax + o);
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] += id.v[l] == pos ? gv[l] : 0.f;
      }
    }
    store_f32<T, V>(grad_x + static_cast<int64_t>(i) * V, acc);
  }
}

// ---- average pooling --------------------------------------------------------------------------

template <typename T, int V>
__global__ void avg_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, Geometry g) {
  const int cv = g.c / V;
  const int64_t total = static_cast<int64_t>(g.n) * g.oh * g.ow * cv;
  for (int64_t i64 = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i64 < total;
       i64 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(i64);
    const int c0 = (i % cv) * V;
    int pix = i / cv;
    const int ow = pix % g.ow;
    pix /= g.ow;
    const int oh = pix % g.oh, n = pix / g.oh;
    const Span r = avg_span(oh, g.h, g.kh, g.sh, g.pt, g.pb, g.count_include_pad);
    const Span s = avg_span(ow, g.w, g.kw, g.sw, g.pl, g.pr, g.count_include_pad);
    const T* xn = x + n * g.h * g.w * g.c + c0;
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.f;
    for (int ih = r.begin; ih < r.end; ++ih)
      for (int iw = s.begin; iw < s.end; ++iw) {
        float v[V];
        load_f32<T, V>(xn + (ih * g.w + iw) * g.c, v);
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] += v[l];
      }
    const float div = static_cast<float>(r.count * s.count);
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] /= div;
    store_f32<T, V>(y + static_cast<int64_t>(i) * V, acc);
  }
}

template <typename T, int V>
__global__ void avg_pool2d_backward_kernel(const T* __restrict__ grad_y, T* __restrict__ grad_x, Geometry g) {
  const int cv = g.c / V;
  const int64_t total = static_cast<int64_t>(g.n) * g.h * g.w * cv;
  for (int64_t i64 = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i64 < total;
       i64 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(i64);
    const int c0 = (i % cv) * V;
    int pix = i / cv;
    const int iw = pix % g.w;
    pix /= g.w;
    const int ih = pix % g.h, n = pix / g.h;
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.f;
    for (int kh = 0; kh < g.kh; ++kh) {
      const int th = ih + g.pt - kh;
      if (th < 0) break;
      if (th % g.sh != 0) continue;
      const int oh = th / g.sh;
      if (oh >= g.oh) continue;
      const int rc = avg_span(oh, g.h, g.kh, g.sh, g.pt, g.pb, g.count_include_pad).count;
      for (int kw = 0; kw < g.kw; ++kw) {
        const int tw = iw + g.pl - kw;
        if (tw < 0) break;
        if (tw % g.sw != 0) continue;
        const int ow = tw / g.sw;
        if (ow >= g.ow) continue;
        const int cc = avg_span(ow, g.w, g.kw, g.sw, g.pl, g.pr, g.count_include_pad).count;
        const float div = static_cast<float>(rc * cc);
        float gv[V];
        load_f32<T, V>(grad_y + ((n * g.oh + oh) * g.ow + ow) * g.c + c0, gv);
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] += gv[l] / div;
      }
    }
    store_f32<T, V>(grad_x + static_cast<int64_t>(i) * V, acc);
  }
}

// ---- global average pooling -------------------------------------------------------------------

// Block (32, 8): threadIdx.x picks a channel vector, threadIdx.y a stride-8
// slice of HW; the 8 partial sums meet in shared memory. Grid (channel-vector
// blocks, images), looping over images beyond the grid's y limit.
constexpr int kGapCols = 32, kGapRows = 8;

template <typename T, int V>
__global__ void global_avg_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int n, int hw, int c) {
  __shared__ float partial[kGapRows][kGapCols][V];
  const int cv = c / V;
  const int vi = blockIdx.x * kGapCols + threadIdx.x;
  const bool active = vi < cv;
  for (int b = blockIdx.y; b < n; b += gridDim.y) {
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.f;
    if (active) {
      const T* xb = x + static_cast<int64_t>(b) * hw * c + vi * V;
      for (int s = threadIdx.y; s < hw; s += kGapRows) {
        float v[V];
        load_f32<T, V>(xb + static_cast<int64_t>(s) * c, v);
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] += v[l];
      }
    }
#pragma unroll
    for (int l = 0; l < V; ++l) partial[threadIdx.y][threadIdx.x][l] = acc[l];
    __syncthreads();
    if (threadIdx.y == 0 && active) {
      float sum[V];
#pragma unroll
      for (int l = 0; l < V; ++l) {
        sum[l] = 0.f;
        for (int r = 0; r < kGapRows; ++r) sum[l] += partial[r][threadIdx.x][l];
        sum[l] /= static_cast<float>(hw);
      }
      store_f32<T, V>(y + static_cast<int64_t>(b) * c + vi * V, sum);
    }
    __syncthreads();  // partial is rewritten by the next image
  }
}

template <typename T, int V>
__global__ void global_avg_pool2d_backward_kernel(const T* __restrict__ grad_y, T* __restrict__ grad_x, int n, int hw,
                                                  int c, float inv) {
  const int cv = c / V;
  const int64_t total = static_cast<int64_t>(n) * hw * cv;
  for (int64_t i64 = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i64 < total;
       i64 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(i64);
    const int b = i / (hw * cv), c0 = (i % cv) * V;
    float g[V];
    load_f32<T, V>(grad_y + b * c + c0, g);
#pragma unroll
    for (int l = 0; l < V; ++l) g[l] *= inv;
    store_f32<T, V>(grad_x + static_cast<int64_t>(i) * V, g);
  }
}

// ---- host-side validation ---------------------------------------------------------------------

[[noreturn]] void bad(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}

void check_dtype(const char* fn, DataType dt) {
  if (dt != DataType::f32 && dt != DataType::f16 && dt != DataType::bf16)
    bad(fn, "unknown dtype " + std::to_string(static_cast<int>(dt)));
}

void check_ptr(const char* fn, const void* p, const char* name) {
  if (!p) bad(fn, std::string(name) + " is null");
}

std::string params_str(const Pool2dParams& p) {
  return "input NHWC " + std::to_string(p.n) + "x" + std::to_string(p.h) + "x" + std::to_string(p.w) + "x" +
         std::to_string(p.c) + ", output " + std::to_string(p.out_h) + "x" + std::to_string(p.out_w) + ", kernel " +
         std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + ", stride " + std::to_string(p.stride_h) +
         "x" + std::to_string(p.stride_w) + ", pads (t,l,b,r) " + std::to_string(p.pad_top) + "," +
         std::to_string(p.pad_left) + "," + std::to_string(p.pad_bottom) + "," + std::to_string(p.pad_right) +
         ", dilation " + std::to_string(p.dilation_h) + "x" + std::to_string(p.dilation_w);
}

// Validates p and returns the int32 geometry. Returns false in `work` when
// there is nothing to compute (an empty tensor).
Geometry make_geometry(const char* fn, const Pool2dParams& p, bool is_max, bool* work) {
  const std::string where = " (" + params_str(p) + ")";
  if (p.n < 0 || p.h < 0 || p.w < 0 || p.c < 0) bad(fn, "negative input size" + where);
  if (p.kernel_h < 1 || p.kernel_w < 1) bad(fn, "kernel must be >= 1" + where);
  if (p.stride_h < 1 || p.stride_w < 1) bad(fn, "stride must be >= 1" + where);
  if (p.dilation_h < 1 || p.dilation_w < 1) bad(fn, "dilation must be >= 1" + where);
  if (!is_max && (p.dilation_h != 1 || p.dilation_w != 1)) bad(fn, "average pooling takes no dilation" + where);
  if (p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0) bad(fn, "negative padding" + where);
  // out_h/out_w must be what pool_output_size gives, with or without ceil_mode.
  const auto out_ok = [](int64_t out, int64_t in, int64_t k, int64_t s, int64_t pb, int64_t pe, int64_t d) {
    return out == pool_output_size(in, k, s, pb, pe, d, false) || out == pool_output_size(in, k, s, pb, pe, d, true);
  };
  if (!out_ok(p.out_h, p.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, p.dilation_h) ||
      !out_ok(p.out_w, p.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, p.dilation_w))
    bad(fn, "out_h/out_w disagree with pool_output_size (floor or ceil mode)" + where);
  const int64_t in_elems = p.n * p.h * p.w * p.c, out_elems = p.n * p.out_h * p.out_w * p.c;
  const int64_t geo_max = std::max({p.kernel_h * p.dilation_h, p.kernel_w * p.dilation_w, p.h + p.pad_bottom,
                                    p.w + p.pad_right, p.kernel_h * p.kernel_w});
  if (in_elems > INT_MAX || out_elems > INT_MAX || geo_max > INT_MAX / 4)
    bad(fn, "tensor too large for 32-bit indexing (" + std::to_string(in_elems) + " input, " +
                std::to_string(out_elems) + " output elements)" + where);
  *work = in_elems > 0 && out_elems > 0;
  Geometry g;
  g.n = static_cast<int>(p.n), g.h = static_cast<int>(p.h), g.w = static_cast<int>(p.w), g.c = static_cast<int>(p.c);
  g.oh = static_cast<int>(p.out_h), g.ow = static_cast<int>(p.out_w);
  g.kh = static_cast<int>(p.kernel_h), g.kw = static_cast<int>(p.kernel_w);
  g.sh = static_cast<int>(p.stride_h), g.sw = static_cast<int>(p.stride_w);
  g.pt = static_cast<int>(p.pad_top), g.pl = static_cast<int>(p.pad_left);
  g.pb = static_cast<int>(p.pad_bottom), g.pr = static_cast<int>(p.pad_right);
  g.dh = static_cast<int>(p.dilation_h), g.dw = static_cast<int>(p.dilation_w);
  g.count_include_pad = p.count_include_pad;
  return g;
}

// The 16-byte vector path applies when C is a multiple of the vector width and
// every pointer (null ones excepted) is 16-byte aligned.
template <typename T>
bool use_vector(int64_t c, std::initializer_list<const void*> ptrs) {
  constexpr int kVec = 16 / sizeof(T);
  if (c % kVec != 0) return false;
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return false;
  return true;
}

template <typename T>
constexpr int vec_width() {
  return 16 / sizeof(T);
}

}  // namespace

// ---- launchers --------------------------------------------------------------------------------

void max_pool2d_forward(const void* x, void* y, int32_t* argmax, DataType dt, const Pool2dParams& p,
                        cudaStream_t stream) {
  const char* fn = "cuda::max_pool2d_forward";
  check_dtype(fn, dt);
  bool work = false;
  const Geometry g = make_geometry(fn, p, true, &work);
  if (!work) return;
  check_ptr(fn, x, "x");
  check_ptr(fn, y, "y");
  const int64_t total = p.n * p.out_h * p.out_w * p.c;
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    constexpr int V = vec_width<T>();
    const bool vec = use_vector<T>(p.c, {x, y, argmax});
    const unsigned grid = grid_for(vec ? total / V : total, kThreads);
    if (argmax) {
      if (vec) max_pool2d_forward_kernel<T, V, true><<<grid, kThreads, 0, stream>>>(xt, yt, argmax, g);
      else max_pool2d_forward_kernel<T, 1, true><<<grid, kThreads, 0, stream>>>(xt, yt, argmax, g);
    } else {
      if (vec) max_pool2d_forward_kernel<T, V, false><<<grid, kThreads, 0, stream>>>(xt, yt, nullptr, g);
      else max_pool2d_forward_kernel<T, 1, false><<<grid, kThreads, 0, stream>>>(xt, yt, nullptr, g);
    }
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

void max_pool2d_backward(const void* grad_y, const int32_t* argmax, void* grad_x, DataType dt, const Pool2dParams& p,
                         cudaStream_t stream) {
  const char* fn = "cuda::max_pool2d_backward";
  check_dtype(fn, dt);
  bool work = false;
  const Geometry g = make_geometry(fn, p, true, &work);
  const int64_t total = p.n * p.h * p.w * p.c;
  if (total == 0) return;
  check_ptr(fn, grad_x, "grad_x");
  if (work) {
    check_ptr(fn, grad_y, "grad_y");
    check_ptr(fn, argmax, "argmax");
  }
  GRAFT_DISPATCH_FLOAT(dt, T, {
    constexpr int V = vec_width<T>();
    const bool vec = use_vector<T>(p.c, {grad_y, argmax, grad_x});
    const unsigned grid = grid_for(vec ? total / V : total, kThreads);
    const T* gy = static_cast<const T*>(grad_y);
    T* gx = static_cast<T*>(grad_x);
    if (vec) max_pool2d_backward_kernel<T, V><<<grid, kThreads, 0, stream>>>(gy, argmax, gx, g);
    else max_pool2d_backward_kernel<T, 1><<<grid, kThreads, 0, stream>>>(gy, argmax, gx, g);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

void avg_pool2d_forward(const void* x, void* y, DataType dt, const Pool2dParams& p, cudaStream_t stream) {
  const char* fn = "cuda::avg_pool2d_forward";
  check_dtype(fn, dt);
  bool work = false;
  const Geometry g = make_geometry(fn, p, false, &work);
  if (!work) return;
  check_ptr(fn, x, "x");
  check_ptr(fn, y, "y");
  const int64_t total = p.n * p.out_h * p.out_w * p.c;
  GRAFT_DISPATCH_FLOAT(dt, T, {
    constexpr int V = vec_width<T>();
    const bool vec = use_vector<T>(p.c, {x, y});
    const unsigned grid = grid_for(vec ? total / V : total, kThreads);
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    if (vec) avg_pool2d_forward_kernel<T, V><<<grid, kThreads, 0, stream>>>(xt, yt, g);
    else avg_pool2d_forward_kernel<T, 1><<<grid, kThreads, 0, stream>>>(xt, yt, g);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

void avg_pool2d_backward(const void* grad_y, void* grad_x, DataType dt, const Pool2dParams& p, cudaStream_t stream) {
  const char* fn = "cuda::avg_pool2d_backward";
  check_dtype(fn, dt);
  bool work = false;
  const Geometry g = make_geometry(fn, p, false, &work);
  const int64_t total = p.n * p.h * p.w * p.c;
  if (total == 0) return;
  check_ptr(fn, grad_x, "grad_x");
  if (work) check_ptr(fn, grad_y, "grad_y");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    constexpr int V = vec_width<T>();
    const bool vec = use_vector<T>(p.c, {grad_y, grad_x});
    const unsigned grid = grid_for(vec ? total / V : total, kThreads);
    const T* gy = static_cast<const T*>(grad_y);
    T* gx = static_cast<T*>(grad_x);
    if (vec) avg_pool2d_backward_kernel<T, V><<<grid, kThreads, 0, stream>>>(gy, gx, g);
    else avg_pool2d_backward_kernel<T, 1><<<grid, kThreads, 0, stream>>>(gy, gx, g);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

namespace {
void check_global(const char* fn, DataType dt, int64_t n, int64_t hw, int64_t c) {
  check_dtype(fn, dt);
  if (n < 0 || hw < 0 || c < 0)
    bad(fn, "negative size (n " + std::to_string(n) + ", hw " + std::to_string(hw) + ", c " + std::to_string(c) + ")");
  if (n > 0 && c > 0 && hw == 0) bad(fn, "hw is 0: the mean of no positions");
  if (n * hw * c > INT_MAX)
    bad(fn, "tensor too large for 32-bit indexing (" + std::to_string(n * hw * c) + " elements)");
}
}  // namespace

void global_avg_pool2d_forward(const void* x, void* y, DataType dt, int64_t n, int64_t hw, int64_t c,
                               cudaStream_t stream) {
  const char* fn = "cuda::global_avg_pool2d_forward";
  check_global(fn, dt, n, hw, c);
  if (n == 0 || c == 0) return;
  check_ptr(fn, x, "x");
  check_ptr(fn, y, "y");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    constexpr int V = vec_width<T>();
    const bool vec = use_vector<T>(c, {x, y});
    const int64_t cv = vec ? c / V : c;
    const dim3 block(kGapCols, kGapRows);
    const dim3 grid(static_cast<unsigned>((cv + kGapCols - 1) / kGapCols), static_cast<unsigned>(std::min<int64_t>(n, 65535)));
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    const int ni = static_cast<int>(n), hwi = static_cast<int>(hw), ci = static_cast<int>(c);
    if (vec) global_avg_pool2d_forward_kernel<T, V><<<grid, block, 0, stream>>>(xt, yt, ni, hwi, ci);
    else global_avg_pool2d_forward_kernel<T, 1><<<grid, block, 0, stream>>>(xt, yt, ni, hwi, ci);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

void global_avg_pool2d_backward(const void* grad_y, void* grad_x, DataType dt, int64_t n, int64_t hw, int64_t c,
                                cudaStream_t stream) {
  const char* fn = "cuda::global_avg_pool2d_backward";
  check_global(fn, dt, n, hw, c);
  const int64_t total = n * hw * c;
  if (total == 0) return;
  check_ptr(fn, grad_y, "grad_y");
  check_ptr(fn, grad_x, "grad_x");
  const float inv = 1.0f / static_cast<float>(hw);  // the twin's expression
  GRAFT_DISPATCH_FLOAT(dt, T, {
    constexpr int V = vec_width<T>();
    const bool vec = use_vector<T>(c, {grad_y, grad_x});
    const unsigned grid = grid_for(vec ? total / V : total, kThreads);
    const T* gy = static_cast<const T*>(grad_y);
    T* gx = static_cast<T*>(grad_x);
    const int ni = static_cast<int>(n), hwi = static_cast<int>(hw), ci = static_cast<int>(c);
    if (vec) global_avg_pool2d_backward_kernel<T, V><<<grid, kThreads, 0, stream>>>(gy, gx, ni, hwi, ci, inv);
    else global_avg_pool2d_backward_kernel<T, 1><<<grid, kThreads, 0, stream>>>(gy, gx, ni, hwi, ci, inv);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace graft::kernels::cuda
