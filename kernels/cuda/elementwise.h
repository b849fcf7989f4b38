// Elementwise kernels on the GPU: unary ops and activations, binary ops with
// NumPy broadcasting, pow and where; forward and backward side by side. The
// twins are kernels/cpu/elementwise.h and elementwise_extra.h: the same op
// enums, params struct and StridedIter shape description, the same formulas.
//
// Every tensor here is f32, f16 or bf16 (`dt`, one dtype for all float
// operands of a call); compute is f32, results are rounded to `dt` once.
// Unary ops run over a flat range (dense tensors whose strides agree, as the
// engine hands them); binary ops take a StridedIter<3> (operand 0 = out, 1 =
// a, 2 = b; stride 0 along a broadcast dim) in any dim order, not yet
// coalesced, exactly as the CPU twin does.
//
// Paths: 16-byte vector loads where every pointer involved is 16-byte aligned
// (a scalar tail finishes the range); a row-broadcast path for (M, K) + (K)
// (bias over NHWC or (N, C)); an N-d strided path for everything else.
// Arguments are checked on the host before any CUDA call: a bad one throws
// std::invalid_argument naming the launcher and the argument.
#pragma once

#include <cstdint>

#include "kernels/cpu/elementwise.h"  // BinaryOp, UnaryOp, UnaryParams, UnarySaved, StridedIter
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

// ---- unary ops and activations -------------------------------------------------------

// y[i] = f(x[i]) for i < n. x and y may be the same array.
void unary_forward(const cpu::UnaryParams& p, DataType dt, int64_t n, const void* x, void* y, cudaStream_t stream);

// gx[i] = gy[i] * f'(...). `saved` is the forward's input x or output y as
// unary_saves(p.op) says (ignored, may be null, where it says none). saved,
// gy and gx all have dtype dt. gx may alias gy.
void unary_backward(const cpu::UnaryParams& p, DataType dt, int64_t n, const void* saved, const void* gy, void* gx,
                    cudaStream_t stream);

// What unary_backward needs saved (the same answer as cpu::unary_backward_saves;
// defined inline here so that the CUDA library does not link the CPU one).
inline cpu::UnarySaved unary_saves(cpu::UnaryOp op) {
  switch (op) {
    case cpu::UnaryOp::neg:
    case cpu::UnaryOp::add_scalar:
    case cpu::UnaryOp::mul_scalar: return cpu::UnarySaved::none;
    case cpu::UnaryOp::exp:
    case cpu::UnaryOp::sqrt:
    case cpu::UnaryOp::relu:
    case cpu::UnaryOp::sigmoid:
    case cpu::UnaryOp::tanh: return cpu::UnarySaved::output;
    default: return cpu::UnarySaved::input;
  }
}

// ---- binary ops with broadcasting ------------------------------------------------------

// out = a (op) b over `it` (operands out, a, b; any dim order; up to kMaxDims
// dims). Element offsets are in elements of dt.
void binary_forward(cpu::BinaryOp op, DataType dt, StridedIter<3> it, void* out, const void* a, const void* b,
                    cudaStream_t stream);

// The flat case: n elements, all three operands dense in the same order.
void binary_forward_flat(cpu::BinaryOp op, DataType dt, int64_t n, void* out, const void* a, const void* b,
                         cudaStream_t stream);

// Backward of a broadcasting binary op, as the engine composes it on the CPU:
//   add: ga = sum_to(g), gb = sum_to(g);     sub: gb = -sum_to(g)
//   mul: ga = sum_to(g * b), gb = sum_to(g * a)
//   div: ga = sum_to(g / b), gb = -sum_to(g / b * out)
// The products are binary_forward calls; sum_to is sum_forward (reduce.h) with
// sum_to_params(), scale -1 for the negated ones. See tests/cuda/test_elementwise.cpp
// (BinaryBackwardByComposition) for the whole chain.

// ---- pow and where (kernels/cpu/elementwise_extra.h) -------------------------------------

// out = a ^ b (powf; a negative base with a non-integer exponent gives NaN, 0^0 = 1).
void pow_forward(DataType dt, StridedIter<3> it, void* out, const void* a, const void* b, cudaStream_t stream);
// ga = g * b * a^(b-1), 0 where b == 0. Operands: ga, g, a, b.
void pow_backward_base(DataType dt, StridedIter<4> it, void* ga, const void* g, const void* a, const void* b,
                       cudaStream_t stream);
// gb = g * y * ln(a) where a > 0, else 0 (y = a^b). Operands: gb, g, a, y.
void pow_backward_exponent(DataType dt, StridedIter<4> it, void* gb, const void* g, const void* a, const void* y,
                           cudaStream_t stream);
// out = cond ? a : b (cond: one byte per element, nonzero = true). Operands: out, cond, a, b.
void where_forward(DataType dt, StridedIter<4> it, void* out, const uint8_t* cond, const void* a, const void* b,
                   cudaStream_t stream);

}  // namespace graft::kernels::cuda
