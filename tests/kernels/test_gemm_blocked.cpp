// The built-in blocked sgemm (kernels/cpu/gemm_blocked.cpp: sgemm() where
// OpenBLAS is absent) against naive float64 products, at sizes that cross
// its block edges (32 rows, 256 columns, 256 inner terms) in every transpose.
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/gemm_blocked.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;

std::vector<float> random_vector(int64_t n, Generator& gen) { return Tensor::rand({n}, gen, -1.f, 1.f).to_vector(); }

std::vector<double> ref_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const std::vector<float>& a,
                             int64_t lda, const std::vector<float>& b, int64_t ldb, double beta,
                             const std::vector<float>& c, int64_t ldc) {
  std::vector<double> out(c.begin(), c.end());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += double(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      out[i * ldc + j] = alpha * s + (beta == 0 ? 0.0 : beta * c[i * ldc + j]);
    }
  return out;
}

TEST(SgemmBlocked, MatchesFloat64AcrossBlockEdgesInEveryTranspose) {
  Generator gen = testing::test_generator();
  struct Case { int64_t m, n, k; };
  for (Case s : {Case{1, 1, 1}, {3, 7, 13}, {33, 257, 259}, {65, 300, 513}, {1, 520, 5}, {100, 1, 700}}) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      for (float beta : {0.f, -0.5f, 1.f}) {
        const int64_t lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 2, ldc = s.n + 5;
        const std::vector<float> a = random_vector((ta ? s.k : s.m) * lda, gen);
        const std::vector<float> b = random_vector((tb ? s.n : s.k) * ldb, gen);
        std::vector<float> c = random_vector(s.m * ldc, gen);
        if (beta == 0.f) c[0] = std::numeric_limits<float>::quiet_NaN();  // beta == 0 ignores what C held
        const std::vector<double> ref = ref_gemm(ta, tb, s.m, s.n, s.k, 0.75, a, lda, b, ldb, beta, c, ldc);
        kernels::cpu::sgemm_blocked(ta, tb, s.m, s.n, s.k, 0.75f, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
        EXPECT_TRUE(all_close(c, ref, 1e-5, 1e-5 * std::sqrt(double(s.k))))
            << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb << " beta=" << beta;
      }
    }
  }
}

TEST(SgemmBlocked, EmptyInnerDimensionScalesC) {
  std::vector<float> c = {1.f, 2.f, 3.f, 4.f};
  kernels::cpu::sgemm_blocked(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 2.f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{2.f, 4.f, 6.f, 8.f}));
  kernels::cpu::sgemm_blocked(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.f, 0.f, 0.f, 0.f}));
}

}  // namespace
}  // namespace graft
