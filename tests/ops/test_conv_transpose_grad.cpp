// conv_transpose2d backward against finite differences, and its argument checks.
#include "engine/ops/conv.h"
#include "engine/ops/reduce.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

ConvTranspose2dOptions make_opt(std::array<int64_t, 2> stride, std::array<int64_t, 4> pad,
                                std::array<int64_t, 2> out_pad, std::array<int64_t, 2> dil, int64_t groups) {
  ConvTranspose2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.output_padding = out_pad;
  o.dilation = dil;
  o.groups = groups;
  return o;
}

TEST(ConvTranspose2dGrad, MatchesFiniteDifferences) {
  Generator gen = testing::test_generator();
  struct Case {
    const char* what;
    Shape x, w;
    ConvTranspose2dOptions opt;
  };
  const Case cases[] = {
      {"3x3", {2, 3, 3, 4}, {3, 2, 3, 3}, make_opt({1, 1}, {0, 0, 0, 0}, {0, 0}, {1, 1}, 1)},
      {"stride 2 pads output_padding", {1, 2, 3, 3}, {2, 3, 3, 3}, make_opt({2, 2}, {1, 0, 1, 1}, {1, 1}, {1, 1}, 1)},
      {"dilation rectangular", {1, 2, 4, 3}, {2, 2, 2, 3}, make_opt({1, 2}, {0, 1, 1, 0}, {0, 1}, {2, 1}, 1)},
      {"groups 2", {2, 4, 3, 3}, {4, 2, 2, 2}, make_opt({2, 1}, {0, 0, 1, 0}, {0, 0}, {1, 1}, 2)},
      {"1x1", {2, 3, 2, 3}, {3, 4, 1, 1}, make_opt({1, 1}, {0, 0, 0, 0}, {0, 0}, {1, 1}, 1)},
  };
  for (const Case& c : cases) {
    const Tensor x = testing::random_tensor(c.x, gen);
    const Tensor w = testing::random_tensor(c.w, gen);
    const Tensor b = testing::random_tensor({c.w[1] * c.opt.groups}, gen);
    const ConvTranspose2dOptions opt = c.opt;
    EXPECT_TRUE(testing::gradcheck(
        [opt](const std::vector<Tensor>& in) { return conv_transpose2d(in[0], in[1], in[2], opt); }, {x, w, b}))
        << c.what;
  }
}

TEST(ConvTranspose2dGrad, OnlyRequestedGradients) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({1, 2, 3, 3}, gen);
  Tensor w = testing::random_tensor({2, 3, 3, 3}, gen).set_requires_grad(true);
  Tensor y = conv_transpose2d(x, w, Tensor(), make_opt({2, 2}, {1, 1, 1, 1}, {1, 1}, {1, 1}, 1));
  sum(y).backward();
  EXPECT_FALSE(x.grad().defined());
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().shape(), w.shape());
}

TEST(ConvTranspose2dGrad, BadInputsNameTheOp) {
  const Tensor x = Tensor::zeros({1, 4, 3, 3});
  const auto call = [&](const Tensor& xx, const Tensor& w, const Tensor& b, const ConvTranspose2dOptions& o) {
    return [=] { conv_transpose2d(xx, w, b, o); };
  };
  const ConvTranspose2dOptions plain;
  EXPECT_TRUE(testing::throws_naming(call(Tensor::zeros({4, 3, 3}), Tensor::zeros({4, 2, 3, 3}), Tensor(), plain),
                                     {"conv_transpose2d", "4-D"}));
  EXPECT_TRUE(testing::throws_naming(call(x, Tensor::zeros({3, 2, 3, 3}), Tensor(), plain),
                                     {"conv_transpose2d", "input channels"}));
  EXPECT_TRUE(testing::throws_naming(call(x, Tensor::zeros({4, 2, 3, 3}), Tensor::zeros({3}), plain),
                                     {"conv_transpose2d", "bias"}));
  EXPECT_TRUE(testing::throws_naming(
      call(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), make_opt({1, 1}, {0, 0, 0, 0}, {0, 0}, {1, 1}, 3)),
      {"conv_transpose2d", "groups"}));
  EXPECT_TRUE(testing::throws_naming(
      call(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), make_opt({0, 1}, {0, 0, 0, 0}, {0, 0}, {1, 1}, 1)),
      {"conv_transpose2d", "strides"}));
  EXPECT_TRUE(testing::throws_naming(
      call(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), make_opt({1, 1}, {3, 0, 3, 0}, {0, 0}, {1, 1}, 1)),
      {"conv_transpose2d", "crops"}));
  EXPECT_TRUE(testing::throws_naming(
      call(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), make_opt({1, 1}, {-1, 0, 0, 0}, {0, 0}, {1, 1}, 1)),
      {"conv_transpose2d", "padding"}));
}

}  // namespace
}  // namespace graft
