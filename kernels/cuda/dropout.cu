#include "kernels/cuda/dropout.h"

#include <cmath>

#include "kernels/cpu/philox.h"
#include "kernels/cuda/ew_common.cuh"

namespace graft::kernels::cuda {

namespace {

using ew::kThreads;

// Four elements of T in one access (16 bytes for f32, 8 for f16/bf16).
template <typename T>
struct alignas(4 * sizeof(T)) Quad {
  T v[4];
};
struct alignas(4) Bytes4 {
  uint8_t v[4];
};

// The scale the twin uses, computed the same way in float.
float keep_scale(float p_drop) { return p_drop < 1.0f ? 1.0f / (1.0f - p_drop) : 0.0f; }

// One thread per Philox block (four elements), grid-stride over blocks. kVec:
// x, out are 4-element aligned and keep 4-byte aligned, so a whole block of
// four is one access each; the last partial block (n % 4) goes element-wise.
template <typename T, bool kVec>
__global__ void dropout_forward_kernel(const T* x, T* out, uint8_t* keep, int64_t n, float p_drop, float scale,
                                       uint64_t seed, uint64_t offset) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const Philox4 r = philox_block(seed, offset + static_cast<uint64_t>(b));
    const int64_t i0 = b * 4;
    if (kVec && i0 + 4 <= n) {
      const Quad<T> xv = *reinterpret_cast<const Quad<T>*>(x + i0);
      Quad<T> ov;
      Bytes4 kv;
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        const uint8_t k = philox_uniform(r.v[l]) >= p_drop;
        kv.v[l] = k;
        ov.v[l] = from_f32<T>(k ? to_f32<T>(xv.v[l]) * scale : 0.0f);
      }
      *reinterpret_cast<Quad<T>*>(out + i0) = ov;
      *reinterpret_cast<Bytes4*>(keep + i0) = kv;
    } else {
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        const int64_t i = i0 + l;
        if (i >= n) break;
        const uint8_t k = philox_uniform(r.v[l]) >= p_drop;
        keep[i] = k;
        out[i] = from_f32<T>(k ? to_f32<T>(x[i]) * scale : 0.0f);
      }
    }
  }
}

template <typename T, bool kVec>
__global__ void dropout_backward_kernel(const T* g, const uint8_t* keep, T* gi, int64_t n, float scale) {
  const int64_t quads = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < quads; q += stride) {
    const int64_t i0 = q * 4;
    if (kVec && i0 + 4 <= n) {
      const Quad<T> gv = *reinterpret_cast<const Quad<T>*>(g + i0);
      const Bytes4 kv = *reinterpret_cast<const Bytes4*>(keep + i0);
      Quad<T> ov;
#pragma unroll
      for (int l = 0; l < 4; ++l) ov.v[l] = from_f32<T>(kv.v[l] ? to_f32<T>(gv.v[l]) * scale : 0.0f);
      *reinterpret_cast<Quad<T>*>(gi + i0) = ov;
    } else {
      for (int64_t i = i0; i < n && i < i0 + 4; ++i) gi[i] = from_f32<T>(keep[i] ? to_f32<T>(g[i]) * scale : 0.0f);
    }
  }
}

bool aligned_to(const void* p, size_t bytes) { return (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

void check_p_drop(const char* fn, float p_drop) {
  if (!(p_drop >= 0.0f && p_drop <= 1.0f))
    ew::bad_argument(fn, "argument 'p_drop' must be in [0, 1], got " + std::to_string(p_drop));
}

}  // namespace

void dropout_forward(DataType dt, const void* x, void* out, uint8_t* keep, int64_t n, float p_drop,
                     cpu::RandomParams p, cudaStream_t stream) {
  constexpr const char* fn = "dropout_forward";
  ew::check_dtype(fn, dt);
  ew::check_count(fn, "n", n);
  check_p_drop(fn, p_drop);
  if (n == 0) return;
  ew::check_ptr(fn, "x", x);
  ew::check_ptr(fn, "out", out);
  ew::check_ptr(fn, "keep", keep);
  const float scale = keep_scale(p_drop);
  const int64_t blocks = (n + 3) / 4;
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* xt = static_cast<const T*>(x);
    T* ot = static_cast<T*>(out);
    const bool vec = aligned_to(xt, 4 * sizeof(T)) && aligned_to(ot, 4 * sizeof(T)) && aligned_to(keep, 4);
    if (vec)
      dropout_forward_kernel<T, true><<<grid_for(blocks, kThreads), kThreads, 0, stream>>>(xt, ot, keep, n, p_drop,
                                                                                          scale, p.seed, p.offset);
    else
      dropout_forward_kernel<T, false><<<grid_for(blocks, kThreads), kThreads, 0, stream>>>(xt, ot, keep, n, p_drop,
                                                                                           scale, p.seed, p.offset);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

void dropout_backward(DataType dt, const void* grad_out, const uint8_t* keep, void* grad_in, int64_t n, float p_drop,
                      cudaStream_t stream) {
  constexpr const char* fn = "dropout_backward";
  ew::check_dtype(fn, dt);
  ew::check_count(fn, "n", n);
  check_p_drop(fn, p_drop);
  if (n == 0) return;
  ew::check_ptr(fn, "grad_out", grad_out);
  ew::check_ptr(fn, "keep", keep);
  ew::check_ptr(fn, "grad_in", grad_in);
  const float scale = keep_scale(p_drop);
  const int64_t quads = (n + 3) / 4;
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* g = static_cast<const T*>(grad_out);
    T* gi = static_cast<T*>(grad_in);
    const bool vec = aligned_to(g, 4 * sizeof(T)) && aligned_to(gi, 4 * sizeof(T)) && aligned_to(keep, 4);
    if (vec)
      dropout_backward_kernel<T, true><<<grid_for(quads, kThreads), kThreads, 0, stream>>>(g, keep, gi, n, scale);
    else
      dropout_backward_kernel<T, false><<<grid_for(quads, kThreads), kThreads, 0, stream>>>(g, keep, gi, n, scale);
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace graft::kernels::cuda
