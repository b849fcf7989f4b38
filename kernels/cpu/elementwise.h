// Elementwise kernels: binary ops with broadcasting, unary ops and
// activations, forward and backward side by side.
//
// Binary ops iterate a StridedIter<3> (operand 0 = out, 1 = a, 2 = b; a
// broadcast dimension has stride 0). Unary ops run over a flat range: the
// engine hands them dense tensors whose strides all agree, so the element
// order in memory does not matter (channels-last in, channels-last out).
#pragma once

#include <cstdint>

#include "kernels/cpu/strided.h"

namespace graft::kernels::cpu {

// Reorders the dims of `it` so that operand `k`'s strides decrease (stable;
// the order of every operand follows). Elementwise results do not depend on
// the dim order, and after this a dense channels-last operand coalesces into
// one run just like a row-major one.
template <int N>
void order_dims_by_stride(StridedIter<N>& it, int k) {
  for (int i = 1; i < it.ndim; ++i) {
    for (int j = i; j > 0 && it.stride[k][j - 1] < it.stride[k][j]; --j) {
      const int64_t s = it.size[j - 1];
      it.size[j - 1] = it.size[j];
      it.size[j] = s;
      for (int q = 0; q < N; ++q) {
        const int64_t t = it.stride[q][j - 1];
        it.stride[q][j - 1] = it.stride[q][j];
        it.stride[q][j] = t;
      }
    }
  }
}

// ---- binary ---------------------------------------------------------------------

enum class BinaryOp : uint8_t { add, sub, mul, div };

// out = a (op) b over `it`, in any dim order and not yet coalesced: the kernel
// orders the dims by the output's strides (outermost first), coalesces them,
// and takes a flat path when all three operands end up as one unit-stride run.
void binary_forward(BinaryOp op, StridedIter<3> it, float* out, const float* a, const float* b);

// The flat case on its own: n elements, all three operands in the same order.
void binary_forward_flat(BinaryOp op, int64_t n, float* out, const float* a, const float* b);

// ---- unary ops and activations -----------------------------------------------------

enum class UnaryOp : uint8_t {
  neg,
  add_scalar,   // x + alpha
  mul_scalar,   // x * alpha
  pow_scalar,   // x ^ alpha
  exp,
  log,
  sqrt,
  relu,
  clip,         // min(max(x, alpha), beta); relu6 is clip(0, 6)
  sigmoid,
  silu,         // x * sigmoid(x)
  gelu_erf,     // x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
  gelu_tanh,    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  hardswish,    // x * relu6(x + 3) / 6
  hardsigmoid,  // relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)
  tanh,
  erf,          // d/dx = 2/sqrt(pi) exp(-x^2)
};

struct UnaryParams {
  UnaryOp op = UnaryOp::neg;
  float alpha = 0.f;  // add/mul: the scalar; pow: the exponent; clip: the lower bound
  float beta = 0.f;   // clip: the upper bound
};

// What the backward needs besides the incoming gradient: the forward's input,
// its output (cheaper where the derivative is a function of y: exp, sigmoid,
// tanh, relu, sqrt), or nothing (neg, add/mul scalar).
enum class UnarySaved : uint8_t { none, input, output };
UnarySaved unary_backward_saves(UnaryOp op);

// y[i] = f(x[i]) for i < n. x and y may be the same array.
void unary_forward(const UnaryParams& p, int64_t n, const float* x, float* y);

// gx[i] = gy[i] * f'(x[i]). `saved` is x or y as unary_backward_saves(op)
// says (ignored, may be null, for none).
void unary_backward(const UnaryParams& p, int64_t n, const float* saved, const float* gy, float* gx);

// Scalar forms of the math inside the loops above, exposed for tests (exp is
// exp_approx in fast_exp.h): tanh and erf built on exp
// (relative error under 3e-7; erfc-based in the tails).
float tanh_approx(float x);
float erf_approx(float x);

}  // namespace graft::kernels::cpu
