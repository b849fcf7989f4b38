#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace graft::kernels::cpu {

namespace {

// Below this many elements a parallel region costs more than it saves.
inline bool worth_threads(int64_t work) { return work > 32768; }

// Column sums over rows, K quantities per column, in double: row_fn(r, acc)
// adds row r's contributions into acc[0 .. K * cols). Rows are cut into chunks
// whose size depends only on the shape, each chunk summed by one thread, and
// the chunks' partial sums added in order: the result is the same for any
// number of threads.
template <int K, class RowFn>
void reduce_rows(int64_t rows, int64_t cols, double* out, RowFn row_fn) {
  const int64_t chunk = std::max<int64_t>(16, (rows + 63) / 64);
  const int64_t chunks = (rows + chunk - 1) / chunk;
  const int64_t width = K * cols;
  std::vector<double> partial(static_cast<size_t>(chunks * width), 0.0);
#pragma omp parallel for schedule(static) if (worth_threads(rows * width))
  for (int64_t ch = 0; ch < chunks; ++ch) {
    double* acc = partial.data() + ch * width;
    const int64_t end = std::min(rows, (ch + 1) * chunk);
    for (int64_t r = ch * chunk; r < end; ++r) row_fn(r, acc);
  }
#pragma omp parallel for schedule(static) if (worth_threads(width * chunks))
  for (int64_t j = 0; j < width; ++j) {
    double s = 0.0;
    for (int64_t ch = 0; ch < chunks; ++ch) s += partial[ch * width + j];
    out[j] = s;
  }
}

// sum_j f(j) over [0, n) in double. Eight independent partial sums let the
// compiler vectorise the loop without licence to reassociate (no -ffast-math).
template <class F>
inline double lane_sum(int64_t n, F f) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += f(j + l);
  double s = 0.0;
  for (; j < n; ++j) s += f(j);
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

// y = (x - mean) * scale + bias per column, rows in parallel.
void apply_affine(const float* x, const float* mean, const float* scale, const float* bias, float* y, int64_t rows,
                  int64_t c) {
#pragma omp parallel for schedule(static) if (worth_threads(rows * c))
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict xr = x + r * c;
    float* __restrict yr = y + r * c;
    if (bias)
      for (int64_t j = 0; j < c; ++j) yr[j] = (xr[j] - mean[j]) * scale[j] + bias[j];
    else
      for (int64_t j = 0; j < c; ++j) yr[j] = (xr[j] - mean[j]) * scale[j];
  }
}

// grad_weight = rstd * sum g * (x - mean), grad_bias = sum g, per column.
void batch_norm_param_grads(const float* grad_y, const float* x, const float* mean, const float* rstd,
                            float* grad_weight, float* grad_bias, int64_t rows, int64_t c, std::vector<double>& sums) {
  sums.assign(static_cast<size_t>(2 * c), 0.0);
  reduce_rows<2>(rows, c, sums.data(), [&](int64_t r, double* acc) {
    const float* __restrict g = grad_y + r * c;
    const float* __restrict xr = x + r * c;
    for (int64_t j = 0; j < c; ++j) {
      acc[j] += g[j];
      acc[c + j] += static_cast<double>(g[j]) * (static_cast<double>(xr[j]) - mean[j]);
    }
  });
  for (int64_t j = 0; j < c; ++j) sums[c + j] *= rstd[j];  // now sum g * xhat
  if (grad_bias)
    for (int64_t j = 0; j < c; ++j) grad_bias[j] = static_cast<float>(sums[j]);
  if (grad_weight)
    for (int64_t j = 0; j < c; ++j) grad_weight[j] = static_cast<float>(sums[c + j]);
}

}  // namespace

// ---- batch norm -------------------------------------------------------------------

void batch_norm_forward_train(const float* x, const float* weight, const float* bias, float* y, float* batch_mean,
                              float* batch_var, float* save_rstd, int64_t rows, int64_t c, float eps) {
  std::vector<double> mean(static_cast<size_t>(c)), sq(static_cast<size_t>(c));
  reduce_rows<1>(rows, c, mean.data(), [&](int64_t r, double* acc) {
    const float* __restrict xr = x + r * c;
    for (int64_t j = 0; j < c; ++j) acc[j] += xr[j];
  });
  for (double& m : mean) m /= static_cast<double>(rows);
  reduce_rows<1>(rows, c, sq.data(), [&](int64_t r, double* acc) {
    const float* __restrict xr = x + r * c;
    for (int64_t j = 0; j < c; ++j) {
      const double d = static_cast<double>(xr[j]) - mean[j];
      acc[j] += d * d;
    }
  });
  std::vector<float> scale(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) {
    const double var = sq[j] / static_cast<double>(rows);
    const double rstd = 1.0 / std::sqrt(var + eps);
    batch_mean[j] = static_cast<float>(mean[j]);
    batch_var[j] = static_cast<float>(var);
    save_rstd[j] = static_cast<float>(rstd);
    scale[j] = static_cast<float>(weight ? weight[j] * rstd : rstd);
  }
  apply_affine(x, batch_mean, scale.data(), bias, y, rows, c);
}

void batch_norm_forward_eval(const float* x, const float* mean, const float* var, const float* weight,
                             const float* bias, float* y, int64_t rows, int64_t c, float eps) {
  std::vector<float> scale(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) {
    const double rstd = 1.0 / std::sqrt(static_cast<double>(var[j]) + eps);
    scale[j] = static_cast<float>(weight ? weight[j] * rstd : rstd);
  }
  apply_affine(x, mean, scale.data(), bias, y, rows, c);
}

void batch_norm_backward_train(const float* grad_y, const float* x, const float* mean, const float* rstd,
                               const float* weight, float* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                               int64_t c) {
  std::vector<double> sums;
  batch_norm_param_grads(grad_y, x, mean, rstd, grad_weight, grad_bias, rows, c, sums);
  if (!grad_x) return;
  // grad_x = a * (g - b - (x - mean) * k) with a = weight * rstd, b = sum g / rows,
  // k = rstd * sum(g * xhat) / rows.
  std::vector<float> a(static_cast<size_t>(c)), b(static_cast<size_t>(c)), k(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) {
    a[j] = weight ? weight[j] * rstd[j] : rstd[j];
    b[j] = static_cast<float>(sums[j] / static_cast<double>(rows));
    k[j] = static_cast<float>(rstd[j] * sums[c + j] / static_cast<double>(rows));
  }
#pragma omp parallel for schedule(static) if (worth_threads(rows * c))
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict g = grad_y + r * c;
    const float* __restrict xr = x + r * c;
    float* __restrict gx = grad_x + r * c;
    for (int64_t j = 0; j < c; ++j) gx[j] = a[j] * (g[j] - b[j] - (xr[j] - mean[j]) * k[j]);
  }
}

void batch_norm_backward_eval(const float* grad_y, const float* x, const float* mean, const float* var,
                              const float* weight, float* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                              int64_t c, float eps) {
  std::vector<float> rstd(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) rstd[j] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[j]) + eps));
  if (grad_weight || grad_bias) {
    std::vector<double> sums;
    batch_norm_param_grads(grad_y, x, mean, rstd.data(), grad_weight, grad_bias, rows, c, sums);
  }
  if (!grad_x) return;
  std::vector<float> a(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) a[j] = weight ? weight[j] * rstd[j] : rstd[j];
#pragma omp parallel for schedule(static) if (worth_threads(rows * c))
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict g = grad_y + r * c;
    float* __restrict gx = grad_x + r * c;
    for (int64_t j = 0; j < c; ++j) gx[j] = g[j] * a[j];
  }
}

// ---- layer norm -------------------------------------------------------------------

void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* save_mean,
                        float* save_rstd, int64_t rows, int64_t d, float eps) {
  if (d == 0) return;
#pragma omp parallel for schedule(static) if (worth_threads(rows * d))
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict xr = x + r * d;
    float* __restrict yr = y + r * d;
    const double mean = lane_sum(d, [&](int64_t j) { return static_cast<double>(xr[j]); }) / static_cast<double>(d);
    const double sq = lane_sum(d, [&](int64_t j) {
      const double t = static_cast<double>(xr[j]) - mean;
      return t * t;
    });
    const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(d) + eps);
    const float m = static_cast<float>(mean), rs = static_cast<float>(rstd);
    save_mean[r] = m;
    save_rstd[r] = rs;
    for (int64_t j = 0; j < d; ++j) {
      float v = (xr[j] - m) * rs;
      if (weight) v *= weight[j];
      if (bias) v += bias[j];
      yr[j] = v;
    }
  }
}

void layer_norm_backward(const float* grad_y, const float* x, const float* mean, const float* rstd,
                         const float* weight, float* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                         int64_t d) {
  if (d == 0) return;
  if (grad_weight || grad_bias) {
    std::vector<double> sums(static_cast<size_t>(2 * d));
    reduce_rows<2>(rows, d, sums.data(), [&](int64_t r, double* acc) {
      const float* __restrict g = grad_y + r * d;
      const float* __restrict xr = x + r * d;
      const float m = mean[r], rs = rstd[r];
      for (int64_t j = 0; j < d; ++j) {
        acc[j] += static_cast<double>(g[j]) * ((xr[j] - m) * rs);
        acc[d + j] += g[j];
      }
    });
    if (grad_weight)
      for (int64_t j = 0; j < d; ++j) grad_weight[j] = static_cast<float>(sums[j]);
    if (grad_bias)
      for (int64_t j = 0; j < d; ++j) grad_bias[j] = static_cast<float>(sums[d + j]);
  }
  if (!grad_x) return;
#pragma omp parallel for schedule(static) if (worth_threads(rows * d))
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict g = grad_y + r * d;
    const float* __restrict xr = x + r * d;
    float* __restrict gx = grad_x + r * d;
    const float m = mean[r], rs = rstd[r];
    auto gh = [&](int64_t j) { return weight ? g[j] * weight[j] : g[j]; };
    const double s1 = lane_sum(d, [&](int64_t j) { return static_cast<double>(gh(j)); });
    const double s2 = lane_sum(d, [&](int64_t j) { return static_cast<double>(gh(j)) * ((xr[j] - m) * rs); });
    const float a = static_cast<float>(s1 / static_cast<double>(d));
    const float b = static_cast<float>(s2 / static_cast<double>(d));
    for (int64_t j = 0; j < d; ++j) gx[j] = rs * (gh(j) - a - (xr[j] - m) * rs * b);
  }
}

}  // namespace graft::kernels::cpu
