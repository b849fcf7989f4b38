// Dropout from the counter-based generator.
#pragma once

#include "engine/core/rng.h"
#include "engine/core/tensor.h"

namespace graft {

// Zeroes each element with probability p and scales the rest by 1 / (1 - p)
// in training; identity otherwise. Random numbers from the counter-based generator.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

}  // namespace graft
