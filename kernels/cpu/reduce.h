// Sum reductions over any set of dims of a strided tensor, accumulated in
// double (accurate for any length a float tensor can have). Their backward, a
// broadcast, is a strided copy (the engine's copy with stride-0 dims).
#pragma once

#include <cstdint>

#include "kernels/cpu/strided.h"

namespace graft::kernels::cpu {

struct ReduceParams {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};  // of the input, in elements; any layout
  bool reduce[kMaxDims] = {};     // true: summed over
  float scale = 1.f;              // applied to each sum (1 / count for a mean)
};

// out = scale * (x summed over the reduced dims). out is dense row-major over
// the kept dims in their given order (prod of kept sizes elements). With
// nothing to sum (a reduced dim of size 0) each output is 0 * scale.
//
// Inside, dims are ordered by the input's strides and coalesced, which leaves
// one of two shapes of loop: the innermost run is summed (row sums, a full
// sum), or it is kept and whole rows are added into a row of accumulators
// (column sums: bias gradients of row-major (N, C) or channels-last NCHW).
void sum_forward(const ReduceParams& p, const float* x, float* out);

}  // namespace graft::kernels::cpu
