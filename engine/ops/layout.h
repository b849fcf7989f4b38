// Layout helpers shared by ops: views, layout-preserving allocation,
// broadcasting views. None of these record autograd history; the op that
// uses them records its own.
#pragma once

#include "engine/core/tensor.h"

namespace graft::ops {

// A view of x's storage with a new shape, strides and offset (in elements).
// It shares x's storage and therefore its version counter; no copy.
Tensor make_view(const Tensor& x, const Shape& shape, const Strides& strides, int64_t offset);

// Dense strides for `shape` that order the dims the way `like` orders them
// (decreasing stride, ties by position), so a channels-last `like` gives
// channels-last strides. Row-major when the ranks differ.
Strides dense_strides_like(const Shape& shape, const Tensor& like);

// Both dense with equal strides on every dim of size > 1 and equal shapes:
// a flat loop over their memory then pairs up the same logical elements.
bool same_dense_layout(const Tensor& a, const Tensor& b);

// g with ref's shape and strides: g itself when it already has them,
// otherwise a copy. ref must be dense.
Tensor with_layout_of(const Tensor& g, const Tensor& ref);

// A view of t broadcast to `shape` by NumPy rules (stride 0 where t has size
// 1 or lacks the dim). Throws naming `op` and both shapes.
Tensor broadcast_view(const Tensor& t, const Shape& shape, const char* op);

// A fresh tensor with `strides` holding src's values (src: any strides,
// including 0), on src's device.
Tensor materialize(const Tensor& src, const Strides& strides);

}  // namespace graft::ops
