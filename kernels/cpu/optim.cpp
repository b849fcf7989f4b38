#include "kernels/cpu/optim.h"

#include <cmath>

namespace graft::kernels::cpu {

void sgd_update(float* p, const float* grad, float* buf, int64_t n, const SgdParams& s) {
  const bool use_momentum = s.momentum != 0.f;
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + s.weight_decay * p[i];
    if (use_momentum) {
      const float b = s.first_step ? g : s.momentum * buf[i] + (1.f - s.dampening) * g;
      buf[i] = b;
      g = s.nesterov ? g + s.momentum * b : b;
    }
    p[i] -= s.lr * g;
  }
}

void adam_update(float* p, const float* grad, float* m, float* v, int64_t n, const AdamParams& a) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
  const float step_size = static_cast<float>(a.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = a.decoupled ? 1.f - a.lr * a.weight_decay : 1.f;
  const float l2 = a.decoupled ? 0.f : a.weight_decay;
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] + l2 * p[i];
    const float mi = a.beta1 * m[i] + (1.f - a.beta1) * g;
    const float vi = a.beta2 * v[i] + (1.f - a.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + a.eps);
  }
}

}  // namespace graft::kernels::cpu
