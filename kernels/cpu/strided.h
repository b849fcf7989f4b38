// N-d strided iteration shared by the elementwise kernels and the engine's
// layout copies. Dimensions are coalesced first (adjacent dims that are
// contiguous with each other in every operand merge), so a dense tensor of any
// rank usually becomes one long innermost loop.
#pragma once

#include <cstdint>

namespace graft::kernels {

constexpr int kMaxDims = 8;

// Up to three operands (out, a, b) over one iteration shape. Strides are in
// elements; a broadcast dimension has stride 0.
template <int N>
struct StridedIter {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  // Merge dim d into d+1 (row-major: the last dim is innermost) wherever
  // stride[k][d] == stride[k][d+1] * size[d+1] for every operand; drop size-1 dims.
  void coalesce() {
    int out = 0;
    int64_t s[kMaxDims], st[N][kMaxDims];
    for (int d = 0; d < ndim; ++d) {
      if (size[d] == 1) continue;
      if (out > 0) {
        bool merge = true;
        for (int k = 0; k < N; ++k) merge = merge && st[k][out - 1] == stride[k][d] * size[d];
        if (merge) {
          s[out - 1] *= size[d];
          for (int k = 0; k < N; ++k) st[k][out - 1] = stride[k][d];
          continue;
        }
      }
      s[out] = size[d];
      for (int k = 0; k < N; ++k) st[k][out] = stride[k][d];
      ++out;
    }
    if (out == 0) {  // a scalar, or all dims of size 1
      s[0] = 1;
      for (int k = 0; k < N; ++k) st[k][0] = 0;
      out = 1;
    }
    ndim = out;
    for (int d = 0; d < out; ++d) {
      size[d] = s[d];
      for (int k = 0; k < N; ++k) stride[k][d] = st[k][d];
    }
  }

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= size[d];
    return n;
  }

  // Calls f(off[N], inner_size, inner_stride[N]) for each innermost run, for
  // the outer index range [begin, end) (in units of innermost runs), so that
  // callers can split the work across threads.
  template <class F>
  void for_each_run(int64_t begin, int64_t end, F&& f) const {
    const int inner = ndim - 1;
    int64_t idx[kMaxDims] = {};
    int64_t rem = begin;
    for (int d = inner - 1; d >= 0; --d) {
      idx[d] = rem % size[d];
      rem /= size[d];
    }
    int64_t off[N];
    for (int k = 0; k < N; ++k) {
      off[k] = 0;
      for (int d = 0; d < inner; ++d) off[k] += idx[d] * stride[k][d];
    }
    int64_t inner_stride[N];
    for (int k = 0; k < N; ++k) inner_stride[k] = stride[k][inner];
    for (int64_t r = begin; r < end; ++r) {
      f(off, size[inner], inner_stride);
      for (int d = inner - 1; d >= 0; --d) {
        ++idx[d];
        for (int k = 0; k < N; ++k) off[k] += stride[k][d];
        if (idx[d] < size[d]) break;
        for (int k = 0; k < N; ++k) off[k] -= stride[k][d] * size[d];
        idx[d] = 0;
      }
    }
  }

  int64_t num_runs() const { return numel() / size[ndim - 1]; }
};

}  // namespace graft::kernels
