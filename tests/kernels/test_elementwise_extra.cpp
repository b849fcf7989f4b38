// erf, pow, where and equal against naive float64 references: broadcasting over
// many shape pairs (0-d and size-1 dims), layouts (channels-last, non-dense
// views), pow's special bases, and equal over every dtype it takes.
#include <array>
#include <cmath>
#include <functional>
#include <limits>

#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "kernels/cpu/elementwise.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;
using testing::to_double;

// f32 results against float64 references: a few ulp of the result.
constexpr double kRtol = 1e-5;
constexpr double kAtol = 1e-6;

// f over the broadcast of `ins` (values in double), row-major.
std::vector<double> reference(const std::vector<Tensor>& ins, const Shape& out,
                              const std::function<double(const std::vector<double>&)>& f) {
  std::vector<std::vector<double>> vals;
  for (const Tensor& t : ins) vals.push_back(to_double(t));
  std::vector<double> res(shape_numel(out));
  std::vector<int64_t> idx(out.size(), 0);
  std::vector<double> args(ins.size());
  for (size_t i = 0; i < res.size(); ++i) {
    for (size_t k = 0; k < ins.size(); ++k) args[k] = vals[k][testing::broadcast_flat_index(ins[k].shape(), out, idx)];
    res[i] = f(args);
    for (size_t d = out.size(); d-- > 0;) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return res;
}

const std::vector<std::pair<Shape, Shape>>& shape_pairs() {
  static const std::vector<std::pair<Shape, Shape>> pairs = {
      {{7}, {7}},       {{3, 13}, {13}},         {{13}, {3, 13}},       {{2, 1, 5}, {3, 1}},
      {{}, {9}},        {{9}, {}},               {{}, {}},              {{1}, {3, 1}},
      {{2, 3, 4, 5}, {1, 3, 1, 1}}, {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{1, 1, 17}, {5, 1}},
      {{0, 3}, {3}}};
  return pairs;
}

Tensor to_cl(const Tensor& t) { return t.dim() == 4 ? t.to_format(MemoryFormat::channels_last) : t; }

TEST(ElementwiseExtra, ErfMatchesDoubleOverItsRange) {
  Generator gen = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{1}, {7}, {3, 13}, {2, 3, 4, 5}, {40000}}) {
    Tensor x = Tensor::rand(s, gen, -6.f, 6.f);
    std::vector<double> ref;
    for (double v : to_double(x)) ref.push_back(std::erf(v));
    EXPECT_TRUE(all_close(erf(x).to_vector(), ref, kRtol, kAtol)) << shape_str(s);
  }
  // Tails, zero and the switch points of the approximation; NaN passes through.
  Tensor x = Tensor::from_vector({0.f, -0.f, 0.4999f, 0.5f, -0.5001f, 3.f, -9.f, 30.f, 1e-20f}, {9});
  std::vector<double> ref;
  for (double v : to_double(x)) ref.push_back(std::erf(v));
  EXPECT_TRUE(all_close(erf(x).to_vector(), ref, kRtol, 1e-30));
  EXPECT_TRUE(std::isnan(erf(Tensor::full({1}, std::nan(""))).item()));
}

TEST(ElementwiseExtra, ErfKeepsLayoutAndReadsViews) {
  Generator gen = testing::test_generator();
  Tensor x = to_cl(Tensor::rand({2, 3, 4, 5}, gen, -2.f, 2.f));
  Tensor y = erf(x);
  EXPECT_TRUE(y.is_channels_last());
  Tensor v = transpose(Tensor::rand({5, 6}, gen, -2.f, 2.f), 0, 1);  // not dense row-major
  std::vector<double> ref;
  for (double e : to_double(v)) ref.push_back(std::erf(e));
  EXPECT_TRUE(all_close(erf(v).to_vector(), ref, kRtol, kAtol));
}

TEST(ElementwiseExtra, PowBroadcastsOverManyShapePairs) {
  Generator gen = testing::test_generator();
  for (const auto& [sa, sb] : shape_pairs()) {
    Tensor a = Tensor::rand(sa, gen, 0.1f, 3.f), b = Tensor::rand(sb, gen, -2.5f, 2.5f);
    const Shape out = broadcast_shapes(sa, sb, "test");
    const auto ref = reference({a, b}, out, [](const std::vector<double>& v) { return std::pow(v[0], v[1]); });
    Tensor y = pow(a, b);
    ASSERT_EQ(y.shape(), out);
    EXPECT_TRUE(all_close(y.to_vector(), ref, kRtol, kAtol)) << shape_str(sa) << " ^ " << shape_str(sb);
    // Channels-last and transposed operands give the same values.
    EXPECT_TRUE(all_close(pow(to_cl(a), to_cl(b)).to_vector(), ref, kRtol, kAtol)) << "channels-last " << shape_str(sa);
  }
  Tensor a = Tensor::rand({6, 5}, gen, 0.5f, 2.f), b = Tensor::rand({5, 6}, gen, -2.f, 2.f);
  Tensor bt = transpose(b, 0, 1);
  const auto ref = reference({a, bt.contiguous()}, {6, 5}, [](const std::vector<double>& v) { return std::pow(v[0], v[1]); });
  EXPECT_TRUE(all_close(pow(a, bt).to_vector(), ref, kRtol, kAtol));
  EXPECT_TRUE(pow(to_cl(Tensor::rand({2, 3, 4, 5}, gen, 0.5f, 2.f)), Tensor::full({}, 2.0)).is_channels_last());
}

TEST(ElementwiseExtra, PowSpecialBasesFollowStdPow) {
  // Negative bases with integer exponents are real; with fractional ones NaN; 0^0 = 1.
  Tensor a = Tensor::from_vector({-2.f, -2.f, -2.f, 0.f, 0.f, 0.f, 1.f, 4.f}, {8});
  Tensor b = Tensor::from_vector({2.f, 3.f, 0.5f, 0.f, 2.f, -1.f, 1e6f, 0.5f}, {8});
  const std::vector<float> y = pow(a, b).to_vector();
  const std::vector<float> av = a.to_vector(), bv = b.to_vector();
  for (size_t i = 0; i < y.size(); ++i) {
    const double r = std::pow(static_cast<double>(av[i]), static_cast<double>(bv[i]));
    if (std::isnan(r)) EXPECT_TRUE(std::isnan(y[i])) << i;
    else if (std::isinf(r)) EXPECT_EQ(y[i], static_cast<float>(r)) << i;
    else EXPECT_NEAR(y[i], r, 1e-6 * std::abs(r)) << i;
  }
}

TEST(ElementwiseExtra, WhereBroadcastsAllThreeOperands) {
  Generator gen = testing::test_generator();
  const std::vector<std::array<Shape, 3>> cases = {
      {Shape{7}, Shape{7}, Shape{7}},          {Shape{3, 1}, Shape{13}, Shape{}},
      {Shape{}, Shape{2, 3}, Shape{3}},        {Shape{2, 3, 4, 5}, Shape{1, 3, 1, 1}, Shape{5}},
      {Shape{4, 1, 5}, Shape{3, 1}, Shape{1}}, {Shape{1}, Shape{}, Shape{}},
      {Shape{0, 2}, Shape{2}, Shape{1}},       {Shape{2, 3, 4, 5}, Shape{2, 3, 4, 5}, Shape{2, 3, 4, 5}}};
  for (const auto& [sc, sa, sb] : cases) {
    for (DType ct : {DType::boolean, DType::u8}) {
      Tensor c = Tensor::empty(sc, ct);
      std::vector<float> cv = Tensor::rand(sc, gen).to_vector();
      for (size_t i = 0; i < cv.size(); ++i) c.data<uint8_t>()[i] = cv[i] < 0.5f ? 0 : (ct == DType::u8 ? 7 : 1);
      Tensor a = Tensor::rand(sa, gen, -1.f, 1.f), b = Tensor::rand(sb, gen, 2.f, 3.f);
      const Shape out = broadcast_shapes(broadcast_shapes(sc, sa, "t"), sb, "t");
      const auto ref = reference({c, a, b}, out, [](const std::vector<double>& v) { return v[0] != 0 ? v[1] : v[2]; });
      Tensor y = where(c, a, b);
      ASSERT_EQ(y.shape(), out);
      EXPECT_TRUE(all_close(y.to_vector(), ref, 0, 0)) << shape_str(sc) << " " << shape_str(sa) << " " << shape_str(sb);
      EXPECT_TRUE(all_close(where(to_cl(c), to_cl(a), to_cl(b)).to_vector(), ref, 0, 0)) << "channels-last";
    }
  }
}

TEST(ElementwiseExtra, WhereKeepsChannelsLast) {
  Generator gen = testing::test_generator();
  Tensor a = to_cl(Tensor::rand({2, 3, 4, 5}, gen));
  Tensor c = Tensor::ones({1}, DType::boolean);
  EXPECT_TRUE(where(c, a, Tensor::zeros({})).is_channels_last());
}

TEST(ElementwiseExtra, EqualOverEveryDtype) {
  Generator gen = testing::test_generator();
  for (const auto& [sa, sb] : shape_pairs()) {
    // Few distinct values so that equal pairs are common.
    Tensor af = Tensor::rand(sa, gen, 0.f, 3.f), bf = Tensor::rand(sb, gen, 0.f, 3.f);
    std::vector<float> av = af.to_vector(), bv = bf.to_vector();
    for (float& v : av) v = std::floor(v);
    for (float& v : bv) v = std::floor(v);
    const Shape out = broadcast_shapes(sa, sb, "t");
    for (DType t : {DType::f32, DType::i64, DType::i32, DType::u8, DType::boolean}) {
      Tensor a = Tensor::from_vector(av, sa, t), b = Tensor::from_vector(bv, sb, t);
      const auto ref = reference({a, b}, out, [](const std::vector<double>& v) { return v[0] == v[1] ? 1.0 : 0.0; });
      Tensor y = equal(a, b);
      ASSERT_EQ(y.shape(), out);
      EXPECT_EQ(y.dtype(), DType::boolean);
      EXPECT_TRUE(all_close(y.to_vector(), ref, 0, 0)) << dtype_name(t) << " " << shape_str(sa) << " " << shape_str(sb);
    }
  }
  // Exact int64 beyond float precision; IEEE rules for NaN and signed zero.
  Tensor big = Tensor::from_vector_i64({(int64_t(1) << 53) + 1, -5}, {2});
  Tensor big2 = Tensor::from_vector_i64({(int64_t(1) << 53), -5}, {2});
  EXPECT_EQ(equal(big, big2).to_vector(), (std::vector<float>{0.f, 1.f}));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor::from_vector({nan, 0.f, 1.f}, {3}), z = Tensor::from_vector({nan, -0.f, 1.f}, {3});
  EXPECT_EQ(equal(x, z).to_vector(), (std::vector<float>{0.f, 1.f, 1.f}));
}

}  // namespace
}  // namespace graft
