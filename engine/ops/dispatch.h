// Kernel calls shared by several op files, each running the CPU kernel or the
// CUDA launcher for the tensors' device (CUDA through cuda::launch, see
// engine/core/kernel_launch.h).
#pragma once

#include "engine/core/tensor.h"
#include "kernels/cpu/elementwise.h"

namespace graft::ops {

// y = f(x) over dense x and y of one layout and dtype, on x's device.
void unary_forward_any(const char* op, const kernels::cpu::UnaryParams& p, const Tensor& x, const Tensor& y);

// gx = gy * f'(saved) over dense tensors of one layout and dtype, on gy's
// device; saved as kernels::cpu::unary_backward_saves says (may be undefined).
void unary_backward_any(const char* op, const kernels::cpu::UnaryParams& p, const Tensor& saved, const Tensor& gy,
                        const Tensor& gx);

}  // namespace graft::ops
