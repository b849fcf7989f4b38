// Row access shared by the row-wise kernels (softmax, cross-entropy, layer
// norm, batch norm): packed loads/stores of kVec elements converted to f32,
// the register-row layout of the warp-per-row kernels, the block-stride row
// loop of the block-per-row kernels, and online-softmax merging. Included
// only by .cu files.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "kernels/cuda/common.cuh"

namespace graft::kernels::cuda {

// kVec elements of T loaded / stored as one access (16 bytes at most).
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

template <int kVec, typename T>
__device__ __forceinline__ void load_pack(const T* p, float* out) {
  const Pack<T, kVec> pk = *reinterpret_cast<const Pack<T, kVec>*>(p);
#pragma unroll
  for (int i = 0; i < kVec; ++i) out[i] = to_f32(pk.v[i]);
}
template <int kVec, typename T>
__device__ __forceinline__ void store_pack(T* p, const float* in) {
  Pack<T, kVec> pk;
#pragma unroll
  for (int i = 0; i < kVec; ++i) pk.v[i] = from_f32<T>(in[i]);
  *reinterpret_cast<Pack<T, kVec>*>(p) = pk;
}

// True when p may be read in packs of `bytes` bytes.
inline bool aligned_to(const void* p, size_t bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

// Packs of kVec are allowed over rows of `len` elements when every pointer is
// aligned to the pack and every row starts on a pack boundary.
template <typename T>
inline bool packs_fit(int kVec, int64_t len, std::initializer_list<const void*> ptrs) {
  if (kVec <= 1) return true;
  if (len % kVec != 0) return false;
  for (const void* p : ptrs)
    if (p && !aligned_to(p, sizeof(T) * kVec)) return false;
  return true;
}

// Most elements per pack for T: 16 bytes.
template <typename T>
constexpr int max_pack() {
  return static_cast<int>(16 / sizeof(T));
}
constexpr int cmin(int a, int b) { return a < b ? a : b; }

// ---- warp per row: a row of len <= 32 * kItems in registers ------------------------------
// Lane `lane` holds elements (k * 32 + lane) * kVec + i for k < kItems / kVec,
// i < kVec, at v[k * kVec + i]: each step of k is one coalesced warp access.
template <int kItems, int kVec>
__device__ __forceinline__ int64_t warp_elem(int k, int lane) {
  return (static_cast<int64_t>(k) * 32 + lane) * kVec;
}

template <int kItems, int kVec, typename T>
__device__ __forceinline__ void warp_load_row(const T* row, int64_t len, int lane, float (&v)[kItems], float fill) {
#pragma unroll
  for (int k = 0; k < kItems / kVec; ++k) {
    const int64_t j = warp_elem<kItems, kVec>(k, lane);
    if (j < len) {
      load_pack<kVec>(row + j, &v[k * kVec]);
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) v[k * kVec + i] = fill;
    }
  }
}
template <int kItems, int kVec, typename T>
__device__ __forceinline__ void warp_store_row(T* row, int64_t len, int lane, const float (&v)[kItems]) {
#pragma unroll
  for (int k = 0; k < kItems / kVec; ++k) {
    const int64_t j = warp_elem<kItems, kVec>(k, lane);
    if (j < len) store_pack<kVec>(row + j, &v[k * kVec]);
  }
}

// Elements per lane for rows of len <= 1024: the next power of two >= len / 32.
inline int warp_items_for(int64_t len) {
  int items = 1;
  while (items * 32 < len) items *= 2;
  return items;
}

// Runs the body with K the compile-time constant equal to `items` (a power of two <= 32).
#define GRAFT_SWITCH_WARP_ITEMS(items, K, ...)                      \
  switch (items) {                                                 \
    case 1: { constexpr int K = 1; __VA_ARGS__; } break;           \
    case 2: { constexpr int K = 2; __VA_ARGS__; } break;           \
    case 4: { constexpr int K = 4; __VA_ARGS__; } break;           \
    case 8: { constexpr int K = 8; __VA_ARGS__; } break;           \
    case 16: { constexpr int K = 16; __VA_ARGS__; } break;         \
    default: { constexpr int K = 32; __VA_ARGS__; } break;         \
  }

// ---- online softmax statistics -----------------------------------------------------------
// (m, s): running max and sum of exp(x - m). Empty is (-inf, 0).
__device__ __forceinline__ void online_add(float& m, float& s, float v) {
  if (v > m) {
    s = s * expf(m - v) + 1.0f;  // m = -inf: 0 * 0 + 1
    m = v;
  } else if (v != -INFINITY) {
    s += expf(v - m);  // NaN in v propagates through s
  }
}
__device__ __forceinline__ void online_merge(float& m, float& s, float m2, float s2) {
  const float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;  // both empty
  s = s * expf(m - mn) + s2 * expf(m2 - mn);
  m = mn;
}
// Merges (m, s) over the block; every thread gets the result. `sm` holds 66
// floats of shared memory. blockDim.x a multiple of 32; all threads call it.
__device__ __forceinline__ void block_online_merge(float& m, float& s, float* sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    online_merge(m, s, m2, s2);
  }
  if (lane == 0) sm[warp] = m, sm[32 + warp] = s;
  __syncthreads();
  if (warp == 0) {
    m = lane < nwarps ? sm[lane] : -INFINITY;
    s = lane < nwarps ? sm[32 + lane] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
      online_merge(m, s, m2, s2);
    }
    if (lane == 0) sm[64] = m, sm[65] = s;
  }
  __syncthreads();
  m = sm[64];
  s = sm[65];
}

// Host-side argument checks: std::invalid_argument naming the launcher.
[[noreturn]] inline void bad_argument(const char* launcher, const std::string& what) {
  throw std::invalid_argument(std::string(launcher) + ": " + what);
}
inline void require(bool ok, const char* launcher, const std::string& what) {
  if (!ok) bad_argument(launcher, what);
}

}  // namespace graft::kernels::cuda
