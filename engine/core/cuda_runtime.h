// The engine's thin view of the CUDA runtime: device memory through the
// caching allocator, copies, and a check macro. Compiled in every build; with
// CUDA compiled out every function here throws "CUDA is not compiled in".
#pragma once

#include <cstddef>

#include "engine/core/allocator.h"
#include "engine/core/device.h"

namespace graft::cuda {

void* device_alloc(size_t nbytes, int device);
void device_free(void* p, int device);
CachingAllocator& caching_allocator(int device);

enum class CopyKind { host_to_device, device_to_host, device_to_device };
void copy(void* dst, const void* src, size_t nbytes, CopyKind kind);
void memset_zero(void* p, size_t nbytes);
void synchronize();

}  // namespace graft::cuda

#ifdef GRAFT_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/core/error.h"
// Throws graft::Error naming the failing call, file and line.
#define GRAFT_CUDA_CHECK(call)                                                        \
  do {                                                                                \
    cudaError_t graft_cuda_err_ = (call);                                             \
    if (graft_cuda_err_ != cudaSuccess) {                                             \
      GRAFT_FAIL("CUDA error " << cudaGetErrorName(graft_cuda_err_) << " ("           \
                               << cudaGetErrorString(graft_cuda_err_) << ") in " #call); \
    }                                                                                 \
  } while (0)
#endif
