// Matrix products on the tensor cores: the CUDA twin of kernels/cpu/gemm.h
// (same row-major convention, same Trans, same leading dimensions), with a
// fused epilogue:
//
//   C = act(alpha * op(A) * op(B) + beta * C + bias_col[j] + bias_row[i])
//
// for every transpose combination (NN, NT, TN, TT). Linear layers use
// y = x W^T (NT), dx = dy W (NN), dW = dy^T x (TN).
//
// dtypes: bf16 and f16 run mma.sync m16n8k16 (f32 accumulation); f32 runs
// TF32 m16n8k8 (inputs rounded to TF32, 10 mantissa bits; f32 accumulation).
// C has the input dtype; the epilogue is computed in f32 and rounded once.
// bias_col / bias_row are f32 whatever the dtype.
//
// One kernel template serves every valid input (kernels/cuda/gemm.cu): a CTA
// tile of 128x128 (8 warps of 64x32), or 64x64 (4 warps of 32x32) when the
// big tiles would not fill the GPU, a 4-stage cp.async pipeline and padded
// shared memory. M, N, K of any size are zero-filled on load and guarded on
// store. The 16-byte cp.async loads need, for both A and B, the pointer, the
// leading dimension and the batch stride in 16-byte multiples and the
// contiguous extent (k, or m / n when transposed) a multiple of 8 (16-bit)
// or 4 (f32) elements; otherwise the same kernel runs with 64x64 tiles and
// loads element by element (slower, correct). C is stored in pairs when its
// pointer, ldc and stride_c allow, else element by element.
//
// Bad arguments throw std::invalid_argument naming the launcher and the
// argument, before any CUDA call. m, n, k <= 2^30.
#pragma once

#include <cstdint>

#include "kernels/cpu/gemm.h"
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::Trans;

// The activation applied last, as kernels/cpu/elementwise.h defines it
// (UnaryOp relu, clip(0, 6), silu, gelu_erf, gelu_tanh). A NaN passes through
// relu and relu6.
enum class GemmActivation : int {
  none = 0,
  relu,       // max(x, 0)
  relu6,      // min(max(x, 0), 6)
  silu,       // x * sigmoid(x)
  gelu_erf,   // x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
  gelu_tanh,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
};

struct GemmEpilogue {
  float alpha = 1.f;
  float beta = 0.f;                  // 0: C is not read (NaNs in it are ignored)
  const float* bias = nullptr;       // optional, n floats: added to every row (per output column)
  const float* bias_row = nullptr;   // optional, m floats: added to every column (per output row)
  GemmActivation act = GemmActivation::none;
};

// C (m x n, row stride ldc) = act(alpha * op(A) * op(B) + beta * C + bias),
// op(A) m x k, op(B) k x n; all device pointers of dtype dt (biases f32).
// lda >= k for Trans::no, >= m for Trans::yes (likewise ldb with k, n); ldc >= n.
// m or n == 0: nothing to do; k == 0: C = act(beta * C + bias).
void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, const void* b, int64_t ldb,
          void* c, int64_t ldc, const GemmEpilogue& ep, DataType dt, cudaStream_t stream);

// `batch` products C_i = act(alpha * op(A_i) op(B_i) + beta * C_i + bias) with
// A_i = a + i * stride_a elements, likewise B_i and C_i; the biases are shared.
// stride_a or stride_b == 0 broadcasts that operand. The C_i must not overlap:
// stride_c >= (m - 1) * ldc + n when batch > 1 (no reduction mode, unlike
// cpu::sgemm_batched's stride_c == 0).
void gemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, int64_t stride_a,
                  const void* b, int64_t ldb, int64_t stride_b, void* c, int64_t ldc, int64_t stride_c, int64_t batch,
                  const GemmEpilogue& ep, DataType dt, cudaStream_t stream);

}  // namespace graft::kernels::cuda
