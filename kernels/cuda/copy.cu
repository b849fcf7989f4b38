// Strided copy with conversion, and fill (kernels/cuda/copy.h). Simple on
// purpose: one element per thread per grid-stride step, offsets from the flat
// index (as the elementwise strided path); a dense copy of one dtype is a
// cudaMemcpyAsync. The conversions are the engine's copy_cpu, expression for
// expression (engine/core/tensor.cpp: load_as_double / store_from_double).
#include "kernels/cuda/copy.h"

#include <string>

#include "kernels/cpu/elementwise.h"  // order_dims_by_stride (header-only)
#include "kernels/cuda/ew_common.cuh"

namespace graft::kernels::cuda {

namespace {

using ew::kThreads;

__device__ __forceinline__ double load_as_double(const char* base, ElemType t, int64_t i) {
  switch (t) {
    case ElemType::f32: return reinterpret_cast<const float*>(base)[i];
    case ElemType::f16: return __half2float(__ushort_as_half(reinterpret_cast<const unsigned short*>(base)[i]));
    case ElemType::bf16:
      return __uint_as_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(base)[i]) << 16);
    case ElemType::i32: return reinterpret_cast<const int32_t*>(base)[i];
    case ElemType::i64: return static_cast<double>(reinterpret_cast<const int64_t*>(base)[i]);
    case ElemType::u8: return reinterpret_cast<const uint8_t*>(base)[i];
    case ElemType::boolean: return reinterpret_cast<const uint8_t*>(base)[i] != 0;
  }
  return 0;
}

// The engine's float_to_bf16 (engine/core/dtype.h): round to nearest even, NaN kept quiet NaN.
__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE half, round to nearest even; a NaN becomes sign | 0x7e00 as the engine's float_to_half.
__device__ __forceinline__ uint16_t float_to_half_bits(float f) {
  if (isnan(f)) return static_cast<uint16_t>(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7e00u);
  return __half_as_ushort(__float2half_rn(f));
}

__device__ __forceinline__ void store_from_double(char* base, ElemType t, int64_t i, double v) {
  switch (t) {
    case ElemType::f32: reinterpret_cast<float*>(base)[i] = static_cast<float>(v); break;
    case ElemType::f16: reinterpret_cast<uint16_t*>(base)[i] = float_to_half_bits(static_cast<float>(v)); break;
    case ElemType::bf16: reinterpret_cast<uint16_t*>(base)[i] = float_to_bf16_bits(static_cast<float>(v)); break;
    case ElemType::i32: reinterpret_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); break;
    case ElemType::i64: reinterpret_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
    case ElemType::u8: reinterpret_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); break;
    case ElemType::boolean: reinterpret_cast<uint8_t*>(base)[i] = v != 0.0; break;
  }
}

// Two dtypes: the type switches are uniform across the grid (no divergence).
__global__ void convert_kernel(ew::Index<2> ix, int64_t n, ElemType dt, char* dst, ElemType st, const char* src) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[2];
    ew::index_offsets(ix, i, off);
    store_from_double(dst, dt, off[0], load_as_double(src, st, off[1]));
  }
}

// One dtype: the element's bytes, as a word of its size.
template <typename W>
__global__ void copy_kernel(ew::Index<2> ix, int64_t n, W* dst, const W* src) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[2];
    ew::index_offsets(ix, i, off);
    dst[off[0]] = src[off[1]];
  }
}

template <typename W>
__global__ void fill_kernel(ew::Index<1> ix, int64_t n, W* dst, W value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[1];
    ew::index_offsets(ix, i, off);
    dst[off[0]] = value;
  }
}

void check_type(const char* fn, const char* name, ElemType t) {
  if (elem_type_size(t) == 0)
    ew::bad_argument(fn, std::string("argument '") + name + "' is not a known ElemType (value " +
                             std::to_string(static_cast<int>(t)) + ")");
}

}  // namespace

const char* elem_type_name(ElemType t) {
  switch (t) {
    case ElemType::f32: return "f32";
    case ElemType::f16: return "f16";
    case ElemType::bf16: return "bf16";
    case ElemType::i32: return "i32";
    case ElemType::i64: return "i64";
    case ElemType::u8: return "u8";
    case ElemType::boolean: return "bool";
  }
  return "?";
}

size_t elem_type_size(ElemType t) {
  switch (t) {
    case ElemType::f32: return 4;
    case ElemType::f16: return 2;
    case ElemType::bf16: return 2;
    case ElemType::i32: return 4;
    case ElemType::i64: return 8;
    case ElemType::u8: return 1;
    case ElemType::boolean: return 1;
  }
  return 0;
}

void strided_copy(StridedIter<2> it, ElemType dst_t, void* dst, ElemType src_t, const void* src, cudaStream_t stream) {
  constexpr const char* fn = "strided_copy";
  check_type(fn, "dst_t", dst_t);
  check_type(fn, "src_t", src_t);
  const int64_t n = ew::check_iter(fn, it);
  if (n == 0) return;
  ew::check_ptr(fn, "dst", dst);
  ew::check_ptr(fn, "src", src);
  cpu::order_dims_by_stride(it, 0);  // the writes walk the destination's memory in order
  it.coalesce();
  const unsigned grid = grid_for(n, kThreads);
  if (dst_t != src_t) {
    convert_kernel<<<grid, kThreads, 0, stream>>>(ew::make_index(it), n, dst_t, static_cast<char*>(dst), src_t,
                                                  static_cast<const char*>(src));
    GRAFT_KERNEL_LAUNCH_CHECK();
    return;
  }
  const size_t es = elem_type_size(dst_t);
  if (it.ndim == 1 && it.stride[0][0] == 1 && it.stride[1][0] == 1) {
    if (dst != src)
      GRAFT_KERNEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * es, cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const ew::Index<2> ix = ew::make_index(it);
  switch (es) {
    case 1: copy_kernel<uint8_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src)); break;
    case 2: copy_kernel<uint16_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src)); break;
    case 4: copy_kernel<uint32_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src)); break;
    default: copy_kernel<uint64_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src)); break;
  }
  GRAFT_KERNEL_LAUNCH_CHECK();
}

void strided_fill(StridedIter<1> it, ElemType t, void* dst, uint64_t value_bits, cudaStream_t stream) {
  constexpr const char* fn = "strided_fill";
  check_type(fn, "t", t);
  const int64_t n = ew::check_iter(fn, it);
  if (n == 0) return;
  ew::check_ptr(fn, "dst", dst);
  cpu::order_dims_by_stride(it, 0);
  it.coalesce();
  const unsigned grid = grid_for(n, kThreads);
  const ew::Index<1> ix = ew::make_index(it);
  switch (elem_type_size(t)) {
    case 1: fill_kernel<uint8_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint8_t*>(dst), static_cast<uint8_t>(value_bits)); break;
    case 2: fill_kernel<uint16_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint16_t*>(dst), static_cast<uint16_t>(value_bits)); break;
    case 4: fill_kernel<uint32_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint32_t*>(dst), static_cast<uint32_t>(value_bits)); break;
    default: fill_kernel<uint64_t><<<grid, kThreads, 0, stream>>>(ix, n, static_cast<uint64_t*>(dst), value_bits); break;
  }
  GRAFT_KERNEL_LAUNCH_CHECK();
}

}  // namespace graft::kernels::cuda
