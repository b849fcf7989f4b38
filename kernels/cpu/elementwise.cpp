#include "kernels/cpu/elementwise.h"

#include "kernels/cpu/fast_exp.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace graft::kernels::cpu {

namespace {

// Below this many elements a loop runs on one thread: waking the team costs
// more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;


// tanh: the Cephes odd polynomial near 0 (where 1 - 2/(e^2x + 1) cancels),
// that formula elsewhere.
inline float tanh_inline(float x) {
  const float ax = std::fabs(x);
  const float s = x * x;
  float p = -5.70498872745e-3f;
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  const float small = p * s * x + x;
  const float large = std::copysign(1.f - 2.f / (exp_approx(2.f * ax) + 1.f), x);
  return sel(ax < 0.625f, small, large);
}

// erf for |x| < 0.5 by its Maclaurin series up to x^13 (truncation < 1e-9).
inline float erf_small(float x) {
  const float s = x * x;
  float p = 1.2055332981789664e-4f;
  p = p * s - 8.548327023450852e-4f;
  p = p * s + 5.223977625442188e-3f;
  p = p * s - 2.6866170645131252e-2f;
  p = p * s + 1.1283791670955126e-1f;
  p = p * s - 3.7612638903183754e-1f;
  p = p * s + 1.1283791670955126f;
  return p * x;
}

// erfc for z >= 0 with relative error about 1.2e-7 at every z (Chebyshev fit,
// Numerical Recipes' erfcc), so tails stay accurate: Phi(-8) is not 0.
inline float erfc_nonneg(float z) {
  const float t = 1.f / (1.f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_approx(p - z * z);
}

inline float erf_inline(float x) {
  const float ax = std::fabs(x);
  const float large = std::copysign(1.f - erfc_nonneg(ax), x);
  return sel(ax < 0.5f, erf_small(x), large);
}

// Phi(x) = P(N(0,1) <= x) = erfc(-x / sqrt 2) / 2, accurate in both tails.
inline float normal_cdf(float x) {
  const float t = -0.70710678118654752f * x;
  const float ec = erfc_nonneg(std::fabs(t));
  const float tail = sel(t > 0.f, 0.5f * ec, 1.f - 0.5f * ec);
  return sel(std::fabs(t) < 0.5f, 0.5f - 0.5f * erf_small(t), tail);
}

inline float sigmoid_inline(float x) { return 1.f / (1.f + exp_approx(-x)); }

constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluTanhC = 0.044715f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kTwoOverSqrtPi = 1.1283791670955126f;

// ---- loops --------------------------------------------------------------------------

template <class F>
void map1(int64_t n, const float* x, float* y, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class F>
void map2(int64_t n, const float* u, const float* v, float* y, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(u[i], v[i]);
}

// One innermost run of a binary op; the common stride patterns get their own
// unit-stride loops so they vectorise.
template <class F>
inline void binary_run(int64_t n, float* o, int64_t so, const float* a, int64_t sa, const float* b, int64_t sb, F f) {
  if (so == 1 && sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
  } else if (so == 1 && sa == 1 && sb == 0) {
    const float bv = *b;
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
  } else if (so == 1 && sa == 0 && sb == 1) {
    const float av = *a;
    for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
  } else if (so == 1 && sa == 0 && sb == 0) {  // both broadcast along the run: a fill
    const float v = f(*a, *b);
    for (int64_t i = 0; i < n; ++i) o[i] = v;
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = f(a[i * sa], b[i * sb]);
  }
}

template <class F>
void binary_loop(const StridedIter<3>& it, float* out, const float* a, const float* b, F f) {
  const int64_t n = it.numel();
  if (it.ndim == 1) {  // one run: split it across threads
    const int64_t so = it.stride[0][0], sa = it.stride[1][0], sb = it.stride[2][0];
#pragma omp parallel if (n > kParallelMin)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
      binary_run(hi - lo, out + lo * so, so, a + lo * sa, sa, b + lo * sb, sb, f);
    }
    return;
  }
  const int64_t runs = it.num_runs();
#pragma omp parallel if (n > kParallelMin)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    it.for_each_run(runs * t / nt, runs * (t + 1) / nt, [&](const int64_t* off, int64_t len, const int64_t* st) {
      binary_run(len, out + off[0], st[0], a + off[1], st[1], b + off[2], st[2], f);
    });
  }
}

template <class F>
void binary_dispatch(BinaryOp op, F&& run) {
  switch (op) {
    case BinaryOp::add: return run([](float x, float y) { return x + y; });
    case BinaryOp::sub: return run([](float x, float y) { return x - y; });
    case BinaryOp::mul: return run([](float x, float y) { return x * y; });
    case BinaryOp::div: return run([](float x, float y) { return x / y; });
  }
}

}  // namespace

float tanh_approx(float x) { return tanh_inline(x); }
float erf_approx(float x) { return erf_inline(x); }

// ---- binary -----------------------------------------------------------------------

void binary_forward(BinaryOp op, StridedIter<3> it, float* out, const float* a, const float* b) {
  order_dims_by_stride(it, 0);
  it.coalesce();
  if (it.numel() == 0) return;
  binary_dispatch(op, [&](auto f) { binary_loop(it, out, a, b, f); });
}

void binary_forward_flat(BinaryOp op, int64_t n, float* out, const float* a, const float* b) {
  binary_dispatch(op, [&](auto f) { map2(n, a, b, out, f); });
}

// ---- unary --------------------------------------------------------------------------

UnarySaved unary_backward_saves(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg:
    case UnaryOp::add_scalar:
    case UnaryOp::mul_scalar: return UnarySaved::none;
    case UnaryOp::exp:
    case UnaryOp::sqrt:
    case UnaryOp::relu:
    case UnaryOp::sigmoid:
    case UnaryOp::tanh: return UnarySaved::output;
    default: return UnarySaved::input;
  }
}

void unary_forward(const UnaryParams& p, int64_t n, const float* x, float* y) {
  const float a = p.alpha, b = p.beta;
  switch (p.op) {
    case UnaryOp::neg: return map1(n, x, y, [](float v) { return -v; });
    case UnaryOp::add_scalar: return map1(n, x, y, [a](float v) { return v + a; });
    case UnaryOp::mul_scalar: return map1(n, x, y, [a](float v) { return v * a; });
    case UnaryOp::pow_scalar:
      if (a == 2.f) return map1(n, x, y, [](float v) { return v * v; });
      if (a == 3.f) return map1(n, x, y, [](float v) { return v * v * v; });
      if (a == 1.f) return map1(n, x, y, [](float v) { return v; });
      if (a == 0.f) return map1(n, x, y, [](float) { return 1.f; });  // as std::pow: 0^0 = 1
      if (a == -1.f) return map1(n, x, y, [](float v) { return 1.f / v; });
      if (a == 0.5f) return map1(n, x, y, [](float v) { return std::sqrt(v); });
      return map1(n, x, y, [a](float v) { return std::pow(v, a); });
    case UnaryOp::exp: return map1(n, x, y, [](float v) { return exp_approx(v); });
    case UnaryOp::log: return map1(n, x, y, [](float v) { return std::log(v); });
    case UnaryOp::sqrt: return map1(n, x, y, [](float v) { return std::sqrt(v); });
    case UnaryOp::relu: return map1(n, x, y, [](float v) { return vmax(v, 0.f); });
    case UnaryOp::clip: return map1(n, x, y, [a, b](float v) { return clamp(v, a, b); });
    case UnaryOp::sigmoid: return map1(n, x, y, [](float v) { return sigmoid_inline(v); });
    case UnaryOp::silu: return map1(n, x, y, [](float v) { return v * sigmoid_inline(v); });
    case UnaryOp::gelu_erf: return map1(n, x, y, [](float v) { return v * normal_cdf(v); });
    case UnaryOp::gelu_tanh:
      // 0.5 (1 + tanh(u)) = sigmoid(2u): one exp, no cancellation for x << 0.
      return map1(n, x, y, [](float v) {
        const float u = kSqrt2OverPi * (v + kGeluTanhC * v * v * v);
        return v * sigmoid_inline(2.f * u);
      });
    case UnaryOp::hardswish:
      return map1(n, x, y, [](float v) { return v * clamp(v + 3.f, 0.f, 6.f) * (1.f / 6.f); });
    case UnaryOp::hardsigmoid:
      return map1(n, x, y, [](float v) { return clamp(v + 3.f, 0.f, 6.f) * (1.f / 6.f); });
    case UnaryOp::tanh: return map1(n, x, y, [](float v) { return tanh_inline(v); });
    case UnaryOp::erf: return map1(n, x, y, [](float v) { return erf_inline(v); });
  }
}

void unary_backward(const UnaryParams& p, int64_t n, const float* s, const float* gy, float* gx) {
  const float a = p.alpha, b = p.beta;
  switch (p.op) {
    case UnaryOp::neg: return map1(n, gy, gx, [](float g) { return -g; });
    case UnaryOp::add_scalar: return map1(n, gy, gx, [](float g) { return g; });
    case UnaryOp::mul_scalar: return map1(n, gy, gx, [a](float g) { return g * a; });
    case UnaryOp::pow_scalar:  // s = x
      if (a == 2.f) return map2(n, s, gy, gx, [](float v, float g) { return g * 2.f * v; });
      if (a == 1.f) return map1(n, gy, gx, [](float g) { return g; });
      if (a == 0.f) return map1(n, gy, gx, [](float) { return 0.f; });
      return map2(n, s, gy, gx, [a](float v, float g) { return g * a * std::pow(v, a - 1.f); });
    case UnaryOp::exp: return map2(n, s, gy, gx, [](float y, float g) { return g * y; });  // s = y
    case UnaryOp::log: return map2(n, s, gy, gx, [](float v, float g) { return g / v; });
    case UnaryOp::sqrt: return map2(n, s, gy, gx, [](float y, float g) { return g * 0.5f / y; });  // s = y
    case UnaryOp::relu: return map2(n, s, gy, gx, [](float y, float g) { return sel(y > 0.f, g, 0.f); });  // s = y
    case UnaryOp::clip:  // the gradient passes where lo <= x <= hi, as PyTorch's clamp
      return map2(n, s, gy, gx, [a, b](float v, float g) { return sel((v >= a) & (v <= b), g, 0.f); });
    case UnaryOp::sigmoid:
      return map2(n, s, gy, gx, [](float y, float g) { return g * y * (1.f - y); });  // s = y
    case UnaryOp::silu:
      return map2(n, s, gy, gx, [](float v, float g) {
        const float sg = sigmoid_inline(v);
        return g * sg * (1.f + v * (1.f - sg));
      });
    case UnaryOp::gelu_erf:  // Phi(x) + x phi(x)
      return map2(n, s, gy, gx, [](float v, float g) {
        return g * (normal_cdf(v) + v * kInvSqrt2Pi * exp_approx(-0.5f * v * v));
      });
    case UnaryOp::gelu_tanh:  // with s = sigmoid(2u): s + 2 x s (1 - s) u'
      return map2(n, s, gy, gx, [](float v, float g) {
        const float v2 = v * v;
        const float u = kSqrt2OverPi * (v + kGeluTanhC * v2 * v);
        const float du = kSqrt2OverPi * (1.f + 3.f * kGeluTanhC * v2);
        const float sg = sigmoid_inline(2.f * u);
        return g * (sg + 2.f * v * sg * (1.f - sg) * du);
      });
    case UnaryOp::hardswish:  // 0 below -3, 1 above 3, (2x + 3) / 6 between (PyTorch's choice at the kinks)
      return map2(n, s, gy, gx, [](float v, float g) {
        const float d = sel(v < -3.f, 0.f, sel(v <= 3.f, v * (1.f / 3.f) + 0.5f, 1.f));
        return g * d;
      });
    case UnaryOp::hardsigmoid:
      return map2(n, s, gy, gx, [](float v, float g) { return sel((v > -3.f) & (v < 3.f), g * (1.f / 6.f), 0.f); });
    case UnaryOp::tanh: return map2(n, s, gy, gx, [](float y, float g) { return g * (1.f - y * y); });  // s = y
    case UnaryOp::erf:
      return map2(n, s, gy, gx, [](float v, float g) { return g * kTwoOverSqrtPi * exp_approx(-v * v); });
  }
}

}  // namespace graft::kernels::cpu
