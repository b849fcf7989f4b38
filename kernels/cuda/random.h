// Random fills on the GPU with the same Philox mapping as kernels/cpu/random.h:
// element i of a fill is identical on both devices for the same (seed, offset).
#pragma once

#include <cstdint>

#include "kernels/cpu/random.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

void fill_uniform(float* out, int64_t n, float lo, float hi, cpu::RandomParams p, cudaStream_t stream);
void fill_normal(float* out, int64_t n, float mean, float stddev, cpu::RandomParams p, cudaStream_t stream);

}  // namespace graft::kernels::cuda
