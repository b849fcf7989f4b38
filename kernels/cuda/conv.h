// 2-D convolution on NHWC tensors on the GPU: implicit GEMM on the tensor
// cores (mma.sync), the CUDA twin of kernels/cpu/conv.h. The same
// Conv2dParams (asymmetric padding, stride, dilation, groups) and the same
// layouts:
//   x   input   N, H, W, C
//   w   weight  O, KH, KW, C/groups
//   y   output  N, OH, OW, O
// elements of dtype dt (f32, f16, bf16), all device pointers. f16/bf16 use
// mma m16n8k16, f32 uses TF32 (m16n8k8, inputs rounded to TF32 in the kernel:
// about 1e-3 relative error, like cuDNN's default for f32); accumulation is
// always f32 and outputs are rounded to dt once, at the end.
//
// One kernel template serves all three passes; per group g (blockIdx.z):
//   forward        M = N*OH*OW (output pixels), Nc = O/g, K = KH*KW*C/g
//                  A = im2col(x) gathered on the fly, B = w
//   backward-data  decomposed by stride phase: the input pixels with the
//                  same (iy mod sh, ix mod sw) form one GEMM (blockIdx.z runs
//                  over groups x phases) whose K is only the taps that land
//                  on an output position for that phase; so M = N*H*W/(sh*sw)
//                  (about), Nc = C/g, K = (KH/sh)*(KW/sw)*O/g (about), and no
//                  MMA work is spent on taps between output positions
//                  (convidx::Phase). A = dy gathered through those taps,
//                  B = w transposed per group to (C/g, KH, KW, O/g) in
//                  stream-ordered scratch by a small kernel
//   backward-weight M = O/g, Nc = KH*KW*C/g, K = N*OH*OW, split over K across
//                  blocks into f32 partials (scratch), summed in a fixed
//                  order by a second kernel (deterministic, no atomics)
// A 1x1, stride-1, unpadded convolution takes plain GEMM addressing.
// Tiles: 128x128 per block, 8 warps of 64x32, K steps of 64 bytes (32
// f16/bf16 or 16 f32), a 4-stage cp.async pipeline. When the contiguous
// channel extents (C/g and O/g) are multiples of 8 (f16/bf16) or 4 (f32) and
// x, w, dy are 16-byte aligned, tiles are loaded with 16-byte cp.async;
// otherwise the same kernel gathers element by element with zero fill (a
// correct, slower path: e.g. the RGB stem conv, C = 3).
//
// Depthwise convolutions (groups == C == O, kernels/cpu/depthwise.h) are
// refused: use the depthwise launchers. Every other grouping works.
// Element counts of x, y, w must fit in int32 (checked). Every launcher checks
// its arguments on the host before any CUDA call and throws
// std::invalid_argument naming itself and the argument.
#pragma once

#include <cstdint>

#include "kernels/cpu/conv.h"
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::Conv2dParams;

enum class ConvActivation : int { none = 0, relu = 1, relu6 = 2, silu = 3 };

// Forward epilogue, per output element (pixel m, output channel oc), in f32:
//   y = act(acc * scale[oc] + shift[oc] + residual[m, oc])
// scale null: 1 (plain bias: shift = bias); shift null: 0; residual null: none.
// scale and shift are f32 arrays of O (a folded batch norm: scale = gamma /
// sqrt(var + eps), shift = beta - mean * scale); residual has y's shape and
// dtype (ResNet's identity branch: relu after the add). y must not alias x or w.
struct ConvEpilogue {
  const float* scale = nullptr;
  const float* shift = nullptr;
  const void* residual = nullptr;
  ConvActivation act = ConvActivation::none;
};

// y = epilogue(conv(x, w)).
void conv2d_forward(const Conv2dParams& p, const void* x, const void* w, void* y, DataType dt,
                    const ConvEpilogue& epilogue, cudaStream_t stream);

// dx = dL/dx from dy = dL/dy (overwritten; input pixels no tap reaches get 0).
void conv2d_backward_data(const Conv2dParams& p, const void* dy, const void* w, void* dx, DataType dt,
                          cudaStream_t stream);

// dw = dL/dw (overwritten), layout O, KH, KW, C/groups, dtype dt, summed in f32.
void conv2d_backward_weight(const Conv2dParams& p, const void* x, const void* dy, void* dw, DataType dt,
                            cudaStream_t stream);

}  // namespace graft::kernels::cuda
