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
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                                    const AttentionOptions& opt = {});

}  // namespace graft
