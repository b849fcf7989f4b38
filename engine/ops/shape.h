// Shape ops. They act on the logical shape (N, C, H, W stays N, C, H, W
// whatever the memory layout); results are views where the layout allows and
// copies where it does not.
#pragma once

#include <vector>

#include "engine/core/tensor.h"

namespace graft {

// One dim may be -1 (inferred).
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 1, int64_t end_dim = -1);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// [start, end) with step > 0 along dim; start/end clamp like Python slices, negative counts from the end.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
// pads: (before, after) per dim, for the last pads.size()/2 dims, outermost
// first: {top, bottom, left, right} pads H and W of an NCHW tensor.
// Negative pads crop.
enum class PadMode { constant, reflect, edge };
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode = PadMode::constant, double value = 0.0);
// Takes slices of x along `axis` at `indices` (i64 or i32, any shape, negative
// counts from the end), as ONNX Gather / numpy.take: the result's shape is
// x.shape[:axis] + indices.shape + x.shape[axis+1:]. Differentiable in x.
Tensor gather(const Tensor& x, const Tensor& indices, int64_t axis);
// Broadcast to `shape` (materialised).
Tensor expand(const Tensor& x, const Shape& shape);

}  // namespace graft
