// Multi-head scaled-dot-product attention.
#pragma once

#include "engine/core/tensor.h"

namespace graft {

struct AttentionOptions {
  double scale = 0.0;  // 0: 1 / sqrt(head_dim)
  bool causal = false;
};

// q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv) -> (B, H, Sq, Dv).
// mask: optional, additive f32 or boolean (true = keep), broadcastable to
// (B, H, Sq, Sk). Computed tile by tile with an online softmax; the score
// matrix is never materialised whole.
//
// - The mask is added to scale * q.k before the softmax; a bool mask becomes
//   0 (true) / -inf (false). An f32 mask is read through its own strides
//   (broadcast dimensions step by 0), so an expanded view costs no copy. The
//   mask is not differentiable: one that requires grad (with grad mode on) is an error.
// - causal: key j is visible to query i iff j <= i (top-left aligned, as
//   PyTorch's is_causal and ONNX Attention), whatever Sq and Sk are.
// - A query row with no visible key (all masked, or Sk == 0) outputs zeros and
//   passes zero gradient, never NaN (NaN in the inputs does propagate).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                                    const AttentionOptions& opt = {});

}  // namespace graft
