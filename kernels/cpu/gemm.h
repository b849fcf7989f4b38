// Single-precision GEMM over OpenBLAS (row-major), plus a strided-batched
// variant. These are the large products behind linear layers, matmul and the
// convolutions (kernels/cpu/conv.cpp).
//
// Threading. OpenBLAS has its own thread pool (Debian's libopenblas0-pthread
// here; the openmp variant works too). Two pools on two cores fight, so:
//  - sgemm() called outside an OpenMP parallel region lets OpenBLAS thread
//    the product itself;
//  - kernels that split work over their own OpenMP threads and call sgemm()
//    from inside the region must keep a BlasSingleThreaded guard alive around
//    the region: each call then runs on the calling thread only.
// The guard changes OpenBLAS's global thread count, so concurrent callers from
// several user threads share it (correct results either way; only the
// parallelism differs).
#pragma once

#include <cstdint>
#include <string>

namespace graft::kernels::cpu {

enum class Trans : bool { no = false, yes = true };

// C = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is m x k, op(B)
// is k x n, C is m x n. lda/ldb/ldc are the row strides of the stored A, B, C
// (so lda >= k for Trans::no, lda >= m for Trans::yes). beta == 0 ignores
// what C held (NaNs included). m, n or k == 0 is allowed (k == 0 gives beta*C).
void sgemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// `batch` products: A_i = a + i * stride_a, likewise B_i and C_i, and
// C_i = alpha * op(A_i) * op(B_i) + beta * C_i. A stride of 0 for A or B
// broadcasts that operand to every product. stride_c == 0 means a reduction:
// C = alpha * sum_i op(A_i) * op(B_i) + beta * C (a broadcast operand's
// gradient). Otherwise the C_i must not overlap. Products that stack into one
// bigger GEMM are run as one (e.g. a batch of A_i against one shared B);
// small products run in parallel over the batch, large ones one after another
// with OpenBLAS threading each.
void sgemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                   int64_t stride_c, int64_t batch);

// out[j] = sum_i a[i * lda + j] for an m x n row-major matrix (bias
// gradients: the column sums of dL/dy). Accumulates in double; out is overwritten.
void sum_rows(const float* a, int64_t m, int64_t n, int64_t lda, float* out);

// While alive, OpenBLAS runs each call on its calling thread (see above).
// Nested guards are fine; the outermost restores the previous thread count.
class BlasSingleThreaded {
 public:
  BlasSingleThreaded();
  ~BlasSingleThreaded();
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int previous_ = 0;  // 0: nothing to restore
};

// "OpenBLAS 0.3.21 core=Haswell threading=pthread threads=2" — for benchmark reports.
std::string blas_description();

}  // namespace graft::kernels::cpu
