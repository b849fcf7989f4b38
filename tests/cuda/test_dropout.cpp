// CUDA dropout (kernels/cuda/dropout.h) against the CPU twin
// (kernels/cpu/random.h): the mask is bit-identical for the same (seed,
// offset) -- the same Philox mapping on both devices -- and so is the output
// (one f32 multiply, then one rounding to the dtype), forward and backward,
// for odd sizes, misaligned pointers (the element-wise path) and each dtype.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/random.h"
#include "kernels/cuda/dropout.h"
#include "tests/cuda/ew_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cpu;
namespace kg = kernels::cuda;

// A poisoned (0xFF: neither 0 nor 1) device byte array: a 16-byte guard, then
// `shift` bytes (shift 1: misaligned for the 4-byte mask stores), the n bytes,
// and a guard after.
class DeviceBytes {
 public:
  DeviceBytes(size_t n, int shift) : n_(n), lead_(16 + static_cast<size_t>(shift)) {
    if (cudaMalloc(&p_, lead_ + n + 16) != cudaSuccess) p_ = nullptr;
    if (p_) cudaMemset(p_, 0xFF, lead_ + n + 16);
  }
  ~DeviceBytes() { if (p_) cudaFree(p_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  uint8_t* data() const { return p_ + lead_; }
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> all(lead_ + n_ + 16);
    cudaMemcpy(all.data(), p_, all.size(), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < lead_; ++i) EXPECT_EQ(all[i], 0xFF) << "a byte before the mask was written";
    EXPECT_EQ(all[lead_ + n_], 0xFF) << "the byte after the mask was written";
    return std::vector<uint8_t>(all.begin() + static_cast<long>(lead_), all.begin() + static_cast<long>(lead_ + n_));
  }
  void upload(const std::vector<uint8_t>& v) { cudaMemcpy(p_ + lead_, v.data(), v.size(), cudaMemcpyHostToDevice); }

 private:
  uint8_t* p_ = nullptr;
  size_t n_, lead_;
};

// Bitwise equality of float vectors (NaN never equals: unwritten poison fails).
::testing::AssertionResult same_bits(const std::vector<float>& got, const std::vector<float>& want,
                                     const std::string& what) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << what << ": size mismatch";
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t g, w;
    std::memcpy(&g, &got[i], 4);
    std::memcpy(&w, &want[i], 4);
    if (g != w)
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << got[i] << ", twin " << want[i];
  }
  return ::testing::AssertionSuccess();
}

TEST(CudaDropout, ForwardAndBackwardMatchTwinBitForBit) {
  REQUIRE_GPU();
  uint32_t seed = 1;
  for (int64_t n : {1, 3, 4, 5, 7, 33, 1001, 4096, (1 << 20) + 1}) {
    for (float p_drop : {0.f, 0.1f, 0.5f, 0.9f, 1.f}) {
      for (DataType dt : all_dtypes()) {
        for (int shift : {0, 1}) {
          const kc::RandomParams rp{0x1234abcd5678ull + static_cast<uint64_t>(n), static_cast<uint64_t>(seed % 7) * 1000};
          const std::vector<float> x = round_to(random_vector(n, -3, 3, seed++), dt);
          const std::vector<float> g = round_to(random_vector(n, -3, 3, seed++), dt);
          std::vector<float> want(n), want_g(n);
          std::vector<uint8_t> keep(n);
          kc::dropout_forward(x.data(), want.data(), keep.data(), n, p_drop, rp);
          kc::dropout_backward(g.data(), keep.data(), want_g.data(), n, p_drop);
          const std::string what = std::string(kg::dtype_name(dt)) + " n=" + std::to_string(n) +
                                   " p=" + std::to_string(p_drop) + " shift=" + std::to_string(shift);

          GuardedArray dx(x, dt, shift), dout(n, dt, shift), dg(g, dt, shift), dgi(n, dt, shift);
          DeviceBytes dkeep(n, shift);
          kg::dropout_forward(dt, dx.data(), dout.data(), dkeep.data(), n, p_drop, rp, nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          ASSERT_EQ(dkeep.download(), keep) << what << ": masks differ";
          // The twin's output rounded to dt is exactly what the GPU stores.
          EXPECT_TRUE(same_bits(dout.download(), round_to(want, dt), what + " forward"));

          // Backward from the CPU mask (identical, checked above).
          DeviceBytes dkeep2(n, shift);
          dkeep2.upload(keep);
          kg::dropout_backward(dt, dg.data(), dkeep2.data(), dgi.data(), n, p_drop, nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_TRUE(same_bits(dgi.download(), round_to(want_g, dt), what + " backward"));
        }
      }
    }
  }
}

TEST(CudaDropout, KeepsAboutOneMinusP) {
  REQUIRE_GPU();
  const int64_t n = 1 << 20;
  GuardedArray dx(random_vector(n, -1, 1, 5), DataType::f32), dout(n, DataType::f32);
  DeviceBytes dkeep(n, 0);
  kg::dropout_forward(DataType::f32, dx.data(), dout.data(), dkeep.data(), n, 0.3f, {42, 0}, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> keep = dkeep.download();
  int64_t kept = 0;
  for (uint8_t k : keep) kept += k;
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 0.005);  // ~10 sigma
}

TEST(CudaDropout, InPlace) {
  REQUIRE_GPU();
  const int64_t n = 1027;
  const kc::RandomParams rp{7, 3};
  for (DataType dt : all_dtypes()) {
    const std::vector<float> x = round_to(random_vector(n, -3, 3, 11), dt);
    std::vector<float> want(n);
    std::vector<uint8_t> keep(n);
    kc::dropout_forward(x.data(), want.data(), keep.data(), n, 0.25f, rp);
    GuardedArray d(x, dt);
    DeviceBytes dkeep(n, 0);
    kg::dropout_forward(dt, d.data(), d.data(), dkeep.data(), n, 0.25f, rp, nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_EQ(dkeep.download(), keep);
    EXPECT_TRUE(same_bits(d.download(), round_to(want, dt), std::string("in place ") + kg::dtype_name(dt)));
  }
}

TEST(CudaDropoutArgs, RejectsBadArguments) {
  float dummy[4] = {};
  uint8_t keep[4] = {};
  EXPECT_TRUE(throws_naming([&] { kg::dropout_forward(DataType::f32, dummy, dummy, keep, 4, 1.5f, {1, 0}, nullptr); },
                            "dropout_forward"));
  EXPECT_TRUE(throws_naming(
      [&] { kg::dropout_forward(DataType::f32, dummy, dummy, keep, 4, std::nanf(""), {1, 0}, nullptr); },
      "dropout_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::dropout_forward(DataType::bf16, dummy, dummy, nullptr, 4, 0.5f, {1, 0}, nullptr); },
                            "dropout_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::dropout_forward(DataType::f16, dummy, dummy, keep, -4, 0.5f, {1, 0}, nullptr); },
                            "dropout_forward"));
  EXPECT_TRUE(throws_naming([&] { kg::dropout_backward(DataType::f32, dummy, nullptr, dummy, 4, 0.5f, nullptr); },
                            "dropout_backward"));
  EXPECT_TRUE(throws_naming([&] { kg::dropout_backward(DataType::f32, dummy, keep, dummy, 4, -0.1f, nullptr); },
                            "dropout_backward"));
  EXPECT_NO_THROW(kg::dropout_forward(DataType::f32, nullptr, nullptr, nullptr, 0, 0.5f, {1, 0}, nullptr));
}

}  // namespace
}  // namespace graft::testing
