// Losses.
#pragma once

#include "engine/core/tensor.h"

namespace graft {

enum class Reduction { none, mean, sum };

struct CrossEntropyOptions {
  double label_smoothing = 0.0;
  Tensor class_weights;  // (C), optional
  Reduction reduction = Reduction::mean;
  int64_t ignore_index = -100;
};

// logits (N, C), targets (N) of class indices (i64). As PyTorch's
// cross_entropy: with weights, the mean divides by the sum of the targets'
// weights; smoothing mixes in the uniform distribution with the same weights.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& opt = {});

}  // namespace graft
