// Strided copy with dtype conversion, and fill, on the GPU: what the engine's
// contiguous(), to_format(), to(dtype), clone(), copy_() and fill_() run on a
// CUDA tensor, and what a reduction's backward (a stride-0 broadcast of the
// gradient) and the shape ops (slice, concat, pad, expand) move data with.
//
// The twin is the engine's copy_cpu (engine/core/tensor.cpp), with the same
// rules: one dtype -> the element's bytes are copied; two dtypes -> each value
// is read as double and stored converted (to f32: rounded; to f16/bf16: via
// f32, round to nearest even; to an integer: truncated toward zero; to bool:
// != 0 becomes 1).
//
// Unlike the float-only kernels, this one moves every element type the engine
// has, so it has its own element enum (the engine's DType order).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/strided.h"  // StridedIter

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

enum class ElemType : int { f32 = 0, f16 = 1, bf16 = 2, i32 = 3, i64 = 4, u8 = 5, boolean = 6 };

const char* elem_type_name(ElemType t);
size_t elem_type_size(ElemType t);  // 0 for an unknown value

// dst[it offsets of operand 0] = convert(src[it offsets of operand 1]) over
// `it` (any dim order, not yet coalesced; up to kMaxDims dims; strides in
// elements of each operand's own type; the source may have stride 0 along a
// dim -- a broadcast -- the destination may not). dst and src must not
// overlap unless they are the same elements in the same order. A single
// unit-stride run of one dtype becomes one cudaMemcpyAsync.
void strided_copy(StridedIter<2> it, ElemType dst_t, void* dst, ElemType src_t, const void* src, cudaStream_t stream);

// Every element of dst over `it` (operand 0 only) set to the element whose
// bytes are value_bits (the low elem_type_size(t) bytes, little-endian: the
// caller encodes the value exactly as its CPU path stores it).
void strided_fill(StridedIter<1> it, ElemType t, void* dst, uint64_t value_bits, cudaStream_t stream);

}  // namespace graft::kernels::cuda
