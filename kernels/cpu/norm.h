// Normalisation: batch norm over rows of C channels, layer norm over rows of
// D features. Forward and backward side by side.
//
// Batch norm sees x as (rows, C) row-major: (N, C) as it is, (N, C, H, W)
// channels-last as (N * H * W, C). Statistics are per channel (per column),
// accumulated in double with two passes (mean, then squared deviations), in
// fixed row chunks so the result does not depend on the thread count.
//
// Layer norm sees x as (rows, D) row-major: the trailing dims flattened.
//
// weight and bias may be null (no affine: weight 1, bias 0). Gradient outputs
// may be null when not wanted; a frozen layer then pays nothing for them.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

// ---- batch norm -------------------------------------------------------------

// Training: normalises with the batch statistics. Writes batch_mean and
// batch_var (biased, i.e. divided by rows: the one that normalises) and
// save_rstd = 1 / sqrt(batch_var + eps) for the backward. rows >= 1.
void batch_norm_forward_train(const float* x, const float* weight, const float* bias, float* y, float* batch_mean,
                              float* batch_var, float* save_rstd, int64_t rows, int64_t c, float eps);

// Evaluation: normalises with given statistics (the running ones).
void batch_norm_forward_eval(const float* x, const float* mean, const float* var, const float* weight,
                             const float* bias, float* y, int64_t rows, int64_t c, float eps);

// Training backward, the statistics depending on x:
//   xhat = (x - mean) * rstd, grad_bias = sum_rows g, grad_weight = sum_rows g * xhat,
//   grad_x = weight * rstd / rows * (rows * g - grad_bias - xhat * grad_weight).
void batch_norm_backward_train(const float* grad_y, const float* x, const float* mean, const float* rstd,
                               const float* weight, float* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                               int64_t c);

// Evaluation backward, the statistics constants: grad_x = g * weight * rstd,
// with rstd = 1 / sqrt(var + eps); grad_weight and grad_bias as in training.
void batch_norm_backward_eval(const float* grad_y, const float* x, const float* mean, const float* var,
                              const float* weight, float* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                              int64_t c, float eps);

// ---- layer norm -------------------------------------------------------------

// Per row: mean, rstd = 1 / sqrt(biased variance + eps) (saved for the
// backward), y = (x - mean) * rstd * weight + bias, weight and bias of length d.
void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* save_mean,
                        float* save_rstd, int64_t rows, int64_t d, float eps);

// xhat = (x - mean) * rstd, gh = g * weight,
// grad_x = rstd * (gh - mean_d(gh) - xhat * mean_d(gh * xhat)),
// grad_weight = sum_rows g * xhat, grad_bias = sum_rows g.
void layer_norm_backward(const float* grad_y, const float* x, const float* mean, const float* rstd,
                         const float* weight, float* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                         int64_t d);

}  // namespace graft::kernels::cpu
