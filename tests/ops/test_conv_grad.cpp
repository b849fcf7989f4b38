// conv2d backward against finite differences, and its argument checks.
#include <string>

#include "engine/ops/conv.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/conv_options.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

struct GradCase {
  const char* what;
  Shape x, w;
  Conv2dOptions opt;
};

TEST(Conv2dGrad, MatchesFiniteDifferences) {
  Generator gen = testing::test_generator();
  const GradCase cases[] = {
      {"3x3 pad 1", {2, 3, 5, 4}, {4, 3, 3, 3}, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 1)},
      {"stride 2 asymmetric padding", {1, 2, 7, 6}, {3, 2, 3, 3}, testing::conv_options({2, 2}, {0, 1, 2, 1}, {1, 1}, 1)},
      {"dilation 2 rectangular", {1, 2, 6, 7}, {2, 2, 2, 3}, testing::conv_options({1, 2}, {1, 1, 1, 0}, {2, 1}, 1)},
      {"groups 2", {2, 4, 4, 5}, {6, 2, 3, 3}, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 2)},
      {"depthwise", {2, 5, 5, 4}, {5, 1, 3, 3}, testing::conv_options({2, 1}, {1, 0, 1, 2}, {1, 1}, 5)},
      {"pointwise", {2, 3, 3, 4}, {5, 3, 1, 1}, testing::conv_options({1, 1}, {0, 0, 0, 0}, {1, 1}, 1)},
      {"1x1 stride 2", {1, 3, 5, 5}, {2, 3, 1, 1}, testing::conv_options({2, 2}, {0, 0, 0, 0}, {1, 1}, 1)},
  };
  for (const GradCase& c : cases) {
    const Tensor x = testing::random_tensor(c.x, gen);
    const Tensor w = testing::random_tensor(c.w, gen);
    const Tensor b = testing::random_tensor({c.w[0]}, gen);
    const Conv2dOptions opt = c.opt;
    EXPECT_TRUE(testing::gradcheck([opt](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], opt); },
                                   {x, w, b}))
        << c.what;
    EXPECT_TRUE(testing::gradcheck([opt](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), opt); },
                                   {x, w}))
        << c.what << " (no bias)";
  }
}

// Only the inputs that need a gradient get one (a frozen weight, a first layer).
TEST(Conv2dGrad, OnlyRequestedGradients) {
  Generator gen = testing::test_generator();
  const Tensor x = testing::random_tensor({1, 2, 4, 4}, gen), w = testing::random_tensor({3, 2, 3, 3}, gen);
  const Tensor b = testing::random_tensor({3}, gen);
  const auto f = [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], Conv2dOptions::same_padding(1)); };
  testing::GradcheckOptions only_x;
  only_x.check = {true, false, false};
  EXPECT_TRUE(testing::gradcheck(f, {x, w, b}, only_x));
  testing::GradcheckOptions only_w;
  only_w.check = {false, true, false};
  EXPECT_TRUE(testing::gradcheck(f, {x, w, b}, only_w));
}

// EXPECT that `f` throws a graft::Error whose message names conv2d and contains `detail`.
template <class F>
void expect_conv_error(F&& f, const std::string& detail) {
  EXPECT_TRUE(testing::throws_naming(f, {"conv2d", detail}));
}

TEST(Conv2dGrad, BadArgumentsAreClearErrors) {
  Generator gen = testing::test_generator();
  const Tensor x = testing::random_tensor({1, 4, 5, 5}, gen);
  const Tensor w = testing::random_tensor({6, 4, 3, 3}, gen);
  expect_conv_error([&] { conv2d(testing::random_tensor({4, 5, 5}, gen), w); }, "[4, 5, 5]");
  expect_conv_error([&] { conv2d(x, testing::random_tensor({6, 4, 3}, gen)); }, "[6, 4, 3]");
  expect_conv_error([&] { conv2d(x, w, Tensor(), testing::conv_options({1, 1}, {0, 0, 0, 0}, {1, 1}, 3)); }, "not divisible");
  expect_conv_error([&] { conv2d(x, testing::random_tensor({5, 2, 3, 3}, gen), Tensor(), testing::conv_options({1, 1}, {0, 0, 0, 0}, {1, 1}, 2)); },
                    "output channels 5");
  expect_conv_error([&] { conv2d(x, testing::random_tensor({6, 3, 3, 3}, gen)); }, "expected C/groups = 4");
  expect_conv_error([&] { conv2d(x, testing::random_tensor({6, 4, 7, 3}, gen)); }, "output would be empty");
  expect_conv_error([&] { conv2d(x, w, Tensor(), testing::conv_options({1, 1}, {0, 0, 0, 0}, {3, 1}, 1)); }, "output would be empty");
  expect_conv_error([&] { conv2d(x, w, testing::random_tensor({5}, gen)); }, "bias");
  expect_conv_error([&] { conv2d(x, w, testing::random_tensor({6, 1}, gen)); }, "[6, 1]");
  expect_conv_error([&] { conv2d(x, w, Tensor(), testing::conv_options({0, 1}, {0, 0, 0, 0}, {1, 1}, 1)); }, "stride");
  expect_conv_error([&] { conv2d(x, w, Tensor(), testing::conv_options({1, 1}, {0, -1, 0, 0}, {1, 1}, 1)); }, "padding");
  expect_conv_error([&] { conv2d(x, w, Tensor(), testing::conv_options({1, 1}, {0, 0, 0, 0}, {0, 1}, 1)); }, "dilation");
  expect_conv_error([&] { conv2d(x, w, Tensor(), testing::conv_options({1, 1}, {0, 0, 0, 0}, {1, 1}, 0)); }, "groups");
  expect_conv_error([&] { conv2d(Tensor::zeros({1, 4, 5, 5}, DType::i64), w); }, "not supported");
}

}  // namespace
}  // namespace graft
