// softmax / log_softmax backward against finite differences, and bad inputs.
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/softmax.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

struct Case {
  Shape shape;
  int64_t axis;
};

TEST(SoftmaxGrad, MatchesFiniteDifferences) {
  Generator gen = testing::test_generator();
  const std::vector<Case> cases = {{{7}, 0},       {{3, 5}, 1},       {{3, 5}, 0},         {{4, 1}, -1},
                                   {{2, 3, 4}, 1}, {{2, 3, 13}, -1},  {{2, 3, 4, 5}, 0},   {{2, 3, 4, 5}, 2},
                                   {{2, 70, 3}, 2}, {{1, 3, 67}, 1}};
  for (const Case& c : cases) {
    for (bool log : {false, true}) {
      const int64_t axis = c.axis;
      Tensor x = testing::random_tensor(c.shape, gen, -2.f, 2.f);
      auto f = [axis, log](const std::vector<Tensor>& in) { return log ? log_softmax(in[0], axis) : softmax(in[0], axis); };
      EXPECT_TRUE(testing::gradcheck(f, {x})) << (log ? "log_softmax " : "softmax ") << shape_str(c.shape) << " axis "
                                              << axis;
    }
  }
}

TEST(SoftmaxGrad, ChannelsLastInput) {
  Generator gen = testing::test_generator();
  for (int64_t axis : {1, 3, 0}) {
    for (bool log : {false, true}) {
      Tensor x = testing::random_tensor({2, 5, 3, 2}, gen, -2.f, 2.f);
      // The leaf stays contiguous (gradcheck perturbs it); the op sees it in
      // channels-last memory, and backward runs through to_format as well.
      auto f = [axis, log](const std::vector<Tensor>& in) {
        Tensor cl = in[0].to_format(MemoryFormat::channels_last);
        return log ? log_softmax(cl, axis) : softmax(cl, axis);
      };
      EXPECT_TRUE(testing::gradcheck(f, {x})) << "axis " << axis << (log ? " log" : "");
    }
  }
}

TEST(SoftmaxGrad, GradientOfSumOfSoftmaxIsZero) {
  // sum_j softmax(x)_j == 1 for every x, so its gradient vanishes exactly (up to rounding).
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({3, 11}, gen, -3.f, 3.f);
  x.set_requires_grad(true);
  Tensor y = softmax(x, 1);
  y.backward(Tensor::ones({3, 11}));
  for (float g : x.grad().to_vector()) EXPECT_NEAR(g, 0.f, 1e-6f);
}

TEST(SoftmaxGrad, NoRecordWithoutRequiresGrad) {
  Tensor x = Tensor::ones({2, 3});
  EXPECT_FALSE(softmax(x).requires_grad());
  Tensor xr = Tensor::ones({2, 3}).set_requires_grad(true);
  {
    NoGradGuard ng;
    EXPECT_FALSE(log_softmax(xr).requires_grad());
  }
  EXPECT_TRUE(log_softmax(xr).requires_grad());
}

TEST(SoftmaxGrad, InPlaceChangeOfSavedOutputIsCaught) {
  Tensor x = Tensor::ones({2, 3}).set_requires_grad(true);
  Tensor y = softmax(x);
  {
    NoGradGuard ng;
    Tensor(y).mul_(2.0);  // y itself requires grad, so change it outside grad mode
  }
  EXPECT_TRUE(testing::throws_naming([&] { y.backward(Tensor::ones({2, 3})); }, {"softmax"}));
}

TEST(SoftmaxGrad, BadInputs) {
  Tensor x = Tensor::ones({2, 3});
  EXPECT_TRUE(testing::throws_naming([&] { softmax(x, 2); }, {"softmax", "axis 2", "[2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { log_softmax(x, -3); }, {"log_softmax", "axis -3"}));
  EXPECT_TRUE(testing::throws_naming([&] { softmax(Tensor::scalar(1.0), 1); }, {"softmax", "axis 1"}));
  EXPECT_TRUE(testing::throws_naming([&] { softmax(Tensor::ones({2, 3}, DType::i32)); }, {"softmax", "i32"}));
  EXPECT_TRUE(testing::throws_naming([&] { log_softmax(Tensor::ones({4}, DType::f16)); }, {"log_softmax", "f16"}));
  EXPECT_TRUE(testing::throws_naming([&] { softmax(Tensor()); }, {"softmax", "undefined"}));
}

}  // namespace
}  // namespace graft
