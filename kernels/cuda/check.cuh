// Error checks for kernel launchers. Kernels know no engine types, so they
// throw std::runtime_error with the failing call, file and line; the engine
// turns it into its own error where it calls them.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define GRAFT_KERNEL_CUDA_CHECK(call)                                                                  \
  do {                                                                                                 \
    cudaError_t graft_err_ = (call);                                                                   \
    if (graft_err_ != cudaSuccess)                                                                     \
      throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(graft_err_) + " (" +      \
                               cudaGetErrorString(graft_err_) + ") in " #call " at " __FILE__ ":" +    \
                               std::to_string(__LINE__));                                              \
  } while (0)

// After every launch: catches bad configurations at once.
#define GRAFT_KERNEL_LAUNCH_CHECK() GRAFT_KERNEL_CUDA_CHECK(cudaGetLastError())
