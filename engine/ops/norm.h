// Normalisation.
#pragma once

#include "engine/core/tensor.h"

namespace graft {

// Over dim 1 of (N, C, ...) — (N, C) or (N, C, H, W). In training, normalises
// with the batch statistics and, when running_mean/var are given, updates them
// in place: running = (1 - momentum) * running + momentum * batch (unbiased
// variance), as PyTorch. In evaluation, uses the running statistics. weight
// and bias may be undefined (no affine).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// Over the trailing `normalized_dims` dims. weight/bias have those dims' shape
// and may be undefined.
Tensor layer_norm(const Tensor& x, int64_t normalized_dims, const Tensor& weight, const Tensor& bias,
                  double eps = 1e-5);

}  // namespace graft
