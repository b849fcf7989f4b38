// Sum and mean reductions.
#pragma once

#include <vector>

#include "engine/core/tensor.h"

namespace graft {

// Over the given dims (negative counts from the end; empty = all dims).
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

// Sums a broadcast gradient back to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace graft
