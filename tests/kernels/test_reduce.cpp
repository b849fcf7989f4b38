// sum / mean / sum_to against naive float64 references over many shapes, dim
// sets, layouts (channels-last, permuted and sliced views), and the shapes
// that take each parallel path of the kernel.
#include "kernels/cpu/reduce.h"

#include <cmath>

#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;

// Sums in double over the logical elements; out is row-major over kept dims.
std::vector<double> sum_reference(const Tensor& x, const std::vector<bool>& reduce, bool average) {
  const std::vector<double> v = testing::to_double(x);
  const Shape& s = x.shape();
  Shape out_shape;
  int64_t count = 1;
  for (size_t d = 0; d < s.size(); ++d) {
    if (!reduce[d]) out_shape.push_back(s[d]);
    else count *= s[d];
  }
  std::vector<double> out(shape_numel(out_shape), 0.0);
  std::vector<int64_t> idx(s.size(), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t o = 0;
    for (size_t d = 0, k = 0; d < s.size(); ++d)
      if (!reduce[d]) o = o * out_shape[k++] + idx[d];
    out[o] += v[i];
    for (size_t d = s.size(); d-- > 0;) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
  if (average)
    for (double& e : out) e /= static_cast<double>(count);
  return out;
}

std::vector<bool> mask_of(int64_t n, const std::vector<int64_t>& dims) {
  std::vector<bool> m(n, dims.empty());
  for (int64_t d : dims) m[d < 0 ? d + n : d] = true;
  return m;
}

// f32 output of a double-accumulated sum: the final rounding (plus the
// input's own rounding to f32, which both sides share).
constexpr double kRtol = 1e-6;
constexpr double kAtol = 1e-6;

void check_reductions(const Tensor& x, const std::vector<int64_t>& dims, const std::string& what) {
  const std::vector<bool> m = mask_of(x.dim(), dims);
  for (bool keepdim : {false, true}) {
    Tensor s = sum(x, dims, keepdim), mn = mean(x, dims, keepdim);
    Shape want;
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (!m[d]) want.push_back(x.shape()[d]);
      else if (keepdim) want.push_back(1);
    }
    EXPECT_EQ(s.shape(), want) << what;
    EXPECT_EQ(mn.shape(), want) << what;
    EXPECT_TRUE(all_close(s.to_vector(), sum_reference(x, m, false), kRtol, kAtol)) << "sum " << what;
    EXPECT_TRUE(all_close(mn.to_vector(), sum_reference(x, m, true), kRtol, kAtol)) << "mean " << what;
  }
}

TEST(Reduce, SumAndMeanOverManyShapesAndDims) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, std::vector<std::vector<int64_t>>>> cases = {
      {{}, {{}}},
      {{1}, {{}, {0}}},
      {{7}, {{}, {0}, {-1}}},
      {{3, 5}, {{}, {0}, {1}, {0, 1}}},
      {{1, 1}, {{0}, {1}}},
      {{13, 1, 7}, {{}, {0}, {1}, {2}, {0, 2}, {-1, 0}}},
      {{2, 3, 4, 5}, {{}, {0}, {1}, {3}, {0, 2}, {1, 3}, {0, 2, 3}, {0, 1, 2}, {2, 3}}},
      {{3, 1, 4, 1, 2}, {{1, 3}, {0, 4}, {2}}},
  };
  for (const auto& [shape, dim_sets] : cases) {
    Tensor x = Tensor::rand(shape, gen, -1.f, 1.f);
    for (const auto& dims : dim_sets) check_reductions(x, dims, shape_str(shape) + " dims " + shape_str(dims));
  }
}

TEST(Reduce, StridedAndChannelsLastInputs) {
  Generator gen = testing::test_generator();
  Tensor cl = Tensor::rand({2, 6, 5, 7}, gen, -1.f, 1.f).to_format(MemoryFormat::channels_last);
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0, 2, 3}, {1}, {2, 3}, {0}, {}})
    check_reductions(cl, dims, "channels-last dims " + shape_str(dims));
  Tensor base = Tensor::rand({9, 10, 11}, gen, -1.f, 1.f);
  Tensor perm = permute(base, {2, 0, 1});
  Tensor sliced = slice(slice(base, 2, 1, 11, 3), 0, 2, 9);
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0}, {1}, {2}, {0, 2}, {}}) {
    check_reductions(perm, dims, "permuted dims " + shape_str(dims));
    check_reductions(sliced, dims, "sliced dims " + shape_str(dims));
  }
}

// Sizes large enough to take each parallel branch: many rows, one long sum,
// many short column sums, few long columns, and the middle reduction of a
// row-major NCHW bias gradient.
TEST(Reduce, ParallelPaths) {
  Generator gen = testing::test_generator();
  check_reductions(Tensor::rand({513, 301}, gen, -1.f, 1.f), {1}, "row sums");
  check_reductions(Tensor::rand({3, 70001}, gen, -1.f, 1.f), {1}, "few long rows");
  check_reductions(Tensor::rand({200003}, gen, -1.f, 1.f), {}, "full sum");
  check_reductions(Tensor::rand({40001, 3}, gen, -1.f, 1.f), {0}, "short columns");
  check_reductions(Tensor::rand({37, 4099}, gen, -1.f, 1.f), {0}, "long columns");
  check_reductions(Tensor::rand({5, 3, 4099}, gen, -1.f, 1.f), {1}, "middle");
  check_reductions(Tensor::rand({8, 16, 23, 29}, gen, -1.f, 1.f), {0, 2, 3}, "NCHW bias gradient");
  check_reductions(Tensor::rand({8, 16, 23, 29}, gen, -1.f, 1.f).to_format(MemoryFormat::channels_last), {0, 2, 3},
                   "NHWC bias gradient");
}

// A long sum stays accurate: a float accumulator would drift by ~1e-4
// relative here; double accumulation keeps the f32 rounding of the result.
TEST(Reduce, LongSumIsAccurate) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({1 << 22}, gen, 0.f, 1.f);
  double ref = 0;
  for (double v : testing::to_double(x)) ref += v;
  EXPECT_NEAR(sum(x).item(), ref, 1e-7 * ref);
  EXPECT_NEAR(mean(x).item(), ref / (1 << 22), 1e-7 * ref / (1 << 22));
}

TEST(Reduce, EmptyReductions) {
  Tensor e = Tensor::empty({0, 3});
  EXPECT_EQ(sum(e).item(), 0.f);
  EXPECT_EQ(sum(e, {0}).to_vector(), std::vector<float>(3, 0.f));
  EXPECT_TRUE(std::isnan(mean(e).item()));
  EXPECT_EQ(sum(e, {1}).shape(), (Shape{0}));
}

TEST(Reduce, SumToMatchesReference) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {3, 4}}, {{2, 3, 4}, {3, 1}}, {{2, 3, 4}, {1, 3, 1}}, {{2, 3, 4}, {}},    {{2, 3, 4}, {1}},
      {{2, 3, 4}, {2, 3, 4}}, {{1, 5}, {5}},     {{4, 1}, {1}},          {{6, 5}, {6, 1}}, {{2, 3, 5, 7}, {1, 3, 1, 1}}};
  for (const auto& [from, to] : cases) {
    Tensor x = Tensor::rand(from, gen, -1.f, 1.f);
    // Reference: sum over the leading dims and the dims where `to` is 1.
    const size_t lead = from.size() - to.size();
    std::vector<bool> m(from.size());
    for (size_t d = 0; d < from.size(); ++d) m[d] = d < lead || (to[d - lead] == 1 && from[d] != 1);
    Tensor s = sum_to(x, to);
    EXPECT_EQ(s.shape(), to);
    EXPECT_TRUE(all_close(s.to_vector(), sum_reference(x, m, false), kRtol, kAtol))
        << shape_str(from) << " to " << shape_str(to);
  }
}

}  // namespace
}  // namespace graft
