// CUDA runtime pieces of the foundation: the caching allocator over
// cudaMalloc, streams, copies through the pinned staging pool, device checks
// of the ops, and the Philox fill (GPU against its CPU twin). The GPU tests
// skip where no GPU answers and run for real on the GPU machine; the error
// tests run everywhere.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/core/cuda_runtime.h"
#include "engine/core/rng.h"
#include "engine/core/tensor.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
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

// ---- device errors: these run on every machine ---------------------------------

TEST(CudaRuntime, AskingForAMissingDeviceIsAClearError) {
  // No GPU: any CUDA device; with GPUs: one past the last.
  const Device missing = Device::cuda(cuda_available() ? cuda_device_count() : 0);
  try {
    Tensor::empty({4}, DType::f32, missing);
    FAIL() << "expected an error for " << missing.str();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(missing.str()), std::string::npos) << msg;
    if (cuda_available()) EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
    else EXPECT_NE(msg.find("CUDA is unavailable"), std::string::npos) << msg;
  }
  try {
    Tensor::ones({2, 3}).to(missing);
    FAIL() << "expected an error moving a tensor to " << missing.str();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing.str()), std::string::npos) << e.what();
  }
  if (!cuda_available()) {
    EXPECT_THROW(cuda::Stream::create(0), Error);
    EXPECT_THROW(cuda::pinned_alloc(16), Error);
    EXPECT_FALSE(cuda::is_pinned(&missing));
    EXPECT_EQ(parse_device("cuda"), Device::cuda(0));  // parsing never needs the GPU
  }
}

TEST(CudaRuntime, CurrentStreamIsTheDefaultUntilSet) {
  EXPECT_TRUE(cuda::current_stream(0).is_default());
  EXPECT_EQ(cuda::current_stream(0).handle(), nullptr);
  EXPECT_EQ(cuda::current_stream(3).device(), 3);
  {
    cuda::StreamGuard g(cuda::Stream::default_stream(2));  // bookkeeping only: no GPU needed
    EXPECT_TRUE(cuda::current_stream(2).is_default());
  }
  EXPECT_THROW(cuda::current_stream(-1), Error);
}

TEST(CudaRuntime, AsyncCopyOfPageableMemoryIsRefused) {
  std::vector<float> host(16);
  float fake_device[16];
  try {
    cuda::copy_async(fake_device, host.data(), sizeof(fake_device), cuda::CopyKind::host_to_device,
                     cuda::Stream::default_stream(0));
    FAIL() << "expected copy_async to refuse pageable memory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not pinned"), std::string::npos) << e.what();
  }
}

// ---- streams and copies (GPU) ------------------------------------------------------

TEST(CudaRuntime, StreamsOrderWorkAndBecomeCurrent) {
  REQUIRE_GPU();
  cuda::Stream s = cuda::Stream::create(0);
  EXPECT_FALSE(s.is_default());
  EXPECT_NE(s.handle(), nullptr);
  EXPECT_EQ(s.device(), 0);
  {
    cuda::StreamGuard g(s);
    EXPECT_EQ(cuda::current_stream(0), s);
    // A fill on the stream, then a copy on the (same, current) stream.
    const int64_t n = 100003;
    Tensor d = Tensor::empty({n}, DType::f32, Device::cuda());
    const kernels::cpu::RandomParams p{99, 3};
    kernels::cuda::fill_uniform(d.data<float>(), n, -1.f, 1.f, p, s.handle());
    std::vector<float> want(n);
    kernels::cpu::fill_uniform(want.data(), n, -1.f, 1.f, p);
    EXPECT_EQ(d.to(Device::cpu()).to_vector(), want);
    // Layout conversions and zeros on a non-default stream.
    Generator gen(8);
    Tensor x = Tensor::rand({2, 3, 5, 7}, gen);
    Tensor y = x.to(Device::cuda()).to_format(MemoryFormat::channels_last);
    EXPECT_EQ(y.to(Device::cpu()).to_vector(), x.to_vector());
    Tensor z = Tensor::zeros({1000}, DType::f32, Device::cuda());
    for (float v : z.to_vector()) ASSERT_EQ(v, 0.f);
    s.synchronize();
  }
  EXPECT_TRUE(cuda::current_stream(0).is_default());
  cuda::Stream copy = s;  // shared handle
  EXPECT_EQ(copy, s);
  EXPECT_NE(cuda::Stream::create(0), s);
}

TEST(CudaRuntime, PageableCopiesStageThroughPinnedBuffersInChunks) {
  REQUIRE_GPU();
  std::mt19937 rng(17);
  const size_t chunk = cuda::kStagingChunk;
  for (size_t n : {size_t(1), size_t(4097), chunk - 1, chunk, 2 * chunk + 12345}) {
    std::vector<unsigned char> src(n), back(n, 0xAB);
    for (auto& b : src) b = static_cast<unsigned char>(rng());
    void* d = nullptr;
    ASSERT_EQ(cudaMalloc(&d, n), cudaSuccess);
    cudaMemset(d, 0xFF, n);
    const auto before = cuda::staging_stats();
    cuda::copy(d, src.data(), n, cuda::CopyKind::host_to_device);
    cuda::copy(back.data(), d, n, cuda::CopyKind::device_to_host);
    const auto after = cuda::staging_stats();
    cudaFree(d);
    EXPECT_EQ(after.staged_copies, before.staged_copies + 2) << "n=" << n;
    EXPECT_LE(after.buffers, 4u) << "the pool keeps its buffers for reuse";
    ASSERT_TRUE(src == back) << "n=" << n;
  }
}

TEST(CudaRuntime, PinnedCopiesGoDirectAndAsync) {
  REQUIRE_GPU();
  const size_t n = (size_t(3) << 20) + 5;
  auto* pinned = static_cast<unsigned char*>(cuda::pinned_alloc(n));
  auto* back = static_cast<unsigned char*>(cuda::pinned_alloc(n));
  EXPECT_TRUE(cuda::is_pinned(pinned));
  std::vector<unsigned char> pageable(8);
  EXPECT_FALSE(cuda::is_pinned(pageable.data()));
  for (size_t i = 0; i < n; ++i) pinned[i] = static_cast<unsigned char>(i * 7 + 3);
  std::memset(back, 0, n);
  void* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, n), cudaSuccess);
  EXPECT_FALSE(cuda::is_pinned(d));
  const auto before = cuda::staging_stats();
  cuda::copy(d, pinned, n, cuda::CopyKind::host_to_device);
  cuda::copy(back, d, n, cuda::CopyKind::device_to_host);
  EXPECT_EQ(cuda::staging_stats().direct_copies, before.direct_copies + 2);
  EXPECT_EQ(std::memcmp(pinned, back, n), 0);
  // Async on a stream of its own, then synchronize.
  cuda::Stream s = cuda::Stream::create(0);
  std::memset(back, 0, n);
  ASSERT_EQ(cudaMemsetAsync(d, 0, n, s.handle()), cudaSuccess);  // on s: non-blocking streams skip the legacy one
  cuda::copy_async(d, pinned, n, cuda::CopyKind::host_to_device, s);
  cuda::copy_async(back, d, n, cuda::CopyKind::device_to_host, s);
  s.synchronize();
  EXPECT_EQ(std::memcmp(pinned, back, n), 0);
  cudaFree(d);
  cuda::pinned_free(pinned);
  cuda::pinned_free(back);
}

TEST(CudaRuntime, OperandsOnDifferentDevicesAreAnErrorNamingTheOp) {
  REQUIRE_GPU();
  Tensor a = Tensor::ones({4});
  Tensor b = Tensor::ones({4}, DType::f32, Device::cuda());
  auto expect_mismatch = [](auto&& f, const std::string& op) {
    try {
      f();
      ADD_FAILURE() << op << ": expected a device mismatch error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(op + ": operands on different devices"), std::string::npos) << msg;
    }
  };
  expect_mismatch([&] { return add(a, b); }, "add");
  expect_mismatch([&] { return mul(b, a); }, "mul");
  Tensor logits = Tensor::ones({2, 3}, DType::f32, Device::cuda());
  Tensor targets = Tensor::from_vector_i64({0, 2}, {2});
  expect_mismatch([&] { return cross_entropy(logits, targets); }, "cross_entropy");
}

}  // namespace
}  // namespace graft
