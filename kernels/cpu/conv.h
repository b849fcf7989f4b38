// 2-D convolution on NHWC activations: im2col + sgemm, chunked.
//
// Layouts (all dense):
//   x   input          N, H, W, C              (NHWC)
//   w   weight         O, kH, kW, C/groups     (each filter row is one im2col row)
//   y   output         N, outH, outW, O        (NHWC)
//   b   bias           O (may be null)
// The engine's weight is logical (O, C/groups, kH, kW) as in PyTorch and
// ONNX; engine/ops/conv.cpp hands it over in channels-last memory, which is
// exactly the O, kH, kW, C/groups packing above.
//
// Algorithm. The output pixels (all N*outH*outW of them, across images) are
// cut into chunks sized so that a chunk's im2col matrix (pixels x kH*kW*C/g)
// stays cache-resident; each OpenMP thread takes chunks, gathers their
// im2col rows into its own buffer and runs one single-threaded sgemm per
// chunk and group. A 1x1, stride-1, unpadded convolution is a plain GEMM on
// the input (no im2col). Backward-data is a GEMM into a column buffer
// followed by col2im; backward-weight is im2col + GEMM accumulated per thread.
//
// Depthwise convolutions (groups == C == O) have their own direct kernels in
// kernels/cpu/depthwise.h.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

struct Conv2dParams {
  int64_t n = 1, h = 1, w = 1, c = 1;  // input
  int64_t o = 1;                       // output channels
  int64_t kh = 1, kw = 1;              // kernel
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  int64_t out_h() const { return (h + pad_top + pad_bottom - dilation_h * (kh - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (w + pad_left + pad_right - dilation_w * (kw - 1) - 1) / stride_w + 1; }
  int64_t in_channels_per_group() const { return c / groups; }
  int64_t out_channels_per_group() const { return o / groups; }
  // Length of one im2col row = one filter: kH * kW * C/groups.
  int64_t filter_size() const { return kh * kw * (c / groups); }
  double forward_flops() const {  // 2 per multiply-add
    return 2.0 * n * out_h() * out_w() * o * filter_size();
  }
};

// y = conv(x, w) + b.
void conv2d_forward(const Conv2dParams& p, const float* x, const float* w, const float* b, float* y);
// dx = dL/dx given dy = dL/dy (dx is overwritten).
void conv2d_backward_data(const Conv2dParams& p, const float* dy, const float* w, float* dx);
// dw = dL/dw (overwritten), layout O, kH, kW, C/groups.
void conv2d_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw);
// db[o] = sum over N, outH, outW of dy (overwritten).
void conv2d_backward_bias(const Conv2dParams& p, const float* dy, float* db);

}  // namespace graft::kernels::cpu
