// Optimizer updates for one parameter tensor (the CPU twins of the later fused
// CUDA updates). Formulas as PyTorch's torch.optim.SGD / Adam / AdamW.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

struct SgdParams {
  float lr = 0.01f;
  float momentum = 0.f;
  float dampening = 0.f;
  float weight_decay = 0.f;  // L2, added to the gradient
  bool nesterov = false;
  bool first_step = true;    // the momentum buffer starts as the gradient
};

// p -= lr * update; momentum_buf may be null when momentum == 0.
void sgd_update(float* p, const float* grad, float* momentum_buf, int64_t n, const SgdParams& s);

struct AdamParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;
  bool decoupled = false;  // AdamW: p *= 1 - lr * wd, instead of L2 in the gradient
  int64_t step = 1;        // 1-based, for bias correction
};

void adam_update(float* p, const float* grad, float* m, float* v, int64_t n, const AdamParams& a);

}  // namespace graft::kernels::cpu
