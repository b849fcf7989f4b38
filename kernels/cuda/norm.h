// Normalisation on the GPU: the CUDA twins of kernels/cpu/norm.h, with the same
// arguments and formulas, for f32/f16/bf16 activations (x, y, grad_y, grad_x
// of dtype dt; math in f32). weight, bias, statistics and their gradients are
// f32. weight and bias may be null (no affine); gradient outputs may be null
// when not wanted. All pointers are device pointers.
//
// Batch norm sees x as (rows, C) row-major: (N, C), or (N, C, H, W) in NHWC
// memory as (N * H * W, C), channels innermost. Layer norm sees x as (rows, D),
// normalised over the last dim.
//
// Per-channel / per-feature sums (statistics, grad_weight, grad_bias) are
// reduced deterministically: per-block partials over fixed row chunks that
// depend only on the shape, then a second kernel adding them in order; no
// atomics. Launchers that need partials take scratch from the stream-ordered
// allocator (cudaMallocAsync) and free it on the stream; none synchronises.
#pragma once

#include <cstdint>

#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

// ---- batch norm -------------------------------------------------------------

// Training: normalises with the batch statistics, computed in one Welford pass
// (per thread, merged across threads and row chunks with the parallel formula).
// Writes batch_mean, batch_var (biased: the one that normalises) and save_rstd =
// 1 / sqrt(batch_var + eps). When running_mean and running_var are given (both or
// neither; rows >= 2), updates them in place as the engine does (PyTorch):
//   running_mean = (1 - momentum) * running_mean + momentum * batch_mean,
//   running_var  = (1 - momentum) * running_var + momentum * batch_var * rows / (rows - 1).
void batch_norm_forward_train(const void* x, const float* weight, const float* bias, void* y, float* batch_mean,
                              float* batch_var, float* save_rstd, float* running_mean, float* running_var,
                              float momentum, int64_t rows, int64_t c, float eps, DataType dt, cudaStream_t stream);

// Evaluation: normalises with given statistics (the running ones).
void batch_norm_forward_eval(const void* x, const float* mean, const float* var, const float* weight,
                             const float* bias, void* y, int64_t rows, int64_t c, float eps, DataType dt,
                             cudaStream_t stream);

// Training backward, the statistics depending on x (see the CPU twin):
//   grad_x = weight * rstd / rows * (rows * g - grad_bias - xhat * grad_weight).
void batch_norm_backward_train(const void* grad_y, const void* x, const float* mean, const float* rstd,
                               const float* weight, void* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                               int64_t c, DataType dt, cudaStream_t stream);

// Evaluation backward, the statistics constants: grad_x = g * weight * rstd with
// rstd = 1 / sqrt(var + eps); grad_weight and grad_bias as in training.
void batch_norm_backward_eval(const void* grad_y, const void* x, const float* mean, const float* var,
                              const float* weight, void* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                              int64_t c, float eps, DataType dt, cudaStream_t stream);

// ---- layer norm -------------------------------------------------------------

// Per row: mean, rstd = 1 / sqrt(biased variance + eps) saved (f32) for the
// backward; y = (x - mean) * rstd * weight + bias.
void layer_norm_forward(const void* x, const float* weight, const float* bias, void* y, float* save_mean,
                        float* save_rstd, int64_t rows, int64_t d, float eps, DataType dt, cudaStream_t stream);

// grad_x = rstd * (gh - mean_d(gh) - xhat * mean_d(gh * xhat)) with gh = g * weight;
// grad_weight = sum_rows g * xhat, grad_bias = sum_rows g.
void layer_norm_backward(const void* grad_y, const void* x, const float* mean, const float* rstd,
                         const float* weight, void* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                         int64_t d, DataType dt, cudaStream_t stream);

}  // namespace graft::kernels::cuda
