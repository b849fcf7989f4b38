// CUDA runtime pieces of the foundation: the caching allocator over
// cudaMalloc, copies, and the Philox fill (GPU against its CPU twin).
// Skips where no GPU answers; runs for real on the GPU machine.
#include <cuda_runtime.h>

#include <cmath>

#include "engine/core/cuda_runtime.h"
#include "engine/core/rng.h"
#include "engine/core/tensor.h"
#include "gtest/gtest.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/random.h"

namespace graft {
namespace {

#define REQUIRE_GPU()                                                                         \
  do {                                                                                        \
    if (!cuda_available()) GTEST_SKIP() << "no usable GPU: " << cuda_unavailable_reason(); \
  } while (0)

TEST(CudaRuntime, TensorRoundTripThroughTheDevice) {
  REQUIRE_GPU();
  Generator gen(5);
  Tensor x = Tensor::rand({3, 5, 7, 9}, gen).to_format(MemoryFormat::channels_last);
  Tensor d = x.to(Device::cuda());
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.to(Device::cpu()).to_vector(), x.to_vector());
  // Layout conversion across devices stages through the host and keeps values.
  Tensor c = Tensor::empty({3, 5, 7, 9}, DType::f32, Device::cuda());
  c.copy_(x);
  EXPECT_EQ(c.to_vector(), x.to_vector());
}

TEST(CudaRuntime, CachingAllocatorReusesDeviceBlocks) {
  REQUIRE_GPU();
  auto& alloc = cuda::caching_allocator(0);
  const auto before = alloc.stats();
  void* data;
  {
    Tensor t = Tensor::empty({1 << 20}, DType::f32, Device::cuda());
    data = t.raw_data();
  }
  Tensor u = Tensor::empty({1 << 20}, DType::f32, Device::cuda());
  EXPECT_EQ(u.raw_data(), data);
  EXPECT_GT(alloc.stats().cache_hits, before.cache_hits);
}

TEST(CudaRuntime, OutOfMemoryIsAClearError) {
  REQUIRE_GPU();
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  try {
    Tensor::empty({static_cast<int64_t>(total_b / 2)}, DType::f32, Device::cuda());  // 2x the card
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
  }
}

TEST(CudaRuntime, PhiloxFillMatchesTheCpuTwin) {
  REQUIRE_GPU();
  for (int64_t n : {1, 3, 4, 1001, 1 << 20}) {
    const kernels::cpu::RandomParams p{1234, 77};
    std::vector<float> cpu_u(n), cpu_n(n), gpu_u(n), gpu_n(n);
    kernels::cpu::fill_uniform(cpu_u.data(), n, -2.f, 3.f, p);
    kernels::cpu::fill_normal(cpu_n.data(), n, 0.5f, 2.f, p);
    float* d = nullptr;
    ASSERT_EQ(cudaMalloc(&d, n * sizeof(float)), cudaSuccess);
    cudaMemset(d, 0xff, n * sizeof(float));  // NaN poison: unwritten elements fail
    kernels::cuda::fill_uniform(d, n, -2.f, 3.f, p, nullptr);
    cudaMemcpy(gpu_u.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaMemset(d, 0xff, n * sizeof(float));
    kernels::cuda::fill_normal(d, n, 0.5f, 2.f, p, nullptr);
    cudaMemcpy(gpu_n.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(d);
    EXPECT_EQ(gpu_u, cpu_u) << "n=" << n;  // integer arithmetic and one multiply: bit-identical
    for (int64_t i = 0; i < n; ++i)        // log/sqrt/cos may differ in the last ulps
      ASSERT_NEAR(gpu_n[i], cpu_n[i], 1e-5f * (1.f + std::fabs(cpu_n[i]))) << "n=" << n << " i=" << i;
  }
}

}  // namespace
}  // namespace graft
