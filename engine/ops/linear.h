// Matrix products. Large products go through OpenBLAS sgemm on the CPU.
#pragma once

#include "engine/core/tensor.h"

namespace graft {

// NumPy matmul semantics: 1-D operands are promoted; leading (batch) dims
// broadcast. (…, M, K) x (…, K, N) -> (…, M, N).
Tensor matmul(const Tensor& a, const Tensor& b);
// x (…, in) · weightᵀ (out, in) + bias (out) -> (…, out). bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace graft
