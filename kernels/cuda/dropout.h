// Dropout on the GPU; the twin is kernels/cpu/random.h (dropout_forward /
// dropout_backward). The mask comes from the same counter-based Philox mapping
// (element i uses block offset + i / 4, lane i % 4, kept where its uniform
// >= p_drop), so both devices draw the identical mask for the same
// (seed, offset), bit for bit. The backward scales by the saved byte mask,
// as the twin does.
#pragma once

#include <cstdint>

#include "kernels/cpu/random.h"  // RandomParams, random_blocks
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

// keep[i] = uniform_i >= p_drop; out[i] = keep ? x[i] / (1 - p_drop) : 0
// (all zeros for p_drop == 1). x and out have dtype dt (out may alias x); keep
// is one byte per element. Consumes cpu::random_blocks(n) Philox blocks from
// p.offset. p_drop must be in [0, 1].
void dropout_forward(DataType dt, const void* x, void* out, uint8_t* keep, int64_t n, float p_drop,
                     cpu::RandomParams p, cudaStream_t stream);

// grad_in[i] = keep[i] ? grad_out[i] / (1 - p_drop) : 0. grad_out and grad_in
// have dtype dt (grad_in may alias grad_out).
void dropout_backward(DataType dt, const void* grad_out, const uint8_t* keep, void* grad_in, int64_t n, float p_drop,
                      cudaStream_t stream);

}  // namespace graft::kernels::cuda
