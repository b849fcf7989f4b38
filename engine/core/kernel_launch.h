// How engine code calls a CUDA kernel launcher (kernels/cuda/*.h): the
// tensor's device made current, the thread's current stream for it, and the
// launcher's exceptions (std::invalid_argument, std::runtime_error) turned into
// a graft::Error that names the op. Every CUDA branch of core/ and ops/ goes
// through cuda::launch:
//
//   cuda::launch("relu", x.device(), [&](cudaStream_t s) {
//     kernels::cuda::unary_forward(p, cuda::kernel_dtype(x.dtype(), "relu"), n, x.raw_data(), y.raw_data(), s);
//   });
//
// In a build without CUDA, launch() only throws: the lambda is never called,
// so its body (the launcher calls) is never emitted and nothing CUDA links.
#pragma once

#include <exception>

#include "engine/core/cuda_runtime.h"
#include "engine/core/tensor.h"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/dtype.h"

namespace graft::cuda {

// The float kernels' dtype for t (f32, f16, bf16); throws naming `op` for any other.
inline kernels::cuda::DataType kernel_dtype(DType t, const char* op) {
  switch (t) {
    case DType::f32: return kernels::cuda::DataType::f32;
    case DType::f16: return kernels::cuda::DataType::f16;
    case DType::bf16: return kernels::cuda::DataType::bf16;
    default: break;
  }
  GRAFT_FAIL(op << ": dtype " << dtype_name(t) << " has no CUDA float kernel (f32, f16 or bf16)");
}

// The copy kernel's element type (every DType; the same order).
inline kernels::cuda::ElemType elem_type(DType t) {
  switch (t) {
    case DType::f32: return kernels::cuda::ElemType::f32;
    case DType::f16: return kernels::cuda::ElemType::f16;
    case DType::bf16: return kernels::cuda::ElemType::bf16;
    case DType::i32: return kernels::cuda::ElemType::i32;
    case DType::i64: return kernels::cuda::ElemType::i64;
    case DType::u8: return kernels::cuda::ElemType::u8;
    case DType::boolean: return kernels::cuda::ElemType::boolean;
  }
  GRAFT_FAIL("elem_type: unknown dtype " << static_cast<int>(t));
}

#ifdef GRAFT_WITH_CUDA
// Runs f(stream) with `device` current; errors name `op` and the device.
template <class F>
void launch(const char* op, const Device& device, F&& f) {
  GRAFT_CHECK(device.is_cuda(), op << ": internal error: a CUDA kernel launch for a tensor on " << device.str());
  DeviceGuard guard(device.index);
  const cudaStream_t stream = current_stream(device.index).handle();
  try {
    f(stream);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    GRAFT_FAIL(op << " on " << device.str() << ": " << e.what());
  }
}
#else
template <class F>
void launch(const char* op, const Device& device, F&&) {
  GRAFT_FAIL(op << " on " << device.str() << ": CUDA is not compiled into this build of Graft (GRAFT_CUDA=OFF)");
}
#endif

}  // namespace graft::cuda
