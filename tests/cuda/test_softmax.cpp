// CUDA softmax / log-softmax (kernels/cuda/softmax.h) against the CPU twin on
// the same dtype-rounded inputs: warp-per-row lengths (1 .. 1024), block-per-row
// lengths (1025 ..), every dtype, packed and misaligned (scalar) paths, and one
// 100000-long row against a float64 reference for the online statistics.
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cuda/softmax.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cuda;
namespace kcpu = kernels::cpu;

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16};
// Warp path buckets (1, 2, 4, ... 32 per lane), its edge (1024), and the block path.
const int64_t kLens[] = {1, 7, 32, 33, 100, 128, 255, 512, 1000, 1024, 1025, 4096, 4097};

std::string label(const char* what, DataType t, int64_t rows, int64_t len, size_t shift) {
  return std::string(what) + " " + kc::dtype_name(t) + " rows=" + std::to_string(rows) + " len=" +
         std::to_string(len) + " shift=" + std::to_string(shift);
}

void check_forward(bool log, DataType t, int64_t rows, int64_t len, size_t shift, float scale, int64_t inner = 1) {
  const size_t n = static_cast<size_t>(rows * len * inner);
  const std::vector<float> x = round_to(uniform_values(n, -scale, scale, 17u + static_cast<unsigned>(len)), t);
  ShiftedArray dx(x, t, shift), dy(n, t, shift);
  kcpu::SoftmaxParams p{rows, len, inner};
  (log ? kc::log_softmax_forward : kc::softmax_forward)(dx.ptr(), dy.ptr(), p, t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> want(n);
  (log ? kcpu::log_softmax_forward : kcpu::softmax_forward)(x.data(), want.data(), p);
  EXPECT_TRUE(close_to_twin(dy.download(), want, default_tolerance(t),
                            label(log ? "log_softmax_forward" : "softmax_forward", t, rows, len, shift) +
                                " inner=" + std::to_string(inner)));
}

void check_backward(bool log, DataType t, int64_t rows, int64_t len, size_t shift, int64_t inner = 1) {
  const size_t n = static_cast<size_t>(rows * len * inner);
  kcpu::SoftmaxParams p{rows, len, inner};
  const std::vector<float> x = uniform_values(n, -4.0f, 4.0f, 5u + static_cast<unsigned>(len));
  std::vector<float> y(n);
  (log ? kcpu::log_softmax_forward : kcpu::softmax_forward)(x.data(), y.data(), p);
  y = round_to(y, t);
  const std::vector<float> g = round_to(uniform_values(n, -1.0f, 1.0f, 9u + static_cast<unsigned>(len)), t);
  ShiftedArray dy_(y, t, shift), dg(g, t, shift), ddx(n, t, shift);
  (log ? kc::log_softmax_backward : kc::softmax_backward)(dy_.ptr(), dg.ptr(), ddx.ptr(), p, t, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> want(n);
  (log ? kcpu::log_softmax_backward : kcpu::softmax_backward)(y.data(), g.data(), want.data(), p);
  EXPECT_TRUE(close_to_twin(ddx.download(), want, default_tolerance(t),
                            label(log ? "log_softmax_backward" : "softmax_backward", t, rows, len, shift) +
                                " inner=" + std::to_string(inner)));
}

TEST(CudaSoftmax, ForwardMatchesTwinForEveryLengthAndDtype) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (int64_t len : kLens)
      for (bool log : {false, true}) {
        check_forward(log, t, 7, len, 0, 3.0f);  // 7 rows: a partial block of 4 warp-rows
        check_forward(log, t, 3, len, 1, 3.0f);  // misaligned: the scalar path
      }
}

TEST(CudaSoftmax, ForwardLargeLogitsSubtractTheMax) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (int64_t len : {33, 1000, 4097})
      for (bool log : {false, true}) check_forward(log, t, 5, len, 0, 60.0f);
}

TEST(CudaSoftmax, BackwardMatchesTwinForEveryLengthAndDtype) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (int64_t len : kLens)
      for (bool log : {false, true}) {
        check_backward(log, t, 7, len, 0);
        check_backward(log, t, 3, len, 1);
      }
}

TEST(CudaSoftmax, ManyRows) {
  REQUIRE_GPU();
  for (DataType t : {DataType::f32, DataType::bf16}) {
    check_forward(false, t, 4099, 128, 0, 3.0f);
    check_forward(true, t, 513, 2048, 0, 3.0f);
    check_backward(false, t, 4099, 64, 0);
  }
}

// An axis that is not the last (inner > 1): the column kernels.
TEST(CudaSoftmax, InnerAxisMatchesTwin) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (int64_t inner : {3, 65})
      for (int64_t len : {1, 7, 300})
        for (bool log : {false, true}) {
          check_forward(log, t, 3, len, 0, 3.0f, inner);
          check_backward(log, t, 2, len, 1, inner);
        }
}

// One row of 100000 against float64: the online (max, sum) statistics and the
// merge across threads lose nothing beyond f32 rounding.
TEST(CudaSoftmax, LongRowMatchesFloat64) {
  REQUIRE_GPU();
  const int64_t len = 100000;
  for (size_t shift : {0u, 1u}) {
    const std::vector<float> x = uniform_values(len, -20.0f, 20.0f, 1234u);
    double m = -INFINITY;
    for (float v : x) m = std::max(m, double(v));
    double s = 0;
    for (float v : x) s += std::exp(double(v) - m);
    for (bool log : {false, true}) {
      ShiftedArray dx(x, DataType::f32, shift), dy(len, DataType::f32, shift);
      (log ? kc::log_softmax_forward : kc::softmax_forward)(dx.ptr(), dy.ptr(), {1, len, 1}, DataType::f32, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> got = dy.download();
      double err2 = 0, ref2 = 0;
      for (int64_t i = 0; i < len; ++i) {
        const double want = log ? (double(x[i]) - m) - std::log(s) : std::exp(double(x[i]) - m) / s;
        ASSERT_TRUE(std::isfinite(got[i])) << "element " << i;
        err2 += (got[i] - want) * (got[i] - want);
        ref2 += want * want;
      }
      EXPECT_LT(std::sqrt(err2 / ref2), 1e-5) << (log ? "log_softmax" : "softmax") << " shift " << shift;
    }
  }
}

// Argument errors are thrown before any CUDA call: these run without a GPU.
TEST(CudaSoftmax, BadArgumentsNameTheLauncher) {
  float dummy[4] = {};
  expect_invalid([&] { kc::softmax_forward(dummy, dummy, {2, 2, -3}, DataType::f32, nullptr); }, "softmax_forward",
                 "inner");
  expect_invalid([&] { kc::log_softmax_forward(nullptr, dummy, {2, 2, 1}, DataType::f32, nullptr); },
                 "log_softmax_forward", "null");
  expect_invalid([&] { kc::softmax_backward(dummy, dummy, dummy, {-1, 2, 1}, DataType::bf16, nullptr); },
                 "softmax_backward", "negative");
  expect_invalid([&] { kc::log_softmax_backward(dummy, nullptr, dummy, {1, 4, 1}, DataType::f16, nullptr); },
                 "log_softmax_backward", "null");
  // Empty tensors are no work and no error.
  EXPECT_NO_THROW(kc::softmax_forward(nullptr, nullptr, {0, 5, 1}, DataType::f32, nullptr));
}

}  // namespace
}  // namespace graft::testing
