// Deterministic benchmark inputs: a hash of the element index (no NaN or
// inf, values in [-0.5, 0.5)), filled on the device, and the same value as
// the host sees it, for spot checks of a benchmark's output.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bench/cuda/harness.h"
#include "kernels/cuda/dtype.h"

namespace graft::bench {

__host__ __device__ inline float pattern(uint64_t i, uint32_t seed) {
  uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed ^ static_cast<uint32_t>(i >> 32) * 40503u;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  return static_cast<float>(h & 0xffffu) / 65536.f - 0.5f;  // [-0.5, 0.5)
}

template <typename T>
__global__ void fill_pattern_kernel(T* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if constexpr (sizeof(T) == 4) p[i] = pattern(i, seed);
    else p[i] = __float2bfloat16_rn(pattern(i, seed));
  }
}

// f32 or bf16 (the benchmark dtypes); waits for the fill.
inline void fill_pattern(void* p, int64_t n, kernels::cuda::DataType dt, uint32_t seed) {
  if (dt == kernels::cuda::DataType::f32) fill_pattern_kernel<float><<<2048, 256>>>(static_cast<float*>(p), n, seed);
  else fill_pattern_kernel<__nv_bfloat16><<<2048, 256>>>(static_cast<__nv_bfloat16*>(p), n, seed);
  BENCH_CUDA_CHECK(cudaGetLastError());
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
}
// The value fill_pattern stored, as the host sees it.
inline float host_pattern(uint64_t i, kernels::cuda::DataType dt, uint32_t seed) {
  const float v = pattern(i, seed);
  return dt == kernels::cuda::DataType::f32 ? v : __bfloat162float(__float2bfloat16_rn(v));
}

}  // namespace graft::bench
