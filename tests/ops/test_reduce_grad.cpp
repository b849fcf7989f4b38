// Backward of sum, mean and sum_to against finite differences, layouts of
// their gradients, and bad inputs.
#include <string>

#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::gradcheck;

TEST(ReduceGrad, SumAndMean) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, std::vector<std::vector<int64_t>>>> cases = {
      {{}, {{}}},
      {{7}, {{}, {0}}},
      {{3, 5}, {{0}, {1}, {-1, 0}}},
      {{2, 3, 4, 5}, {{}, {1}, {0, 2, 3}, {2, 3}, {-1}}},
  };
  for (const auto& [shape, dim_sets] : cases) {
    for (const auto& dims : dim_sets) {
      for (bool keepdim : {false, true}) {
        Tensor x = Tensor::rand(shape, gen, -1.f, 1.f);
        const std::string what = shape_str(shape) + " dims " + shape_str(dims) + (keepdim ? " keepdim" : "");
        EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return sum(in[0], dims, keepdim); }, {x}))
            << "sum " << what;
        EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return mean(in[0], dims, keepdim); }, {x}))
            << "mean " << what;
        if (shape.size() == 4) {
          EXPECT_TRUE(gradcheck(
              [&](const std::vector<Tensor>& in) {
                return mean(in[0].to_format(MemoryFormat::channels_last), dims, keepdim);
              },
              {x}))
              << "mean channels-last " << what;
        }
      }
    }
  }
}

TEST(ReduceGrad, SumTo) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {3, 4}}, {{2, 3, 4}, {1, 3, 1}}, {{2, 3, 4}, {}}, {{1, 5}, {5}}, {{2, 3, 5, 7}, {1, 3, 1, 1}}};
  for (const auto& [from, to] : cases) {
    Tensor x = Tensor::rand(from, gen, -1.f, 1.f);
    EXPECT_TRUE(gradcheck([to = to](const std::vector<Tensor>& in) { return sum_to(in[0], to); }, {x}))
        << shape_str(from) << " to " << shape_str(to);
  }
}

TEST(ReduceGrad, GradientKeepsChannelsLastLayout) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen).to_format(MemoryFormat::channels_last).set_requires_grad(true);
  mean(x, {2, 3}).backward(Tensor::ones({2, 3}));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().is_channels_last());
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(120, 1.f / 20));
}

TEST(ReduceGrad, BadInputsNameTheOp) {
  Tensor x = Tensor::zeros({2, 3});
  EXPECT_TRUE(testing::throws_naming([&] { sum(x, {2}); }, {"sum", "[2, 3]", "2"}));
  EXPECT_TRUE(testing::throws_naming([&] { mean(x, {-3}); }, {"mean", "[2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { sum(x, {1, -1}); }, {"sum", "twice"}));
  EXPECT_TRUE(testing::throws_naming([&] { sum_to(x, {4}); }, {"sum_to", "[2, 3]", "[4]"}));
  EXPECT_TRUE(testing::throws_naming([&] { sum_to(x, {1, 2, 3}); }, {"sum_to", "[2, 3]", "[1, 2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { sum(Tensor::from_vector_i64({1, 2}, {2})); }, {"sum", "i64"}));
}

}  // namespace
}  // namespace graft
