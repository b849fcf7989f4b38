#include "kernels/cpu/gemm.h"

#ifdef GRAFT_HAVE_OPENBLAS
#include <cblas.h>
#endif
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/cpu/gemm_blocked.h"

namespace graft::kernels::cpu {

namespace {

// cblas takes `int` sizes (Debian's OpenBLAS is built without INTERFACE64).
int to_blas_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw std::length_error(std::string("sgemm: ") + what + " = " + std::to_string(v) + " is outside [0, INT_MAX]");
  return static_cast<int>(v);
}

// C = beta * C for an m x n block (the k == 0 case, which cblas refuses).
void scale_block(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.f) std::memset(row, 0, sizeof(float) * n);
    else for (int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
}

// Products below this many multiply-adds are too small for OpenBLAS to thread
// well: a batch of them goes one per OpenMP thread instead.
constexpr int64_t kSmallGemmMacs = int64_t(1) << 22;

}  // namespace

void sgemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.f) {
    scale_block(m, n, beta, c, ldc);
    return;
  }
#ifdef GRAFT_HAVE_OPENBLAS
  cblas_sgemm(CblasRowMajor, ta == Trans::yes ? CblasTrans : CblasNoTrans, tb == Trans::yes ? CblasTrans : CblasNoTrans,
              to_blas_int(m, "m"), to_blas_int(n, "n"), to_blas_int(k, "k"), alpha, a, to_blas_int(lda, "lda"), b,
              to_blas_int(ldb, "ldb"), beta, c, to_blas_int(ldc, "ldc"));
#else
  // Built without OpenBLAS (CMake found none): Graft's own blocked loops.
  // The same int range as cblas, so both builds accept the same products.
  for (auto [v, what] : {std::pair<int64_t, const char*>{m, "m"}, {n, "n"}, {k, "k"}, {lda, "lda"}, {ldb, "ldb"}, {ldc, "ldc"}})
    (void)to_blas_int(v, what);
  sgemm_blocked(ta == Trans::yes, tb == Trans::yes, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

void sgemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                   int64_t stride_c, int64_t batch) {
  if (batch <= 0 || m == 0 || n == 0) return;
  if (batch == 1) {
    sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  if (stride_c == 0) {  // reduction into one C
    // A_iᵀ stacked as consecutive rows of Aᵀ and B_i as consecutive rows of
    // B: the sum is one product with k * batch inner terms.
    if (ta == Trans::yes && tb == Trans::no && stride_a == k * lda && stride_b == k * ldb) {
      sgemm(ta, tb, m, n, k * batch, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
    for (int64_t i = 0; i < batch; ++i)
      sgemm(ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, i == 0 ? beta : 1.f, c, ldc);
    return;
  }
  // The A_i are consecutive row blocks of one matrix, B is shared and the C_i
  // are consecutive row blocks: one product with m * batch rows.
  if (ta == Trans::no && stride_b == 0 && stride_a == m * lda && stride_c == m * ldc) {
    sgemm(ta, tb, m * batch, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool small = m * n * k < kSmallGemmMacs;
  if (!small || omp_get_max_threads() == 1 || omp_in_parallel()) {
    for (int64_t i = 0; i < batch; ++i)
      sgemm(ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
    return;
  }
  BlasSingleThreaded one_pool;
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < batch; ++i)
    sgemm(ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
}

void sum_rows(const float* a, int64_t m, int64_t n, int64_t lda, float* out) {
  std::vector<double> total(static_cast<size_t>(n), 0.0);
#pragma omp parallel if (m * n > (int64_t(1) << 16))
  {
    std::vector<double> mine(static_cast<size_t>(n), 0.0);
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < m; ++i) {
      const float* row = a + i * lda;
      for (int64_t j = 0; j < n; ++j) mine[j] += row[j];
    }
#pragma omp critical(graft_sum_rows)
    for (int64_t j = 0; j < n; ++j) total[j] += mine[j];
  }
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<float>(total[j]);
}

// openblas_get_parallel(): 0 sequential build, 1 pthreads, 2 OpenMP. The
// OpenMP build already runs single-threaded inside a parallel region, and its
// openblas_set_num_threads() would also change omp_set_num_threads(), so only
// the pthread build is touched.
#ifdef GRAFT_HAVE_OPENBLAS
BlasSingleThreaded::BlasSingleThreaded() {
  if (openblas_get_parallel() != 1) return;
  const int n = openblas_get_num_threads();
  if (n > 1) {
    previous_ = n;
    openblas_set_num_threads(1);
  }
}

BlasSingleThreaded::~BlasSingleThreaded() {
  if (previous_ > 0) openblas_set_num_threads(previous_);
}

std::string blas_description() {
  const int par = openblas_get_parallel();
  const char* threading = par == 0 ? "sequential" : par == 1 ? "pthread" : "openmp";
  std::string config = openblas_get_config();
  // The config string starts with "OpenBLAS <version> ...": keep the first two words.
  size_t cut = config.find(' ');
  if (cut != std::string::npos) cut = config.find(' ', cut + 1);
  return config.substr(0, cut) + " core=" + openblas_get_corename() + " threading=" + threading +
         " threads=" + std::to_string(openblas_get_num_threads());
}
#else
// The built-in sgemm threads with OpenMP, which already runs single-threaded
// inside a parallel region: nothing to change.
BlasSingleThreaded::BlasSingleThreaded() {}
BlasSingleThreaded::~BlasSingleThreaded() {}

std::string blas_description() {
  return "built-in blocked sgemm (no OpenBLAS) threads=" + std::to_string(omp_get_max_threads());
}
#endif

}  // namespace graft::kernels::cpu
