// NumPy .npy files (format versions 1-3, little-endian, C order): the format
// in which real pretrained weights and reference tensors are shipped.
#pragma once

#include <string>

#include "engine/core/tensor.h"

namespace graft::data {

// f4, f2, i4, i8, u1 and b1 keep their dtype; f8 is converted to f32.
// Every malformed file is an error naming the file and what is wrong.
Tensor load_npy(const std::string& path);

// Writes a contiguous copy of t; to a temporary name first, then renamed, so
// a crash never leaves half a file.
void save_npy(const std::string& path, const Tensor& t);

}  // namespace graft::data
