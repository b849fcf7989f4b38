// Softmax and log-softmax over the last axis on the GPU, forward and backward:
// the CUDA twins of kernels/cpu/softmax.h, with the same SoftmaxParams and
// semantics, for f32/f16/bf16 tensors (math in f32). Rows of <= 1024 elements
// run one warp per row with the row in registers; longer rows one block per
// row, the statistics in one online pass (running max and sum).
#pragma once

#include <cstdint>

#include "kernels/cpu/softmax.h"
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::SoftmaxParams;

// x, y: (outer, axis_len) contiguous, dtype dt. Only the last axis:
// p.inner must be 1 (std::invalid_argument otherwise, before any CUDA call).
void softmax_forward(const void* x, void* y, SoftmaxParams p, DataType dt, cudaStream_t stream);
void log_softmax_forward(const void* x, void* y, SoftmaxParams p, DataType dt, cudaStream_t stream);

// From the forward's output y and dL/dy (all dtype dt):
// softmax: dx = y * (dy - sum(dy * y)); log-softmax: dx = dy - exp(y) * sum(dy).
void softmax_backward(const void* y, const void* dy, void* dx, SoftmaxParams p, DataType dt, cudaStream_t stream);
void log_softmax_backward(const void* y, const void* dy, void* dx, SoftmaxParams p, DataType dt,
                          cudaStream_t stream);

}  // namespace graft::kernels::cuda
