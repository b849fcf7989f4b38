#include "kernels/cpu/random.h"

#include <cmath>

#include "kernels/cpu/philox.h"

namespace graft::kernels::cpu {

void fill_uniform(float* out, int64_t n, float lo, float hi, RandomParams p) {
  const int64_t blocks = (n + 3) / 4;
  const float below_hi = std::nextafter(hi, lo);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; ++b) {
    const Philox4 r = philox_block(p.seed, p.offset + static_cast<uint64_t>(b));
    for (int l = 0; l < 4; ++l) {
      const int64_t i = b * 4 + l;
      if (i < n) out[i] = philox_uniform_range(r.v[l], lo, hi, below_hi);
    }
  }
}

void fill_normal(float* out, int64_t n, float mean, float stddev, RandomParams p) {
  const int64_t blocks = (n + 3) / 4;
  constexpr float kTwoPi = 6.28318530717958647692f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; ++b) {
    const Philox4 r = philox_block(p.seed, p.offset + static_cast<uint64_t>(b));
    for (int pair = 0; pair < 2; ++pair) {
      // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
      const float u1 = 1.0f - philox_uniform(r.v[2 * pair]);
      const float u2 = philox_uniform(r.v[2 * pair + 1]);
      const float rad = std::sqrt(-2.0f * std::log(u1));
      const float z0 = rad * std::cos(kTwoPi * u2), z1 = rad * std::sin(kTwoPi * u2);
      const int64_t i = b * 4 + 2 * pair;
      if (i < n) out[i] = mean + stddev * z0;
      if (i + 1 < n) out[i + 1] = mean + stddev * z1;
    }
  }
}

void dropout_forward(const float* x, float* out, uint8_t* keep, int64_t n, float p_drop, RandomParams p) {
  const int64_t blocks = (n + 3) / 4;
  const float scale = p_drop < 1.0f ? 1.0f / (1.0f - p_drop) : 0.0f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; ++b) {
    const Philox4 r = philox_block(p.seed, p.offset + static_cast<uint64_t>(b));
    for (int l = 0; l < 4; ++l) {
      const int64_t i = b * 4 + l;
      if (i >= n) break;
      const uint8_t k = philox_uniform(r.v[l]) >= p_drop;
      keep[i] = k;
      out[i] = k ? x[i] * scale : 0.0f;
    }
  }
}

void dropout_backward(const float* grad_out, const uint8_t* keep, float* grad_in, int64_t n, float p_drop) {
  const float scale = p_drop < 1.0f ? 1.0f / (1.0f - p_drop) : 0.0f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) grad_in[i] = keep[i] ? grad_out[i] * scale : 0.0f;
}

}  // namespace graft::kernels::cpu
