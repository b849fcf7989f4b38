// nn::MultiheadAttention against a float64 reference computed here from its
// own weights: projections, per-head softmax(q k^T / sqrt(d)) v, output projection.
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/nn/layers.h"
#include "engine/ops/ops.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

TEST(MultiheadAttention, MatchesAFloat64Reference) {
  Generator gen = testing::test_generator();
  const int64_t B = 2, T = 5, E = 12, H = 3, D = E / H;
  nn::MultiheadAttention mha(E, H, true, gen);
  {
    NoGradGuard ng;  // non-zero biases so that they are exercised
    mha.in_proj_bias.copy_(Tensor::rand({3 * E}, gen));
  }
  Tensor x = Tensor::rand({B, T, E}, gen);
  std::vector<float> out = mha(x).to_vector();

  const std::vector<double> xv = testing::to_double(x), w = testing::to_double(mha.in_proj_weight),
                            b = testing::to_double(mha.in_proj_bias), wo = testing::to_double(mha.out_proj->weight),
                            bo = testing::to_double(mha.out_proj->bias);
  std::vector<double> ref(B * T * E);
  for (int64_t bi = 0; bi < B; ++bi) {
    // qkv[t][j] = x[t] . w[j] + b[j], j in [0, 3E)
    std::vector<double> qkv(T * 3 * E);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < 3 * E; ++j) {
        double s = b[j];
        for (int64_t k = 0; k < E; ++k) s += xv[(bi * T + t) * E + k] * w[j * E + k];
        qkv[t * 3 * E + j] = s;
      }
    std::vector<double> merged(T * E);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> p(T);
        double mx = -1e300, z = 0;
        for (int64_t j = 0; j < T; ++j) {
          double s = 0;
          for (int64_t k = 0; k < D; ++k) s += qkv[i * 3 * E + h * D + k] * qkv[j * 3 * E + E + h * D + k];
          p[j] = s / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, p[j]);
        }
        for (auto& v : p) z += (v = std::exp(v - mx));
        for (int64_t k = 0; k < D; ++k) {
          double s = 0;
          for (int64_t j = 0; j < T; ++j) s += p[j] / z * qkv[j * 3 * E + 2 * E + h * D + k];
          merged[i * E + h * D + k] = s;
        }
      }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < E; ++o) {
        double s = bo[o];
        for (int64_t k = 0; k < E; ++k) s += merged[t * E + k] * wo[o * E + k];
        ref[(bi * T + t) * E + o] = s;
      }
  }
  EXPECT_LT(testing::rel_l2_error(out, ref), 1e-5);
}

TEST(MultiheadAttention, EveryParameterReceivesAGradient) {
  Generator gen = testing::test_generator();
  nn::MultiheadAttention mha(8, 2, true, gen);
  Tensor x = Tensor::rand({2, 3, 8}, gen);
  sum(mul(mha(x), mha(x))).backward();
  for (auto& [name, p] : mha.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    double n = 0;
    for (float v : p.grad().to_vector()) n += std::fabs(v);
    EXPECT_GT(n, 0) << name;
  }
  EXPECT_TRUE(testing::throws_naming([&] { nn::MultiheadAttention(10, 3); }, {"MultiheadAttention", "10", "3"}));
  EXPECT_TRUE(testing::throws_naming([&] { mha(Tensor::rand({2, 3, 7}, gen)); }, {"MultiheadAttention", "[2, 3, 7]"}));
}

}  // namespace
}  // namespace graft
