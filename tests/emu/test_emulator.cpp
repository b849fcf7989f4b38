// The CUDA emulator itself: rendezvous semantics, the faults it must catch,
// the launch limits it enforces, and the tensor-core fragment layouts of the
// PTX manual (written out here as direct loops, independently of the
// emulator's decoding). Kernels are launched with the operator the launch
// rewrite produces, `kernel | Config(grid, block, smem)(args)`.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/mma.cuh"
#include "tests/cuda/cuda_test_util.h"

namespace {

using ::graft::emu::Config;
namespace mma = ::graft::kernels::cuda::mma;

template <class T>
struct Device {
  T* p = nullptr;
  size_t n;
  explicit Device(size_t count) : n(count) { EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)), cudaSuccess); }
  ~Device() { cudaFree(p); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
  void put(const std::vector<T>& h) { cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice); }
};

void expect_fault(const std::function<void()>& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "expected an emulator fault mentioning '" << words << "'";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

// ---- rendezvous -----------------------------------------------------------------------------

__global__ void warp_sums(const float* x, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = x[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[i] = v;
  out[i] += 0.0f * __shfl_sync(0xffffffffu, v, 0);
}

TEST(CudaEmulator, ShuffleButterflySumsTheWarp) {
  const int n = 2 * 96;
  std::vector<float> h(n);
  for (int i = 0; i < n; ++i) h[i] = float(i % 37);
  Device<float> x(n), y(n);
  x.put(h);
  warp_sums | Config(2, 96)(x.p, y.p);
  const std::vector<float> got = y.get();
  for (int i = 0; i < n; ++i) {
    float want = 0;
    for (int l = 0; l < 32; ++l) want += h[(i / 32) * 32 + l];
    ASSERT_EQ(got[i], want) << i;
  }
}

// A short last warp (48 threads: lanes 32..47) takes part with a full mask.
__global__ void rotate_through_shared(int* out) {
  __shared__ int s[64];
  const int t = threadIdx.x, n = blockDim.x;
  s[t] = t * 10;
  __syncthreads();
  out[t] = s[(t + 1) % n];
  out[t] += __shfl_xor_sync(0xffffffffu, 0, 1);
}

TEST(CudaEmulator, SyncthreadsOrdersSharedMemoryAcrossWarps) {
  Device<int> y(48);
  rotate_through_shared | Config(1, 48)(y.p);
  const std::vector<int> got = y.get();
  for (int t = 0; t < 48; ++t) EXPECT_EQ(got[t], ((t + 1) % 48) * 10);
}

__global__ void half_warp_shuffles(float* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
__global__ void diverged_collectives(float* out) {
  if (threadIdx.x < 16)
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  else
    out[threadIdx.x] = float(__ballot_sync(0xffffffffu, 1));
}

TEST(CudaEmulator, CatchesCollectivesSomeLanesNeverReach) {
  Device<float> y(32);
  expect_fault([&] { half_warp_shuffles | Config(1, 32)(y.p); }, "deadlock");
  expect_fault([&] { diverged_collectives | Config(1, 32)(y.p); }, "diverged");
}

__global__ void add_everywhere(unsigned long long* total, float* f) {
  atomicAdd(total, 1ull);
  atomicAdd(f, 0.5f);
}

TEST(CudaEmulator, AtomicsAcrossConcurrentBlocks) {
  Device<unsigned long long> total(1);
  Device<float> f(1);
  cudaMemset(total.p, 0, 8);
  cudaMemset(f.p, 0, 4);
  add_everywhere | Config(64, 128)(total.p, f.p);
  EXPECT_EQ(total.get()[0], 64ull * 128);
  EXPECT_EQ(f.get()[0], 64.0f * 128 * 0.5f);
}

// ---- launch limits ----------------------------------------------------------------------------

__global__ void touch_dynamic_smem(int* out) {
  unsigned char* s = ::graft::emu::dynamic_smem();
  s[0] = 1;
  out[0] = s[0];
}

TEST(CudaEmulator, EnforcesLaunchLimits) {
  Device<int> y(1);
  cudaGetLastError();
  touch_dynamic_smem | Config(1, 32, 64 * 1024)(y.p);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue) << "64 KB without the opt-in";
  ASSERT_EQ(cudaFuncSetAttribute(touch_dynamic_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
            cudaSuccess);
  touch_dynamic_smem | Config(1, 32, 64 * 1024)(y.p);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_NE(cudaFuncSetAttribute(touch_dynamic_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024),
            cudaSuccess) << "beyond the device's 227 KB";
  touch_dynamic_smem | Config(1, dim3(1, 1, 65))(y.p);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "blockDim.z 65";
  touch_dynamic_smem | Config(1, 1025)(y.p);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "1025 threads";
  touch_dynamic_smem | Config(dim3(1, 65536), 32)(y.p);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "gridDim.y 65536";
}

// ---- cp.async ---------------------------------------------------------------------------------

// Thread t copies 16 bytes; reads shared memory before and after the wait.
__global__ void async_copy(const float* src, float* before, float* after, int src_offset) {
  float* s = reinterpret_cast<float*>(::graft::emu::dynamic_smem());
  const int t = threadIdx.x;
  mma::cp_async16(s + 4 * t, src + src_offset + 4 * t, true);
  mma::cp_async_commit();
  before[t] = s[4 * t];
  mma::cp_async_wait<0>();
  after[t] = s[4 * t];
}

TEST(CudaEmulator, AsyncCopiesLandAtTheWaitAndStayInBounds) {
  const int n = 32;
  std::vector<float> h(4 * n);
  for (int i = 0; i < 4 * n; ++i) h[i] = float(i) + 0.5f;
  Device<float> src(4 * n), before(n), after(n);
  src.put(h);
  async_copy | Config(1, n, 4 * n * sizeof(float))(src.p, before.p, after.p, 0);
  const std::vector<float> b = before.get(), a = after.get();
  for (int t = 0; t < n; ++t) {
    EXPECT_NE(b[t], h[4 * t]) << "read before cp.async.wait_group saw the data";
    EXPECT_EQ(a[t], h[4 * t]);
  }
  expect_fault([&] { async_copy | Config(1, n, 4 * n * sizeof(float))(src.p, before.p, after.p, 4); },
               "outside every device allocation");
  expect_fault([&] { async_copy | Config(1, n, 4 * n * sizeof(float))(src.p, before.p, after.p, 1); }, "misaligned");
  expect_fault([&] { async_copy | Config(1, n, 4 * (n - 1) * sizeof(float))(src.p, before.p, after.p, 0); },
               "outside the launch's dynamic shared memory");
}

// ---- fragments --------------------------------------------------------------------------------

// One warp: A (16x16 row-major) through ldmatrix.x4, B (16x8, stored n-major:
// B[k][n] at b[n*16 + k]) through ldmatrix.x2, then one mma.
__global__ void one_mma(const uint16_t* a, const uint16_t* b, float* d) {
  uint16_t* s = reinterpret_cast<uint16_t*>(::graft::emu::dynamic_smem());
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) s[i] = a[i];
  for (int i = lane; i < 128; i += 32) s[256 + i] = b[i];
  __syncwarp();
  // ldmatrix.x4: lanes 8i..8i+7 address rows of matrix i, the 8x8 tiles
  // (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
  const int r = lane % 8, mat = lane / 8;
  uint32_t af[4], bf[2];
  mma::ldmatrix_x4(af, s + (r + (mat % 2) * 8) * 16 + (mat / 2) * 8);
  // B n-major: row n of the stored matrix holds k; matrices (k 0-7), (k 8-15).
  mma::ldmatrix_x2(bf, s + 256 + (lane % 8) * 16 + ((lane / 8) % 2) * 8);
  float acc[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  mma::mma_m16n8k16<__nv_bfloat16>(acc, af, bf);
  for (int o = 0; o < 4; ++o) d[lane * 4 + o] = acc[o];
}

TEST(CudaEmulator, LdmatrixAndMmaFollowThePtxLayouts) {
  using ::graft::kernels::cuda::DataType;
  using ::graft::testing::DeviceArray;
  const std::vector<float> a = ::graft::testing::round_to(::graft::testing::uniform_values(256, -2, 2, 3), DataType::bf16);
  const std::vector<float> b = ::graft::testing::round_to(::graft::testing::uniform_values(128, -2, 2, 4), DataType::bf16);
  DeviceArray da(a, DataType::bf16), db(b, DataType::bf16), dd(128);
  one_mma | Config(1, 32, 1024)(da.get<uint16_t>(), db.get<uint16_t>(), dd.f32());
  const std::vector<float> d = dd.download();
  // PTX m16n8k16 C/D fragment: lane = 4g + t holds D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1].
  for (int lane = 0; lane < 32; ++lane)
    for (int o = 0; o < 4; ++o) {
      const int g = lane / 4, t = lane % 4, m = g + (o / 2) * 8, n = 2 * t + o % 2;
      double want = 1.0 + o;
      for (int k = 0; k < 16; ++k) want += double(a[m * 16 + k]) * b[n * 16 + k];
      EXPECT_NEAR(d[lane * 4 + o], want, 1e-4) << "lane " << lane << " element " << o;
    }
}

}  // namespace
