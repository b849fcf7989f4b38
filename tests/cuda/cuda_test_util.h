// Helpers for the CUDA parity tests: a GPU guard that skips with a message,
// device buffers poisoned with NaN before each run (unwritten elements fail),
// host conversion for f16/bf16, and dtype-aware comparison against a CPU twin.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if !defined(GRAFT_CUDA_EMULATION)
#include "engine/core/cuda_runtime.h"
#endif
#include "gtest/gtest.h"
#include "kernels/cuda/dtype.h"

namespace graft::testing {

// Skips the test, saying why, where no GPU answers. (Under the host emulator,
// tests/emu, the kernels always run.)
#if defined(GRAFT_CUDA_EMULATION)
#define REQUIRE_GPU() \
  do {               \
  } while (0)
#else
#define REQUIRE_GPU()                                                                           \
  do {                                                                                          \
    if (!::graft::cuda_available())                                                             \
      GTEST_SKIP() << "no usable GPU (" << ::graft::cuda_unavailable_reason()                    \
                   << "): this CUDA test runs on the GPU machine (tools/gpu/check.sh)";          \
  } while (0)
#endif

// True where the kernels run on the host emulator: tests whose point is a
// large size keep their shapes on a GPU and take smaller ones (or skip, saying
// so) there, where a block of 256 threads costs about a millisecond.
#if defined(GRAFT_CUDA_EMULATION)
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif
#define SKIP_ON_EMULATOR(why)                                                          \
  do {                                                                                 \
    if (::graft::testing::kEmulated) GTEST_SKIP() << "on the GPU only (" << why << ")"; \
  } while (0)

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

using kernels::cuda::DataType;

// Host value <-> stored element (f32, or a 16-bit word for f16/bf16), round to nearest even.
inline uint16_t to_bits(float v, DataType t) {
  if (t == DataType::f16) {
    __half h = __float2half_rn(v);
    uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
  }
  __nv_bfloat16 h = __float2bfloat16_rn(v);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
inline float from_bits(uint16_t b, DataType t) {
  if (t == DataType::f16) {
    __half h;
    std::memcpy(static_cast<void*>(&h), &b, 2);
    return __half2float(h);
  }
  __nv_bfloat16 h;
  std::memcpy(static_cast<void*>(&h), &b, 2);
  return __bfloat162float(h);
}
// Rounds values to what the dtype can hold (so a CPU twin sees the same inputs).
inline std::vector<float> round_to(const std::vector<float>& v, DataType t) {
  if (t == DataType::f32) return v;
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = from_bits(to_bits(v[i], t), t);
  return r;
}

// A device array of n elements of dtype t. Holds floats on the host side of
// its API whatever t is.
class DeviceArray {
 public:
  DeviceArray(size_t n, DataType t = DataType::f32) : n_(n), t_(t) {
    bytes_ = std::max<size_t>(1, n * kernels::cuda::dtype_size(t));
    if (cudaMalloc(&p_, bytes_) != cudaSuccess) p_ = nullptr;
    poison();
  }
  DeviceArray(const std::vector<float>& host, DataType t = DataType::f32) : DeviceArray(host.size(), t) {
    upload(host);
  }
  ~DeviceArray() { if (p_) cudaFree(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  // Every byte 0xFF: NaN in f32, f16 and bf16 alike.
  void poison() { if (p_) cudaMemset(p_, 0xFF, bytes_); }
  void upload(const std::vector<float>& host) {
    if (t_ == DataType::f32) {
      cudaMemcpy(p_, host.data(), n_ * 4, cudaMemcpyHostToDevice);
    } else {
      std::vector<uint16_t> b(n_);
      for (size_t i = 0; i < n_; ++i) b[i] = to_bits(host[i], t_);
      cudaMemcpy(p_, b.data(), n_ * 2, cudaMemcpyHostToDevice);
    }
  }
  std::vector<float> download() const {
    std::vector<float> out(n_);
    if (t_ == DataType::f32) {
      cudaMemcpy(out.data(), p_, n_ * 4, cudaMemcpyDeviceToHost);
    } else {
      std::vector<uint16_t> b(n_);
      cudaMemcpy(b.data(), p_, n_ * 2, cudaMemcpyDeviceToHost);
      for (size_t i = 0; i < n_; ++i) out[i] = from_bits(b[i], t_);
    }
    return out;
  }
  template <typename T = void>
  T* get() const { return static_cast<T*>(p_); }
  float* f32() const { return static_cast<float*>(p_); }
  size_t size() const { return n_; }
  DataType dtype() const { return t_; }

 private:
  void* p_ = nullptr;
  size_t n_, bytes_;
  DataType t_;
};

// Tolerance for comparing against a CPU twin computed in f32 from the same
// (dtype-rounded) inputs: f32 1e-5, f16 2e-3, bf16 1e-2, relative to the
// largest reference magnitude.
inline double default_tolerance(DataType t) {
  return t == DataType::f32 ? 1e-5 : (t == DataType::f16 ? 2e-3 : 1e-2);
}

// Every element finite where the reference is finite (poisoned output that was
// never written fails here), and max |got - want| <= tol * max(max |want|, 1e-6).
inline ::testing::AssertionResult close_to_twin(const std::vector<float>& got, const std::vector<float>& want,
                                                double tol, const std::string& what = "") {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " vs " << want.size();
  double scale = 1e-6, worst = 0;
  size_t worst_i = 0;
  for (float w : want) if (std::isfinite(w)) scale = std::max(scale, double(std::fabs(w)));
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isfinite(want[i]) != std::isfinite(got[i]) || (std::isnan(want[i]) != std::isnan(got[i])))
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << got[i] << ", twin "
                                           << want[i] << " (unwritten or non-finite)";
    if (!std::isfinite(want[i])) continue;
    const double e = std::fabs(double(got[i]) - double(want[i]));
    if (e > worst) worst = e, worst_i = i;
  }
  if (worst > tol * scale)
    return ::testing::AssertionFailure() << what << ": max error " << worst << " at element " << worst_i << " ("
                                         << got[worst_i] << " vs twin " << want[worst_i] << "), allowed " << tol
                                         << " x " << scale;
  return ::testing::AssertionSuccess();
}

// A device array whose data starts `shift` elements into its allocation: with
// shift 1 the pointer is misaligned for packed (16-byte) access, so the
// launchers must take their scalar paths. Poisoned like DeviceArray.
class ShiftedArray {
 public:
  ShiftedArray(size_t n, DataType t, size_t shift) : a_(n + shift, t), n_(n), shift_(shift) {}
  ShiftedArray(const std::vector<float>& host, DataType t, size_t shift) : ShiftedArray(host.size(), t, shift) {
    upload(host);
  }
  void upload(const std::vector<float>& host) {
    std::vector<float> padded(shift_, 0.0f);
    padded.insert(padded.end(), host.begin(), host.end());
    a_.upload(padded);
  }
  std::vector<float> download() const {
    const std::vector<float> all = a_.download();
    return std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(shift_), all.end());
  }
  void poison() { a_.poison(); }
  void* ptr() const { return static_cast<char*>(a_.get()) + shift_ * kernels::cuda::dtype_size(a_.dtype()); }
  size_t size() const { return n_; }

 private:
  DeviceArray a_;
  size_t n_, shift_;
};

// n values uniform in [lo, hi) from a fixed-seed generator.
inline std::vector<float> uniform_values(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// f() must throw std::invalid_argument naming the launcher and mentioning `words`
// (the launchers check their arguments on the host before any CUDA call).
template <class F>
void expect_invalid(F&& f, const std::string& launcher, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "expected std::invalid_argument from " << launcher;
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(launcher), std::string::npos) << msg;
    EXPECT_NE(msg.find(words), std::string::npos) << msg;
  }
}

}  // namespace graft::testing
