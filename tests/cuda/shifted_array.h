// A device array whose data starts `shift` elements into its allocation: with
// shift 1 the pointer is misaligned for packed (16-byte) access, so the
// launchers must take their scalar paths. Poisoned like DeviceArray.
#pragma once

#include <random>
#include <vector>

#include "tests/cuda/cuda_test_util.h"

namespace graft::testing {

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

}  // namespace graft::testing
