// Conv2dOptions in one expression, for the convolution test tables.
#pragma once

#include <array>

#include "engine/ops/conv.h"

namespace graft::testing {

inline Conv2dOptions conv_options(std::array<int64_t, 2> stride, std::array<int64_t, 4> pad,
                                  std::array<int64_t, 2> dil, int64_t groups) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.dilation = dil;
  o.groups = groups;
  return o;
}

}  // namespace graft::testing
