#include "kernels/cpu/softmax.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/fast_exp.h"

namespace graft::kernels::cpu {

namespace {

// Columns the strided variant carries through the axis at once: their running
// max and sum (2 x 64 floats) stay in registers / L1 while each step along the
// axis reads 64 contiguous floats.
constexpr int64_t kColumnTile = 64;
// Below this many elements the work does not pay for waking threads.
constexpr int64_t kParallelMin = 1 << 15;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- inner == 1: one contiguous row per (outer) index ----------------------

template <bool kLog>
void forward_row(const float* x, float* y, int64_t n) {
  float m = kNegInf;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  float s = 0.0f;
  if (kLog) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += exp_approx(x[i] - m);
    // (x - m) - log s rather than x - (m + log s): m + log s would round to
    // the ulp of m, which for large logits is coarser than the answer needs.
    const float log_s = std::log(s);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - log_s;
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) {
      const float e = exp_approx(x[i] - m);
      y[i] = e;
      s += e;
    }
    const float inv = 1.0f / s;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

template <bool kLog>
void backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  float acc = 0.0f;
  if (kLog) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += dy[i];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - exp_approx(y[i]) * acc;
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += dy[i] * y[i];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - acc);
  }
}

// ---- inner > 1: columns [c0, c0 + w) of one (axis_len, inner) block ---------

template <bool kLog>
void forward_columns(const float* x, float* y, int64_t len, int64_t inner, int64_t w) {
  float m[kColumnTile], s[kColumnTile];
  for (int64_t j = 0; j < w; ++j) {
    m[j] = kNegInf;
    s[j] = 0.0f;
  }
  for (int64_t a = 0; a < len; ++a) {
    const float* xa = x + a * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) m[j] = xa[j] > m[j] ? xa[j] : m[j];
  }
  for (int64_t a = 0; a < len; ++a) {
    const float* xa = x + a * inner;
    float* ya = y + a * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) {
      const float e = exp_approx(xa[j] - m[j]);
      if (!kLog) ya[j] = e;
      s[j] += e;
    }
  }
  if (kLog) {
    for (int64_t j = 0; j < w; ++j) s[j] = std::log(s[j]);
    for (int64_t a = 0; a < len; ++a) {
      const float* xa = x + a * inner;
      float* ya = y + a * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) ya[j] = (xa[j] - m[j]) - s[j];
    }
  } else {
    for (int64_t j = 0; j < w; ++j) s[j] = 1.0f / s[j];
    for (int64_t a = 0; a < len; ++a) {
      float* ya = y + a * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) ya[j] *= s[j];
    }
  }
}

template <bool kLog>
void backward_columns(const float* y, const float* dy, float* dx, int64_t len, int64_t inner, int64_t w) {
  float acc[kColumnTile];
  for (int64_t j = 0; j < w; ++j) acc[j] = 0.0f;
  for (int64_t a = 0; a < len; ++a) {
    const float* ya = y + a * inner;
    const float* ga = dy + a * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) acc[j] += kLog ? ga[j] : ga[j] * ya[j];
  }
  for (int64_t a = 0; a < len; ++a) {
    const float* ya = y + a * inner;
    const float* ga = dy + a * inner;
    float* da = dx + a * inner;
    if (kLog) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) da[j] = ga[j] - exp_approx(ya[j]) * acc[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) da[j] = ya[j] * (ga[j] - acc[j]);
    }
  }
}

// ---- drivers ------------------------------------------------------------------

template <bool kLog>
void forward(const float* x, float* y, SoftmaxParams p) {
  const int64_t len = p.axis_len, inner = p.inner;
  const int64_t total = p.outer * len * inner;
  if (total == 0) return;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (total > kParallelMin)
    for (int64_t o = 0; o < p.outer; ++o) forward_row<kLog>(x + o * len, y + o * len, len);
    return;
  }
  const int64_t tiles = (inner + kColumnTile - 1) / kColumnTile;
#pragma omp parallel for schedule(static) if (total > kParallelMin)
  for (int64_t t = 0; t < p.outer * tiles; ++t) {
    const int64_t o = t / tiles, c0 = (t % tiles) * kColumnTile;
    const int64_t base = o * len * inner + c0;
    forward_columns<kLog>(x + base, y + base, len, inner, std::min(kColumnTile, inner - c0));
  }
}

template <bool kLog>
void backward(const float* y, const float* dy, float* dx, SoftmaxParams p) {
  const int64_t len = p.axis_len, inner = p.inner;
  const int64_t total = p.outer * len * inner;
  if (total == 0) return;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (total > kParallelMin)
    for (int64_t o = 0; o < p.outer; ++o) backward_row<kLog>(y + o * len, dy + o * len, dx + o * len, len);
    return;
  }
  const int64_t tiles = (inner + kColumnTile - 1) / kColumnTile;
#pragma omp parallel for schedule(static) if (total > kParallelMin)
  for (int64_t t = 0; t < p.outer * tiles; ++t) {
    const int64_t o = t / tiles, c0 = (t % tiles) * kColumnTile;
    const int64_t base = o * len * inner + c0;
    backward_columns<kLog>(y + base, dy + base, dx + base, len, inner, std::min(kColumnTile, inner - c0));
  }
}

}  // namespace

void softmax_forward(const float* x, float* y, SoftmaxParams p) { forward<false>(x, y, p); }
void log_softmax_forward(const float* x, float* y, SoftmaxParams p) { forward<true>(x, y, p); }

void softmax_backward(const float* y, const float* dy, float* dx, SoftmaxParams p) { backward<false>(y, dy, dx, p); }
void log_softmax_backward(const float* y, const float* dy, float* dx, SoftmaxParams p) {
  backward<true>(y, dy, dx, p);
}

}  // namespace graft::kernels::cpu
