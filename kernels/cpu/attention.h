// Multi-head scaled-dot-product attention, CPU reference (the twin of the
// flash-attention CUDA kernel).
//
//   S = scale * Q K^T + mask     (per batch b and head h; causal: S[i][j] = -inf for j > i)
//   P = softmax_rows(S)
//   O = P V
//
// Computed tile by tile (kBlockQ query rows x kBlockK key rows) with an online
// softmax: the full Sq x Sk score matrix is never materialised, forward or
// backward. The forward saves the log-sum-exp of every score row (m + log l),
// from which the backward recomputes P tile by tile. The exponentials of the
// score tiles use exp_approx (kernels/cpu/fast_exp.h, a few ulp), so that they
// vectorise.
//
// Layouts: q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv), out and dout
// (B, H, Sq, Dv), lse (B, H, Sq), all contiguous, so D and Dv are the
// innermost (unit-stride) dimensions and the inner products vectorise.
//
// Masks: one optional additive f32 mask read at
//   mask[b * mask_stride_b + h * mask_stride_h + i * mask_stride_q + j * mask_stride_k]
// (a stride of 0 broadcasts). Entries may be -inf (a boolean keep-mask is
// converted to 0 / -inf by the engine op). Causal masking is top-left aligned
// (key j is visible to query i iff j <= i), as PyTorch's is_causal and ONNX
// Attention.
//
// Fully masked rows (every score -inf, or Sk == 0): the output row is zero, its
// lse is -inf, and it contributes zero to every gradient — never NaN.
#pragma once

#include <cstdint>

namespace graft::kernels::cpu {

// Tile sizes of the online softmax: a kBlockQ x kBlockK score tile (128 KiB)
// plus the kBlockQ x Dv accumulator stay in L2. Every tile product is one
// single-threaded sgemm; tiles this large amortise its per-call cost (packing,
// dispatch), and a ViT sequence (197) is one key tile. Measured in
// bench_cpu_kernels (attention_*), see bench/NOTES.md.
constexpr int64_t kAttentionBlockQ = 128;
constexpr int64_t kAttentionBlockK = 256;

struct AttentionParams {
  int64_t batch = 0, heads = 0;
  int64_t seq_q = 0, seq_k = 0;
  int64_t head_dim = 0;    // D (q and k)
  int64_t head_dim_v = 0;  // Dv (v and out)
  float scale = 1.f;       // multiplies q.k before the mask is added
  bool causal = false;
  // Additive mask strides, in elements (used only when a mask pointer is given).
  int64_t mask_stride_b = 0, mask_stride_h = 0, mask_stride_q = 0, mask_stride_k = 0;
};

// out (B, H, Sq, Dv) and lse (B, H, Sq). mask may be null.
void attention_forward(const AttentionParams& p, const float* q, const float* k, const float* v, const float* mask,
                       float* out, float* lse);

// Gradients from q, k, v, mask, the forward's out and lse, and dout. Any of
// dq, dk, dv may be null: it is then not computed (a frozen input costs
// nothing; with dq and dk both null only dV = P^T dO is formed). Parallel over
// (b, h); within one (b, h) the loop order is flash-attention-2's: key tiles
// outside (their dK, dV rows stay hot), query tiles inside, accumulating dQ.
void attention_backward(const AttentionParams& p, const float* q, const float* k, const float* v, const float* mask,
                        const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv);

}  // namespace graft::kernels::cpu
