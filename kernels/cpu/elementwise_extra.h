// Elementwise kernels that the ONNX importer needs beyond the core set:
// pow with a tensor exponent, where (select) and equal, all with NumPy
// broadcasting. Forward and backward side by side.
//
// Each takes a StridedIter over the output's shape, operand 0 the output and
// the others the inputs in the order of the arguments (stride 0 along a
// broadcast dimension). The kernels order the dims by the output's strides and
// coalesce them, so the iterator may come in any dim order.
#pragma once

#include <cstdint>

#include "kernels/cpu/strided.h"

namespace graft::kernels::cpu {

// ---- pow: out = a ^ b (std::pow: a negative base with a non-integer exponent
// gives NaN, 0 ^ 0 = 1) -----------------------------------------------------------

// Operands: out, a, b.
void pow_forward(StridedIter<3> it, float* out, const float* a, const float* b);

// ga = g * b * a^(b-1), and 0 where b == 0 (the function is constant in a
// there; this keeps 0 ^ 0 from giving 0 * inf). Operands: ga, g, a, b.
void pow_backward_base(StridedIter<4> it, float* ga, const float* g, const float* a, const float* b);

// gb = g * y * ln(a) where a > 0, with y = a ^ b the forward's output; 0
// where a <= 0: at a == 0 that is the limit of a^b ln a (b > 0), and for a < 0
// a^b is real only at integer b, so no derivative in b exists -- the exponent
// is treated as a constant there rather than poisoning the gradient with NaN.
// Operands: gb, g, a, y.
void pow_backward_exponent(StridedIter<4> it, float* gb, const float* g, const float* a, const float* y);

// ---- where: out = cond ? a : b (cond: one byte per element, nonzero = true) --------

// Operands: out, cond, a, b.
void where_forward(StridedIter<4> it, float* out, const uint8_t* cond, const float* a, const float* b);

// ---- equal: out = (a == b) as 0/1 bytes --------------------------------------------

// Operands: out, a, b. For floats, NaN equals nothing and -0 == +0 (IEEE).
void equal_forward(StridedIter<3> it, uint8_t* out, const float* a, const float* b);
void equal_forward(StridedIter<3> it, uint8_t* out, const int64_t* a, const int64_t* b);
void equal_forward(StridedIter<3> it, uint8_t* out, const int32_t* a, const int32_t* b);
void equal_forward(StridedIter<3> it, uint8_t* out, const uint8_t* a, const uint8_t* b);

}  // namespace graft::kernels::cpu
