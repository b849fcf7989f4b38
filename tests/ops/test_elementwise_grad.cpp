// Backward of every elementwise op and activation against finite differences
// (broadcast cases included), layouts through backward, frozen operands, and
// bad inputs.
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

TEST(ElementwiseGrad, BinaryOpsWithBroadcasting) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{4}, {2, 3, 4}}, {{2, 1, 4}, {3, 1}}, {{}, {5}},
      {{5}, {}},        {{1}, {3, 1}},    {{2, 3, 4, 5}, {1, 3, 1, 1}}};
  using Fn = Tensor (*)(const Tensor&, const Tensor&);
  const std::vector<std::pair<const char*, Fn>> ops = {{"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}};
  for (const auto& [sa, sb] : pairs) {
    for (const auto& [name, op] : ops) {
      // b in [0.5, 2) keeps div away from its pole.
      Tensor a = Tensor::rand(sa, gen, -2.f, 2.f), b = Tensor::rand(sb, gen, 0.5f, 2.f);
      EXPECT_TRUE(gradcheck([op = op](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a, b}))
          << name << " " << shape_str(sa) << " with " << shape_str(sb);
      // The same through channels-last operands (4-D only).
      EXPECT_TRUE(gradcheck([op = op](const std::vector<Tensor>& in) { return op(to_cl(in[0]), to_cl(in[1])); }, {a, b}))
          << name << " channels-last " << shape_str(sa) << " with " << shape_str(sb);
    }
  }
}

TEST(ElementwiseGrad, SameTensorOnBothSides) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 5}, gen, 0.5f, 2.f);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return div(in[0], add(in[0], in[0])); }, {x}));
}

struct UnaryGradCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  float lo, hi;
  std::vector<float> kinks;
};

TEST(ElementwiseGrad, UnaryOpsAndActivations) {
  Generator gen = testing::test_generator();
  const std::vector<UnaryGradCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, -2, 2, {}},
      {"add_scalar", [](const Tensor& x) { return add_scalar(x, 0.5); }, -2, 2, {}},
      {"mul_scalar", [](const Tensor& x) { return mul_scalar(x, -1.5); }, -2, 2, {}},
      {"pow 2", [](const Tensor& x) { return pow_scalar(x, 2.0); }, -2, 2, {}},
      {"pow 3", [](const Tensor& x) { return pow_scalar(x, 3.0); }, -2, 2, {}},
      {"pow 0.5", [](const Tensor& x) { return pow_scalar(x, 0.5); }, 0.5f, 3, {}},
      {"pow -1.5", [](const Tensor& x) { return pow_scalar(x, -1.5); }, 0.5f, 3, {}},
      {"exp", [](const Tensor& x) { return exp(x); }, -2, 2, {}},
      {"log", [](const Tensor& x) { return log(x); }, 0.5f, 3, {}},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, 0.5f, 3, {}},
      {"relu", [](const Tensor& x) { return relu(x); }, -2, 2, {0.f}},
      {"relu6", [](const Tensor& x) { return relu6(x); }, -2, 8, {0.f, 6.f}},
      {"clip", [](const Tensor& x) { return clip(x, -0.5, 1.0); }, -2, 2, {-0.5f, 1.f}},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -4, 4, {}},
      {"silu", [](const Tensor& x) { return silu(x); }, -4, 4, {}},
      {"gelu erf", [](const Tensor& x) { return gelu(x); }, -4, 4, {}},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, GeluApprox::tanh); }, -4, 4, {}},
      {"hardswish", [](const Tensor& x) { return hardswish(x); }, -5, 5, {-3.f, 3.f}},
      {"hardsigmoid", [](const Tensor& x) { return hardsigmoid(x); }, -5, 5, {-3.f, 3.f}},
      {"tanh", [](const Tensor& x) { return tanh(x); }, -3, 3, {}},
  };
  for (const UnaryGradCase& c : cases) {
    for (const Shape& shape : {Shape{}, Shape{7}, Shape{2, 3, 4, 5}}) {
      Tensor x = testing::random_tensor_away_from(shape, gen, c.lo, c.hi, c.kinks, 0.05f);
      EXPECT_TRUE(gradcheck([op = c.op](const std::vector<Tensor>& in) { return op(in[0]); }, {x}))
          << c.name << " " << shape_str(shape);
    }
    Tensor x = testing::random_tensor_away_from({2, 3, 4, 5}, gen, c.lo, c.hi, c.kinks, 0.05f);
    EXPECT_TRUE(gradcheck([op = c.op](const std::vector<Tensor>& in) { return op(to_cl(in[0])); }, {x}))
        << c.name << " channels-last";
  }
}

// Gradients of layout-preserving ops keep the channels-last layout.
TEST(ElementwiseGrad, GradientsOfChannelsLastInputsAreChannelsLast) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen, -1.f, 1.f).to_format(MemoryFormat::channels_last);
  x.set_requires_grad(true);
  Tensor bias = Tensor::rand({1, 3, 1, 1}, gen);
  Tensor y = gelu(add(x, bias));
  EXPECT_TRUE(y.is_channels_last());
  y.backward(Tensor::ones({2, 3, 4, 5}));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().is_channels_last());
}

// A frozen operand gets no gradient and costs nothing; the other one is right.
TEST(ElementwiseGrad, FrozenOperandGetsNoGradient) {
  Generator gen = testing::test_generator();
  Tensor w = Tensor::rand({4}, gen, 0.5f, 2.f);
  Tensor x = Tensor::rand({3, 4}, gen, -1.f, 1.f);
  GradcheckOptions only_first;
  only_first.check = {true, false};
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[1]); }, {x, w}, only_first));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return div(in[0], in[1]); }, {x, w}, only_first));
  Tensor xr = x.clone().set_requires_grad(true);
  mul(xr, w).backward(Tensor::ones({3, 4}));
  EXPECT_FALSE(w.grad().defined());
  // Nothing needs a gradient: nothing is recorded.
  Tensor z = mul(x, w);
  EXPECT_FALSE(z.requires_grad());
  EXPECT_EQ(z.grad_fn(), nullptr);
}

TEST(ElementwiseGrad, InPlaceChangeOfSavedOutputIsCaught) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({5}, gen, -1.f, 1.f).set_requires_grad(true);
  Tensor y = sigmoid(x);  // saves its output
  {
    NoGradGuard ng;
    y.mul_(2.0);
  }
  EXPECT_TRUE(testing::throws_naming([&] { sum(y).backward(); }, {"sigmoid"}));
}

TEST(ElementwiseGrad, BadInputsNameTheOpAndShapes) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4}), c = Tensor::zeros({2, 3, 4});
  EXPECT_TRUE(testing::throws_naming([&] { add(a, b); }, {"add", "[2, 3]", "[4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { sub(b, a); }, {"sub", "[2, 3]", "[4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { mul(c, Tensor::zeros({3, 1, 1})); }, {"mul", "[2, 3, 4]", "[3, 1, 1]"}));
  EXPECT_TRUE(testing::throws_naming([&] { div(a, Tensor::zeros({3, 2})); }, {"div", "[2, 3]", "[3, 2]"}));
  EXPECT_TRUE(testing::throws_naming([&] { broadcast_shapes({5, 2}, {3}, "myop"); }, {"myop", "[5, 2]", "[3]"}));
  Tensor i = Tensor::from_vector_i64({1, 2, 3}, {3});
  EXPECT_TRUE(testing::throws_naming([&] { add(i, i); }, {"add", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { relu(i); }, {"relu"}));
  EXPECT_TRUE(testing::throws_naming([&] { clip(a, 2.0, 1.0); }, {"clip", "[2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { gelu(Tensor()); }, {"gelu"}));
  EXPECT_TRUE(testing::throws_naming([&] { mul(a, Tensor()); }, {"mul"}));
}

TEST(ElementwiseGrad, NaNPropagatesThroughActivations) {
  Tensor x = Tensor::from_vector({std::nanf(""), 1.f}, {2});
  for (const Tensor& y : {relu(x), relu6(x), clip(x, -1, 1), sigmoid(x), gelu(x), gelu(x, GeluApprox::tanh), tanh(x),
                          exp(x), silu(x), hardswish(x)})
    EXPECT_TRUE(std::isnan(y.to_vector()[0]));
}

}  // namespace
}  // namespace graft
