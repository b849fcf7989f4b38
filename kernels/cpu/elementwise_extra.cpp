#include "kernels/cpu/elementwise_extra.h"

#include <omp.h>

#include <cmath>

#include "kernels/cpu/elementwise.h"  // order_dims_by_stride
#include "kernels/cpu/fast_exp.h"     // sel

namespace graft::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = int64_t(1) << 15;

// Calls run(off, len, st) for every innermost run of `it` (operand offsets and
// strides in elements), the runs split across threads. The dims are first
// ordered by operand 0's strides and coalesced.
template <int N, class F>
void for_runs(StridedIter<N>& it, F run) {
  order_dims_by_stride(it, 0);
  it.coalesce();
  const int64_t n = it.numel();
  if (n == 0) return;
  const int64_t runs = it.num_runs();
  if (runs == 1) {  // one long run: split it instead
#pragma omp parallel if (n > kParallelMin)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
      int64_t off[N], st[N];
      for (int k = 0; k < N; ++k) {
        st[k] = it.stride[k][it.ndim - 1];
        off[k] = lo * st[k];
      }
      if (hi > lo) run(off, hi - lo, st);
    }
    return;
  }
#pragma omp parallel if (n > kParallelMin)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    it.for_each_run(runs * t / nt, runs * (t + 1) / nt,
                    [&](const int64_t* off, int64_t len, const int64_t* st) { run(off, len, st); });
  }
}

// out[i] = f(x[i], y[i]) along one run; a unit-stride loop where all three
// operands are unit-stride so it vectorises.
template <class O, class X, class Y, class F>
inline void run2(int64_t n, O* o, int64_t so, const X* x, int64_t sx, const Y* y, int64_t sy, F f) {
  if (so == 1 && sx == 1 && sy == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = f(x[i * sx], y[i * sy]);
  }
}

template <class O, class X, class Y, class Z, class F>
inline void run3(int64_t n, O* o, int64_t so, const X* x, int64_t sx, const Y* y, int64_t sy, const Z* z,
                 int64_t sz, F f) {
  if (so == 1 && sx == 1 && sy == 1 && sz == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i], z[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * so] = f(x[i * sx], y[i * sy], z[i * sz]);
  }
}

template <class T>
void equal_impl(StridedIter<3>& it, uint8_t* out, const T* a, const T* b) {
  for_runs(it, [&](const int64_t* off, int64_t n, const int64_t* st) {
    run2(n, out + off[0], st[0], a + off[1], st[1], b + off[2], st[2],
         [](T x, T y) { return static_cast<uint8_t>(x == y); });
  });
}

}  // namespace

// ---- pow ----------------------------------------------------------------------------

void pow_forward(StridedIter<3> it, float* out, const float* a, const float* b) {
  for_runs(it, [&](const int64_t* off, int64_t n, const int64_t* st) {
    run2(n, out + off[0], st[0], a + off[1], st[1], b + off[2], st[2], [](float x, float e) { return std::pow(x, e); });
  });
}

void pow_backward_base(StridedIter<4> it, float* ga, const float* g, const float* a, const float* b) {
  for_runs(it, [&](const int64_t* off, int64_t n, const int64_t* st) {
    run3(n, ga + off[0], st[0], g + off[1], st[1], a + off[2], st[2], b + off[3], st[3],
         [](float gv, float x, float e) { return e == 0.f ? 0.f : gv * e * std::pow(x, e - 1.f); });
  });
}

void pow_backward_exponent(StridedIter<4> it, float* gb, const float* g, const float* a, const float* y) {
  for_runs(it, [&](const int64_t* off, int64_t n, const int64_t* st) {
    run3(n, gb + off[0], st[0], g + off[1], st[1], a + off[2], st[2], y + off[3], st[3],
         [](float gv, float x, float yv) { return x > 0.f ? gv * yv * std::log(x) : 0.f; });
  });
}

// ---- where ----------------------------------------------------------------------------

void where_forward(StridedIter<4> it, float* out, const uint8_t* cond, const float* a, const float* b) {
  for_runs(it, [&](const int64_t* off, int64_t n, const int64_t* st) {
    run3(n, out + off[0], st[0], cond + off[1], st[1], a + off[2], st[2], b + off[3], st[3],
         [](uint8_t c, float x, float y) { return sel(c != 0, x, y); });
  });
}

// ---- equal ------------------------------------------------------------------------------

void equal_forward(StridedIter<3> it, uint8_t* out, const float* a, const float* b) { equal_impl(it, out, a, b); }
void equal_forward(StridedIter<3> it, uint8_t* out, const int64_t* a, const int64_t* b) { equal_impl(it, out, a, b); }
void equal_forward(StridedIter<3> it, uint8_t* out, const int32_t* a, const int32_t* b) { equal_impl(it, out, a, b); }
void equal_forward(StridedIter<3> it, uint8_t* out, const uint8_t* a, const uint8_t* b) { equal_impl(it, out, a, b); }

}  // namespace graft::kernels::cpu
