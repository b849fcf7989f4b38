// Random fills and dropout masks from Philox. Element i uses block
// (offset + i / 4), lane i % 4, so results do not depend on threading.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

struct RandomParams {
  uint64_t seed = 0;
  uint64_t offset = 0;  // in Philox blocks (4 numbers each)
};

// Number of Philox blocks a fill of n elements consumes (normal consumes the
// same: Box-Muller takes lanes in pairs).
inline uint64_t random_blocks(int64_t n) { return static_cast<uint64_t>((n + 3) / 4); }

void fill_uniform(float* out, int64_t n, float lo, float hi, RandomParams p);
void fill_normal(float* out, int64_t n, float mean, float stddev, RandomParams p);

// Dropout: keep[i] = uniform_i >= p_drop; out = keep ? x / (1 - p_drop) : 0.
void dropout_forward(const float* x, float* out, uint8_t* keep, int64_t n, float p_drop, RandomParams p);
void dropout_backward(const float* grad_out, const uint8_t* keep, float* grad_in, int64_t n, float p_drop);

}  // namespace graft::kernels::cpu
