#include "kernels/cpu/gemm_blocked.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace graft::kernels::cpu {

namespace {
// A panel of op(B) (kKc x kNc floats = 256 KiB) stays in L2 while every row
// block of C streams over it; each C row segment (kNc floats) stays in L1.
constexpr int64_t kKc = 256;
constexpr int64_t kNc = 256;
constexpr int64_t kMc = 32;
}  // namespace

void sgemm_blocked(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  for (int64_t i = 0; i < m; ++i) {  // C = beta * C first; beta == 0 overwrites
    float* row = c + i * ldc;
    if (beta == 0.f) std::memset(row, 0, sizeof(float) * static_cast<size_t>(n));
    else if (beta != 1.f) for (int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
  if (k <= 0 || alpha == 0.f) return;

  const bool threaded = !omp_in_parallel() && m * n * k > (int64_t(1) << 15);
  std::vector<float> bp(static_cast<size_t>(kKc * kNc));
  for (int64_t jc = 0; jc < n; jc += kNc) {
    const int64_t nc = std::min(kNc, n - jc);
    for (int64_t pc = 0; pc < k; pc += kKc) {
      const int64_t kc = std::min(kKc, k - pc);
      // Pack op(B)[pc:pc+kc, jc:jc+nc] row by row (contiguous inner loop below).
      for (int64_t p = 0; p < kc; ++p) {
        float* dst = bp.data() + p * nc;
        if (!trans_b) std::memcpy(dst, b + (pc + p) * ldb + jc, sizeof(float) * static_cast<size_t>(nc));
        else for (int64_t j = 0; j < nc; ++j) dst[j] = b[(jc + j) * ldb + pc + p];
      }
      const float* packed = bp.data();
      const int64_t blocks = (m + kMc - 1) / kMc;
#pragma omp parallel for schedule(static) if (threaded)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t i0 = blk * kMc, i1 = std::min(m, i0 + kMc);
        for (int64_t i = i0; i < i1; ++i) {
          float* crow = c + i * ldc + jc;
          int64_t p = 0;
          // Four rank-1 updates per pass over the C row segment.
          for (; p + 4 <= kc; p += 4) {
            const float a0 = alpha * (trans_a ? a[(pc + p) * lda + i] : a[i * lda + pc + p]);
            const float a1 = alpha * (trans_a ? a[(pc + p + 1) * lda + i] : a[i * lda + pc + p + 1]);
            const float a2 = alpha * (trans_a ? a[(pc + p + 2) * lda + i] : a[i * lda + pc + p + 2]);
            const float a3 = alpha * (trans_a ? a[(pc + p + 3) * lda + i] : a[i * lda + pc + p + 3]);
            const float* b0 = packed + p * nc;
            const float* b1 = b0 + nc;
            const float* b2 = b1 + nc;
            const float* b3 = b2 + nc;
#pragma omp simd
            for (int64_t j = 0; j < nc; ++j) crow[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
          }
          for (; p < kc; ++p) {
            const float a0 = alpha * (trans_a ? a[(pc + p) * lda + i] : a[i * lda + pc + p]);
            const float* b0 = packed + p * nc;
#pragma omp simd
            for (int64_t j = 0; j < nc; ++j) crow[j] += a0 * b0[j];
          }
        }
      }
    }
  }
}

}  // namespace graft::kernels::cpu
