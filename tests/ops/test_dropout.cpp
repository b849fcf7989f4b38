// dropout: statistics of the mask, exact scaling, reproducibility, the
// backward's reuse of the mask, gradcheck, and bad inputs.
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/dropout.h"
#include "gtest/gtest.h"
#include "kernels/cpu/random.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

// Inputs in [0.5, 1.5): never 0, so out != 0 exactly where the element was kept.
Tensor nonzero_input(const Shape& s, Generator& gen) { return testing::random_tensor(s, gen, 0.5f, 1.5f); }

TEST(Dropout, KeptFractionAndExactScaling) {
  Generator data = testing::test_generator();
  const int64_t n = int64_t(1) << 20;
  Tensor x = nonzero_input({n}, data);
  const std::vector<float> xv = x.to_vector();
  for (double p : {0.1, 0.5, 0.75, 0.3}) {
    Generator gen(2024);
    const std::vector<float> out = dropout(x, p, true, gen).to_vector();
    int64_t kept = 0, bad_scale = 0;
    const float scale = 1.0f / (1.0f - static_cast<float>(p));
    for (int64_t i = 0; i < n; ++i) {
      if (out[i] == 0.f) continue;
      ++kept;
      // Kept values are exactly x * scale (for p = 0.5 and 0.75 the scale is a power of 2).
      bad_scale += out[i] != xv[i] * scale;
      if (p == 0.5) bad_scale += out[i] != 2.f * xv[i];
      if (p == 0.75) bad_scale += out[i] != 4.f * xv[i];
    }
    EXPECT_EQ(bad_scale, 0) << "p " << p;
    // 5 standard errors of a binomial fraction.
    EXPECT_NEAR(double(kept) / n, 1 - p, 5 * std::sqrt(p * (1 - p) / n)) << "p " << p;
  }
}

TEST(Dropout, SameSeedAndOffsetGiveTheSameMask) {
  Generator data = testing::test_generator();
  Tensor x = nonzero_input({3, 1001}, data);
  Generator a(5), b(5);
  const std::vector<float> ya = dropout(x, 0.4, true, a).to_vector();
  EXPECT_EQ(ya, dropout(x, 0.4, true, b).to_vector());
  // The op reserves its counters: the generator moved on by one block per four elements...
  EXPECT_EQ(a.offset(), kernels::cpu::random_blocks(3 * 1001));
  // ...so a second call draws a different mask, and re-seeding reproduces the first.
  EXPECT_NE(ya, dropout(x, 0.4, true, a).to_vector());
  a.manual_seed(5);
  EXPECT_EQ(ya, dropout(x, 0.4, true, a).to_vector());
  // Another seed, another mask.
  Generator c(6);
  EXPECT_NE(ya, dropout(x, 0.4, true, c).to_vector());
}

TEST(Dropout, MaskDoesNotDependOnThreadCount) {
  Generator data = testing::test_generator();
  Tensor x = nonzero_input({300001}, data);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Generator g1(77);
  const std::vector<float> y1 = dropout(x, 0.2, true, g1).to_vector();
  omp_set_num_threads(3);
  Generator g3(77);
  const std::vector<float> y3 = dropout(x, 0.2, true, g3).to_vector();
  omp_set_num_threads(saved);
  EXPECT_EQ(y1, y3);
}

TEST(Dropout, BackwardUsesTheForwardMask) {
  Generator data = testing::test_generator();
  Tensor x = nonzero_input({17, 33}, data).set_requires_grad(true);
  Generator gen(31);
  Tensor y = dropout(x, 0.35, true, gen);
  Tensor g = testing::random_tensor({17, 33}, data, 0.5f, 1.5f);
  y.backward(g);
  const std::vector<float> yv = y.to_vector(), gv = g.to_vector(), dx = x.grad().to_vector();
  const float scale = 1.0f / (1.0f - 0.35f);
  int64_t dropped = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    EXPECT_EQ(dx[i], yv[i] != 0.f ? gv[i] * scale : 0.f) << i;
    dropped += yv[i] == 0.f;
  }
  EXPECT_GT(dropped, 0);
}

TEST(Dropout, MatchesFiniteDifferences) {
  Generator data = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{7}, {3, 13}, {2, 3, 4, 5}}) {
    Tensor x = testing::random_tensor(s, data, -1.f, 1.f);
    // A fresh generator per call: every evaluation draws the same mask.
    auto f = [](const std::vector<Tensor>& in) {
      Generator gen(99);
      return dropout(in[0], 0.3, true, gen);
    };
    EXPECT_TRUE(testing::gradcheck(f, {x})) << shape_str(s);
  }
}

TEST(Dropout, ChannelsLastKeepsLayout) {
  Generator data = testing::test_generator();
  Tensor x = nonzero_input({2, 5, 3, 4}, data).to_format(MemoryFormat::channels_last).set_requires_grad(true);
  Generator gen(8);
  Tensor y = dropout(x, 0.5, true, gen);
  EXPECT_TRUE(y.is_channels_last());
  const std::vector<float> xv = x.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_TRUE(yv[i] == 0.f || yv[i] == 2.f * xv[i]) << i;
  y.backward(Tensor::ones({2, 5, 3, 4}));
  const std::vector<float> dx = x.grad().to_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(dx[i], yv[i] != 0.f ? 2.f : 0.f) << i;
}

TEST(Dropout, IdentityInEvalModeAndForPZero) {
  Generator data = testing::test_generator();
  Tensor x = nonzero_input({4, 6}, data).set_requires_grad(true);
  Generator gen(1);
  EXPECT_TRUE(dropout(x, 0.5, false, gen).same(x));
  EXPECT_TRUE(dropout(x, 0.0, true, gen).same(x));
  EXPECT_EQ(gen.offset(), 0u) << "no random numbers drawn";
}

TEST(Dropout, PEqualOneDropsEverything) {
  // Allowed, as in PyTorch: all zeros, and a zero gradient.
  Generator data = testing::test_generator();
  Tensor x = nonzero_input({5, 7}, data).set_requires_grad(true);
  Generator gen(3);
  Tensor y = dropout(x, 1.0, true, gen);
  EXPECT_EQ(y.to_vector(), std::vector<float>(35, 0.f));
  y.backward(Tensor::ones({5, 7}));
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(35, 0.f));
}

TEST(Dropout, BadInputs) {
  Tensor x = Tensor::ones({2, 3});
  Generator gen(1);
  EXPECT_TRUE(testing::throws_naming([&] { dropout(x, -0.1, true, gen); }, {"dropout", "-0.1", "[2, 3]"}));
  EXPECT_TRUE(testing::throws_naming([&] { dropout(x, 1.5, true, gen); }, {"dropout", "1.5"}));
  EXPECT_TRUE(testing::throws_naming([&] { dropout(x, std::numeric_limits<double>::quiet_NaN(), true, gen); }, {"dropout"}));
  // Bad p is rejected in eval mode too: the call is wrong whatever the mode.
  EXPECT_TRUE(testing::throws_naming([&] { dropout(x, 2.0, false, gen); }, {"dropout"}));
  EXPECT_TRUE(testing::throws_naming([&] { dropout(Tensor::ones({3}, DType::i64), 0.5, true, gen); }, {"dropout", "i64"}));
  EXPECT_TRUE(testing::throws_naming([&] { dropout(Tensor(), 0.5, true, gen); }, {"dropout", "undefined"}));
}

}  // namespace
}  // namespace graft
