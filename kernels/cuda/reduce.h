// Sum / mean reductions on the GPU over any set of dims of a strided tensor;
// the twin is kernels/cpu/reduce.h (the same ReduceParams). Input f32, f16 or
// bf16; accumulation and output f32.
//
// Deterministic: no atomics. A sum too long for one warp or block is split
// into a fixed number of pieces (a function of the shape only) whose partial
// sums go to a workspace, and a second pass adds each output's partials in
// order. So the same input on the same GPU gives the same bits every run.
//
// Inside, dims are ordered by the input's strides and coalesced (as the twin),
// which leaves two cases:
//   - the innermost run is summed (row sums, a full sum): a warp per output,
//     16-byte loads when rows are contiguous and aligned; long sums split;
//   - the innermost run is kept (column sums: the bias gradient of (N, C) or
//     channels-last NCHW over N*H*W): threads own columns, a block's rows are
//     added in a fixed order, long column sums split.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/reduce.h"  // ReduceParams
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

// Bytes of device workspace sum_forward needs for p (0: none; then the
// workspace argument may be null). A function of the shape only.
size_t sum_workspace_bytes(const cpu::ReduceParams& p);

// out = p.scale * (x summed over the reduced dims); out is dense row-major
// over the kept dims in their given order, f32. With nothing to sum (a reduced
// dim of size 0) each output is 0 * scale. `workspace` holds at least
// sum_workspace_bytes(p) bytes (16-byte aligned) and is overwritten.
void sum_forward(const cpu::ReduceParams& p, DataType dt, const void* x, float* out, void* workspace,
                 size_t workspace_bytes, cudaStream_t stream);

// The ReduceParams that sum a gradient over a broadcast output down to one
// operand's shape (NumPy rules, right-aligned; the engine's sum_to): the
// gradient has out_ndim dims of sizes out_size and strides g_stride; the
// operand has op_ndim <= out_ndim dims of sizes op_size, each equal to the
// output's or 1. The result is dense row-major in the operand's shape.
// Returns false (p untouched) if the operand does not broadcast to the output.
inline bool sum_to_params(int out_ndim, const int64_t* out_size, const int64_t* g_stride, int op_ndim,
                          const int64_t* op_size, float scale, cpu::ReduceParams* p) {
  if (out_ndim < 0 || out_ndim > kMaxDims || op_ndim < 0 || op_ndim > out_ndim) return false;
  cpu::ReduceParams r;
  r.ndim = out_ndim;
  r.scale = scale;
  const int lead = out_ndim - op_ndim;
  for (int d = 0; d < out_ndim; ++d) {
    r.size[d] = out_size[d];
    r.stride[d] = g_stride[d];
    if (d < lead) {
      r.reduce[d] = true;
    } else {
      const int64_t s = op_size[d - lead];
      if (s != out_size[d] && s != 1) return false;
      r.reduce[d] = s == 1 && out_size[d] != 1;
    }
  }
  *p = r;
  return true;
}

}  // namespace graft::kernels::cuda
