// Graft's CUDA kernels executed on the host, for machines without a GPU.
//
// The kernel sources (kernels/cuda/*.cu, *.cuh) are compiled as plain C++
// with this header force-included and every `k<<<grid, block, smem,
// stream>>>(args)` rewritten to `k | ::graft::emu::Config(grid, block, smem,
// stream)(args)` (tests/emu/launch_rewrite.cpp). A launch runs its blocks on
// a few host threads (GRAFT_EMU_THREADS, default every core), each block
// wholly on one; the block's threads are cooperative fibers (one stack each),
// so __syncthreads(), warp shuffles, ldmatrix and mma.sync are real
// rendezvous of the threads that take part, with the lane layouts of the PTX
// manual. What it checks beyond the numbers:
//  - launch limits (threads per block, grid, dynamic shared memory against
//    the opt-in attribute and the H100's 227 KB);
//  - a barrier or warp collective that some threads never reach (deadlock);
//  - cp.async and ldmatrix addresses: alignment, the source inside a live
//    device allocation, the destination inside the launch's dynamic shared
//    memory; cp.async copies land only when a cp.async.wait_group lets them
//    (the latest moment the hardware may choose), so a missing wait or
//    barrier reads stale data.
// What it cannot check: timing, the memory model between blocks, register
// and static shared-memory limits.
//
// Device memory is host memory (cudaMalloc is an aligned allocation that the
// emulator tracks); streams and events exist but everything is synchronous.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#ifndef GRAFT_CUDA_EMULATION
#define GRAFT_CUDA_EMULATION 1
#endif

// ---- qualifiers ----------------------------------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __launch_bounds__
#undef __grid_constant__
#undef __forceinline__
#define __global__
#define __device__
#define __host__
#define __constant__
#define __grid_constant__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Shared memory is per block; a block's fibers all run on one host thread.
#define __shared__ static thread_local

namespace graft::emu {

// ---- the executing thread ---------------------------------------------------------------------
struct ThreadState {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
extern thread_local ThreadState* current;

// ---- launches -----------------------------------------------------------------------------------
struct LaunchConfig {
  dim3 grid, block;
  size_t smem = 0;
  cudaStream_t stream = nullptr;
};
// Runs `body` once per thread of the grid; `fn` identifies the kernel (for
// its shared-memory attribute). Returns the launch error (cudaSuccess, or a
// configuration error, as the runtime would); throws std::runtime_error
// where the emulator catches a fault inside the kernel.
cudaError_t launch(const LaunchConfig& cfg, const void* fn, const std::function<void()>& body);

template <class... A>
struct PendingLaunch {
  LaunchConfig cfg;
  std::tuple<A...> args;
};

struct Config {
  LaunchConfig cfg;
  Config(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) : cfg{grid, block, smem, stream} {}
  template <class... A>
  PendingLaunch<std::decay_t<A>...> operator()(A&&... a) const {
    return {cfg, std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
  }
};

template <class... P, class... A>
void operator|(void (*kernel)(P...), PendingLaunch<A...>&& pending) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  // Arguments convert to the parameter types at the launch, as with <<<>>>.
  auto params = std::apply([](auto&&... a) { return std::tuple<std::decay_t<P>...>(a...); }, pending.args);
  launch(pending.cfg, reinterpret_cast<const void*>(kernel), [kernel, &params]() {
    auto copy = params;  // each thread gets its own copy of the parameters
    std::apply(kernel, copy);
  });
}

// The running block's dynamic shared memory (GRAFT_DYNAMIC_SMEM in common.cuh).
unsigned char* dynamic_smem();

// ---- collectives ----------------------------------------------------------------------------------
void sync_threads();
constexpr int kSlotWords = 8;
// One rendezvous of the calling thread's warp: publishes `n` words, waits
// until every lane of the warp has published, and returns the 32 lanes' words.
// `what` names the operation for error messages.
using Slots = uint32_t[32][kSlotWords];
const Slots& warp_exchange(unsigned mask, const char* what, const uint32_t* words, int n);
int lane_id();

// Tensor-core and async-copy instructions (mma.cuh's emulated branch).
void cp_async(void* smem, const void* gmem, int bytes, int src_bytes);
void cp_async_commit();
void cp_async_wait(int pending);
void ldmatrix(uint32_t* r, int count, bool trans, const void* smem_row);
enum class MmaKind { bf16_16816, f16_16816, tf32_1688 };
void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], MmaKind kind);

template <class T>
inline T shuffle(unsigned mask, T v, int src_of_lane(int, int), int arg, int width, const char* what) {
  static_assert(sizeof(T) <= sizeof(uint32_t) * kSlotWords, "shuffled type too large");
  uint32_t w[kSlotWords] = {};
  std::memcpy(w, &v, sizeof(T));
  const Slots& s = warp_exchange(mask, what, w, (int(sizeof(T)) + 3) / 4);
  const int lane = lane_id();
  const int base = lane - lane % width;
  int src = src_of_lane(lane % width, arg);
  if (src < 0 || src >= width) src = lane % width;
  T out;
  std::memcpy(&out, s[base + src], sizeof(T));
  return out;
}
inline int shfl_src_xor(int l, int m) { return l ^ m; }
inline int shfl_src_idx(int, int s) { return s; }
inline int shfl_src_down(int l, int d) { return l + d; }
inline int shfl_src_up(int l, int d) { return l - d; }

}  // namespace graft::emu

// ---- built-in variables -----------------------------------------------------------------------
#define threadIdx (::graft::emu::current->thread_idx)
#define blockIdx (::graft::emu::current->block_idx)
#define blockDim (::graft::emu::current->block_dim)
#define gridDim (::graft::emu::current->grid_dim)

// ---- intrinsics ---------------------------------------------------------------------------------
inline void __syncthreads() { ::graft::emu::sync_threads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  const uint32_t none = 0;
  ::graft::emu::warp_exchange(mask, "__syncwarp", &none, 0);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::graft::emu::shuffle(mask, v, ::graft::emu::shfl_src_xor, lane_mask, width, "__shfl_xor_sync");
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::graft::emu::shuffle(mask, v, ::graft::emu::shfl_src_idx, src, width, "__shfl_sync");
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::graft::emu::shuffle(mask, v, ::graft::emu::shfl_src_down, int(delta), width, "__shfl_down_sync");
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::graft::emu::shuffle(mask, v, ::graft::emu::shfl_src_up, int(delta), width, "__shfl_up_sync");
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  const uint32_t w = pred ? 1u : 0u;
  const auto& s = ::graft::emu::warp_exchange(mask, "__ballot_sync", &w, 1);
  unsigned r = 0;
  for (int l = 0; l < 32; ++l)
    if (s[l][0]) r |= 1u << l;
  return r & mask;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }

// Blocks run concurrently on host threads: real atomics.
template <class T>
inline T atomic_update(T* p, T (*f)(T, T), T v) {
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  T want = f(old, v);
  while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) want = f(old, v);
  return old;
}
template <class T>
inline T atomicAdd(T* p, T v) {
  return atomic_update<T>(p, [](T a, T b) { return T(a + b); }, v);
}
template <class T>
inline T atomicMax(T* p, T v) {
  return atomic_update<T>(p, [](T a, T b) { return a < b ? b : a; }, v);
}
template <class T>
inline T atomicMin(T* p, T v) {
  return atomic_update<T>(p, [](T a, T b) { return b < a ? b : a; }, v);
}
template <class T>
inline T atomicExch(T* p, T v) {
  return atomic_update<T>(p, [](T, T b) { return b; }, v);
}
template <class T>
inline T atomicCAS(T* p, T expected, T v) {
  __atomic_compare_exchange(p, &expected, &v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return expected;
}

template <class T>
inline T __ldg(const T* p) { return *p; }

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)((unsigned __int128)a * b >> 64);
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }

// cuda_runtime.h declares this overload for nvcc only.
template <class R, class... P>
inline cudaError_t cudaFuncSetAttribute(R (*fn)(P...), cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(fn), attr, value);
}

// The device math library's unqualified names.
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(b) < C(a) ? C(b) : C(a);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(a) < C(b) ? C(b) : C(a);
}
using std::isfinite;
using std::isinf;
using std::isnan;
