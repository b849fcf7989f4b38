#include "kernels/cpu/depthwise.h"

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace graft::kernels::cpu {

namespace {

// (C, taps) -> (taps, C): one contiguous channel vector per tap, 64-byte
// aligned like the engine's tensors (split loads cost ~25% in cache).
class TapsMajor {
 public:
  TapsMajor(const float* w, int64_t channels, int64_t taps) {
    const size_t bytes = (static_cast<size_t>(channels * taps) * sizeof(float) + 63) / 64 * 64;
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < taps; ++k) data_[k * channels + c] = w[c * taps + k];
  }
  ~TapsMajor() { std::free(data_); }
  TapsMajor(const TapsMajor&) = delete;
  TapsMajor& operator=(const TapsMajor&) = delete;
  const float* data() const { return data_; }

 private:
  float* data_ = nullptr;
};

// The taps that touch one pixel: element offsets into the activation image
// (of the pixel's channel 0) and into the (taps, C) weights. Built once per
// pixel, so the channel loops below carry no bounds checks.
struct TapList {
  std::vector<int64_t> act, wgt;
  int count = 0;
  explicit TapList(int64_t max_taps) : act(max_taps), wgt(max_taps) {}
  void add(int64_t a, int64_t w) {
    act[count] = a;
    wgt[count] = w;
    ++count;
  }
};

// Eight floats in one vector register (a GCC/Clang vector extension: AVX
// with -march=x86-64-v3, plain SSE pairs otherwise). Spelling the blocks out
// keeps the per-block sums in registers, which the auto-vectoriser did not
// reliably do for this loop nest.
typedef float f32x8 __attribute__((vector_size(32)));

inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }

// out[j] = init[j] + sum over taps of act[tap][j] * wgt[tap][j] for the
// 8 * V channels starting at c0 (init may be null).
template <int V>
inline void sum_taps(const float* act, const float* wgt, const TapList& taps, const float* init, int64_t c0,
                     float* out) {
  f32x8 acc[V];
  for (int v = 0; v < V; ++v) acc[v] = init ? load8(init + c0 + 8 * v) : f32x8{};
  for (int t = 0; t < taps.count; ++t) {
    const float* a = act + taps.act[t] + c0;
    const float* w = wgt + taps.wgt[t] + c0;
    for (int v = 0; v < V; ++v) acc[v] += load8(a + 8 * v) * load8(w + 8 * v);
  }
  for (int v = 0; v < V; ++v) store8(out + c0 + 8 * v, acc[v]);
}

// All channels of one pixel: blocks of 32, then 8, then single channels.
void sum_taps_all_channels(const float* act, const float* wgt, const TapList& taps, const float* init, int64_t channels,
                           float* out) {
  int64_t c0 = 0;
  for (; c0 + 32 <= channels; c0 += 32) sum_taps<4>(act, wgt, taps, init, c0, out);
  for (; c0 + 8 <= channels; c0 += 8) sum_taps<1>(act, wgt, taps, init, c0, out);
  for (; c0 < channels; ++c0) {
    float acc = init ? init[c0] : 0.f;
    for (int t = 0; t < taps.count; ++t) acc += act[taps.act[t] + c0] * wgt[taps.wgt[t] + c0];
    out[c0] = acc;
  }
}

}  // namespace

// One output pixel at a time, all its channels in blocks: x, w and y are read
// and written as consecutive memory (prefetch-friendly; these layers are
// memory-bound).
void depthwise_conv2d_forward(const Conv2dParams& p, const float* x, const float* w, const float* b, float* y) {
  const int64_t C = p.c, out_h = p.out_h(), out_w = p.out_w();
  const TapsMajor w_taps(w, C, p.kh * p.kw);
#pragma omp parallel
  {
    TapList taps(p.kh * p.kw);
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const float* x_img = x + n * p.h * p.w * C;
        float* y_row = y + (n * out_h + oh) * out_w * C;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          taps.count = 0;
          for (int64_t a = 0; a < p.kh; ++a) {
            const int64_t ih = oh * p.stride_h - p.pad_top + a * p.dilation_h;
            if (ih < 0 || ih >= p.h) continue;
            for (int64_t bb = 0; bb < p.kw; ++bb) {
              const int64_t iw = ow * p.stride_w - p.pad_left + bb * p.dilation_w;
              if (iw >= 0 && iw < p.w) taps.add((ih * p.w + iw) * C, (a * p.kw + bb) * C);
            }
          }
          sum_taps_all_channels(x_img, w_taps.data(), taps, b, C, y_row + ow * C);
        }
      }
  }
}

// dx[n, ih, iw, c] = sum over taps (a, b) whose output pixel
// (oh, ow) = ((ih + pad_top - a*dil) / stride, ...) exists of dy[n, oh, ow, c] * w[c, a, b]:
// a gather, so threads own disjoint rows of dx and never race.
void depthwise_conv2d_backward_data(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
  const int64_t C = p.c, out_h = p.out_h(), out_w = p.out_w();
  const TapsMajor w_taps(w, C, p.kh * p.kw);
#pragma omp parallel
  {
    TapList taps(p.kh * p.kw);
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t ih = 0; ih < p.h; ++ih) {
        const float* dy_img = dy + n * out_h * out_w * C;
        float* dx_row = dx + (n * p.h + ih) * p.w * C;
        for (int64_t iw = 0; iw < p.w; ++iw) {
          taps.count = 0;
          for (int64_t a = 0; a < p.kh; ++a) {
            const int64_t th = ih + p.pad_top - a * p.dilation_h;
            if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= out_h) continue;
            for (int64_t bb = 0; bb < p.kw; ++bb) {
              const int64_t tw = iw + p.pad_left - bb * p.dilation_w;
              if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= out_w) continue;
              taps.add((th / p.stride_h * out_w + tw / p.stride_w) * C, (a * p.kw + bb) * C);
            }
          }
          sum_taps_all_channels(dy_img, w_taps.data(), taps, nullptr, C, dx_row + iw * C);
        }
      }
  }
}

namespace {

// acc[j] += sum over ow in [lo, hi] of dy[ow * C + j] * x[(ow * stride + shift) * C + j]
// for the 8 * V channels starting at c0: one tap's weight gradient over one
// output row, the sums in registers.
template <int V>
inline void row_dot(const float* dy_row, const float* x_row, int64_t C, int64_t stride, int64_t shift, int64_t lo,
                    int64_t hi, int64_t c0, float* acc) {
  f32x8 r[V] = {};
  for (int64_t ow = lo; ow <= hi; ++ow) {
    const float* g = dy_row + ow * C + c0;
    const float* xp = x_row + (ow * stride + shift) * C + c0;
    for (int v = 0; v < V; ++v) r[v] += load8(g + 8 * v) * load8(xp + 8 * v);
  }
  for (int v = 0; v < V; ++v) store8(acc + c0 + 8 * v, load8(acc + c0 + 8 * v) + r[v]);
}

}  // namespace

// dw[c, a, b] = sum over n, oh, ow of dy[n, oh, ow, c] * x[n, ih, iw, c].
// Per output row and tap, the sum over the row's pixels runs in registers
// (row_dot); each thread adds those into its own (taps, C) array, and the
// arrays are added and transposed at the end.
void depthwise_conv2d_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
  const int64_t C = p.c, out_h = p.out_h(), out_w = p.out_w(), taps = p.kh * p.kw;
  const int threads = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(threads) * taps * C, 0.f);
#pragma omp parallel
  {
    float* acc = partial.data() + omp_get_thread_num() * taps * C;
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const float* dy_row = dy + (n * out_h + oh) * out_w * C;
        for (int64_t a = 0; a < p.kh; ++a) {
          const int64_t ih = oh * p.stride_h - p.pad_top + a * p.dilation_h;
          if (ih < 0 || ih >= p.h) continue;
          const float* x_row = x + (n * p.h + ih) * p.w * C;
          for (int64_t bb = 0; bb < p.kw; ++bb) {
            // the output columns whose input column iw = ow * stride + shift lies in [0, W)
            const int64_t shift = bb * p.dilation_w - p.pad_left;
            const int64_t lo = shift >= 0 ? 0 : (-shift + p.stride_w - 1) / p.stride_w;
            const int64_t hi = std::min(out_w - 1, p.w - 1 - shift < 0 ? int64_t(-1) : (p.w - 1 - shift) / p.stride_w);
            if (lo > hi) continue;
            float* acc_tap = acc + (a * p.kw + bb) * C;
            int64_t c0 = 0;
            for (; c0 + 32 <= C; c0 += 32) row_dot<4>(dy_row, x_row, C, p.stride_w, shift, lo, hi, c0, acc_tap);
            for (; c0 + 8 <= C; c0 += 8) row_dot<1>(dy_row, x_row, C, p.stride_w, shift, lo, hi, c0, acc_tap);
            for (; c0 < C; ++c0)
              for (int64_t ow = lo; ow <= hi; ++ow) acc_tap[c0] += dy_row[ow * C + c0] * x_row[(ow * p.stride_w + shift) * C + c0];
          }
        }
      }
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < taps; ++k) {
      float s = 0.f;
      for (int t = 0; t < threads; ++t) s += partial[(static_cast<int64_t>(t) * taps + k) * C + c];
      dw[c * taps + k] = s;
    }
}

}  // namespace graft::kernels::cpu
