// Cross-entropy over class logits fused with log-softmax on the GPU: the CUDA
// twin of kernels/cpu/loss.h (PyTorch semantics: label smoothing, optional
// class weights, ignore_index; the same CrossEntropyParams and formulas).
// Logits and their gradient are f32/f16/bf16 (math in f32); targets int64;
// class weights, per-row losses and statistics f32.
#pragma once

#include <cstdint>

#include "kernels/cpu/loss.h"
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::CrossEntropyParams;
using cpu::CrossEntropyTotals;

// Device pointers: logits (n, c) row-major of dtype dt; targets (n); class_weights
// (c) or nullptr; loss (n) f32; stats (2n) f32, stats[2i] = max of row i and
// stats[2i + 1] = log(sum exp(x - max)), as the CPU twin, for the backward.
// Returns the totals (sum of the losses and of the target weights over the rows
// not ignored, summed in a fixed order) on the host: it synchronises `stream`.
// A target outside [0, c) that is not ignore_index throws std::invalid_argument
// naming cross_entropy_forward, the row and the value (the rows are still
// written: such a row's loss is NaN).
CrossEntropyTotals cross_entropy_forward(const void* logits, const int64_t* targets, const float* class_weights,
                                         float* loss, float* stats, CrossEntropyParams p, DataType dt,
                                         cudaStream_t stream);

// grad_logits (n, c) of dtype dt = dL/dlogits where dL/dloss_i = grad_loss[i *
// grad_stride] * grad_scale (grad_loss a device pointer; grad_stride 0 broadcasts
// one value, e.g. grad_scale = 1 / weight_sum for 'mean'). Ignored rows get 0, rows
// with an out-of-range target NaN. No synchronisation.
void cross_entropy_backward(const void* logits, const int64_t* targets, const float* class_weights,
                            const float* stats, const float* grad_loss, int64_t grad_stride, float grad_scale,
                            void* grad_logits, CrossEntropyParams p, DataType dt, cudaStream_t stream);

}  // namespace graft::kernels::cuda
