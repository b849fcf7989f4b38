// Softmax / log-softmax forward (through the op, every axis, both layouts) and
// the kernels' backward, against naive long-double references: the forward
// reference is exp(x) / sum(exp(x)) with no max subtraction (long double holds
// exp(+-1000)); the backward reference is a central difference of that.
#include <cmath>
#include <limits>
#include <vector>

#include "engine/ops/softmax.h"
#include "gtest/gtest.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/softmax.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using kernels::cpu::SoftmaxParams;
using LD = long double;

SoftmaxParams params_for(const Shape& shape, int64_t axis) {
  SoftmaxParams p;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis) p.outer *= shape[d];
    else if (d == axis) p.axis_len = shape[d];
    else p.inner *= shape[d];
  }
  return p;
}

// One slice along the axis: y_a = exp(x_a) / sum_b exp(x_b) (or its log).
std::vector<LD> ref_slice(const std::vector<LD>& x, bool log) {
  LD s = 0;
  for (LD v : x) s += std::exp(v);
  std::vector<LD> y(x.size());
  for (size_t a = 0; a < x.size(); ++a) y[a] = log ? x[a] - std::log(s) : std::exp(x[a]) / s;
  return y;
}

// Applies `f` to every axis slice of row-major data x (layout p).
template <class F>
void for_each_slice(SoftmaxParams p, F f) {
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t i = 0; i < p.inner; ++i) {
      std::vector<int64_t> idx(p.axis_len);
      for (int64_t a = 0; a < p.axis_len; ++a) idx[a] = (o * p.axis_len + a) * p.inner + i;
      f(idx);
    }
}

std::vector<double> ref_forward(const std::vector<float>& x, SoftmaxParams p, bool log) {
  std::vector<double> y(x.size());
  for_each_slice(p, [&](const std::vector<int64_t>& idx) {
    std::vector<LD> xs;
    for (int64_t k : idx) xs.push_back(x[k]);
    std::vector<LD> ys = ref_slice(xs, log);
    for (size_t a = 0; a < idx.size(); ++a) y[idx[a]] = static_cast<double>(ys[a]);
  });
  return y;
}

// dx_j = d/dx_j sum_a dy_a y_a(x), by central differences in long double.
std::vector<double> ref_backward(const std::vector<float>& x, const std::vector<float>& dy, SoftmaxParams p, bool log) {
  std::vector<double> dx(x.size());
  const LD h = 1e-5L;
  for_each_slice(p, [&](const std::vector<int64_t>& idx) {
    std::vector<LD> xs;
    for (int64_t k : idx) xs.push_back(x[k]);
    auto L = [&](const std::vector<LD>& v) {
      std::vector<LD> ys = ref_slice(v, log);
      LD s = 0;
      for (size_t a = 0; a < idx.size(); ++a) s += dy[idx[a]] * ys[a];
      return s;
    };
    for (size_t j = 0; j < idx.size(); ++j) {
      std::vector<LD> xp = xs, xm = xs;
      xp[j] += h;
      xm[j] -= h;
      dx[idx[j]] = static_cast<double>((L(xp) - L(xm)) / (2 * h));
    }
  });
  return dx;
}

struct Case {
  Shape shape;
  int64_t axis;
};

const std::vector<Case> kCases = {
    {{1}, 0},          {{7}, -1},         {{3, 5}, 1},       {{3, 5}, 0},        {{13, 1}, 1},
    {{13, 1}, 0},      {{2, 3, 4}, 1},    {{2, 7, 13}, -1},  {{2, 7, 13}, 0},    {{3, 1, 5}, 1},
    {{4, 17, 3}, 1},   {{2, 3, 65}, 1},   {{2, 5, 130}, -2}, {{2, 3, 5, 7}, 0},  {{2, 3, 5, 7}, 1},
    {{2, 3, 5, 7}, 2}, {{2, 3, 5, 7}, 3}, {{3, 1000}, -1},   {{1, 129, 64}, 1},
};

// f32 against long double: |err| <= 1e-5 |ref| (a few f32 ulp through exp,
// the sum and the division), plus an absolute floor for values the kernel
// flushes (exp below e^-87.3, i.e. < 1e-38) or near 0 in the log case.
constexpr double kRtol = 1e-5;
constexpr double kAtolSoftmax = 1e-30;
constexpr double kAtolLog = 2e-6;

void check_forward(const Tensor& x, int64_t axis, bool log, const char* what) {
  const int64_t rank = x.dim();
  const int64_t a = axis < 0 ? axis + rank : axis;
  const Tensor y = log ? log_softmax(x, axis) : softmax(x, axis);
  EXPECT_EQ(y.shape(), x.shape());
  const std::vector<double> ref = ref_forward(x.to_vector(), params_for(x.shape(), a), log);
  EXPECT_TRUE(testing::all_close(y.to_vector(), ref, kRtol, log ? kAtolLog : kAtolSoftmax))
      << what << (log ? " log_softmax " : " softmax ") << shape_str(x.shape()) << " axis " << axis;
}

TEST(SoftmaxForward, MatchesLongDoubleReferenceOnEveryAxis) {
  Generator gen = testing::test_generator();
  for (const Case& c : kCases) {
    Tensor x = testing::random_tensor(c.shape, gen, -4.f, 4.f);
    for (bool log : {false, true}) check_forward(x, c.axis, log, "uniform(-4, 4)");
  }
}

TEST(SoftmaxForward, StableForLargeMagnitudes) {
  Generator gen = testing::test_generator();
  for (const Case& c : kCases) {
    // Spread over +-1000: exp would overflow f32 without the max subtraction,
    // and most probabilities underflow to exactly 0.
    Tensor x = testing::random_tensor(c.shape, gen, -1000.f, 1000.f);
    for (bool log : {false, true}) check_forward(x, c.axis, log, "uniform(-1000, 1000)");
    // All near +1000 (close values, where lse must keep its precision).
    Tensor xh = testing::random_tensor(c.shape, gen, 995.f, 1000.f);
    for (bool log : {false, true}) check_forward(xh, c.axis, log, "uniform(995, 1000)");
    Tensor xl = testing::random_tensor(c.shape, gen, -1000.f, -995.f);
    for (bool log : {false, true}) check_forward(xl, c.axis, log, "uniform(-1000, -995)");
  }
}

TEST(SoftmaxForward, ChannelsLastInputKeepsItsLayout) {
  Generator gen = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{2, 5, 3, 4}, {1, 13, 7, 3}, {3, 70, 2, 1}}) {
    Tensor x = testing::random_tensor(s, gen, -3.f, 3.f).to_format(MemoryFormat::channels_last);
    ASSERT_FALSE(x.is_contiguous());
    for (int64_t axis = -4; axis < 4; ++axis) {
      for (bool log : {false, true}) {
        check_forward(x, axis, log, "channels-last");
        EXPECT_TRUE((log ? log_softmax(x, axis) : softmax(x, axis)).is_channels_last());
      }
    }
  }
}

TEST(SoftmaxForward, NonContiguousInput) {
  Generator gen = testing::test_generator();
  // A (5, 6) view with row stride 9 and column stride 1 into a larger buffer.
  Tensor base = testing::random_tensor({5 * 9}, gen, -2.f, 2.f);
  Tensor view = Tensor::empty_strided({5, 6}, {9, 1});
  {
    std::vector<float> b = base.to_vector(), v;
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 6; ++c) v.push_back(b[r * 9 + c]);
    view.copy_(Tensor::from_vector(v, {5, 6}));
  }
  ASSERT_FALSE(view.is_contiguous());
  for (int64_t axis : {0, 1})
    for (bool log : {false, true}) check_forward(view, axis, log, "strided view");
}

TEST(SoftmaxForward, ZeroDimAndEmpty) {
  Tensor s = Tensor::scalar(3.5);
  EXPECT_FLOAT_EQ(softmax(s).item(), 1.0f);
  EXPECT_FLOAT_EQ(log_softmax(s, 0).item(), 0.0f);
  Tensor e = Tensor::empty({0, 5});
  EXPECT_EQ(softmax(e, 1).shape(), (Shape{0, 5}));
  EXPECT_EQ(log_softmax(e, 0).numel(), 0);
}

TEST(SoftmaxForward, InfinitiesAndNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  // -inf logits (masked entries) get probability 0 and log-probability -inf.
  Tensor x = Tensor::from_vector({1.f, -inf, 2.f, -inf}, {1, 4});
  std::vector<float> y = softmax(x).to_vector();
  const double e = std::exp(1.0);
  EXPECT_TRUE(testing::all_close(y, {1 / (1 + e), 0.0, e / (1 + e), 0.0}, 1e-6, 0));
  std::vector<float> ly = log_softmax(x).to_vector();
  EXPECT_EQ(ly[1], -inf);
  EXPECT_EQ(ly[3], -inf);
  // A NaN poisons its row (never a plausible-looking answer), not the others.
  Tensor xn = Tensor::from_vector({1.f, std::nanf(""), 2.f, 0.f, 1.f, 2.f}, {2, 3});
  for (bool log : {false, true}) {
    std::vector<float> yn = (log ? log_softmax(xn) : softmax(xn)).to_vector();
    for (int j = 0; j < 3; ++j) EXPECT_TRUE(std::isnan(yn[j])) << j;
    for (int j = 3; j < 6; ++j) EXPECT_FALSE(std::isnan(yn[j])) << j;
  }
}

TEST(SoftmaxKernels, BackwardMatchesDifferentiatedReference) {
  Generator gen = testing::test_generator();
  const std::vector<Case> cases = {{{1}, 0},        {{7}, 0},          {{3, 5}, 1},       {{3, 5}, 0},
                                   {{2, 7, 13}, 1}, {{2, 3, 70}, 1},   {{13, 1}, 0},      {{2, 3, 5, 7}, 2},
                                   {{4, 33}, 1},    {{1, 9, 130}, 1}};
  for (const Case& c : cases) {
    const SoftmaxParams p = params_for(c.shape, c.axis);
    for (bool log : {false, true}) {
      Tensor x = testing::random_tensor(c.shape, gen, -3.f, 3.f);
      Tensor dy = testing::random_tensor(c.shape, gen, -1.f, 1.f);
      Tensor y = Tensor::empty(c.shape), dx = Tensor::empty(c.shape);
      if (log) {
        kernels::cpu::log_softmax_forward(x.data<float>(), y.data<float>(), p);
        kernels::cpu::log_softmax_backward(y.data<float>(), dy.data<float>(), dx.data<float>(), p);
      } else {
        kernels::cpu::softmax_forward(x.data<float>(), y.data<float>(), p);
        kernels::cpu::softmax_backward(y.data<float>(), dy.data<float>(), dx.data<float>(), p);
      }
      const std::vector<double> ref = ref_backward(x.to_vector(), dy.to_vector(), p, log);
      EXPECT_TRUE(testing::all_close(dx.to_vector(), ref, 1e-4, 1e-6))
          << (log ? "log_softmax" : "softmax") << " backward " << shape_str(c.shape) << " axis " << c.axis;
    }
  }
}

TEST(SoftmaxKernels, ExpApproxWithinFewUlp) {
  // Dense sweep of the range softmax uses (and the positive side up to 88);
  // below ln(2^-125) = -86.64 results flush to 0 (fast_exp.h).
  double worst = 0;
  for (int k = 0; k <= 400000; ++k) {
    const float x = -86.6f + static_cast<float>(k) * (174.6f / 400000.f);
    const double ref = std::exp(static_cast<double>(x));
    const double rel = std::fabs(kernels::cpu::exp_approx(x) - ref) / ref;
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 3.6e-7) << "about 3 ulp of float";  // 2^-23 = 1.19e-7
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(kernels::cpu::exp_approx(0.f), 1.f);
  EXPECT_EQ(kernels::cpu::exp_approx(-inf), 0.f);
  EXPECT_EQ(kernels::cpu::exp_approx(-100.f), 0.f);
  EXPECT_TRUE(std::isnan(kernels::cpu::exp_approx(std::nanf(""))));
  EXPECT_TRUE(std::isnan(kernels::cpu::exp_approx(-std::nanf(""))));
  EXPECT_TRUE(std::isinf(kernels::cpu::exp_approx(inf)));
}

}  // namespace
}  // namespace graft
