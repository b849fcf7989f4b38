// cross_entropy backward against finite differences, and bad inputs.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/loss.h"
#include "gtest/gtest.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

TEST(CrossEntropyGrad, MatchesFiniteDifferences) {
  Generator gen = testing::test_generator();
  const int64_t n = 6, c = 5;
  Tensor w = testing::random_tensor({c}, gen, 0.3f, 2.f);
  for (double eps : {0.0, 0.15, 1.0})
    for (bool weighted : {false, true})
      for (Reduction red : {Reduction::none, Reduction::mean, Reduction::sum})
        for (int64_t ignore_index : {-100, 1}) {
          CrossEntropyOptions opt;
          opt.label_smoothing = eps;
          opt.reduction = red;
          opt.ignore_index = ignore_index;
          if (weighted) opt.class_weights = w;
          // Targets 1 are ignored when ignore_index is 1; -100 marks one more.
          Tensor t = Tensor::from_vector_i64({0, 1, 4, -100, 2, 1}, {n});
          if (ignore_index != -100) t = Tensor::from_vector_i64({0, 1, 4, 3, 2, 1}, {n});
          Tensor x = testing::random_tensor({n, c}, gen, -2.f, 2.f);
          auto f = [t, opt](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, opt); };
          EXPECT_TRUE(testing::gradcheck(f, {x}))
              << "eps " << eps << (weighted ? " weighted" : "") << " reduction " << static_cast<int>(red)
              << " ignore_index " << ignore_index;
        }
}

TEST(CrossEntropyGrad, IgnoredRowsGetZeroGradient) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({4, 3}, gen, -1.f, 1.f).set_requires_grad(true);
  CrossEntropyOptions opt;
  opt.label_smoothing = 0.2;
  cross_entropy(x, Tensor::from_vector_i64({2, -100, 0, -100}, {4}), opt).backward();
  std::vector<float> g = x.grad().to_vector();
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(g[3 + j], 0.f);
    EXPECT_EQ(g[9 + j], 0.f);
    EXPECT_NE(g[j], 0.f);
  }
}

TEST(CrossEntropyGrad, NonContiguousLogits) {
  Generator gen = testing::test_generator();
  // (3, 4) logits stored column-major, as a leaf; the same values row-major.
  std::vector<float> v = testing::random_tensor({3, 4}, gen, -1.f, 1.f).to_vector();
  Tensor row_major = Tensor::from_vector(v, {3, 4}).set_requires_grad(true);
  Tensor col_major = Tensor::empty_strided({3, 4}, {1, 3});
  col_major.copy_(row_major.detach());
  col_major.set_requires_grad(true);
  ASSERT_FALSE(col_major.is_contiguous());
  const Tensor t = Tensor::from_vector_i64({3, 0, 2}, {3});
  CrossEntropyOptions opt;
  opt.label_smoothing = 0.1;
  Tensor a = cross_entropy(row_major, t, opt), b = cross_entropy(col_major, t, opt);
  EXPECT_EQ(a.item(), b.item());
  a.backward();
  b.backward();
  EXPECT_EQ(col_major.grad().shape(), (Shape{3, 4}));
  EXPECT_EQ(col_major.grad().to_vector(), row_major.grad().to_vector());
}

TEST(CrossEntropyGrad, TargetsAndWeightsAreNotRecorded) {
  Tensor x = Tensor::ones({2, 3});
  Tensor t = Tensor::from_vector_i64({0, 2}, {2});
  EXPECT_FALSE(cross_entropy(x, t).requires_grad());
  Tensor xr = Tensor::ones({2, 3}).set_requires_grad(true);
  EXPECT_TRUE(cross_entropy(xr, t).requires_grad());
}

TEST(CrossEntropyGrad, InPlaceChangeOfSavedTensorsIsCaught) {
  Tensor x = Tensor::ones({2, 3}).set_requires_grad(true);
  Tensor t = Tensor::from_vector_i64({0, 2}, {2});
  Tensor loss = cross_entropy(x, t);
  t.fill_(1.0);  // the targets the backward would read
  EXPECT_TRUE(testing::throws_naming([&] { loss.backward(); }, {"cross_entropy"}));
}

TEST(CrossEntropyGrad, BadInputs) {
  Tensor x = Tensor::zeros({3, 4});
  Tensor t = Tensor::from_vector_i64({0, 1, 3}, {3});
  CrossEntropyOptions opt;
  auto ce = [&](const Tensor& logits, const Tensor& targets) { return cross_entropy(logits, targets, opt); };
  // Targets out of range: the op, the index and C are named.
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, Tensor::from_vector_i64({0, 4, 1}, {3})); },
                            {"cross_entropy", "target 4", "index 1", "4 classes"}));
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, Tensor::from_vector_i64({0, 1, -1}, {3})); },
                            {"cross_entropy", "target -1", "index 2"}));
  // Wrong target dtype / shape.
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, Tensor::from_vector({0, 1, 2}, {3})); }, {"cross_entropy", "f32", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, Tensor::from_vector_i64({0, 1}, {2})); }, {"cross_entropy", "[2]", "[3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, Tensor::from_vector_i64({0, 1, 2}, {3, 1})); }, {"cross_entropy", "[3, 1]"}));
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, Tensor()); }, {"cross_entropy", "targets"}));
  // Wrong logits.
  EXPECT_TRUE(testing::throws_naming([&] { ce(Tensor::zeros({3, 4, 2}), t); }, {"cross_entropy", "[3, 4, 2]"}));
  EXPECT_TRUE(testing::throws_naming([&] { ce(Tensor::zeros({3, 0}), Tensor::from_vector_i64({-100, -100, -100}, {3})); },
                            {"cross_entropy", "[3, 0]"}));
  EXPECT_TRUE(testing::throws_naming([&] { ce(Tensor::zeros({3, 4}, DType::i32), t); }, {"cross_entropy", "i32"}));
  EXPECT_TRUE(testing::throws_naming([&] { ce(Tensor(), t); }, {"cross_entropy", "logits"}));
  // Options.
  opt.label_smoothing = 1.5;
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, t); }, {"cross_entropy", "label_smoothing", "1.5"}));
  opt.label_smoothing = -0.1;
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, t); }, {"cross_entropy", "label_smoothing"}));
  opt.label_smoothing = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, t); }, {"cross_entropy", "label_smoothing"}));
  opt.label_smoothing = 0.0;
  opt.class_weights = Tensor::ones({3});
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, t); }, {"cross_entropy", "class_weights", "[3]", "[4]"}));
  opt.class_weights = Tensor::ones({4}, DType::i64);
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, t); }, {"cross_entropy", "i64"}));
  opt.class_weights = Tensor::ones({4}).set_requires_grad(true);
  EXPECT_TRUE(testing::throws_naming([&] { ce(x, t); }, {"cross_entropy", "class_weights", "detach"}));
}

}  // namespace
}  // namespace graft
