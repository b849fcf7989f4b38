// Normalisation backward against finite differences, and the errors bad inputs raise.
#include <cmath>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/norm.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::gradcheck;
using testing::GradcheckOptions;

GradcheckOptions only(std::vector<bool> check) {
  GradcheckOptions o;
  o.check = std::move(check);
  return o;
}

TEST(NormGrad, BatchNormTraining) {
  Generator gen = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{6, 4}, {2, 3, 3, 2}, {3, 5, 1, 3}}) {
    const int64_t C = s[1];
    Tensor x = testing::random_tensor(s, gen, -2.f, 2.f);
    Tensor w = testing::random_tensor({C}, gen, 0.5f, 1.5f), b = testing::random_tensor({C}, gen);
    auto bn = [](const std::vector<Tensor>& in) {
      return batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), /*training=*/true, 0.1, 1e-5);
    };
    EXPECT_TRUE(gradcheck(bn, {x, w, b})) << shape_str(s);
    // A frozen affine (x only) and a frozen input (weight and bias only).
    EXPECT_TRUE(gradcheck(bn, {x, w, b}, only({true, false, false}))) << shape_str(s);
    EXPECT_TRUE(gradcheck(bn, {x, w, b}, only({false, true, true}))) << shape_str(s);
    // No affine, and the input handed over channels-last.
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Tensor>& in) {
          const Tensor xi = in[0].dim() == 4 ? in[0].to_format(MemoryFormat::channels_last) : in[0];
          return batch_norm(xi, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
        },
        {x}))
        << shape_str(s);
  }
}

TEST(NormGrad, BatchNormTrainingWithRunningStats) {
  // The running statistics change on every call but are not differentiated.
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({4, 3, 2, 2}, gen, -2.f, 2.f);
  Tensor w = testing::random_tensor({3}, gen, 0.5f, 1.5f), b = testing::random_tensor({3}, gen);
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  EXPECT_TRUE(gradcheck(
      [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, true, 0.1, 1e-5); },
      {x, w, b}));
  EXPECT_FALSE(rm.requires_grad());
  EXPECT_FALSE(rv.grad().defined());
}

TEST(NormGrad, BatchNormEvaluation) {
  Generator gen = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{5, 4}, {2, 3, 3, 2}, {1, 2, 1, 1}}) {
    const int64_t C = s[1];
    Tensor x = testing::random_tensor(s, gen, -2.f, 2.f);
    Tensor w = testing::random_tensor({C}, gen, 0.5f, 1.5f), b = testing::random_tensor({C}, gen);
    Tensor rm = testing::random_tensor({C}, gen), rv = testing::random_tensor({C}, gen, 0.5f, 2.f);
    auto bn = [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false, 0.1, 1e-5); };
    EXPECT_TRUE(gradcheck(bn, {x, w, b})) << shape_str(s);
    EXPECT_TRUE(gradcheck(bn, {x, w, b}, only({true, false, false}))) << shape_str(s);
    EXPECT_TRUE(gradcheck(bn, {x, w, b}, only({false, true, false}))) << shape_str(s);
  }
}

TEST(NormGrad, BatchNormEvaluationBackwardIgnoresLaterRunningStatUpdates) {
  // Eval-mode statistics are constants of the op: a later training step that
  // updates the buffers must not change this op's gradient.
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({3, 2, 2, 2}, gen).set_requires_grad(true);
  Tensor rm = testing::random_tensor({2}, gen), rv = testing::random_tensor({2}, gen, 0.5f, 2.f);
  const std::vector<float> rv0 = rv.to_vector();
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, false, 0.1, 1e-5);
  batch_norm(testing::random_tensor({3, 2, 2, 2}, gen, 5.f, 9.f), Tensor(), Tensor(), rm, rv, true, 0.5, 1e-5);
  y.backward(Tensor::ones(y.shape()));
  const std::vector<float> g = x.grad().to_vector();
  for (size_t i = 0; i < g.size(); ++i) {
    const size_t c = (i / 4) % 2;
    EXPECT_NEAR(g[i], 1.0 / std::sqrt(rv0[c] + 1e-5), 1e-5);
  }
}

TEST(NormGrad, LayerNorm) {
  Generator gen = testing::test_generator();
  struct Case {
    Shape shape;
    int64_t dims;
  };
  for (const Case& c : std::vector<Case>{{{3, 7}, 1}, {{2, 3, 4}, 2}, {{2, 2, 3, 3}, 3}, {{4, 1, 5}, 1}}) {
    const Shape ns(c.shape.end() - c.dims, c.shape.end());
    Tensor x = testing::random_tensor(c.shape, gen, -2.f, 2.f);
    Tensor w = testing::random_tensor(ns, gen, 0.5f, 1.5f), b = testing::random_tensor(ns, gen);
    const int64_t dims = c.dims;
    auto ln = [dims](const std::vector<Tensor>& in) { return layer_norm(in[0], dims, in[1], in[2], 1e-5); };
    EXPECT_TRUE(gradcheck(ln, {x, w, b})) << shape_str(c.shape);
    EXPECT_TRUE(gradcheck(ln, {x, w, b}, only({false, true, true}))) << shape_str(c.shape);
    EXPECT_TRUE(gradcheck(ln, {x, w, b}, only({true, false, false}))) << shape_str(c.shape);
    EXPECT_TRUE(gradcheck(
        [dims](const std::vector<Tensor>& in) { return layer_norm(in[0], dims, Tensor(), Tensor(), 1e-5); }, {x}))
        << shape_str(c.shape);
  }
}

// ---- bad inputs ---------------------------------------------------------------------

template <class F>
void expect_error_naming(F&& f, const std::string& op, const std::string& what) {
  EXPECT_TRUE(testing::throws_naming(f, {op})) << what;
}

TEST(NormGrad, InPlaceChangeOfTheInputAfterForwardIsCaught) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({4, 3}, gen);
  Tensor w = Tensor::ones({3}).set_requires_grad(true);
  Tensor y = batch_norm(x, w, Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  x.mul_(2.0);
  expect_error_naming([&] { y.backward(Tensor::ones(y.shape()), /*retain_graph=*/true); }, "batch_norm",
                      "x changed after forward");
}

TEST(NormGrad, BatchNormBadInputsNameTheOp) {
  Generator gen = testing::test_generator();
  const Tensor x = testing::random_tensor({2, 3, 4, 4}, gen);
  const Tensor c3 = Tensor::ones({3}), c4 = Tensor::ones({4});
  const std::string op = "batch_norm";
  expect_error_naming([&] { batch_norm(testing::random_tensor({2, 3, 4}, gen), c3, c3, c3, c3, true); }, op, "3-D input");
  expect_error_naming([&] { batch_norm(x, c4, c3, c3, c3, true); }, op, "weight shape");
  expect_error_naming([&] { batch_norm(x, c3, Tensor::ones({1, 3}), c3, c3, true); }, op, "bias shape");
  expect_error_naming([&] { batch_norm(x, c3, c3, c4, c3, false); }, op, "running_mean shape");
  expect_error_naming([&] { batch_norm(x, c3, c3, c3, c4, false); }, op, "running_var shape");
  expect_error_naming([&] { batch_norm(x, c3, c3, c3, Tensor(), true); }, op, "running_var missing");
  expect_error_naming([&] { batch_norm(x, c3, c3, Tensor(), Tensor(), false); }, op, "eval without running stats");
  expect_error_naming([&] { batch_norm(x, c3, c3, c3, c3, true, 1.5); }, op, "momentum > 1");
  expect_error_naming([&] { batch_norm(x, c3, c3, c3, c3, true, 0.1, -1.0); }, op, "negative eps");
  expect_error_naming([&] { batch_norm(x.to(DType::bf16), c3, c3, c3, c3, true); }, op, "bf16 input");
  // One value per channel cannot be normalised with batch statistics (PyTorch
  // raises "expected more than 1 value per channel when training").
  for (const Shape& s : std::vector<Shape>{{1, 3}, {1, 3, 1, 1}}) {
    expect_error_naming([&] { batch_norm(Tensor::ones(s), c3, c3, c3, c3, true); }, "more than 1 value per channel",
                        shape_str(s));
  }
}

TEST(NormGrad, LayerNormBadInputsNameTheOp) {
  Generator gen = testing::test_generator();
  const Tensor x = testing::random_tensor({2, 3, 4}, gen);
  const std::string op = "layer_norm";
  expect_error_naming([&] { layer_norm(x, 0, Tensor(), Tensor()); }, op, "zero normalized dims");
  expect_error_naming([&] { layer_norm(x, 4, Tensor(), Tensor()); }, op, "too many normalized dims");
  expect_error_naming([&] { layer_norm(x, 2, Tensor::ones({4}), Tensor()); }, op, "weight shape");
  expect_error_naming([&] { layer_norm(x, 1, Tensor(), Tensor::ones({3})); }, op, "bias shape");
  expect_error_naming([&] { layer_norm(x, 1, Tensor(), Tensor(), -1.0); }, op, "negative eps");
  expect_error_naming([&] { layer_norm(Tensor::zeros({2, 3}, DType::i64), 1, Tensor(), Tensor()); }, op, "i64 input");
}

}  // namespace
}  // namespace graft
