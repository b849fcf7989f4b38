// Batch norm and layer norm forward against naive float64 references, and the
// running-statistics update against a float64 computation of PyTorch's rule.
#include <cmath>
#include <vector>

#include "engine/ops/norm.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;
using testing::to_double;

// Per channel of a logical (N, C, ...) tensor: mean and biased variance, in double.
struct ChannelStats {
  std::vector<double> mean, var_biased;
  int64_t count = 0;
};

ChannelStats ref_channel_stats(const std::vector<double>& x, const Shape& s) {
  const int64_t N = s[0], C = s[1], inner = shape_numel(s) / (N * C);
  ChannelStats st{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0), N * inner};
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < inner; ++i) st.mean[c] += x[(n * C + c) * inner + i];
    st.mean[c] /= static_cast<double>(st.count);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < inner; ++i) {
        const double d = x[(n * C + c) * inner + i] - st.mean[c];
        st.var_biased[c] += d * d;
      }
    st.var_biased[c] /= static_cast<double>(st.count);
  }
  return st;
}

std::vector<double> ref_normalise(const std::vector<double>& x, const Shape& s, const std::vector<double>& mean,
                                  const std::vector<double>& var, const std::vector<double>& w,
                                  const std::vector<double>& b, double eps) {
  const int64_t N = s[0], C = s[1], inner = shape_numel(s) / (N * C);
  std::vector<double> y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t k = (n * C + c) * inner + i;
        double v = (x[k] - mean[c]) / std::sqrt(var[c] + eps);
        if (!w.empty()) v *= w[c];
        if (!b.empty()) v += b[c];
        y[k] = v;
      }
  return y;
}

std::vector<Shape> bn_shapes() {
  // The last two are large enough for threads and several statistics chunks.
  return {{4, 3}, {2, 1}, {7, 13}, {2, 3, 5, 7}, {1, 17, 3, 3}, {3, 8, 1, 2}, {2, 5, 9, 1}, {4096, 24}, {8, 32, 16, 16}};
}

TEST(BatchNorm, TrainingForwardAndRunningStatsMatchReference) {
  Generator gen = testing::test_generator();
  const double momentum = 0.3, eps = 1e-4;
  for (const Shape& s : bn_shapes()) {
    for (bool affine : {false, true}) {
      const int64_t C = s[1];
      Tensor x = testing::random_tensor(s, gen, -3.f, 2.f);
      Tensor w = affine ? testing::random_tensor({C}, gen, 0.5f, 1.5f) : Tensor();
      Tensor b = affine ? testing::random_tensor({C}, gen) : Tensor();
      Tensor rm = testing::random_tensor({C}, gen), rv = testing::random_tensor({C}, gen, 0.5f, 2.f);
      const std::vector<double> rm0 = to_double(rm), rv0 = to_double(rv);
      const uint64_t v0 = rm.version(), v1 = rv.version();

      Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/true, momentum, eps);

      const std::vector<double> xd = to_double(x);
      const ChannelStats st = ref_channel_stats(xd, s);
      const std::vector<double> ref =
          ref_normalise(xd, s, st.mean, st.var_biased, affine ? to_double(w) : std::vector<double>{},
                        affine ? to_double(b) : std::vector<double>{}, eps);
      ASSERT_EQ(y.shape(), s);
      if (s.size() == 4) {
        EXPECT_TRUE(y.is_channels_last());
      }
      EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-5, 1e-5)) << shape_str(s) << " affine " << affine;

      // running = (1 - momentum) * running + momentum * batch, unbiased variance.
      std::vector<double> want_rm(C), want_rv(C);
      for (int64_t c = 0; c < C; ++c) {
        want_rm[c] = (1 - momentum) * rm0[c] + momentum * st.mean[c];
        want_rv[c] = (1 - momentum) * rv0[c] +
                     momentum * st.var_biased[c] * static_cast<double>(st.count) / static_cast<double>(st.count - 1);
      }
      EXPECT_TRUE(all_close(rm.to_vector(), want_rm, 1e-5, 1e-6)) << shape_str(s);
      EXPECT_TRUE(all_close(rv.to_vector(), want_rv, 1e-5, 1e-6)) << shape_str(s);
      EXPECT_GT(rm.version(), v0);
      EXPECT_GT(rv.version(), v1);
    }
  }
}

TEST(BatchNorm, TrainingWithoutRunningStatsNormalisesWithBatchStats) {
  Generator gen = testing::test_generator();
  const Shape s{3, 4, 2, 5};
  Tensor x = testing::random_tensor(s, gen);
  Tensor y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  const std::vector<double> xd = to_double(x);
  const ChannelStats st = ref_channel_stats(xd, s);
  EXPECT_TRUE(all_close(y.to_vector(), ref_normalise(xd, s, st.mean, st.var_biased, {}, {}, 1e-5), 1e-5, 1e-5));
}

TEST(BatchNorm, StatisticsSurviveALargeMean) {
  // Values 100 + U(0, 1): a one-pass E[x^2] - E[x]^2 in f32 loses the variance
  // (relative error ~1e-2); the two-pass double statistics keep it.
  Generator gen = testing::test_generator();
  const Shape s{16, 5, 8, 8};
  Tensor x = testing::random_tensor(s, gen, 100.f, 101.f);
  Tensor rm = Tensor::zeros({5}), rv = Tensor::ones({5});
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, true, 1.0, 1e-5);
  const std::vector<double> xd = to_double(x);
  const ChannelStats st = ref_channel_stats(xd, s);
  // y: (x - mean) in f32 with |x| ~ 100 carries ~4e-6 absolute error, / std 0.29.
  EXPECT_TRUE(all_close(y.to_vector(), ref_normalise(xd, s, st.mean, st.var_biased, {}, {}, 1e-5), 1e-4, 1e-4));
  std::vector<double> want_rv(5);
  for (int c = 0; c < 5; ++c) want_rv[c] = st.var_biased[c] * st.count / (st.count - 1.0);
  EXPECT_TRUE(all_close(rv.to_vector(), want_rv, 1e-5, 0));
  EXPECT_TRUE(all_close(rm.to_vector(), st.mean, 1e-7, 0));
}

TEST(BatchNorm, EvaluationUsesRunningStatsAndLeavesThemAlone) {
  Generator gen = testing::test_generator();
  for (const Shape& s : bn_shapes()) {
    const int64_t C = s[1];
    Tensor x = testing::random_tensor(s, gen, -2.f, 2.f);
    Tensor w = testing::random_tensor({C}, gen, 0.5f, 1.5f), b = testing::random_tensor({C}, gen);
    Tensor rm = testing::random_tensor({C}, gen), rv = testing::random_tensor({C}, gen, 0.2f, 3.f);
    const std::vector<float> rm0 = rm.to_vector(), rv0 = rv.to_vector();
    const uint64_t v0 = rm.version();
    Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/false, 0.1, 1e-3);
    const std::vector<double> ref =
        ref_normalise(to_double(x), s, to_double(rm), to_double(rv), to_double(w), to_double(b), 1e-3);
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-5, 1e-5)) << shape_str(s);
    EXPECT_EQ(rm.to_vector(), rm0);
    EXPECT_EQ(rv.to_vector(), rv0);
    EXPECT_EQ(rm.version(), v0);
  }
}

TEST(BatchNorm, EvaluationAcceptsASingleValuePerChannel) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({1, 6, 1, 1}, gen);
  Tensor rm = testing::random_tensor({6}, gen), rv = testing::random_tensor({6}, gen, 0.5f, 1.f);
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, false, 0.1, 1e-5);
  EXPECT_TRUE(all_close(y.to_vector(), ref_normalise(to_double(x), {1, 6, 1, 1}, to_double(rm), to_double(rv), {}, {}, 1e-5),
                        1e-5, 1e-6));
}

TEST(BatchNorm, ChannelsLastAndContiguousInputsAgree) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({3, 7, 4, 5}, gen);
  Tensor a = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  Tensor b = batch_norm(x.to_format(MemoryFormat::channels_last), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  EXPECT_EQ(a.to_vector(), b.to_vector());
}

// ---- layer norm -------------------------------------------------------------------

std::vector<double> ref_layer_norm(const std::vector<double>& x, int64_t rows, int64_t d, const std::vector<double>& w,
                                   const std::vector<double>& b, double eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += x[r * d + j];
    mean /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j) var += (x[r * d + j] - mean) * (x[r * d + j] - mean);
    var /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j) {
      double v = (x[r * d + j] - mean) / std::sqrt(var + eps);
      if (!w.empty()) v *= w[j];
      if (!b.empty()) v += b[j];
      y[r * d + j] = v;
    }
  }
  return y;
}

TEST(LayerNorm, ForwardMatchesReference) {
  Generator gen = testing::test_generator();
  struct Case {
    Shape shape;
    int64_t dims;
  };
  const std::vector<Case> cases = {{{4, 7}, 1},     {{1, 1}, 1},    {{3, 5, 13}, 1}, {{3, 5, 13}, 2},
                                   {{2, 3, 4, 5}, 3}, {{6, 33}, 2}, {{5, 1, 100}, 1},
                                   {{64, 1024}, 1}};
  for (const Case& c : cases) {
    for (bool affine : {false, true}) {
      const Shape ns(c.shape.end() - c.dims, c.shape.end());
      const int64_t d = shape_numel(ns), rows = shape_numel(c.shape) / d;
      Tensor x = testing::random_tensor(c.shape, gen, -2.f, 3.f);
      Tensor w = affine ? testing::random_tensor(ns, gen, 0.5f, 1.5f) : Tensor();
      Tensor b = affine ? testing::random_tensor(ns, gen) : Tensor();
      Tensor y = layer_norm(x, c.dims, w, b, 1e-5);
      ASSERT_EQ(y.shape(), c.shape);
      const std::vector<double> ref = ref_layer_norm(to_double(x), rows, d, affine ? to_double(w) : std::vector<double>{},
                                                     affine ? to_double(b) : std::vector<double>{}, 1e-5);
      // d == 1 normalises to exactly 0 (then bias): the error is absolute.
      EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-5, 1e-5)) << shape_str(c.shape) << " dims " << c.dims;
    }
  }
}

TEST(LayerNorm, StatisticsSurviveALargeMean) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({8, 256}, gen, 300.f, 301.f);
  Tensor y = layer_norm(x, 1, Tensor(), Tensor(), 1e-5);
  // (x - mean) in f32 with |x| ~ 300 carries ~1.5e-5 absolute error, / std 0.29.
  EXPECT_TRUE(all_close(y.to_vector(), ref_layer_norm(to_double(x), 8, 256, {}, {}, 1e-5), 2e-4, 2e-4));
}

TEST(LayerNorm, AcceptsAChannelsLastInput) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({2, 3, 4, 5}, gen);
  Tensor a = layer_norm(x, 3, Tensor(), Tensor(), 1e-5);
  Tensor b = layer_norm(x.to_format(MemoryFormat::channels_last), 3, Tensor(), Tensor(), 1e-5);
  EXPECT_EQ(a.to_vector(), b.to_vector());
}

}  // namespace
}  // namespace graft
