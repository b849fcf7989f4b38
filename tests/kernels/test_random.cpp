// Philox4x32-10 and the random fills built on it.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/philox.h"
#include "kernels/cpu/random.h"

namespace graft {
namespace {

using kernels::Philox4;
using kernels::cpu::RandomParams;

// Known-answer vectors of Philox4x32-10 from the Random123 distribution's
// kat_vectors file, as carried verbatim ("cut-and-pasted from the kat_vectors
// file in the original Random123 distribution") by D. E. Shaw Research's
// Random123-Boost, libs/random/test/test_philox.cpp, test_kat_philox4x32
// (github.com/DEShawResearch/Random123-Boost, commit 916db91ae4c6fd8324ef054a518851321ab41f91):
//   philox4x32 10: CTR[4] KEY[2] -> EXPECTED[4]
struct Kat {
  uint32_t ctr[4];
  uint32_t key[2];
  uint32_t expected[4];
};
const Kat kKats[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

TEST(Philox, KnownAnswerVectors) {
  for (const Kat& k : kKats) {
    const Philox4 r = kernels::philox4x32_10(Philox4{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}}, k.key[0], k.key[1]);
    for (int l = 0; l < 4; ++l) EXPECT_EQ(r.v[l], k.expected[l]) << "lane " << l << " of ctr " << std::hex << k.ctr[0];
  }
}

TEST(Philox, BlockPacksSeedAsKeyAndCounterAsLowWords) {
  const Philox4 z = kernels::philox_block(0, 0);
  for (int l = 0; l < 4; ++l) EXPECT_EQ(z.v[l], kKats[0].expected[l]);
  const uint64_t seed = 0x299f31d0a4093822ull, counter = 0x85a308d3243f6a88ull;
  const Philox4 b = kernels::philox_block(seed, counter);
  const Philox4 ref = kernels::philox4x32_10(Philox4{{0x243f6a88, 0x85a308d3, 0, 0}}, 0xa4093822, 0x299f31d0);
  for (int l = 0; l < 4; ++l) EXPECT_EQ(b.v[l], ref.v[l]);
}

TEST(RandomFill, ElementIUsesBlockOffsetPlusIOver4LaneIMod4) {
  const RandomParams p{0x1234567890abcdefull, 77};
  std::vector<float> u(13);
  kernels::cpu::fill_uniform(u.data(), 13, 0.f, 1.f, p);
  for (int i = 0; i < 13; ++i) {
    const Philox4 r = kernels::philox_block(p.seed, p.offset + i / 4);
    EXPECT_EQ(u[i], kernels::philox_uniform(r.v[i % 4])) << i;
  }
  EXPECT_EQ(kernels::cpu::random_blocks(13), 4u);
  EXPECT_EQ(kernels::cpu::random_blocks(16), 4u);
  EXPECT_EQ(kernels::cpu::random_blocks(0), 0u);
}

TEST(RandomFill, UniformStaysInHalfOpenRangeWithRightMoments) {
  const int64_t n = int64_t(1) << 20;
  std::vector<float> v(n);
  // [10, 10.5) and [100, 101) are ranges where lo + (hi - lo) * u can round up to hi.
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{0.f, 1.f}, {-2.f, 3.f}, {10.f, 10.5f}, {100.f, 101.f}, {-1e-3f, 1e-3f}}) {
    kernels::cpu::fill_uniform(v.data(), n, lo, hi, {42, 3});
    int64_t outside = 0;
    double s = 0, s2 = 0;
    for (float x : v) {
      outside += !(x >= lo && x < hi);
      s += x;
      s2 += static_cast<double>(x) * x;
    }
    EXPECT_EQ(outside, 0) << "[" << lo << ", " << hi << ")";
    const double mean = s / n, var = s2 / n - mean * mean, w = static_cast<double>(hi) - lo;
    // 5 standard errors: mean's is w / sqrt(12 n), the variance's about w^2 / sqrt(180 n).
    EXPECT_NEAR(mean, (static_cast<double>(lo) + hi) / 2, 5 * w / std::sqrt(12.0 * n)) << lo;
    EXPECT_NEAR(var, w * w / 12, 5 * w * w / std::sqrt(180.0 * n)) << lo;
  }
}

TEST(RandomFill, NormalHasRightMeanAndVariance) {
  const int64_t n = 100000;
  const double mu = 0.5, sigma = 2.0;
  std::vector<float> v(n);
  kernels::cpu::fill_normal(v.data(), n, static_cast<float>(mu), static_cast<float>(sigma), {7, 0});
  double s = 0, s2 = 0;
  int64_t within_1sigma = 0;
  for (float x : v) {
    ASSERT_TRUE(std::isfinite(x));
    s += x;
    s2 += static_cast<double>(x) * x;
    within_1sigma += std::fabs(x - mu) < sigma;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  // 5 standard errors: sigma / sqrt(n) for the mean, sigma^2 sqrt(2 / n) for the variance.
  EXPECT_NEAR(mean, mu, 5 * sigma / std::sqrt(double(n)));
  EXPECT_NEAR(var, sigma * sigma, 5 * sigma * sigma * std::sqrt(2.0 / n));
  const double f = double(within_1sigma) / n, f_true = 0.682689492137;
  EXPECT_NEAR(f, f_true, 5 * std::sqrt(f_true * (1 - f_true) / n));
}

// A fill of n elements equals the first n of a longer fill with the same
// (seed, offset), and does not depend on the thread count.
TEST(RandomFill, PrefixOfLongerFillAndIndependentOfThreads) {
  const RandomParams p{0xfeedull, 11};
  const int64_t big = 200003;  // above the kernels' parallel threshold
  std::vector<float> u_big(big), n_big(big), d_big(big), x(big, 1.f);
  std::vector<uint8_t> k_big(big);
  kernels::cpu::fill_uniform(u_big.data(), big, -1.f, 1.f, p);
  kernels::cpu::fill_normal(n_big.data(), big, 0.f, 1.f, p);
  kernels::cpu::dropout_forward(x.data(), d_big.data(), k_big.data(), big, 0.4f, p);
  for (int64_t n : {1, 2, 3, 4, 5, 7, 13, 1000, 70001}) {
    std::vector<float> u(n), nv(n), d(n);
    std::vector<uint8_t> k(n);
    kernels::cpu::fill_uniform(u.data(), n, -1.f, 1.f, p);
    kernels::cpu::fill_normal(nv.data(), n, 0.f, 1.f, p);
    kernels::cpu::dropout_forward(x.data(), d.data(), k.data(), n, 0.4f, p);
    EXPECT_TRUE(std::equal(u.begin(), u.end(), u_big.begin())) << "uniform, n " << n;
    EXPECT_TRUE(std::equal(nv.begin(), nv.end(), n_big.begin())) << "normal, n " << n;
    EXPECT_TRUE(std::equal(k.begin(), k.end(), k_big.begin())) << "dropout mask, n " << n;
  }
  // An offset of k blocks starts 4k elements further into the same stream.
  std::vector<float> shifted(1000);
  kernels::cpu::fill_uniform(shifted.data(), 1000, -1.f, 1.f, {p.seed, p.offset + 5});
  EXPECT_TRUE(std::equal(shifted.begin(), shifted.end(), u_big.begin() + 20));

  const int saved = omp_get_max_threads();
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> u(big), nv(big);
    kernels::cpu::fill_uniform(u.data(), big, -1.f, 1.f, p);
    kernels::cpu::fill_normal(nv.data(), big, 0.f, 1.f, p);
    EXPECT_EQ(u, u_big) << threads << " threads";
    EXPECT_EQ(nv, n_big) << threads << " threads";
  }
  omp_set_num_threads(saved);
}

TEST(RandomFill, DropoutMaskIsUniformAtLeastP) {
  const RandomParams p{99, 4};
  const int64_t n = 4099;
  std::vector<float> u(n), x(n, 3.f), out(n);
  std::vector<uint8_t> keep(n);
  kernels::cpu::fill_uniform(u.data(), n, 0.f, 1.f, p);
  kernels::cpu::dropout_forward(x.data(), out.data(), keep.data(), n, 0.25f, p);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(keep[i], u[i] >= 0.25f) << i;
    ASSERT_EQ(out[i], keep[i] ? 4.f : 0.f) << i;  // 3 / (1 - 0.25), exact in f32
  }
}

}  // namespace
}  // namespace graft
