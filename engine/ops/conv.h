// 2-D convolution. Input (N, C, H, W) logical, channels-last in memory (an
// input in another layout is converted); weight (O, C/groups, kH, kW); output
// channels-last. Depthwise (groups == C == O) takes a direct path.
#pragma once

#include <array>

#include "engine/core/tensor.h"

namespace graft {

struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 4> padding{0, 0, 0, 0};  // top, left, bottom, right (ONNX order: begins then ends)
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;

  static Conv2dOptions same_padding(int64_t pad) { Conv2dOptions o; o.padding = {pad, pad, pad, pad}; return o; }
};

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& opt = {});

struct ConvTranspose2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 4> padding{0, 0, 0, 0};  // top, left, bottom, right: cropped from the full output
  std::array<int64_t, 2> output_padding{0, 0};  // extra rows/columns at the bottom/right
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};

// The transpose (gradient) of conv2d: x (N, C, H, W), weight (C, O/groups, kH,
// kW) as PyTorch/ONNX; output (N, O, (H-1)*s - pads + d*(k-1) + 1 + output_padding, ...).
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        const ConvTranspose2dOptions& opt = {});

}  // namespace graft
