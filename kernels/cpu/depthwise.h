// Depthwise 2-D convolution on NHWC activations (groups == C == O, one filter
// per channel): a direct kernel, vectorised over channels, since im2col would
// turn it into C tiny GEMMs.
//
// Layouts: x N, H, W, C; y N, outH, outW, C; weight C, kH, kW (the engine's
// (C, 1, kH, kW) weight, which is the same memory in either format); bias C
// or null. Geometry comes in the conv kernels' Conv2dParams with
// groups == c == o.
#pragma once

#include "kernels/cpu/conv.h"

namespace graft::kernels::cpu {

// True when `p` is a depthwise convolution these kernels handle.
inline bool is_depthwise(const Conv2dParams& p) { return p.groups > 1 && p.groups == p.c && p.o == p.c; }

void depthwise_conv2d_forward(const Conv2dParams& p, const float* x, const float* w, const float* b, float* y);
// dx overwritten.
void depthwise_conv2d_backward_data(const Conv2dParams& p, const float* dy, const float* w, float* dx);
// dw overwritten (C, kH, kW). The bias gradient is conv2d_backward_bias.
void depthwise_conv2d_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw);

}  // namespace graft::kernels::cpu
