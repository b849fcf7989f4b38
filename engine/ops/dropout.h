// Dropout from the counter-based generator.
#pragma once

#include "engine/core/rng.h"
#include "engine/core/tensor.h"

namespace graft {

// Zeroes each element with probability p and scales the rest by 1 / (1 - p)
// in training; identity (the input itself) in eval mode or for p == 0.
// p must be in [0, 1]; p == 1 gives zeros, as in PyTorch. Random numbers from
// the counter-based generator, which advances by one block per 4 elements:
// the same seed and offset give the same mask on any thread count.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

}  // namespace graft
