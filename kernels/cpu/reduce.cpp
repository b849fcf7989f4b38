#include "kernels/cpu/reduce.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/elementwise.h"  // order_dims_by_stride

namespace graft::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = int64_t(1) << 15;

// A group of dims (all kept or all reduced) with input and output strides.
struct Dims {
  int n = 0;
  int64_t size[kMaxDims] = {};
  int64_t in[kMaxDims] = {};
  int64_t out[kMaxDims] = {};
  void add(int64_t s, int64_t si, int64_t so) {
    size[n] = s;
    in[n] = si;
    out[n] = so;
    ++n;
  }
  int64_t count() const {
    int64_t c = 1;
    for (int d = 0; d < n; ++d) c *= size[d];
    return c;
  }
};

// Walks the row-major multi-index of a Dims from a flat start, tracking the
// input and output offsets.
struct Walker {
  const Dims& d;
  int64_t idx[kMaxDims] = {};
  int64_t in = 0, out = 0;
  Walker(const Dims& dims, int64_t start) : d(dims) {
    for (int k = d.n - 1; k >= 0; --k) {
      idx[k] = start % d.size[k];
      start /= d.size[k];
      in += idx[k] * d.in[k];
      out += idx[k] * d.out[k];
    }
  }
  void next() {
    for (int k = d.n - 1; k >= 0; --k) {
      ++idx[k];
      in += d.in[k];
      out += d.out[k];
      if (idx[k] < d.size[k]) return;
      in -= d.in[k] * d.size[k];
      out -= d.out[k] * d.size[k];
      idx[k] = 0;
    }
  }
};

inline double run_sum(const float* p, int64_t n, int64_t s) {
  double acc = 0;
  if (s == 1) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += p[i];
  } else {
    for (int64_t i = 0; i < n; ++i) acc += p[i * s];
  }
  return acc;
}

inline void run_accumulate(double* acc, const float* p, int64_t n, int64_t s) {
  if (s == 1) {
    for (int64_t i = 0; i < n; ++i) acc[i] += p[i];
  } else {
    for (int64_t i = 0; i < n; ++i) acc[i] += p[i * s];
  }
}

// Sum over the flat range [lo, hi) of (reduced outer dims x inner run of L
// elements at stride s), starting from base.
double sum_range(const float* base, const Dims& red, int64_t L, int64_t s, int64_t lo, int64_t hi) {
  if (lo >= hi) return 0;
  Walker w(red, lo / L);
  int64_t i = lo % L;
  double acc = 0;
  while (lo < hi) {
    const int64_t len = std::min(L - i, hi - lo);
    acc += run_sum(base + w.in + i * s, len, s);
    lo += len;
    i = 0;
    w.next();
  }
  return acc;
}

// Innermost dim summed: each output is the sum of whole runs.
void sum_inner(const Dims& kept, const Dims& red, int64_t L, int64_t s, const float* x, float* out, float scale) {
  const int64_t n_out = kept.count(), n_red = red.count() * L;
  const int max_threads = omp_get_max_threads();
  const bool par = n_out * n_red > kParallelMin;
  if (!par || n_out >= 4 * max_threads) {  // many outputs: split them across threads
#pragma omp parallel if (par)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t lo = n_out * t / nt, hi = n_out * (t + 1) / nt;
      if (lo < hi) {
        Walker w(kept, lo);
        for (int64_t o = lo; o < hi; ++o, w.next())
          out[w.out] = static_cast<float>(scale * sum_range(x + w.in, red, L, s, 0, n_red));
      }
    }
    return;
  }
  // Few, long sums (a full sum): split each one; add the partials in thread
  // order so the result does not depend on timing.
  std::vector<double> part(max_threads);
  Walker w(kept, 0);
  for (int64_t o = 0; o < n_out; ++o, w.next()) {
    std::fill(part.begin(), part.end(), 0.0);
#pragma omp parallel num_threads(max_threads)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      part[t] = sum_range(x + w.in, red, L, s, n_red * t / nt, n_red * (t + 1) / nt);
    }
    double acc = 0;
    for (double v : part) acc += v;
    out[w.out] = static_cast<float>(scale * acc);
  }
}

// Innermost dim kept (K elements, input stride si, output stride so): whole
// rows are added into a row of double accumulators.
void sum_outer(const Dims& kept, const Dims& red, int64_t K, int64_t si, int64_t so, const float* x, float* out,
               float scale) {
  const int64_t n_seg = kept.count(), n_red = red.count();
  const int max_threads = omp_get_max_threads();
  const bool par = n_seg * n_red * K > kParallelMin;
  if (!par || n_seg >= 2 * max_threads) {  // many output rows: split them
#pragma omp parallel if (par)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t lo = n_seg * t / nt, hi = n_seg * (t + 1) / nt;
      std::vector<double> acc(K);
      if (lo < hi) {
        Walker w(kept, lo);
        for (int64_t sg = lo; sg < hi; ++sg, w.next()) {
          std::fill(acc.begin(), acc.end(), 0.0);
          Walker r(red, 0);
          for (int64_t j = 0; j < n_red; ++j, r.next()) run_accumulate(acc.data(), x + w.in + r.in, K, si);
          for (int64_t k = 0; k < K; ++k) out[w.out + k * so] = static_cast<float>(scale * acc[k]);
        }
      }
    }
    return;
  }
  Walker w(kept, 0);
  if (K >= 256 * max_threads) {  // few long rows: split each row's columns
    for (int64_t sg = 0; sg < n_seg; ++sg, w.next()) {
#pragma omp parallel
      {
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t k0 = K * t / nt, k1 = K * (t + 1) / nt;
        std::vector<double> acc(k1 - k0, 0.0);
        Walker r(red, 0);
        for (int64_t j = 0; j < n_red; ++j, r.next())
          run_accumulate(acc.data(), x + w.in + r.in + k0 * si, k1 - k0, si);
        for (int64_t k = k0; k < k1; ++k) out[w.out + k * so] = static_cast<float>(scale * acc[k - k0]);
      }
    }
    return;
  }
  // Few short rows, summed over many: split the summed rows across threads,
  // each with its own partial row; partials are added in thread order.
  std::vector<double> part(static_cast<size_t>(max_threads) * K);
  for (int64_t sg = 0; sg < n_seg; ++sg, w.next()) {
    std::fill(part.begin(), part.end(), 0.0);
#pragma omp parallel num_threads(max_threads)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t lo = n_red * t / nt, hi = n_red * (t + 1) / nt;
      double* acc = part.data() + t * K;
      if (lo < hi) {
        Walker r(red, lo);
        for (int64_t j = lo; j < hi; ++j, r.next()) run_accumulate(acc, x + w.in + r.in, K, si);
      }
    }
    for (int64_t k = 0; k < K; ++k) {
      double acc = 0;
      for (int t = 0; t < max_threads; ++t) acc += part[t * K + k];
      out[w.out + k * so] = static_cast<float>(scale * acc);
    }
  }
}

}  // namespace

void sum_forward(const ReduceParams& p, const float* x, float* out) {
  // Output strides: row-major over the kept dims; 0 on the reduced ones.
  StridedIter<2> it;  // operand 0: input, 1: output
  it.ndim = p.ndim;
  int64_t n_out = 1, n_in = 1;
  for (int d = p.ndim - 1; d >= 0; --d) {
    it.size[d] = p.size[d];
    it.stride[0][d] = p.stride[d];
    it.stride[1][d] = p.reduce[d] ? 0 : n_out;
    if (!p.reduce[d]) n_out *= p.size[d];
    n_in *= p.size[d];
  }
  if (n_out == 0) return;
  if (n_in == 0) {  // empty sums: 0 (and 0 * inf = NaN for the mean of nothing)
    for (int64_t i = 0; i < n_out; ++i) out[i] = 0.f * p.scale;
    return;
  }
  order_dims_by_stride(it, 0);
  it.coalesce();

  Dims kept, red;
  const int inner = it.ndim - 1;
  for (int d = 0; d < inner; ++d) {
    if (it.stride[1][d] == 0) red.add(it.size[d], it.stride[0][d], 0);
    else kept.add(it.size[d], it.stride[0][d], it.stride[1][d]);
  }
  const int64_t n = it.size[inner], si = it.stride[0][inner], so = it.stride[1][inner];
  if (so == 0) sum_inner(kept, red, n, si, x, out, p.scale);
  else sum_outer(kept, red, n, si, so, x, out, p.scale);
}

}  // namespace graft::kernels::cpu
