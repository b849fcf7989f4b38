// The element types the CUDA kernels take, for host-side launcher APIs.
// Plain C++ (no CUDA headers), so engine code and tests can name them.
#pragma once

#include <cstddef>

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

// f32: float; f16: IEEE half (__half); bf16: bfloat16 (__nv_bfloat16). Tensors
// of f16/bf16 are stored as 16-bit words; accumulation is always f32.
enum class DataType : int { f32 = 0, f16 = 1, bf16 = 2 };

inline const char* dtype_name(DataType t) {
  switch (t) {
    case DataType::f32: return "f32";
    case DataType::f16: return "f16";
    case DataType::bf16: return "bf16";
  }
  return "?";
}

inline size_t dtype_size(DataType t) { return t == DataType::f32 ? 4 : 2; }

}  // namespace graft::kernels::cuda
