// Device-side helpers shared by the CUDA kernels: element conversion for
// f32/f16/bf16 (compute is always f32), warp and block reductions, launch
// sizing and alignment checks. Included only by .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/dtype.h"

namespace graft::kernels::cuda {

// ---- element conversion --------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Dispatches a launcher template on a DataType: GRAFT_DISPATCH_FLOAT(dt, T, { body using T }).
#define GRAFT_DISPATCH_FLOAT(dt, T, ...)                                                         \
  do {                                                                                           \
    switch (dt) {                                                                                \
      case ::graft::kernels::cuda::DataType::f32: { using T = float; __VA_ARGS__; } break;        \
      case ::graft::kernels::cuda::DataType::f16: { using T = __half; __VA_ARGS__; } break;       \
      case ::graft::kernels::cuda::DataType::bf16: { using T = __nv_bfloat16; __VA_ARGS__; } break; \
    }                                                                                            \
  } while (0)

// ---- dynamic shared memory -----------------------------------------------------------------
// The launch's dynamic shared memory as `T* name`, 128-byte aligned. (The
// host emulator used by the tests on machines without a GPU hands out its
// per-block buffer instead: tests/emu/cuda_emu.h.)
#if defined(GRAFT_CUDA_EMULATION)
#define GRAFT_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(::graft::emu::dynamic_smem())
#else
#define GRAFT_DYNAMIC_SMEM(T, name)                                        \
  extern __shared__ __align__(128) unsigned char graft_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(graft_dynamic_smem_)
#endif

// ---- packed access ---------------------------------------------------------------------------
// V consecutive elements loaded or stored as one access: 16 bytes for the
// vector paths (V * sizeof(T) == 16), one element for a scalar path; wider
// packs (e.g. 8 int32) are aligned to 16 bytes. The caller checks alignment.
// (Namespace vec: elementwise's ew::Pack is another shape of the same idea.)
namespace vec {
template <typename T, int V>
struct alignas(sizeof(T) * V <= 16 ? sizeof(T) * V : 16) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void load_f32(const T* p, float (&out)[V]) {
  const Pack<T, V> k = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int l = 0; l < V; ++l) out[l] = to_f32(k.v[l]);
}
template <typename T, int V>
__device__ __forceinline__ void store_f32(T* p, const float (&in)[V]) {
  Pack<T, V> k;
#pragma unroll
  for (int l = 0; l < V; ++l) k.v[l] = from_f32<T>(in[l]);
  *reinterpret_cast<Pack<T, V>*>(p) = k;
}
}  // namespace vec

// ---- reductions ------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Block-wide sum, result broadcast to every thread. `scratch` holds >= 32
// floats of shared memory; blockDim.x must be a multiple of 32. Contains
// __syncthreads(): every thread of the block must call it.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

// ---- launch sizing ---------------------------------------------------------------------------
// Blocks for a grid-stride loop over n items: enough to fill the device, never
// more than needed, never more than the 1-D grid limit.
inline unsigned grid_for(int64_t n, int block, int64_t max_blocks = 65535LL * 32) {
  int64_t b = (n + block - 1) / block;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return static_cast<unsigned>(b);
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace graft::kernels::cuda
