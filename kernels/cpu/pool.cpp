#include "kernels/cpu/pool.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace graft::kernels::cpu {

namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
inline bool worth_threads(int64_t work) { return work > 32768; }

// The output rows (or columns) whose window contains input position `i`, as
// (out index) pairs found by solving out * stride - pad + k * dilation = i for
// each k. Calls f(out) once per covering window; a window covers i at most
// once because k is determined by out.
template <class F>
inline void for_each_covering(int64_t i, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                              int64_t out_size, F&& f) {
  for (int64_t k = 0; k < kernel; ++k) {
    const int64_t t = i + pad - k * dilation;
    if (t < 0) break;  // t only decreases with k
    if (t % stride != 0) continue;
    const int64_t o = t / stride;
    if (o < out_size) f(o);
  }
}

// ---- max pooling ---------------------------------------------------------------

template <bool kSaveIndex>
void max_pool2d_forward_impl(const float* x, float* y, int32_t* argmax, const Pool2dParams& p) {
  const int64_t H = p.h, W = p.w, C = p.c, OH = p.out_h, OW = p.out_w;
#pragma omp parallel for schedule(static) if (worth_threads(p.n * OH * OW * C * p.kernel_h * p.kernel_w))
  for (int64_t noh = 0; noh < p.n * OH; ++noh) {
    const int64_t n = noh / OH, oh = noh % OH;
    const float* xn = x + n * H * W * C;
    const int64_t h0 = oh * p.stride_h - p.pad_top;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t w0 = ow * p.stride_w - p.pad_left;
      const int64_t o = (noh * OW + ow) * C;
      float* __restrict yo = y + o;
      int32_t* __restrict io = kSaveIndex ? argmax + o : nullptr;
      bool first = true;
      for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
        const int64_t ih = h0 + kh * p.dilation_h;
        if (ih < 0 || ih >= H) continue;
        for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
          const int64_t iw = w0 + kw * p.dilation_w;
          if (iw < 0 || iw >= W) continue;
          const float* __restrict xi = xn + (ih * W + iw) * C;
          const int32_t pos = static_cast<int32_t>(ih * W + iw);
          if (first) {
            for (int64_t c = 0; c < C; ++c) yo[c] = xi[c];
            if (kSaveIndex)
              for (int64_t c = 0; c < C; ++c) io[c] = pos;
            first = false;
            continue;
          }
          for (int64_t c = 0; c < C; ++c) {
            const float v = xi[c];
            const bool take = v > yo[c] || v != v;  // first maximum wins; NaN propagates
            yo[c] = take ? v : yo[c];
            if (kSaveIndex) io[c] = take ? pos : io[c];
          }
        }
      }
      if (first) {  // a window with no input position (the engine refuses such options)
        for (int64_t c = 0; c < C; ++c) yo[c] = -std::numeric_limits<float>::infinity();
        if (kSaveIndex)
          for (int64_t c = 0; c < C; ++c) io[c] = -1;
      }
    }
  }
}

}  // namespace

void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const Pool2dParams& p) {
  if (argmax) max_pool2d_forward_impl<true>(x, y, argmax, p);
  else max_pool2d_forward_impl<false>(x, y, nullptr, p);
}

// A gather rather than a scatter: each input position sums the gradients of
// the windows that chose it. Threads then own disjoint input rows (no atomics,
// deterministic), and the compare-and-select over C vectorises.
void max_pool2d_backward(const float* grad_y, const int32_t* argmax, float* grad_x, const Pool2dParams& p) {
  const int64_t H = p.h, W = p.w, C = p.c, OH = p.out_h, OW = p.out_w;
#pragma omp parallel for schedule(static) if (worth_threads(p.n * H * W * C * p.kernel_h * p.kernel_w))
  for (int64_t nh = 0; nh < p.n * H; ++nh) {
    const int64_t n = nh / H, ih = nh % H;
    for (int64_t iw = 0; iw < W; ++iw) {
      float* __restrict gx = grad_x + (nh * W + iw) * C;
      for (int64_t c = 0; c < C; ++c) gx[c] = 0.f;
      const int32_t pos = static_cast<int32_t>(ih * W + iw);
      for_each_covering(ih, p.kernel_h, p.stride_h, p.pad_top, p.dilation_h, OH, [&](int64_t oh) {
        for_each_covering(iw, p.kernel_w, p.stride_w, p.pad_left, p.dilation_w, OW, [&](int64_t ow) {
          const int64_t o = ((n * OH + oh) * OW + ow) * C;
          const float* __restrict g = grad_y + o;
          const int32_t* __restrict id = argmax + o;
          for (int64_t c = 0; c < C; ++c) gx[c] += id[c] == pos ? g[c] : 0.f;
        });
      });
    }
  }
}

// ---- average pooling ------------------------------------------------------------

namespace {

// Per output index along one dim: the first and one-past-last input position
// inside the input, and the divisor contribution (the window's extent inside
// the padded input with count_include_pad, else inside the input). The 2-D
// divisor is the product of the two dims' contributions.
struct Span {
  int64_t begin, end, count;
};

std::vector<Span> avg_spans(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad_begin,
                            int64_t pad_end, bool count_include_pad) {
  std::vector<Span> s(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * stride - pad_begin;
    const int64_t stop = std::min(start + kernel, in + pad_end);  // ceil_mode may reach past the padding
    const int64_t b = std::max<int64_t>(start, 0), e = std::min(stop, in);
    s[o] = {b, e, count_include_pad ? stop - start : e - b};
  }
  return s;
}

}  // namespace

void avg_pool2d_forward(const float* x, float* y, const Pool2dParams& p) {
  const int64_t H = p.h, W = p.w, C = p.c, OH = p.out_h, OW = p.out_w;
  const std::vector<Span> rows = avg_spans(H, OH, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, p.count_include_pad);
  const std::vector<Span> cols = avg_spans(W, OW, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, p.count_include_pad);
#pragma omp parallel for schedule(static) if (worth_threads(p.n * OH * OW * C * p.kernel_h * p.kernel_w))
  for (int64_t noh = 0; noh < p.n * OH; ++noh) {
    const int64_t n = noh / OH, oh = noh % OH;
    const float* xn = x + n * H * W * C;
    const Span r = rows[oh];
    for (int64_t ow = 0; ow < OW; ++ow) {
      const Span s = cols[ow];
      float* __restrict yo = y + (noh * OW + ow) * C;
      for (int64_t c = 0; c < C; ++c) yo[c] = 0.f;
      for (int64_t ih = r.begin; ih < r.end; ++ih)
        for (int64_t iw = s.begin; iw < s.end; ++iw) {
          const float* __restrict xi = xn + (ih * W + iw) * C;
          for (int64_t c = 0; c < C; ++c) yo[c] += xi[c];
        }
      const float div = static_cast<float>(r.count * s.count);
      for (int64_t c = 0; c < C; ++c) yo[c] /= div;
    }
  }
}

void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2dParams& p) {
  const int64_t H = p.h, W = p.w, C = p.c, OH = p.out_h, OW = p.out_w;
  const std::vector<Span> rows = avg_spans(H, OH, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, p.count_include_pad);
  const std::vector<Span> cols = avg_spans(W, OW, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, p.count_include_pad);
#pragma omp parallel for schedule(static) if (worth_threads(p.n * H * W * C * p.kernel_h * p.kernel_w))
  for (int64_t nh = 0; nh < p.n * H; ++nh) {
    const int64_t n = nh / H, ih = nh % H;
    for (int64_t iw = 0; iw < W; ++iw) {
      float* __restrict gx = grad_x + (nh * W + iw) * C;
      for (int64_t c = 0; c < C; ++c) gx[c] = 0.f;
      for_each_covering(ih, p.kernel_h, p.stride_h, p.pad_top, 1, OH, [&](int64_t oh) {
        for_each_covering(iw, p.kernel_w, p.stride_w, p.pad_left, 1, OW, [&](int64_t ow) {
          const float* __restrict g = grad_y + ((n * OH + oh) * OW + ow) * C;
          const float div = static_cast<float>(rows[oh].count * cols[ow].count);
          for (int64_t c = 0; c < C; ++c) gx[c] += g[c] / div;
        });
      });
    }
  }
}

// ---- global average pooling ------------------------------------------------------

void global_avg_pool2d_forward(const float* x, float* y, int64_t n, int64_t hw, int64_t c) {
  // Blocks of channels give the threads work even when N is 1; the block's
  // double accumulators stay in registers / L1.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (c + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (worth_threads(n * hw * c))
  for (int64_t i = 0; i < n * blocks; ++i) {
    const int64_t b = i / blocks, c0 = (i % blocks) * kBlock, cn = std::min(kBlock, c - c0);
    double acc[kBlock] = {};
    for (int64_t s = 0; s < hw; ++s) {
      const float* __restrict xr = x + (b * hw + s) * c + c0;
      for (int64_t k = 0; k < cn; ++k) acc[k] += xr[k];
    }
    for (int64_t k = 0; k < cn; ++k) y[b * c + c0 + k] = static_cast<float>(acc[k] / static_cast<double>(hw));
  }
}

void global_avg_pool2d_backward(const float* grad_y, float* grad_x, int64_t n, int64_t hw, int64_t c) {
  const float inv = 1.0f / static_cast<float>(hw);
#pragma omp parallel for schedule(static) if (worth_threads(n * hw * c))
  for (int64_t r = 0; r < n * hw; ++r) {
    const float* __restrict g = grad_y + (r / hw) * c;
    float* __restrict gx = grad_x + r * c;
    for (int64_t k = 0; k < c; ++k) gx[k] = g[k] * inv;
  }
}

}  // namespace graft::kernels::cpu
