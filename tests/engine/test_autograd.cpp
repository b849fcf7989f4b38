#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/ops.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

Tensor leaf(const std::vector<float>& v, const Shape& s) {
  Tensor t = Tensor::from_vector(v, s);
  t.set_requires_grad(true);
  return t;
}


TEST(Autograd, ProductRuleThroughSharedInput) {
  // y = sum(x * x + 3x) -> dy/dx = 2x + 3
  Tensor x = leaf({1, -2, 0.5f}, {3});
  Tensor y = sum(add(mul(x, x), mul_scalar(x, 3.0)));
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{5, -1, 4}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1, 2}, {2});
  sum(mul_scalar(x, 2.0)).backward();
  sum(mul_scalar(x, 5.0)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{7, 7}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, BackwardWithAGivenGradient) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor y = mul_scalar(x, 2.0);
  y.backward(Tensor::from_vector({1, 10, 100}, {3}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 20, 200}));
}

TEST(Autograd, NonScalarWithoutGradientIsAnError) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = mul_scalar(x, 2.0);
  EXPECT_NE(testing::error_message([&] { y.backward(); }).find("must be a scalar, got [2]"), std::string::npos);
  EXPECT_NE(testing::error_message([&] { y.backward(Tensor::ones({3})); }).find("does not match the output [2]"),
            std::string::npos);
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y;
  {
    NoGradGuard ng;
    y = sum(mul(x, x));
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_NE(testing::error_message([&] { y.backward(); }).find("does not require grad"), std::string::npos);
  EXPECT_TRUE(autograd::grad_enabled());  // restored
}

TEST(Autograd, FrozenSubgraphRecordsNothing) {
  // A frozen "backbone" (weights that need no grad) feeding a trainable head:
  // the backbone's ops record no nodes, and only the head gets gradients.
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({4, 8}, gen);
  Tensor w_frozen = Tensor::rand({16, 8}, gen);  // requires_grad = false
  Tensor w_head = Tensor::rand({3, 16}, gen);
  w_head.set_requires_grad(true);

  Tensor features = relu(linear(x, w_frozen));
  EXPECT_FALSE(features.requires_grad());
  EXPECT_EQ(features.grad_fn(), nullptr);

  Tensor logits = linear(features, w_head);
  ASSERT_NE(logits.grad_fn(), nullptr);
  EXPECT_EQ(logits.grad_fn()->op, "linear");
  // The head's node has an edge to w_head only: nothing behind `features`.
  int edges = 0;
  for (auto& n : logits.grad_fn()->next) edges += n != nullptr;
  EXPECT_EQ(edges, 1);
  sum(logits).backward();
  EXPECT_TRUE(w_head.grad().defined());
  EXPECT_FALSE(w_frozen.grad().defined());
}

TEST(Autograd, FrozenWeightInTheMiddleStillPassesInputGradient) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 5}, gen);
  x.set_requires_grad(true);
  Tensor w = Tensor::rand({4, 5}, gen);  // frozen
  sum(linear(x, w)).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  // d/dx sum(x W^T) = column sums of W, for every row.
  std::vector<float> wv = w.to_vector(), gx = x.grad().to_vector();
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 5; ++k) {
      double s = 0;
      for (int o = 0; o < 4; ++o) s += wv[o * 5 + k];
      EXPECT_NEAR(gx[i * 5 + k], s, 1e-5);
    }
}

TEST(Autograd, InPlaceEditOfASavedTensorIsDetected) {
  Tensor w = leaf({1, 2, 3}, {3});
  Tensor x = leaf({4, 5, 6}, {3});
  Tensor y = sum(mul(x, w));  // mul saves x and w
  {
    NoGradGuard ng;
    w.add_(Tensor::ones({3}));  // e.g. an optimizer step between forward and backward
  }
  const std::string msg = testing::error_message([&] { y.backward(); });
  EXPECT_NE(msg.find("mul"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("modified in place"), std::string::npos) << msg;
}

TEST(Autograd, InPlaceEditOfASavedOutputIsDetected) {
  Tensor x = leaf({0.1f, 0.2f}, {2});
  Tensor s = sigmoid(x);  // saves its output
  Tensor y = sum(s);
  {
    NoGradGuard ng;
    s.mul_(2.0);
  }
  EXPECT_NE(testing::error_message([&] { y.backward(); }).find("modified in place"), std::string::npos);
}

TEST(Autograd, SecondBackwardNeedsRetainGraph) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = sum(mul(x, x));
  y.backward();
  const std::string msg = testing::error_message([&] { y.backward(); });
  EXPECT_NE(msg.find("a second time"), std::string::npos) << msg;
  EXPECT_NE(msg.find("retain_graph"), std::string::npos) << msg;

  Tensor z = sum(mul(x, x));
  x.zero_grad();
  z.backward(Tensor(), /*retain_graph=*/true);
  z.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{4, 8}));  // 2 * 2x
}

TEST(Autograd, DiamondGraphSumsBothPaths) {
  // y = sum(a * b) with a = 2x, b = x + 1 -> dy/dx = 2(x+1) + 2x = 4x + 2
  Tensor x = leaf({1, 3}, {2});
  Tensor a = mul_scalar(x, 2.0), b = add_scalar(x, 1.0);
  sum(mul(a, b)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{6, 14}));
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  Tensor x = leaf({1}, {1});
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = add_scalar(y, 0.0);
  sum(y).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{1}));
}

TEST(Autograd, BackwardFromALeaf) {
  Tensor x = leaf({1, 2}, {2});
  x.backward(Tensor::from_vector({3, 4}, {2}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{3, 4}));
}

}  // namespace
}  // namespace graft
