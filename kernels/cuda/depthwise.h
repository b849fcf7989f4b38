// Depthwise 2-D convolution on the GPU (groups == C == O, one filter per
// channel, channel multiplier 1): the CUDA twin of kernels/cpu/depthwise.h,
// taking the same Conv2dParams and the same layouts:
//   x  N, H, W, C (NHWC)       y / grad_y  N, outH, outW, C
//   w  C, kH, kW               (the engine's (C, 1, kH, kW) weight)
// All tensors have dtype dt (f32, f16, bf16); arithmetic and accumulation are
// f32, results rounded once to dt. Asymmetric padding, any stride and dilation.
// C == 1 (groups == 1) is accepted too, though cpu::is_depthwise says false
// for it (the engine sends that case to the ordinary convolution).
//
// Kernels are direct NHWC loops (memory-bound: no tensor cores). A thread owns
// a vector of channels (16 bytes: 8 f16/bf16 or 4 f32) when C is a multiple of
// the vector width and every pointer is 16-byte aligned, and several adjacent
// output (input, for backward-data) pixels along W so an input row's values
// are reused from registers; the block's filters are staged in shared memory.
// 3x3 and 5x5 with stride 1 or 2 and dilation 1 are specialised at compile
// time. Every other geometry, and every shape that cannot use 16-byte vectors
// (C not a multiple of the width, misaligned pointers), runs a generic kernel:
// one pixel per thread, taps in a run-time loop, correct for any valid input.
//
// Backward-data is the transposed convolution in gather form (each dx element
// sums the taps that reach it; no atomics). Backward-weight reduces over
// N * outH * outW per (channel, tap) deterministically: per-block f32 partials
// over a split that depends only on the shape, then a second kernel adding
// them in order; its scratch comes from the stream-ordered allocator
// (cudaMallocAsync / cudaFreeAsync on the stream). No launcher synchronises.
//
// Element counts of x and y (with padding: N * (H + pads + kH*dH) * (W + pads
// + kW*dW) * C) must fit in int32 (checked). Every launcher validates its
// arguments before any CUDA call and throws std::invalid_argument naming
// itself and the argument.
#pragma once

#include <cstdint>

#include "kernels/cpu/conv.h"
#include "kernels/cuda/conv.h"  // ConvActivation
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::Conv2dParams;

using DwActivation = ConvActivation;  // none, relu, relu6, silu: the same activations as the conv epilogue

// Fused forward epilogue, per channel c, in f32 before the final rounding:
//   y = act(fma(conv, scale[c], shift[c]))
// scale null means 1, shift null means 0 (a bias is shift alone; a folded
// eval-mode batch norm is scale = gamma * rstd, shift = beta - mean * scale).
// scale and shift are f32 device arrays of C elements.
struct DwEpilogue {
  const float* scale = nullptr;
  const float* shift = nullptr;
  DwActivation act = DwActivation::none;
};

// y = epilogue(depthwise_conv(x, w)). y is overwritten.
void depthwise_conv2d_forward(const void* x, const void* w, void* y, DataType dt, const Conv2dParams& p,
                              const DwEpilogue& epilogue, cudaStream_t stream);

// grad_x = dL/dx given grad_y (overwritten; padding taps contribute nothing).
void depthwise_conv2d_backward_data(const void* grad_y, const void* w, void* grad_x, DataType dt,
                                    const Conv2dParams& p, cudaStream_t stream);

// grad_w = dL/dw (C, kH, kW), overwritten, dtype dt (summed in f32). The bias
// gradient is a per-channel sum of grad_y (batch-norm / reduce kernels).
void depthwise_conv2d_backward_weight(const void* x, const void* grad_y, void* grad_w, DataType dt,
                                      const Conv2dParams& p, cudaStream_t stream);

}  // namespace graft::kernels::cuda
