// Softmax and log-softmax over any axis.
#pragma once

#include "engine/core/tensor.h"

namespace graft {

Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

}  // namespace graft
