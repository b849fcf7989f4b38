// 2-D pooling over NHWC tensors on the GPU: max (with dilation, argmax saved
// for backward), average (count_include_pad, ceil_mode through out_h/out_w),
// global average. The CUDA twins of kernels/cpu/pool.h: the same Pool2dParams,
// the same window rule, the same argmax convention (flat h * W + w in the
// (n, c) plane, first maximum in window order, NaN propagates), so both devices
// take one description.
//
// x is (N, H, W, C) in memory, y is (N, OH, OW, C), elements of dtype dt
// (f32/f16/bf16; arithmetic in f32). One thread owns one output pixel and a
// vector of channels (16 bytes: 4 f32 or 8 f16/bf16) when every pointer is
// 16-byte aligned and C is a multiple of the vector width; one channel
// otherwise. Backward is a gather (each input position sums the windows that
// cover it): deterministic, no atomics, correct for overlapping windows.
//
// Element counts (N*H*W*C and N*OH*OW*C) must fit in int32 (checked).
// Every launcher validates its arguments before any CUDA call and throws
// std::invalid_argument naming itself and the argument.
#pragma once

#include <cstdint>

#include "kernels/cpu/pool.h"
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::Pool2dParams;
using cpu::pool_output_size;

// argmax (int32, same element count as y) may be null when no backward follows.
void max_pool2d_forward(const void* x, void* y, int32_t* argmax, DataType dt, const Pool2dParams& p,
                        cudaStream_t stream);
// grad_x is overwritten (not accumulated). argmax as written by the forward.
void max_pool2d_backward(const void* grad_y, const int32_t* argmax, void* grad_x, DataType dt, const Pool2dParams& p,
                         cudaStream_t stream);

// Average pooling takes no dilation (p.dilation_h/w must be 1).
void avg_pool2d_forward(const void* x, void* y, DataType dt, const Pool2dParams& p, cudaStream_t stream);
void avg_pool2d_backward(const void* grad_y, void* grad_x, DataType dt, const Pool2dParams& p, cudaStream_t stream);

// x (N, HW, C) -> y (N, C): mean over HW (accumulated in f32).
void global_avg_pool2d_forward(const void* x, void* y, DataType dt, int64_t n, int64_t hw, int64_t c,
                               cudaStream_t stream);
void global_avg_pool2d_backward(const void* grad_y, void* grad_x, DataType dt, int64_t n, int64_t hw, int64_t c,
                                cudaStream_t stream);

}  // namespace graft::kernels::cuda
