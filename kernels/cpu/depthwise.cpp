#include "kernels/cpu/depthwise.h"

#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace graft::kernels::cpu {

namespace {

// Calls f(block, c0) over the channels in blocks of 32, then 8, then 1, with
// the block size a compile-time constant so that each block's accumulators
// live in vector registers (32 floats = 4 AVX registers).
template <class F>
void for_channel_blocks(int64_t channels, F&& f) {
  int64_t c0 = 0;
  for (; c0 + 32 <= channels; c0 += 32) f(std::integral_constant<int, 32>{}, c0);
  for (; c0 + 8 <= channels; c0 += 8) f(std::integral_constant<int, 8>{}, c0);
  for (; c0 < channels; ++c0) f(std::integral_constant<int, 1>{}, c0);
}

// (C, taps) -> (taps, C): one contiguous channel vector per tap.
std::vector<float> taps_major(const float* w, int64_t channels, int64_t taps) {
  std::vector<float> t(static_cast<size_t>(channels * taps));
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t k = 0; k < taps; ++k) t[k * channels + c] = w[c * taps + k];
  return t;
}

}  // namespace

// Loop order: one output pixel at a time, all its channels in blocks, so x,
// w and y are read and written as consecutive memory (prefetch-friendly; the
// layers are memory-bound), with each block's sums in registers.
void depthwise_conv2d_forward(const Conv2dParams& p, const float* x, const float* w, const float* b, float* y) {
  const int64_t C = p.c, out_h = p.out_h(), out_w = p.out_w();
  const std::vector<float> w_taps = taps_major(w, C, p.kh * p.kw);
  const float* wt = w_taps.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const float* x_img = x + n * p.h * p.w * C;
      float* y_row = y + (n * out_h + oh) * out_w * C;
      const int64_t ih0 = oh * p.stride_h - p.pad_top;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t iw0 = ow * p.stride_w - p.pad_left;
        for_channel_blocks(C, [&](auto block, int64_t c0) {
          constexpr int CB = decltype(block)::value;
          float acc[CB];
          for (int j = 0; j < CB; ++j) acc[j] = b ? b[c0 + j] : 0.f;
          for (int64_t a = 0; a < p.kh; ++a) {
            const int64_t ih = ih0 + a * p.dilation_h;
            if (ih < 0 || ih >= p.h) continue;
            for (int64_t bb = 0; bb < p.kw; ++bb) {
              const int64_t iw = iw0 + bb * p.dilation_w;
              if (iw < 0 || iw >= p.w) continue;
              const float* xp = x_img + (ih * p.w + iw) * C + c0;
              const float* wp = wt + (a * p.kw + bb) * C + c0;
              for (int j = 0; j < CB; ++j) acc[j] += xp[j] * wp[j];
            }
          }
          float* yp = y_row + ow * C + c0;
          for (int j = 0; j < CB; ++j) yp[j] = acc[j];
        });
      }
    }
}

// dx[n, ih, iw, c] = sum over taps (a, b) whose output pixel
// (oh, ow) = ((ih + pad_top - a*dil) / stride, ...) exists of dy[n, oh, ow, c] * w[c, a, b]:
// a gather, so threads own disjoint rows of dx and never race.
void depthwise_conv2d_backward_data(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
  const int64_t C = p.c, out_h = p.out_h(), out_w = p.out_w();
  const std::vector<float> w_taps = taps_major(w, C, p.kh * p.kw);
  const float* wt = w_taps.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t ih = 0; ih < p.h; ++ih) {
      const float* dy_img = dy + n * out_h * out_w * C;
      float* dx_row = dx + (n * p.h + ih) * p.w * C;
      for (int64_t iw = 0; iw < p.w; ++iw) {
        for_channel_blocks(C, [&](auto block, int64_t c0) {
          constexpr int CB = decltype(block)::value;
          float acc[CB] = {};
          for (int64_t a = 0; a < p.kh; ++a) {
            const int64_t th = ih + p.pad_top - a * p.dilation_h;
            if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= out_h) continue;
            const int64_t oh = th / p.stride_h;
            for (int64_t bb = 0; bb < p.kw; ++bb) {
              const int64_t tw = iw + p.pad_left - bb * p.dilation_w;
              if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= out_w) continue;
              const float* gp = dy_img + (oh * out_w + tw / p.stride_w) * C + c0;
              const float* wp = wt + (a * p.kw + bb) * C + c0;
              for (int j = 0; j < CB; ++j) acc[j] += gp[j] * wp[j];
            }
          }
          float* dp = dx_row + iw * C + c0;
          for (int j = 0; j < CB; ++j) dp[j] = acc[j];
        });
      }
    }
}

// dw[c, a, b] = sum over n, oh, ow of dy[n, oh, ow, c] * x[n, ih, iw, c].
// Each thread sums its rows into its own (taps, C) array (cache-resident);
// the arrays are added and transposed at the end.
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
        const float* x_img = x + n * p.h * p.w * C;
        const int64_t ih0 = oh * p.stride_h - p.pad_top;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const float* gp = dy_row + ow * C;
          const int64_t iw0 = ow * p.stride_w - p.pad_left;
          for (int64_t a = 0; a < p.kh; ++a) {
            const int64_t ih = ih0 + a * p.dilation_h;
            if (ih < 0 || ih >= p.h) continue;
            for (int64_t bb = 0; bb < p.kw; ++bb) {
              const int64_t iw = iw0 + bb * p.dilation_w;
              if (iw < 0 || iw >= p.w) continue;
              const float* xp = x_img + (ih * p.w + iw) * C;
              float* at = acc + (a * p.kw + bb) * C;
              for (int64_t c = 0; c < C; ++c) at[c] += gp[c] * xp[c];
            }
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
