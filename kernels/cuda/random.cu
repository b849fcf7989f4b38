#include "kernels/cpu/philox.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/random.h"

#include <cmath>

namespace graft::kernels::cuda {

namespace {
// One thread per Philox block of four numbers.
__global__ void fill_uniform_kernel(float* out, int64_t n, float lo, float hi, float below_hi, uint64_t seed,
                                    uint64_t offset) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b * 4 >= n) return;
  const Philox4 r = philox_block(seed, offset + static_cast<uint64_t>(b));
#pragma unroll
  for (int l = 0; l < 4; ++l) {
    const int64_t i = b * 4 + l;
    if (i < n) out[i] = philox_uniform_range(r.v[l], lo, hi, below_hi);
  }
}

__global__ void fill_normal_kernel(float* out, int64_t n, float mean, float stddev, uint64_t seed, uint64_t offset) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b * 4 >= n) return;
  const Philox4 r = philox_block(seed, offset + static_cast<uint64_t>(b));
  constexpr float kTwoPi = 6.28318530717958647692f;
#pragma unroll
  for (int pair = 0; pair < 2; ++pair) {
    // The same expressions as the CPU twin; sqrtf/logf/cosf may differ in the
    // last ulp, which the parity test allows for.
    const float u1 = 1.0f - philox_uniform(r.v[2 * pair]);
    const float u2 = philox_uniform(r.v[2 * pair + 1]);
    const float rad = sqrtf(-2.0f * logf(u1));
    const int64_t i = b * 4 + 2 * pair;
    if (i < n) out[i] = mean + stddev * rad * cosf(kTwoPi * u2);
    if (i + 1 < n) out[i + 1] = mean + stddev * rad * sinf(kTwoPi * u2);
  }
}

unsigned grid_for(int64_t n, int threads) {
  return static_cast<unsigned>(((n + 3) / 4 + threads - 1) / threads);
}
}  // namespace

void fill_uniform(float* out, int64_t n, float lo, float hi, cpu::RandomParams p, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  fill_uniform_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, n, lo, hi, std::nextafter(hi, lo), p.seed,
                                                                       p.offset);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

void fill_normal(float* out, int64_t n, float mean, float stddev, cpu::RandomParams p, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  fill_normal_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, n, mean, stddev, p.seed, p.offset);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

}  // namespace graft::kernels::cuda
