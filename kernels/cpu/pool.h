// 2-D pooling over NHWC tensors: max (with dilation), average (with
// count_include_pad), global average. Forward and backward side by side.
//
// Layout: x is (N, H, W, C) in memory, y is (N, OH, OW, C). Channels are the
// contiguous inner loop, so every window step is a vector operation over C.
//
// Window (oh, ow) covers input rows oh * stride_h - pad_top + kh * dilation_h
// for kh in [0, kernel_h), likewise columns. Positions outside [0, H) x [0, W)
// are padding: ignored by max pooling; counted by average pooling only with
// count_include_pad, and then only up to the padded extent H + pad_bottom
// (W + pad_right) — never the positions past it that ceil_mode adds (the
// ONNX AveragePool / PyTorch avg_pool2d rule).
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

struct Pool2dParams {
  int64_t n = 0, h = 0, w = 0, c = 0;  // input N, H, W, C
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;  // max pooling only
  bool count_include_pad = false;          // average pooling only
};

// Output extent along one spatial dim, as PyTorch and ONNX compute it:
//   floor_or_ceil((in + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride) + 1,
// and with ceil_mode the last window must start inside the input or the
// begin padding (otherwise it is dropped). Returns 0 when no window fits.
inline int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_begin, int64_t pad_end,
                                int64_t dilation, bool ceil_mode) {
  const int64_t span = in + pad_begin + pad_end - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad_begin) --out;
  return out;
}

// argmax (may be null when no backward will follow) receives, per output
// element, the flat index h * W + w of the chosen input in its (n, c) plane.
// The first maximum in window order wins; a NaN in the window propagates.
// Every window must contain at least one input position (the engine checks).
void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const Pool2dParams& p);
// grad_x is overwritten (not accumulated).
void max_pool2d_backward(const float* grad_y, const int32_t* argmax, float* grad_x, const Pool2dParams& p);

void avg_pool2d_forward(const float* x, float* y, const Pool2dParams& p);
void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2dParams& p);

// x (N, HW, C) -> y (N, C): mean over HW (accumulated in double).
void global_avg_pool2d_forward(const float* x, float* y, int64_t n, int64_t hw, int64_t c);
void global_avg_pool2d_backward(const float* grad_y, float* grad_x, int64_t n, int64_t hw, int64_t c);

}  // namespace graft::kernels::cpu
