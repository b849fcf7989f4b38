// Graft's own single-precision GEMM: cache-blocked loops threaded with OpenMP.
// kernels/cpu/gemm.cpp uses it for sgemm() only where OpenBLAS was not found
// at configure time (the bare GPU machine of tools/gpu/check.sh); it is always
// compiled so that its tests run everywhere. Correct for every size, stride
// and transpose; several times slower than OpenBLAS.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

// C = alpha * op(A) * op(B) + beta * C, row-major, the same contract as
// sgemm() in kernels/cpu/gemm.h (beta == 0 ignores what C held, NaNs
// included; m, n or k == 0 allowed). Threads over row blocks of C unless
// called inside an OpenMP parallel region.
void sgemm_blocked(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace graft::kernels::cpu
