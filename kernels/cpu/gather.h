// Gather along one axis (ONNX Gather, numpy.take) and its backward, a
// scatter-add. The tensor is viewed as (outer, axis, inner) row-major; the
// indices are a flat list of already-validated positions in [0, axis).
//
//   out[o, j, i] = x[o, idx[j], i]            o < outer, j < num_indices, i < inner
//   dx[o, idx[j], i] += dout[o, j, i]         (repeated indices accumulate)
#pragma once

#include <cstddef>
#include <cstdint>

namespace graft::kernels::cpu {

struct GatherParams {
  int64_t outer = 1;        // product of the dims before the axis
  int64_t axis_size = 1;    // x's extent along the axis
  int64_t num_indices = 0;  // number of indices (their shape flattened)
  int64_t inner = 1;        // product of the dims after the axis
};

// Any element type: copies rows of `inner * elem_bytes` bytes, so integer
// shape tensors and f32 activations share one kernel.
void gather_forward(const void* x, const int64_t* idx, void* out, const GatherParams& p, size_t elem_bytes);

// dx must be zeroed by the caller; it receives the sum over every j with
// idx[j] == k of dout[:, j, :] at [:, k, :].
void gather_backward(const float* dout, const int64_t* idx, float* dx, const GatherParams& p);

}  // namespace graft::kernels::cpu
