#include "kernels/cpu/loss.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/fast_exp.h"

namespace graft::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // elements below which threads do not pay
}  // namespace

CrossEntropyTotals cross_entropy_forward(const float* logits, const int64_t* targets, const float* class_weights,
                                         float* loss, float* stats, CrossEntropyParams p) {
  const int64_t C = p.c;
  const double eps = p.label_smoothing;
  const float* w = class_weights;
#pragma omp parallel for schedule(static) if (p.n * C > kParallelMin)
  for (int64_t i = 0; i < p.n; ++i) {
    const float* x = logits + i * C;
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < C; ++j) m = x[j] > m ? x[j] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; ++j) s += exp_approx(x[j] - m);
    const float log_s = std::log(s);
    stats[2 * i] = m;
    stats[2 * i + 1] = log_s;

    const int64_t t = targets[i];
    if (t == p.ignore_index) {
      loss[i] = 0.0f;
      continue;
    }
    // -log p_j = lse - x_j = (m - x_j) + log_s: each term exact-ish even for
    // logits in the thousands, where lse itself would round to the ulp of m.
    const double wt = w ? w[t] : 1.0;
    double l = (1.0 - eps) * wt * ((double(m) - x[t]) + log_s);
    if (eps > 0.0) {
      double smooth = 0.0;
      if (w) {
#pragma omp simd reduction(+ : smooth)
        for (int64_t j = 0; j < C; ++j) smooth += double(w[j]) * ((double(m) - x[j]) + log_s);
      } else {
#pragma omp simd reduction(+ : smooth)
        for (int64_t j = 0; j < C; ++j) smooth += (double(m) - x[j]) + log_s;
      }
      l += eps / double(C) * smooth;
    }
    loss[i] = static_cast<float>(l);
  }

  CrossEntropyTotals tot;
  for (int64_t i = 0; i < p.n; ++i) {
    const int64_t t = targets[i];
    if (t == p.ignore_index) continue;
    tot.loss_sum += loss[i];
    tot.weight_sum += w ? w[t] : 1.0;
  }
  return tot;
}

void cross_entropy_backward(const float* logits, const int64_t* targets, const float* class_weights,
                            const float* stats, const float* grad_loss, int64_t grad_stride, float grad_scale,
                            float* grad_logits, CrossEntropyParams p) {
  const int64_t C = p.c;
  const float eps = p.label_smoothing;
  const float* w = class_weights;
  const float eps_c = eps / static_cast<float>(C);
  double wsum = static_cast<double>(C);
  if (w) {
    wsum = 0.0;
    for (int64_t j = 0; j < C; ++j) wsum += w[j];
  }
  const float W = static_cast<float>(wsum);
#pragma omp parallel for schedule(static) if (p.n * C > kParallelMin)
  for (int64_t i = 0; i < p.n; ++i) {
    float* dx = grad_logits + i * C;
    const int64_t t = targets[i];
    if (t == p.ignore_index) {
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) dx[j] = 0.0f;
      continue;
    }
    const float* x = logits + i * C;
    const float m = stats[2 * i], log_s = stats[2 * i + 1];
    const float g = grad_loss[i * grad_stride] * grad_scale;
    const float wt = w ? w[t] : 1.0f;
    const float a = g * ((1.0f - eps) * wt + eps_c * W);
    if (w) {
      const float b = g * eps_c;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) dx[j] = a * exp_approx((x[j] - m) - log_s) - b * w[j];
    } else {
      const float b = g * eps_c;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) dx[j] = a * exp_approx((x[j] - m) - log_s) - b;
    }
    dx[t] -= g * (1.0f - eps) * wt;
  }
}

}  // namespace graft::kernels::cpu
