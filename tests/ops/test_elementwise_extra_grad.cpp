// Backward of erf, pow and where against finite differences (broadcast and
// channels-last cases included), pow's defined gradients at non-positive
// bases, frozen operands, equal recording nothing, and bad inputs.
#include <array>
#include <cmath>
#include <string>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::gradcheck;
using testing::GradcheckOptions;

Tensor to_cl(const Tensor& t) { return t.dim() == 4 ? t.to_format(MemoryFormat::channels_last) : t; }

const std::vector<std::pair<Shape, Shape>> kPairs = {{{3, 4}, {3, 4}}, {{2, 3, 4}, {4}},  {{4}, {2, 3, 4}},
                                                     {{2, 1, 4}, {3, 1}}, {{}, {5}},       {{5}, {}},
                                                     {{2, 3, 4, 5}, {1, 3, 1, 1}}};

TEST(ElementwiseExtraGrad, Erf) {
  Generator gen = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{7}, {3, 5}, {2, 3, 2, 3}}) {
    Tensor x = Tensor::rand(s, gen, -2.5f, 2.5f);
    EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return erf(in[0]); }, {x})) << shape_str(s);
    EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return erf(to_cl(in[0])); }, {x})) << shape_str(s);
  }
  // The derivative at 0 is 2/sqrt(pi).
  Tensor z = Tensor::zeros({1}).set_requires_grad(true);
  erf(z).backward(Tensor::ones({1}));
  EXPECT_NEAR(z.grad().item(), 2.0 / std::sqrt(M_PI), 1e-6);
}

TEST(ElementwiseExtraGrad, PowInBothOperandsWithBroadcasting) {
  Generator gen = testing::test_generator();
  for (const auto& [sa, sb] : kPairs) {
    Tensor a = Tensor::rand(sa, gen, 0.5f, 2.f), b = Tensor::rand(sb, gen, -2.f, 2.f);
    EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], in[1]); }, {a, b}))
        << shape_str(sa) << " ^ " << shape_str(sb);
    EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return pow(to_cl(in[0]), to_cl(in[1])); }, {a, b}))
        << "channels-last " << shape_str(sa) << " ^ " << shape_str(sb);
  }
  // A negative base with integer exponents: differentiable in the base.
  Tensor a = Tensor::rand({6}, gen, -2.f, -0.5f), b = Tensor::from_vector({1.f, 2.f, 3.f, -1.f, -2.f, 4.f}, {6});
  GradcheckOptions base_only;
  base_only.check = {true, false};
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], in[1]); }, {a, b}, base_only));
}

// Where the base is not positive, the exponent's gradient is defined as 0 (see
// kernels/cpu/elementwise_extra.h); the base's gradient is 0 where b == 0.
TEST(ElementwiseExtraGrad, PowAtNonPositiveBases) {
  Tensor a = Tensor::from_vector({-2.f, 0.f, 0.f, 0.f, 3.f}, {5}).set_requires_grad(true);
  Tensor b = Tensor::from_vector({2.f, 0.f, 2.f, 1.f, 2.f}, {5}).set_requires_grad(true);
  pow(a, b).backward(Tensor::ones({5}));
  const std::vector<float> ga = a.grad().to_vector(), gb = b.grad().to_vector();
  const std::vector<double> ga_ref{2 * -2.0, 0, 0, 1, 2 * 3.0};
  const std::vector<double> gb_ref{0, 0, 0, 0, 9 * std::log(3.0)};
  EXPECT_TRUE(testing::all_close(ga, ga_ref, 1e-6, 1e-6));
  EXPECT_TRUE(testing::all_close(gb, gb_ref, 1e-6, 1e-6));
}

TEST(ElementwiseExtraGrad, WhereInBothValuesWithBroadcasting) {
  Generator gen = testing::test_generator();
  const std::vector<std::array<Shape, 3>> cases = {{Shape{3, 4}, Shape{3, 4}, Shape{3, 4}},
                                                   {Shape{3, 1}, Shape{4}, Shape{}},
                                                   {Shape{2, 3, 4, 5}, Shape{1, 3, 1, 1}, Shape{5}},
                                                   {Shape{}, Shape{2, 3}, Shape{2, 1}}};
  for (const auto& [sc, sa, sb] : cases) {
    Tensor c = Tensor::empty(sc, DType::boolean);
    const std::vector<float> r = Tensor::rand(sc, gen).to_vector();
    for (size_t i = 0; i < r.size(); ++i) c.data<uint8_t>()[i] = r[i] < 0.5f;
    Tensor a = Tensor::rand(sa, gen, -1.f, 1.f), b = Tensor::rand(sb, gen, -1.f, 1.f);
    EXPECT_TRUE(gradcheck([c](const std::vector<Tensor>& in) { return where(c, in[0], in[1]); }, {a, b}))
        << shape_str(sc) << " " << shape_str(sa) << " " << shape_str(sb);
    EXPECT_TRUE(gradcheck([c](const std::vector<Tensor>& in) { return where(to_cl(c), to_cl(in[0]), to_cl(in[1])); },
                          {a, b}))
        << "channels-last";
  }
  // Each value gets the gradient exactly where it was chosen.
  Tensor c = Tensor::from_vector({1.f, 0.f, 1.f}, {3}, DType::boolean);
  Tensor a = Tensor::zeros({3}).set_requires_grad(true), b = Tensor::zeros({3}).set_requires_grad(true);
  where(c, a, b).backward(Tensor::from_vector({2.f, 3.f, 4.f}, {3}));
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{2.f, 0.f, 4.f}));
  EXPECT_EQ(b.grad().to_vector(), (std::vector<float>{0.f, 3.f, 0.f}));
}

TEST(ElementwiseExtraGrad, FrozenOperandGetsNoGradient) {
  Generator gen = testing::test_generator();
  Tensor a = Tensor::rand({3, 4}, gen, 0.5f, 2.f).set_requires_grad(true), e = Tensor::rand({4}, gen, -1.f, 1.f);
  sum(pow(a, e)).backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(e.grad().defined());
  Tensor c = Tensor::ones({4}, DType::boolean), v = Tensor::rand({3, 4}, gen).set_requires_grad(true);
  sum(where(c, Tensor::zeros({4}), v)).backward();
  EXPECT_EQ(sum(v.grad()).item(), 0.f);  // never chosen
  // Nothing needs a gradient: nothing is recorded; equal never records.
  EXPECT_EQ(pow(e, e).grad_fn(), nullptr);
  Tensor eq = equal(a, a);
  EXPECT_FALSE(eq.requires_grad());
  EXPECT_EQ(eq.grad_fn(), nullptr);
  EXPECT_EQ(eq.dtype(), DType::boolean);
}

TEST(ElementwiseExtraGrad, InPlaceChangeOfSavedInputIsCaught) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({5}, gen, 0.5f, 1.f).set_requires_grad(true);
  Tensor h = mul_scalar(x, 2.0);
  Tensor y = erf(h), z = pow(h, Tensor::full({}, 2.5));
  {
    NoGradGuard ng;
    h.mul_(2.0);
  }
  EXPECT_TRUE(testing::throws_naming([&] { sum(y).backward(); }, {"erf"}));
  EXPECT_TRUE(testing::throws_naming([&] { sum(z).backward(); }, {"pow"}));
}

TEST(ElementwiseExtraGrad, BadInputsNameTheOpAndShapes) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  Tensor i = Tensor::from_vector_i64({1, 2, 3}, {3});
  Tensor yes = Tensor::ones({2, 3}, DType::boolean);
  EXPECT_TRUE(testing::throws_naming([&] { pow(a, b); }, {"pow", "[2, 3]", "[4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { pow(i, i); }, {"pow", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { pow(a, Tensor()); }, {"pow", "undefined"}));
  EXPECT_TRUE(testing::throws_naming([&] { erf(i); }, {"erf", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { erf(Tensor::ones({2}, DType::bf16)); }, {"erf", "bf16"}));
  EXPECT_TRUE(testing::throws_naming([&] { where(a, a, a); }, {"where", "condition", "f32"}));
  EXPECT_TRUE(testing::throws_naming([&] { where(yes, a, b); }, {"where", "[2, 3]", "[4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { where(Tensor::ones({5}, DType::boolean), a, a); }, {"where", "[5]", "[2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { where(yes, i, i); }, {"where", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { equal(a, i); }, {"equal", "f32", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { equal(a, b); }, {"equal", "[2, 3]", "[4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { equal(Tensor::ones({2}, DType::f16), Tensor::ones({2}, DType::f16)); },
                                     {"equal", "f16"}));
}

}  // namespace
}  // namespace graft
