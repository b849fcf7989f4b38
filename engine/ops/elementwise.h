// Elementwise ops with NumPy broadcasting, and activations. Outputs keep the
// memory layout of the larger operand (channels-last in, channels-last out).
#pragma once

#include "engine/core/tensor.h"

namespace graft {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor pow_scalar(const Tensor& x, double exponent);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);

Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);  // clip(x, 0, 6)
Tensor clip(const Tensor& x, double lo, double hi);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);
enum class GeluApprox { none, tanh };  // none: x * Phi(x) with erf; tanh: the tanh form
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::none);
Tensor hardswish(const Tensor& x);    // x * relu6(x + 3) / 6
Tensor hardsigmoid(const Tensor& x);  // relu6(x + 3) / 6 (the ONNX op's alpha/beta default to 1/6, 0.5)
Tensor tanh(const Tensor& x);
Tensor erf(const Tensor& x);
// a ** b elementwise with broadcasting (differentiable in both; d/db needs a > 0).
Tensor pow(const Tensor& a, const Tensor& b);
// cond ? a : b with broadcasting; cond is bool (or u8). Differentiable in a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// a == b with broadcasting -> bool; not differentiable (any supported dtype).
Tensor equal(const Tensor& a, const Tensor& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& a, double s) { return add_scalar(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul_scalar(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add_scalar(a, -s); }
inline Tensor operator/(const Tensor& a, double s) { return mul_scalar(a, 1.0 / s); }  // multiplies by 1/s
inline Tensor operator+(double s, const Tensor& a) { return add_scalar(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul_scalar(a, s); }

// The shape a and b broadcast to; throws naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace graft
