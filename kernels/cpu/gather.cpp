#include "kernels/cpu/gather.h"

#include <cstring>

namespace graft::kernels::cpu {

void gather_forward(const void* x, const int64_t* idx, void* out, const GatherParams& p, size_t elem_bytes) {
  const char* xb = static_cast<const char*>(x);
  char* ob = static_cast<char*>(out);
  const size_t row = static_cast<size_t>(p.inner) * elem_bytes;
  const int64_t rows = p.outer * p.num_indices;
#pragma omp parallel for schedule(static) if (rows * p.inner > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r / p.num_indices, j = r % p.num_indices;
    std::memcpy(ob + static_cast<size_t>(r) * row, xb + static_cast<size_t>(o * p.axis_size + idx[j]) * row, row);
  }
}

// Threads own whole outer slabs of dx, so repeated indices never race.
void gather_backward(const float* dout, const int64_t* idx, float* dx, const GatherParams& p) {
  const int64_t inner = p.inner;
#pragma omp parallel for schedule(static) if (p.outer * p.num_indices * inner > 65536 && p.outer > 1)
  for (int64_t o = 0; o < p.outer; ++o) {
    for (int64_t j = 0; j < p.num_indices; ++j) {
      const float* g = dout + (o * p.num_indices + j) * inner;
      float* d = dx + (o * p.axis_size + idx[j]) * inner;
      for (int64_t i = 0; i < inner; ++i) d[i] += g[i];
    }
  }
}

}  // namespace graft::kernels::cpu
