// Softmax and log-softmax over one axis of a contiguous tensor viewed as
// (outer, axis_len, inner): element (o, a, i) lives at (o * axis_len + a) * inner + i.
// inner == 1 (the last axis, or channels of NHWC memory) runs a row kernel;
// otherwise `inner` contiguous columns are processed together, so every load
// stays unit-stride. Forward and backward side by side; OpenMP over rows.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

struct SoftmaxParams {
  int64_t outer = 1;
  int64_t axis_len = 1;
  int64_t inner = 1;
};

// y = exp(x - max) / sum(exp(x - max)) along the axis.
void softmax_forward(const float* x, float* y, SoftmaxParams p);
// y = (x - max) - log(sum(exp(x - max))) along the axis.
void log_softmax_forward(const float* x, float* y, SoftmaxParams p);

// From the forward's output y and dL/dy: dx = y * (dy - sum(dy * y)).
void softmax_backward(const float* y, const float* dy, float* dx, SoftmaxParams p);
// From the forward's output y and dL/dy: dx = dy - exp(y) * sum(dy).
void log_softmax_backward(const float* y, const float* dy, float* dx, SoftmaxParams p);

}  // namespace graft::kernels::cpu
