// Test helpers: random inputs and comparisons against float64 references.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/rng.h"
#include "engine/core/tensor.h"
#include "gtest/gtest.h"

namespace graft::testing {

// A fresh generator per test, seeded from the test's name so that every test
// draws its own inputs and reruns draw the same ones.
Generator test_generator();

// Uniform in [lo, hi), f32, contiguous, CPU.
Tensor random_tensor(const Shape& shape, Generator& gen, float lo = -1.f, float hi = 1.f);
// Uniform in [lo, hi) but at least `gap` away from each value in `avoid`
// (kinks of relu, clip, hardswish...), so finite differences are meaningful.
Tensor random_tensor_away_from(const Shape& shape, Generator& gen, float lo, float hi,
                               const std::vector<float>& avoid, float gap);

std::vector<double> to_double(const Tensor& t);  // logical order

// ||a - b|| / ||b|| (b the reference); +inf if either has a NaN.
double rel_l2_error(const std::vector<float>& a, const std::vector<double>& ref);
double max_abs_error(const std::vector<float>& a, const std::vector<double>& ref);

// Elementwise |a - ref| <= atol + rtol * |ref|; reports the first few misses.
::testing::AssertionResult all_close(const std::vector<float>& a, const std::vector<double>& ref, double rtol,
                                     double atol);

}  // namespace graft::testing

namespace graft::testing {
// Path of a file in the shared real material ("pretrained/squeezenet1.1/...");
// empty when that folder is absent.
std::string shared_path(const std::string& relative);
}  // namespace graft::testing

namespace graft::testing {
// Runs f and expects a graft::Error whose message contains every needle (the
// op's name, the shapes...). Fails on no error or on another exception type.
::testing::AssertionResult throws_naming(const std::function<void()>& f, const std::vector<std::string>& needles);
// The message of the graft::Error f throws; empty when it throws none.
std::string error_message(const std::function<void()>& f);
}  // namespace graft::testing

namespace graft::testing {
// Flat row-major index into `shape` of the element of `out_shape` at
// multi-index `idx`, with NumPy broadcasting (right-aligned; size-1 dims repeat).
int64_t broadcast_flat_index(const Shape& shape, const Shape& out_shape, const std::vector<int64_t>& idx);
}  // namespace graft::testing
