// matmul and linear backward against finite differences, and their argument checks.
#include <string>

#include "engine/ops/linear.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

TEST(MatmulGrad, MatchesFiniteDifferencesWithPromotionAndBroadcasting) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 5}},       {{6}, {6}},           {{4}, {4, 3}},           {{2, 3, 4}, {4}},
      {{2, 3, 4}, {2, 4, 5}}, {{2, 1, 3, 4}, {3, 4, 2}}, {{1, 3, 2, 4}, {2, 1, 4, 3}}, {{3, 4}, {2, 4, 2}},
      {{2, 5, 3}, {3, 2}},
  };
  const auto f = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  for (const auto& [sa, sb] : cases) {
    EXPECT_TRUE(testing::gradcheck(f, {testing::random_tensor(sa, gen), testing::random_tensor(sb, gen)}))
        << shape_str(sa) << " x " << shape_str(sb);
  }
}

TEST(LinearGrad, MatchesFiniteDifferences) {
  Generator gen = testing::test_generator();
  for (const Shape& xs : {Shape{5}, Shape{3, 5}, Shape{2, 3, 5}}) {
    const Tensor x = testing::random_tensor(xs, gen), w = testing::random_tensor({4, 5}, gen);
    const Tensor b = testing::random_tensor({4}, gen);
    EXPECT_TRUE(testing::gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b}))
        << shape_str(xs);
    EXPECT_TRUE(testing::gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w}))
        << shape_str(xs) << " (no bias)";
  }
}

TEST(LinearGrad, FrozenWeightGetsNoGradient) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({3, 5}, gen).set_requires_grad(true);
  Tensor w = testing::random_tensor({4, 5}, gen);
  Tensor b = testing::random_tensor({4}, gen).set_requires_grad(true);
  linear(x, w, b).backward(Tensor::ones({3, 4}));
  EXPECT_FALSE(w.grad().defined());
  ASSERT_TRUE(x.grad().defined() && b.grad().defined());
  // d(sum y)/dx[r, i] = sum_o w[o, i]; d/db = rows
  const std::vector<float> wv = w.to_vector(), gx = x.grad().to_vector(), gb = b.grad().to_vector();
  for (int64_t i = 0; i < 5; ++i) {
    double s = 0;
    for (int64_t o = 0; o < 4; ++o) s += wv[o * 5 + i];
    EXPECT_NEAR(gx[i], s, 1e-5);
    EXPECT_NEAR(gx[2 * 5 + i], s, 1e-5);
  }
  for (float v : gb) EXPECT_NEAR(v, 3.0, 1e-6);
}

template <class F>
void expect_error(F&& f, const char* op, const std::string& detail) {
  EXPECT_TRUE(testing::throws_naming(f, {op, detail}));
}

TEST(MatmulGrad, BadArgumentsAreClearErrors) {
  Generator gen = testing::test_generator();
  expect_error([&] { matmul(testing::random_tensor({3, 4}, gen), testing::random_tensor({5, 2}, gen)); }, "matmul",
               "inner dimensions");
  expect_error([&] { matmul(testing::random_tensor({2, 3, 4}, gen), testing::random_tensor({3, 4, 5}, gen)); }, "matmul",
               "broadcast");
  expect_error([&] { matmul(Tensor::scalar(1.0), testing::random_tensor({3}, gen)); }, "matmul", "at least one dimension");
  expect_error([&] { matmul(Tensor::zeros({2, 2}, DType::i32), testing::random_tensor({2, 2}, gen)); }, "matmul",
               "not supported");
}

TEST(LinearGrad, BadArgumentsAreClearErrors) {
  Generator gen = testing::test_generator();
  const Tensor x = testing::random_tensor({3, 5}, gen);
  expect_error([&] { linear(x, testing::random_tensor({5}, gen)); }, "linear", "[5]");
  expect_error([&] { linear(x, testing::random_tensor({4, 6}, gen)); }, "linear", "expects 6");
  expect_error([&] { linear(x, testing::random_tensor({4, 5}, gen), testing::random_tensor({5}, gen)); }, "linear",
               "bias");
  expect_error([&] { linear(Tensor::scalar(1.0), testing::random_tensor({4, 1}, gen)); }, "linear", "input");
}

}  // namespace
}  // namespace graft
