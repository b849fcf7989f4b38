// Pieces shared by the elementwise, reduce and dropout kernels: 16-byte packs,
// an N-d strided indexer, and host-side argument checks that throw
// std::invalid_argument naming the launcher. Included only by .cu files.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include "kernels/cpu/strided.h"
#include "kernels/cuda/common.cuh"

namespace graft::kernels::cuda::ew {

constexpr int kThreads = 256;

// ---- 16-byte packs -----------------------------------------------------------------------

template <typename T>
struct alignas(16) Pack {
  static constexpr int kN = 16 / static_cast<int>(sizeof(T));
  T v[kN];
};

template <typename T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T>*>(p);
}
template <typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& v) {
  *reinterpret_cast<Pack<T>*>(p) = v;
}

// Loads one element as f32 (bytes: 0 or 1, for masks and conditions).
template <typename T>
__device__ __forceinline__ float load_f32(const T* p) {
  return to_f32<T>(*p);
}
template <>
__device__ __forceinline__ float load_f32<uint8_t>(const uint8_t* p) {
  return *p != 0 ? 1.f : 0.f;
}

// ---- N-d strided indexing ------------------------------------------------------------------

// Dims stored innermost first, so the device loop walks them with compile-time
// indices (unrolled over kMaxDims with an early break): no local-memory copy.
template <int N>
struct Index {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};
};

template <int N>
Index<N> make_index(const StridedIter<N>& it) {
  Index<N> ix;
  ix.ndim = it.ndim;
  for (int d = 0; d < it.ndim; ++d) {
    const int r = it.ndim - 1 - d;
    ix.size[d] = it.size[r];
    for (int k = 0; k < N; ++k) ix.stride[k][d] = it.stride[k][r];
  }
  return ix;
}

// off[k] = element offset of operand k at the flat row-major index i.
template <int N>
__device__ __forceinline__ void index_offsets(const Index<N>& ix, int64_t i, int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d >= ix.ndim) break;
    const int64_t q = i / ix.size[d];
    const int64_t r = i - q * ix.size[d];
    i = q;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += r * ix.stride[k][d];
  }
}

// ---- host-side argument checks ---------------------------------------------------------------

[[noreturn]] inline void bad_argument(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string("cuda::") + fn + ": " + what);
}

inline void check_dtype(const char* fn, DataType dt) {
  if (dt != DataType::f32 && dt != DataType::f16 && dt != DataType::bf16)
    bad_argument(fn, "argument 'dt' is not f32, f16 or bf16 (value " + std::to_string(static_cast<int>(dt)) + ")");
}

inline void check_count(const char* fn, const char* name, int64_t n) {
  if (n < 0) bad_argument(fn, std::string("argument '") + name + "' is negative (" + std::to_string(n) + ")");
}

// A pointer that data is read from or written to must not be null.
inline void check_ptr(const char* fn, const char* name, const void* p) {
  if (p == nullptr) bad_argument(fn, std::string("argument '") + name + "' is null");
}

// ndim within [0, kMaxDims], sizes >= 0, and no stride-0 dim of size > 1 in
// operand 0 when it is written (that would race). Returns numel.
template <int N>
int64_t check_iter(const char* fn, const StridedIter<N>& it, bool operand0_written = true) {
  if (it.ndim < 0 || it.ndim > kMaxDims)
    bad_argument(fn, "argument 'it': ndim " + std::to_string(it.ndim) + " is outside [0, " +
                         std::to_string(kMaxDims) + "]");
  int64_t n = 1;
  for (int d = 0; d < it.ndim; ++d) {
    if (it.size[d] < 0)
      bad_argument(fn, "argument 'it': size[" + std::to_string(d) + "] is negative (" + std::to_string(it.size[d]) +
                           ")");
    n *= it.size[d];
  }
  for (int d = 0; d < it.ndim && n > 0 && operand0_written; ++d) {
    if (it.size[d] > 1 && it.stride[0][d] == 0)
      bad_argument(fn, "argument 'it': the output has stride 0 along dim " + std::to_string(d) + " of size " +
                           std::to_string(it.size[d]) + " (several elements would write one place)");
  }
  return n;
}

template <typename... P>
bool all_aligned16(const P*... p) {
  return (aligned16(p) && ...);
}

}  // namespace graft::kernels::cuda::ew
