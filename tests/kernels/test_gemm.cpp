// sgemm / sgemm_batched / sum_rows kernels and the matmul and linear ops,
// forward, against naive float64 products.
//
// Tolerance (f32 products accumulated by OpenBLAS vs float64 loops):
// elementwise |err| <= 1e-5 * (1 + |ref|) * sqrt(k) is far above the expected
// rounding (~6e-8 * sqrt(k) relative) yet catches any wrong index.
#include <cmath>
#include <limits>
#include <vector>

#include "engine/ops/linear.h"
#include "gtest/gtest.h"
#include "kernels/cpu/gemm.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using kernels::cpu::Trans;
using testing::all_close;
using testing::rel_l2_error;

std::vector<float> random_vector(int64_t n, Generator& gen) { return Tensor::rand({n}, gen, -1.f, 1.f).to_vector(); }

// C = alpha op(A) op(B) + beta C in double; A is stored (ta ? k x m : m x k) with row stride lda.
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

struct GemmCase {
  int64_t m, n, k;
};

TEST(Sgemm, AllTransposesOddSizesAlphaBetaAndLeadingDims) {
  Generator gen = testing::test_generator();
  for (GemmCase s : {GemmCase{1, 1, 1}, {3, 7, 13}, {13, 1, 7}, {17, 33, 65}, {64, 5, 129}}) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const int64_t lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 2, ldc = s.n + 5;
      const std::vector<float> a = random_vector((ta ? s.k : s.m) * lda, gen);
      const std::vector<float> b = random_vector((tb ? s.n : s.k) * ldb, gen);
      std::vector<float> c = random_vector(s.m * ldc, gen);
      const std::vector<double> ref = ref_gemm(ta, tb, s.m, s.n, s.k, 0.75, a, lda, b, ldb, -0.5, c, ldc);
      kernels::cpu::sgemm(ta ? Trans::yes : Trans::no, tb ? Trans::yes : Trans::no, s.m, s.n, s.k, 0.75f, a.data(), lda,
                          b.data(), ldb, -0.5f, c.data(), ldc);
      EXPECT_TRUE(all_close(c, ref, 1e-5, 1e-5 * std::sqrt(double(s.k))))
          << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb;
    }
  }
}

TEST(Sgemm, BetaZeroIgnoresNaNsAndKZeroScales) {
  Generator gen = testing::test_generator();
  const int64_t m = 5, n = 6, k = 7;
  const std::vector<float> a = random_vector(m * k, gen), b = random_vector(k * n, gen);
  std::vector<float> c(m * n, std::numeric_limits<float>::quiet_NaN());
  kernels::cpu::sgemm(Trans::no, Trans::no, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
  EXPECT_TRUE(all_close(c, ref_gemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n), 1e-5, 1e-5));

  std::vector<float> d = random_vector(m * n, gen);
  std::vector<double> want(d.begin(), d.end());
  for (double& v : want) v *= 2.0;
  kernels::cpu::sgemm(Trans::no, Trans::no, m, n, 0, 1.f, a.data(), 1, b.data(), n, 2.f, d.data(), n);
  EXPECT_TRUE(all_close(d, want, 0, 0));
}

// Batched: plain strided, a broadcast B (folded into one product), a
// broadcast A, many small products (parallel path), and reductions
// (stride_c == 0), foldable or not.
TEST(SgemmBatched, StridedBroadcastAndReduction) {
  Generator gen = testing::test_generator();
  struct Case {
    bool ta, tb;
    int64_t m, n, k, batch;
    bool bcast_a, bcast_b, reduce;
  };
  const Case cases[] = {
      {false, false, 3, 5, 7, 4, false, false, false},  {false, true, 3, 5, 7, 4, false, true, false},
      {false, false, 13, 3, 6, 5, true, false, false},  {true, false, 4, 9, 2, 37, false, false, false},
      {true, false, 6, 5, 3, 7, false, false, true},    {false, true, 6, 5, 3, 7, false, false, true},
      {false, false, 2, 3, 4, 6, true, false, true},
  };
  for (const Case& cs : cases) {
    const int64_t lda = cs.ta ? cs.m : cs.k, ldb = cs.tb ? cs.k : cs.n, ldc = cs.n;
    const int64_t sa = cs.bcast_a ? 0 : (cs.ta ? cs.k : cs.m) * lda, sb = cs.bcast_b ? 0 : (cs.tb ? cs.n : cs.k) * ldb;
    const int64_t sc = cs.reduce ? 0 : cs.m * ldc;
    const std::vector<float> a = random_vector(cs.bcast_a ? (cs.ta ? cs.k : cs.m) * lda : sa * cs.batch, gen);
    const std::vector<float> b = random_vector(cs.bcast_b ? (cs.tb ? cs.n : cs.k) * ldb : sb * cs.batch, gen);
    std::vector<float> c = random_vector(cs.reduce ? cs.m * ldc : sc * cs.batch, gen);
    std::vector<double> ref(c.begin(), c.end());
    for (int64_t i = 0; i < cs.batch; ++i) {
      const std::vector<float> ai(a.begin() + i * sa, a.begin() + i * sa + (cs.ta ? cs.k : cs.m) * lda);
      const std::vector<float> bi(b.begin() + i * sb, b.begin() + i * sb + (cs.tb ? cs.n : cs.k) * ldb);
      const int64_t co = cs.reduce ? 0 : i * sc;
      std::vector<float> zero(cs.m * ldc, 0.f);
      const std::vector<double> prod = ref_gemm(cs.ta, cs.tb, cs.m, cs.n, cs.k, 1.0, ai, lda, bi, ldb, 0.0, zero, ldc);
      for (int64_t j = 0; j < cs.m * ldc; ++j) {
        // beta = 0.5 applies once to each C (for a reduction: once to the one C)
        if (!cs.reduce || i == 0) ref[co + j] *= 0.5;
        ref[co + j] += prod[j];
      }
    }
    kernels::cpu::sgemm_batched(cs.ta ? Trans::yes : Trans::no, cs.tb ? Trans::yes : Trans::no, cs.m, cs.n, cs.k, 1.f,
                                a.data(), lda, sa, b.data(), ldb, sb, 0.5f, c.data(), ldc, sc, cs.batch);
    EXPECT_TRUE(all_close(c, ref, 1e-5, 1e-4))
        << "ta=" << cs.ta << " tb=" << cs.tb << " m=" << cs.m << " n=" << cs.n << " k=" << cs.k << " batch=" << cs.batch
        << " bcast_a=" << cs.bcast_a << " bcast_b=" << cs.bcast_b << " reduce=" << cs.reduce;
  }
}

TEST(Sgemm, SingleThreadedGuardInsideParallelRegion) {
  Generator gen = testing::test_generator();
  const int64_t m = 37, n = 29, k = 31, parts = 8;
  const std::vector<float> a = random_vector(parts * m * k, gen), b = random_vector(k * n, gen);
  std::vector<float> c(parts * m * n, 0.f), zero(parts * m * n, 0.f);
  {
    kernels::cpu::BlasSingleThreaded one_pool;
#pragma omp parallel for
    for (int64_t i = 0; i < parts; ++i)
      kernels::cpu::sgemm(Trans::no, Trans::no, m, n, k, 1.f, a.data() + i * m * k, k, b.data(), n, 0.f,
                          c.data() + i * m * n, n);
  }
  EXPECT_TRUE(all_close(c, ref_gemm(false, false, parts * m, n, k, 1, a, k, b, n, 0, zero, n), 1e-5, 1e-4));
  EXPECT_NE(kernels::cpu::blas_description().find("threads="), std::string::npos);
}

TEST(SumRows, ColumnSumsWithLeadingDimension) {
  Generator gen = testing::test_generator();
  for (int64_t m : {1, 7, 3001}) {
    const int64_t n = 13, lda = 17;
    const std::vector<float> a = random_vector(m * lda, gen);
    std::vector<double> ref(n, 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) ref[j] += a[i * lda + j];
    std::vector<float> out(n, -1.f);
    kernels::cpu::sum_rows(a.data(), m, n, lda, out.data());
    EXPECT_TRUE(all_close(out, ref, 1e-6, 1e-6)) << "m=" << m;
  }
}

// ---- ops ------------------------------------------------------------------------

// NumPy matmul in double over logical values, written independently of the
// op's plan: promote, broadcast each batch index, then loop.
std::vector<double> ref_matmul(const Tensor& a, const Tensor& b, Shape* out_shape) {
  Shape as = a.shape(), bs = b.shape();
  const bool a1 = as.size() == 1, b1 = bs.size() == 1;
  if (a1) as.insert(as.begin(), 1);
  if (b1) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const size_t nb = std::max(as.size(), bs.size()) - 2;
  Shape batch(nb);
  for (size_t d = 0; d < nb; ++d) {
    const int64_t da = d + as.size() >= nb + 2 ? as[d + as.size() - nb - 2] : 1;
    const int64_t db = d + bs.size() >= nb + 2 ? bs[d + bs.size() - nb - 2] : 1;
    batch[d] = std::max(da, db);
  }
  const std::vector<float> av = a.to_vector(), bv = b.to_vector();
  const int64_t nbatch = shape_numel(batch);
  std::vector<double> out(nbatch * m * n, 0.0);
  for (int64_t bi = 0; bi < nbatch; ++bi) {
    // index of this batch entry in a's and b's own batch shapes
    int64_t rem = bi, ia = 0, ib = 0, mul_a = 1, mul_b = 1;
    for (int64_t d = static_cast<int64_t>(nb) - 1; d >= 0; --d) {
      const int64_t idx = rem % batch[d];
      rem /= batch[d];
      const int64_t ad = static_cast<int64_t>(as.size()) - 2 - (static_cast<int64_t>(nb) - d);
      const int64_t bd = static_cast<int64_t>(bs.size()) - 2 - (static_cast<int64_t>(nb) - d);
      if (ad >= 0) {
        ia += (as[ad] == 1 ? 0 : idx) * mul_a;
        mul_a *= as[ad];
      }
      if (bd >= 0) {
        ib += (bs[bd] == 1 ? 0 : idx) * mul_b;
        mul_b *= bs[bd];
      }
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += double(av[(ia * m + i) * k + p]) * bv[(ib * k + p) * n + j];
        out[(bi * m + i) * n + j] = s;
      }
  }
  *out_shape = batch;
  if (!a1) out_shape->push_back(m);
  if (!b1) out_shape->push_back(n);
  return out;
}

TEST(Matmul, ForwardMatchesNumpySemantics) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 5}, {5, 7}},          {{7}, {7}},                 {{4}, {4, 3}},          {{2, 3, 4}, {4}},
      {{2, 3, 4}, {2, 4, 5}},    {{2, 1, 3, 4}, {3, 4, 5}},  {{1, 3, 4}, {2, 1, 4, 6}}, {{13, 9, 4}, {4, 11}},
      {{5, 4}, {3, 4, 2}},       {{1, 1}, {1, 1}},           {{3, 2, 0}, {0, 4}},
  };
  for (const auto& [sa, sb] : cases) {
    const Tensor a = testing::random_tensor(sa, gen), b = testing::random_tensor(sb, gen);
    Shape want_shape;
    const std::vector<double> ref = ref_matmul(a, b, &want_shape);
    const Tensor c = matmul(a, b);
    EXPECT_EQ(c.shape(), want_shape) << shape_str(sa) << " x " << shape_str(sb);
    EXPECT_TRUE(all_close(c.to_vector(), ref, 1e-5, 1e-5)) << shape_str(sa) << " x " << shape_str(sb);
  }
}

TEST(Matmul, NonContiguousOperands) {
  Generator gen = testing::test_generator();
  // a channels-last 4-D tensor is a non-contiguous (…, M, K) operand
  const Tensor a = testing::random_tensor({2, 3, 4, 5}, gen).to_format(MemoryFormat::channels_last);
  const Tensor b = testing::random_tensor({5, 6}, gen);
  Shape want_shape;
  const std::vector<double> ref = ref_matmul(a, b, &want_shape);
  EXPECT_TRUE(all_close(matmul(a, b).to_vector(), ref, 1e-5, 1e-5));
}

TEST(Linear, ForwardMatchesReference) {
  Generator gen = testing::test_generator();
  for (const Shape& xs : {Shape{5}, Shape{3, 5}, Shape{2, 7, 5}, Shape{0, 5}}) {
    const Tensor x = testing::random_tensor(xs, gen), w = testing::random_tensor({9, 5}, gen);
    const Tensor b = testing::random_tensor({9}, gen);
    const std::vector<float> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
    const int64_t rows = x.numel() / 5;
    for (bool with_bias : {true, false}) {
      std::vector<double> ref(rows * 9);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < 9; ++o) {
          double s = with_bias ? bv[o] : 0.0;
          for (int64_t i = 0; i < 5; ++i) s += double(xv[r * 5 + i]) * wv[o * 5 + i];
          ref[r * 9 + o] = s;
        }
      const Tensor y = linear(x, w, with_bias ? b : Tensor());
      Shape want = xs;
      want.back() = 9;
      EXPECT_EQ(y.shape(), want);
      EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-5, 1e-5)) << shape_str(xs) << " bias=" << with_bias;
    }
  }
}

}  // namespace
}  // namespace graft
