// Pooling over (N, C, H, W), channels-last in memory.
#pragma once

#include <array>

#include "engine/core/tensor.h"

namespace graft {

struct Pool2dOptions {
  std::array<int64_t, 2> kernel{2, 2};
  std::array<int64_t, 2> stride{2, 2};
  std::array<int64_t, 4> padding{0, 0, 0, 0};  // top, left, bottom, right
  std::array<int64_t, 2> dilation{1, 1};       // max pooling only
  bool ceil_mode = false;
  bool count_include_pad = false;              // average pooling only
};

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt);
// (N, C, H, W) -> (N, C, 1, 1)
Tensor global_avg_pool2d(const Tensor& x);

}  // namespace graft
