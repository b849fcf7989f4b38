// Softmax and log-softmax over one axis on the GPU, forward and backward: the
// CUDA twins of kernels/cpu/softmax.h, with the same SoftmaxParams and
// semantics, for f32/f16/bf16 tensors (math in f32). The last axis (inner ==
// 1) is the fast path: rows of <= 1024 elements run one warp per row with the
// row in registers; longer rows one block per row, the statistics in one
// online pass (running max and sum). Other axes (inner > 1) run one thread per
// column, coalesced across the inner index: correct, not tuned.
#pragma once

#include <cstdint>

#include "kernels/cpu/softmax.h"
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::SoftmaxParams;

// x, y: (outer, axis_len, inner) contiguous, dtype dt. Bad arguments throw
// std::invalid_argument naming the launcher, before any CUDA call.
void softmax_forward(const void* x, void* y, SoftmaxParams p, DataType dt, cudaStream_t stream);
void log_softmax_forward(const void* x, void* y, SoftmaxParams p, DataType dt, cudaStream_t stream);

// From the forward's output y and dL/dy (all dtype dt):
// softmax: dx = y * (dy - sum(dy * y)); log-softmax: dx = dy - exp(y) * sum(dy).
void softmax_backward(const void* y, const void* dy, void* dx, SoftmaxParams p, DataType dt, cudaStream_t stream);
void log_softmax_backward(const void* y, const void* dy, void* dx, SoftmaxParams p, DataType dt,
                          cudaStream_t stream);

}  // namespace graft::kernels::cuda
