// Cross-entropy over class logits, fused with log-softmax, with PyTorch's
// semantics (torch.nn.functional.cross_entropy with class-index targets):
//
//   loss_i = (1 - eps) * w[t_i] * (lse_i - x_i[t_i]) + (eps / C) * sum_c w[c] * (lse_i - x_i[c])
//
// where lse_i = log(sum_c exp(x_i[c])), eps is the label smoothing, w the class
// weights (all 1 when absent), and loss_i = 0 where t_i == ignore_index.
// 'mean' divides the sum of loss_i by the sum of w[t_i] over the samples that
// are not ignored (the count of them without weights); 'sum' does not divide.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

struct CrossEntropyParams {
  int64_t n = 0;                // samples: rows of logits
  int64_t c = 0;                // classes: columns of logits
  float label_smoothing = 0.0f;  // eps in [0, 1]
  int64_t ignore_index = -100;
};

struct CrossEntropyTotals {
  double loss_sum = 0.0;    // sum of loss_i
  double weight_sum = 0.0;  // sum of w[t_i] over samples not ignored: the mean's divisor
};

// logits (n, c) row-major; targets (n) in [0, c) or == ignore_index (checked
// by the caller); class_weights (c) or nullptr. Writes loss (n) and, per row,
// stats[2i] = max_c x_i[c] and stats[2i + 1] = log(sum_c exp(x_i[c] - max)),
// which the backward reuses (kept apart, not added, so large logits lose no
// precision). Totals are summed in a fixed order: the same for any thread count.
CrossEntropyTotals cross_entropy_forward(const float* logits, const int64_t* targets, const float* class_weights,
                                         float* loss, float* stats, CrossEntropyParams p);

// grad_logits = dL/dlogits where dL/dloss_i = grad_loss[i * grad_stride] * grad_scale
// (grad_stride 0 broadcasts one value: 'mean' and 'sum'). Rows of ignored
// samples get 0. With p_j = softmax(x_i)_j and W = sum_c w[c]:
//   dloss_i/dx_j = ((1 - eps) w[t_i] + (eps / C) W) p_j - (1 - eps) w[t_i] [j == t_i] - (eps / C) w[j].
void cross_entropy_backward(const float* logits, const int64_t* targets, const float* class_weights,
                            const float* stats, const float* grad_loss, int64_t grad_stride, float grad_scale,
                            float* grad_logits, CrossEntropyParams p);

}  // namespace graft::kernels::cpu
