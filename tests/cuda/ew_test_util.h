// Helpers shared by the elementwise, reduce and dropout parity tests: device
// arrays with a poisoned guard element on each side (so a write before or
// after the range is caught) and an optional one-element shift of the start
// (so the 16-byte vector paths see a misaligned pointer), random inputs, and
// a check that a launcher throws std::invalid_argument naming itself.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft::testing {

// n elements inside a poisoned device array: a 16-byte guard before them
// (then `shift` more elements, so shift = 1 makes the start misaligned for the
// 16-byte vector paths and shift = 0 keeps it aligned) and one guard element
// after; download() fails the test if a guard was written.
class GuardedArray {
 public:
  GuardedArray(size_t n, DataType t, int shift = 0)
      : n_(n),
        lead_(16 / kernels::cuda::dtype_size(t) + static_cast<size_t>(shift)),
        dev_(n + lead_ + 1, t) {}
  GuardedArray(const std::vector<float>& host, DataType t, int shift = 0) : GuardedArray(host.size(), t, shift) {
    upload(host);
  }
  void upload(const std::vector<float>& host) {
    std::vector<float> all(dev_.size(), std::nanf(""));
    for (size_t i = 0; i < n_; ++i) all[lead_ + i] = host[i];
    dev_.upload(all);
  }
  void* data() const { return dev_.get<char>() + lead_ * kernels::cuda::dtype_size(dev_.dtype()); }
  template <typename T>
  T* as() const { return static_cast<T*>(data()); }
  std::vector<float> download() const {
    const std::vector<float> all = dev_.download();
    for (size_t i = 0; i < lead_; ++i) EXPECT_TRUE(std::isnan(all[i])) << "element " << i << " before the range was written";
    EXPECT_TRUE(std::isnan(all.back())) << "the element after the range was written";
    return std::vector<float>(all.begin() + static_cast<long>(lead_), all.begin() + static_cast<long>(lead_ + n_));
  }
  size_t size() const { return n_; }

 private:
  size_t n_, lead_;
  DeviceArray dev_;
};

inline std::vector<float> random_vector(size_t n, float lo, float hi, uint32_t seed) {
  return uniform_values(n, lo, hi, seed);
}

// Row-major strides of a shape.
inline std::vector<int64_t> row_major(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t m = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    s[d] = m;
    m *= shape[d];
  }
  return s;
}
// Channels-last strides of a logical NCHW shape: [HWC, 1, WC, C].
inline std::vector<int64_t> channels_last(const std::vector<int64_t>& s) {
  return {s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]};
}
// Elements of storage the (non-negative) strides reach: 1 + sum (size - 1) * stride; 0 if empty.
inline size_t storage(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t m = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return 0;
    m += (shape[d] - 1) * strides[d];
  }
  return static_cast<size_t>(m + 1);
}

inline const std::vector<DataType>& all_dtypes() {
  static const std::vector<DataType> d{DataType::f32, DataType::f16, DataType::bf16};
  return d;
}

// f throws std::invalid_argument whose message names `launcher`.
inline ::testing::AssertionResult throws_naming(const std::function<void()>& f, const std::string& launcher) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find(launcher) == std::string::npos)
      return ::testing::AssertionFailure() << "message does not name " << launcher << ": " << e.what();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than std::invalid_argument: " << e.what();
  }
  return ::testing::AssertionFailure() << launcher << " did not throw";
}

}  // namespace graft::testing
