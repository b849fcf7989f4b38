#include "kernels/cuda/elementwise.h"

#include <cmath>

#include "kernels/cuda/ew_common.cuh"

namespace graft::kernels::cuda {

namespace {

using cpu::BinaryOp;
using cpu::UnaryOp;
using ew::kThreads;
using ew::Pack;

constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluTanhC = 0.044715f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kTwoOverSqrtPi = 1.1283791670955126f;
constexpr float kInvSqrt2 = 0.70710678118654752f;

// ---- the math: the CPU twin's formulas (kernels/cpu/elementwise.cpp) with CUDA's
// accurate libm in place of its vectorisable approximations -----------------------------

__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }
// Phi(x) = erfc(-x / sqrt 2) / 2: accurate in both tails.
__device__ __forceinline__ float normal_cdf(float x) { return 0.5f * erfcf(-kInvSqrt2 * x); }
// As the twin's vmax / vmin / clamp: a NaN in v passes through.
__device__ __forceinline__ float vmax(float v, float b) { return b > v ? b : v; }
__device__ __forceinline__ float vmin(float v, float b) { return b < v ? b : v; }
__device__ __forceinline__ float clampf(float v, float lo, float hi) { return vmin(vmax(v, lo), hi); }

template <UnaryOp kOp>
__device__ __forceinline__ float unary_f(float v, float a, float b) {
  if constexpr (kOp == UnaryOp::neg) return -v;
  else if constexpr (kOp == UnaryOp::add_scalar) return v + a;
  else if constexpr (kOp == UnaryOp::mul_scalar) return v * a;
  else if constexpr (kOp == UnaryOp::pow_scalar) {
    if (a == 2.f) return v * v;
    if (a == 3.f) return v * v * v;
    if (a == 1.f) return v;
    if (a == 0.f) return 1.f;
    if (a == -1.f) return 1.f / v;
    if (a == 0.5f) return sqrtf(v);
    return powf(v, a);
  } else if constexpr (kOp == UnaryOp::exp) return expf(v);
  else if constexpr (kOp == UnaryOp::log) return logf(v);
  else if constexpr (kOp == UnaryOp::sqrt) return sqrtf(v);
  else if constexpr (kOp == UnaryOp::relu) return vmax(v, 0.f);
  else if constexpr (kOp == UnaryOp::clip) return clampf(v, a, b);
  else if constexpr (kOp == UnaryOp::sigmoid) return sigmoidf(v);
  else if constexpr (kOp == UnaryOp::silu) return v * sigmoidf(v);
  else if constexpr (kOp == UnaryOp::gelu_erf) return v * normal_cdf(v);
  else if constexpr (kOp == UnaryOp::gelu_tanh) {
    const float u = kSqrt2OverPi * (v + kGeluTanhC * v * v * v);
    return v * sigmoidf(2.f * u);
  } else if constexpr (kOp == UnaryOp::hardswish) return v * clampf(v + 3.f, 0.f, 6.f) * (1.f / 6.f);
  else if constexpr (kOp == UnaryOp::hardsigmoid) return clampf(v + 3.f, 0.f, 6.f) * (1.f / 6.f);
  else if constexpr (kOp == UnaryOp::tanh) return tanhf(v);
  else return erff(v);  // UnaryOp::erf
}

// Whether the backward reads a saved tensor (as unary_saves).
template <UnaryOp kOp>
constexpr bool reads_saved() {
  return !(kOp == UnaryOp::neg || kOp == UnaryOp::add_scalar || kOp == UnaryOp::mul_scalar);
}

// gx from s (x or y, as unary_saves says) and g.
template <UnaryOp kOp>
__device__ __forceinline__ float unary_grad(float s, float g, float a, float b) {
  if constexpr (kOp == UnaryOp::neg) return -g;
  else if constexpr (kOp == UnaryOp::add_scalar) return g;
  else if constexpr (kOp == UnaryOp::mul_scalar) return g * a;
  else if constexpr (kOp == UnaryOp::pow_scalar) {  // s = x
    if (a == 2.f) return g * 2.f * s;
    if (a == 1.f) return g;
    if (a == 0.f) return 0.f;
    return g * a * powf(s, a - 1.f);
  } else if constexpr (kOp == UnaryOp::exp) return g * s;  // s = y
  else if constexpr (kOp == UnaryOp::log) return g / s;
  else if constexpr (kOp == UnaryOp::sqrt) return g * 0.5f / s;  // s = y
  else if constexpr (kOp == UnaryOp::relu) return s > 0.f ? g : 0.f;  // s = y
  else if constexpr (kOp == UnaryOp::clip) return (s >= a && s <= b) ? g : 0.f;
  else if constexpr (kOp == UnaryOp::sigmoid) return g * s * (1.f - s);  // s = y
  else if constexpr (kOp == UnaryOp::silu) {
    const float sg = sigmoidf(s);
    return g * sg * (1.f + s * (1.f - sg));
  } else if constexpr (kOp == UnaryOp::gelu_erf) {
    return g * (normal_cdf(s) + s * kInvSqrt2Pi * expf(-0.5f * s * s));
  } else if constexpr (kOp == UnaryOp::gelu_tanh) {
    const float v2 = s * s;
    const float u = kSqrt2OverPi * (s + kGeluTanhC * v2 * s);
    const float du = kSqrt2OverPi * (1.f + 3.f * kGeluTanhC * v2);
    const float sg = sigmoidf(2.f * u);
    return g * (sg + 2.f * s * sg * (1.f - sg) * du);
  } else if constexpr (kOp == UnaryOp::hardswish) {
    const float d = s < -3.f ? 0.f : (s <= 3.f ? s * (1.f / 3.f) + 0.5f : 1.f);
    return g * d;
  } else if constexpr (kOp == UnaryOp::hardsigmoid) return (s > -3.f && s < 3.f) ? g * (1.f / 6.f) : 0.f;
  else if constexpr (kOp == UnaryOp::tanh) return g * (1.f - s * s);  // s = y
  else return g * kTwoOverSqrtPi * expf(-s * s);  // UnaryOp::erf
}

// ---- unary kernels: grid-stride, 16-byte packs over [0, n / V * V) when kVec, then
// a scalar tail (or the whole range) -----------------------------------------------------

template <typename T, UnaryOp kOp, bool kVec>
__global__ void unary_forward_kernel(int64_t n, const T* x, T* y, float a, float b) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if constexpr (kVec) {
    constexpr int V = Pack<T>::kN;
    const int64_t nv = n / V;
    for (int64_t i = t; i < nv; i += stride) {
      Pack<T> p = ew::load_pack(x + i * V);
#pragma unroll
      for (int j = 0; j < V; ++j) p.v[j] = from_f32<T>(unary_f<kOp>(to_f32<T>(p.v[j]), a, b));
      ew::store_pack(y + i * V, p);
    }
    tail = nv * V;
  }
  for (int64_t i = tail + t; i < n; i += stride) y[i] = from_f32<T>(unary_f<kOp>(to_f32<T>(x[i]), a, b));
}

template <typename T, UnaryOp kOp, bool kVec>
__global__ void unary_backward_kernel(int64_t n, const T* s, const T* gy, T* gx, float a, float b) {
  constexpr bool kS = reads_saved<kOp>();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if constexpr (kVec) {
    constexpr int V = Pack<T>::kN;
    const int64_t nv = n / V;
    for (int64_t i = t; i < nv; i += stride) {
      Pack<T> g = ew::load_pack(gy + i * V);
      Pack<T> sv;
      if constexpr (kS) sv = ew::load_pack(s + i * V);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float sj = kS ? to_f32<T>(sv.v[j]) : 0.f;
        g.v[j] = from_f32<T>(unary_grad<kOp>(sj, to_f32<T>(g.v[j]), a, b));
      }
      ew::store_pack(gx + i * V, g);
    }
    tail = nv * V;
  }
  for (int64_t i = tail + t; i < n; i += stride) {
    const float si = kS ? to_f32<T>(s[i]) : 0.f;
    gx[i] = from_f32<T>(unary_grad<kOp>(si, to_f32<T>(gy[i]), a, b));
  }
}

template <typename T, UnaryOp kOp>
void launch_unary_forward(const cpu::UnaryParams& p, int64_t n, const void* xv, void* yv, cudaStream_t stream) {
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  constexpr int V = Pack<T>::kN;
  if (ew::all_aligned16(x, y) && n >= V) {
    unary_forward_kernel<T, kOp, true><<<grid_for(n / V, kThreads), kThreads, 0, stream>>>(n, x, y, p.alpha, p.beta);
  } else {
    unary_forward_kernel<T, kOp, false><<<grid_for(n, kThreads), kThreads, 0, stream>>>(n, x, y, p.alpha, p.beta);
  }
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, UnaryOp kOp>
void launch_unary_backward(const cpu::UnaryParams& p, int64_t n, const void* sv, const void* gyv, void* gxv,
                           cudaStream_t stream) {
  const T* s = reads_saved<kOp>() ? static_cast<const T*>(sv) : nullptr;
  const T* gy = static_cast<const T*>(gyv);
  T* gx = static_cast<T*>(gxv);
  constexpr int V = Pack<T>::kN;
  const bool aligned = ew::all_aligned16(gy, gx) && (!reads_saved<kOp>() || aligned16(s));
  if (aligned && n >= V) {
    unary_backward_kernel<T, kOp, true>
        <<<grid_for(n / V, kThreads), kThreads, 0, stream>>>(n, s, gy, gx, p.alpha, p.beta);
  } else {
    unary_backward_kernel<T, kOp, false><<<grid_for(n, kThreads), kThreads, 0, stream>>>(n, s, gy, gx, p.alpha, p.beta);
  }
  GRAFT_KERNEL_LAUNCH_CHECK();
}

// Calls f(std::integral_constant<UnaryOp, op>) for the run-time op.
template <class F>
void dispatch_unary(const char* fn, UnaryOp op, F&& f) {
#define GRAFT_UNARY_CASE(name) \
  case UnaryOp::name: return f(std::integral_constant<UnaryOp, UnaryOp::name>{});
  switch (op) {
    GRAFT_UNARY_CASE(neg)
    GRAFT_UNARY_CASE(add_scalar)
    GRAFT_UNARY_CASE(mul_scalar)
    GRAFT_UNARY_CASE(pow_scalar)
    GRAFT_UNARY_CASE(exp)
    GRAFT_UNARY_CASE(log)
    GRAFT_UNARY_CASE(sqrt)
    GRAFT_UNARY_CASE(relu)
    GRAFT_UNARY_CASE(clip)
    GRAFT_UNARY_CASE(sigmoid)
    GRAFT_UNARY_CASE(silu)
    GRAFT_UNARY_CASE(gelu_erf)
    GRAFT_UNARY_CASE(gelu_tanh)
    GRAFT_UNARY_CASE(hardswish)
    GRAFT_UNARY_CASE(hardsigmoid)
    GRAFT_UNARY_CASE(tanh)
    GRAFT_UNARY_CASE(erf)
  }
#undef GRAFT_UNARY_CASE
  ew::bad_argument(fn, "argument 'p.op' is not a known UnaryOp (value " + std::to_string(static_cast<int>(op)) + ")");
}

void check_unary_op(const char* fn, UnaryOp op) {
  dispatch_unary(fn, op, [](auto) {});
}

// ---- binary ops ----------------------------------------------------------------------------

struct OpAdd {
  static __device__ __forceinline__ float f(float x, float y) { return x + y; }
};
struct OpSub {
  static __device__ __forceinline__ float f(float x, float y) { return x - y; }
};
struct OpMul {
  static __device__ __forceinline__ float f(float x, float y) { return x * y; }
};
struct OpDiv {
  static __device__ __forceinline__ float f(float x, float y) { return x / y; }
};
struct OpPow {
  static __device__ __forceinline__ float f(float x, float y) { return powf(x, y); }
};

// Flat: out[i] = F(a[i*sa], b[i*sb]) with sa, sb each 0 or 1 (kMode 0: both 1;
// 1: b is one scalar; 2: a is one scalar).
template <typename T, class F, int kMode, bool kVec>
__global__ void binary_flat_kernel(int64_t n, T* out, const T* a, const T* b) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float as = kMode == 2 ? to_f32<T>(*a) : 0.f;
  const float bs = kMode == 1 ? to_f32<T>(*b) : 0.f;
  int64_t tail = 0;
  if constexpr (kVec) {
    constexpr int V = Pack<T>::kN;
    const int64_t nv = n / V;
    for (int64_t i = t; i < nv; i += stride) {
      Pack<T> pa, pb, po;
      if constexpr (kMode != 2) pa = ew::load_pack(a + i * V);
      if constexpr (kMode != 1) pb = ew::load_pack(b + i * V);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float x = kMode == 2 ? as : to_f32<T>(pa.v[j]);
        const float y = kMode == 1 ? bs : to_f32<T>(pb.v[j]);
        po.v[j] = from_f32<T>(F::f(x, y));
      }
      ew::store_pack(out + i * V, po);
    }
    tail = nv * V;
  }
  for (int64_t i = tail + t; i < n; i += stride) {
    const float x = kMode == 2 ? as : to_f32<T>(a[i]);
    const float y = kMode == 1 ? bs : to_f32<T>(b[i]);
    out[i] = from_f32<T>(F::f(x, y));
  }
}

// Row broadcast over n = M * K elements: out[i] = F(full[i], row[i % K]) (kRowIsB)
// or F(row[i % K], full[i]). Packs need K % V == 0 so a pack never straddles rows.
template <typename T, class F, bool kRowIsB, bool kVec>
__global__ void binary_row_kernel(int64_t n, int64_t K, T* out, const T* full, const T* row) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVec) {
    constexpr int V = Pack<T>::kN;
    const int64_t nv = n / V;  // exact: K % V == 0
    for (int64_t i = t; i < nv; i += stride) {
      const Pack<T> pf = ew::load_pack(full + i * V);
      const Pack<T> pr = ew::load_pack(row + (i * V) % K);
      Pack<T> po;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float f = to_f32<T>(pf.v[j]), r = to_f32<T>(pr.v[j]);
        po.v[j] = from_f32<T>(kRowIsB ? F::f(f, r) : F::f(r, f));
      }
      ew::store_pack(out + i * V, po);
    }
  } else {
    for (int64_t i = t; i < n; i += stride) {
      const float f = to_f32<T>(full[i]), r = to_f32<T>(row[i % K]);
      out[i] = from_f32<T>(kRowIsB ? F::f(f, r) : F::f(r, f));
    }
  }
}

// Any strides: one element per thread per step, offsets from the flat index.
template <typename T, class F>
__global__ void binary_strided_kernel(ew::Index<3> ix, int64_t n, T* out, const T* a, const T* b) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[3];
    ew::index_offsets(ix, i, off);
    out[off[0]] = from_f32<T>(F::f(to_f32<T>(a[off[1]]), to_f32<T>(b[off[2]])));
  }
}

template <typename T, class F, int kMode>
void launch_flat(int64_t n, T* out, const T* a, const T* b, cudaStream_t stream) {
  constexpr int V = Pack<T>::kN;
  const bool vec = n >= V && aligned16(out) && (kMode == 2 || aligned16(a)) && (kMode == 1 || aligned16(b));
  if (vec) binary_flat_kernel<T, F, kMode, true><<<grid_for(n / V, kThreads), kThreads, 0, stream>>>(n, out, a, b);
  else binary_flat_kernel<T, F, kMode, false><<<grid_for(n, kThreads), kThreads, 0, stream>>>(n, out, a, b);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, class F, bool kRowIsB>
void launch_row(int64_t n, int64_t K, T* out, const T* full, const T* row, cudaStream_t stream) {
  constexpr int V = Pack<T>::kN;
  if (K % V == 0 && ew::all_aligned16(out, full, row))
    binary_row_kernel<T, F, kRowIsB, true><<<grid_for(n / V, kThreads), kThreads, 0, stream>>>(n, K, out, full, row);
  else
    binary_row_kernel<T, F, kRowIsB, false><<<grid_for(n, kThreads), kThreads, 0, stream>>>(n, K, out, full, row);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

// Picks the path for a binary op over an ordered, coalesced iterator.
template <typename T, class F>
void run_binary(const StridedIter<3>& it, void* outv, const void* av, const void* bv, cudaStream_t stream) {
  T* out = static_cast<T*>(outv);
  const T* a = static_cast<const T*>(av);
  const T* b = static_cast<const T*>(bv);
  const int64_t n = it.numel();
  if (it.ndim == 1 && it.stride[0][0] == 1) {
    const int64_t sa = it.stride[1][0], sb = it.stride[2][0];
    if (sa == 1 && sb == 1) return launch_flat<T, F, 0>(n, out, a, b, stream);
    if (sa == 1 && sb == 0) return launch_flat<T, F, 1>(n, out, a, b, stream);
    if (sa == 0 && sb == 1) return launch_flat<T, F, 2>(n, out, a, b, stream);
  }
  if (it.ndim == 2 && it.stride[0][1] == 1 && it.stride[0][0] == it.size[1]) {
    const int64_t K = it.size[1];
    const bool a_full = it.stride[1][0] == K && it.stride[1][1] == 1;
    const bool b_full = it.stride[2][0] == K && it.stride[2][1] == 1;
    const bool a_row = it.stride[1][0] == 0 && it.stride[1][1] == 1;
    const bool b_row = it.stride[2][0] == 0 && it.stride[2][1] == 1;
    if (a_full && b_row) return launch_row<T, F, true>(n, K, out, a, b, stream);
    if (a_row && b_full) return launch_row<T, F, false>(n, K, out, b, a, stream);
  }
  binary_strided_kernel<T, F><<<grid_for(n, kThreads), kThreads, 0, stream>>>(ew::make_index(it), n, out, a, b);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <class F>
void dispatch_binary(const char* fn, BinaryOp op, F&& f) {
  switch (op) {
    case BinaryOp::add: return f(OpAdd{});
    case BinaryOp::sub: return f(OpSub{});
    case BinaryOp::mul: return f(OpMul{});
    case BinaryOp::div: return f(OpDiv{});
  }
  ew::bad_argument(fn, "argument 'op' is not a known BinaryOp (value " + std::to_string(static_cast<int>(op)) + ")");
}

// ---- three-input strided kernels (pow backward, where) -----------------------------------------

struct PowGradBase {  // (g, a, b) -> g * b * a^(b-1), 0 where b == 0
  static __device__ __forceinline__ float f(float g, float x, float e) {
    return e == 0.f ? 0.f : g * e * powf(x, e - 1.f);
  }
};
struct PowGradExponent {  // (g, a, y) -> g * y * ln a where a > 0, else 0
  static __device__ __forceinline__ float f(float g, float x, float y) { return x > 0.f ? g * y * logf(x) : 0.f; }
};
struct Select {  // (cond, a, b) -> cond ? a : b
  static __device__ __forceinline__ float f(float c, float x, float y) { return c != 0.f ? x : y; }
};

template <typename T, typename P1, class F>
__global__ void ternary_strided_kernel(ew::Index<4> ix, int64_t n, T* out, const P1* p1, const T* p2, const T* p3) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[4];
    ew::index_offsets(ix, i, off);
    out[off[0]] = from_f32<T>(F::f(ew::load_f32(p1 + off[1]), to_f32<T>(p2[off[2]]), to_f32<T>(p3[off[3]])));
  }
}

// Checks the arguments of a three-input op; returns numel (0: nothing to do).
int64_t check_ternary(const char* fn, DataType dt, const StridedIter<4>& it, const void* const ptrs[4],
                      const char* const names[4]) {
  ew::check_dtype(fn, dt);
  const int64_t n = ew::check_iter(fn, it);
  if (n == 0) return 0;
  for (int k = 0; k < 4; ++k) ew::check_ptr(fn, names[k], ptrs[k]);
  return n;
}

// Orders by the output's strides, coalesces and launches a three-input op.
template <typename T, typename P1, class F>
void launch_ternary(StridedIter<4> it, int64_t n, void* out, const void* p1, const void* p2, const void* p3,
                    cudaStream_t stream) {
  cpu::order_dims_by_stride(it, 0);
  it.coalesce();
  ternary_strided_kernel<T, P1, F><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
      ew::make_index(it), n, static_cast<T*>(out), static_cast<const P1*>(p1), static_cast<const T*>(p2),
      static_cast<const T*>(p3));
  GRAFT_KERNEL_LAUNCH_CHECK();
}

}  // namespace

// ---- launchers ----------------------------------------------------------------------------------

void unary_forward(const cpu::UnaryParams& p, DataType dt, int64_t n, const void* x, void* y, cudaStream_t stream) {
  constexpr const char* fn = "unary_forward";
  ew::check_dtype(fn, dt);
  check_unary_op(fn, p.op);
  ew::check_count(fn, "n", n);
  if (n == 0) return;
  ew::check_ptr(fn, "x", x);
  ew::check_ptr(fn, "y", y);
  GRAFT_DISPATCH_FLOAT(dt, T, {
    dispatch_unary(fn, p.op, [&](auto op) { launch_unary_forward<T, decltype(op)::value>(p, n, x, y, stream); });
  });
}

void unary_backward(const cpu::UnaryParams& p, DataType dt, int64_t n, const void* saved, const void* gy, void* gx,
                    cudaStream_t stream) {
  constexpr const char* fn = "unary_backward";
  ew::check_dtype(fn, dt);
  check_unary_op(fn, p.op);
  ew::check_count(fn, "n", n);
  if (n == 0) return;
  if (unary_saves(p.op) != cpu::UnarySaved::none) ew::check_ptr(fn, "saved", saved);
  ew::check_ptr(fn, "gy", gy);
  ew::check_ptr(fn, "gx", gx);
  GRAFT_DISPATCH_FLOAT(dt, T, {
    dispatch_unary(fn, p.op,
                   [&](auto op) { launch_unary_backward<T, decltype(op)::value>(p, n, saved, gy, gx, stream); });
  });
}

void binary_forward(cpu::BinaryOp op, DataType dt, StridedIter<3> it, void* out, const void* a, const void* b,
                    cudaStream_t stream) {
  constexpr const char* fn = "binary_forward";
  ew::check_dtype(fn, dt);
  dispatch_binary(fn, op, [](auto) {});
  const int64_t n = ew::check_iter(fn, it);
  if (n == 0) return;
  ew::check_ptr(fn, "out", out);
  ew::check_ptr(fn, "a", a);
  ew::check_ptr(fn, "b", b);
  cpu::order_dims_by_stride(it, 0);
  it.coalesce();
  GRAFT_DISPATCH_FLOAT(dt, T, {
    dispatch_binary(fn, op, [&](auto f) { run_binary<T, decltype(f)>(it, out, a, b, stream); });
  });
}

void binary_forward_flat(cpu::BinaryOp op, DataType dt, int64_t n, void* out, const void* a, const void* b,
                         cudaStream_t stream) {
  constexpr const char* fn = "binary_forward_flat";
  ew::check_dtype(fn, dt);
  dispatch_binary(fn, op, [](auto) {});
  ew::check_count(fn, "n", n);
  if (n == 0) return;
  ew::check_ptr(fn, "out", out);
  ew::check_ptr(fn, "a", a);
  ew::check_ptr(fn, "b", b);
  GRAFT_DISPATCH_FLOAT(dt, T, {
    dispatch_binary(fn, op, [&](auto f) {
      launch_flat<T, decltype(f), 0>(n, static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b),
                                     stream);
    });
  });
}

void pow_forward(DataType dt, StridedIter<3> it, void* out, const void* a, const void* b, cudaStream_t stream) {
  constexpr const char* fn = "pow_forward";
  ew::check_dtype(fn, dt);
  const int64_t n = ew::check_iter(fn, it);
  if (n == 0) return;
  ew::check_ptr(fn, "out", out);
  ew::check_ptr(fn, "a", a);
  ew::check_ptr(fn, "b", b);
  cpu::order_dims_by_stride(it, 0);
  it.coalesce();
  GRAFT_DISPATCH_FLOAT(dt, T, { run_binary<T, OpPow>(it, out, a, b, stream); });
}

void pow_backward_base(DataType dt, StridedIter<4> it, void* ga, const void* g, const void* a, const void* b,
                       cudaStream_t stream) {
  const void* const ptrs[4] = {ga, g, a, b};
  const char* const names[4] = {"ga", "g", "a", "b"};
  const int64_t n = check_ternary("pow_backward_base", dt, it, ptrs, names);
  if (n == 0) return;
  GRAFT_DISPATCH_FLOAT(dt, T, { launch_ternary<T, T, PowGradBase>(it, n, ga, g, a, b, stream); });
}

void pow_backward_exponent(DataType dt, StridedIter<4> it, void* gb, const void* g, const void* a, const void* y,
                           cudaStream_t stream) {
  const void* const ptrs[4] = {gb, g, a, y};
  const char* const names[4] = {"gb", "g", "a", "y"};
  const int64_t n = check_ternary("pow_backward_exponent", dt, it, ptrs, names);
  if (n == 0) return;
  GRAFT_DISPATCH_FLOAT(dt, T, { launch_ternary<T, T, PowGradExponent>(it, n, gb, g, a, y, stream); });
}

void where_forward(DataType dt, StridedIter<4> it, void* out, const uint8_t* cond, const void* a, const void* b,
                   cudaStream_t stream) {
  const void* const ptrs[4] = {out, cond, a, b};
  const char* const names[4] = {"out", "cond", "a", "b"};
  const int64_t n = check_ternary("where_forward", dt, it, ptrs, names);
  if (n == 0) return;
  GRAFT_DISPATCH_FLOAT(dt, T, { launch_ternary<T, uint8_t, Select>(it, n, out, cond, a, b, stream); });
}

}  // namespace graft::kernels::cuda
