// Fused (flash-style) multi-head attention on tensor cores; the twin is
// kernels/cpu/attention.h and both take the same AttentionParams.
//
//   S = scale * Q K^T + mask (+ causal -inf),  P = softmax_rows(S),  O = dropout(P) V
//
// Layouts as the twin: q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, D),
// out and dout (B, H, Sq, D), lse (B, H, Sq) f32; all contiguous.
//
// Supported (anything else throws std::invalid_argument naming the launcher
// and the argument, before any CUDA call):
//   - dtypes bf16 and f16 (mma.m16n8k16, f32 accumulation, f32 softmax
//     statistics). f32 inputs are NOT supported here (no tensor-core path):
//     the engine runs f32 attention on the CPU twin or upcasts.
//   - head_dim == head_dim_v, one of 32, 64, 128.
//   - any seq_q >= 1, seq_k >= 0 (they may differ), causal (top-left aligned,
//     key j visible to query i iff j <= i, as the twin).
//   - an optional additive f32 mask with the twin's broadcast strides
//     (mask_stride_b/h/q/k, 0 broadcasts); `mask_elements` is the number of
//     floats the mask allocation holds: every offset the strides reach for
//     (B, H, Sq, Sk) must lie below it (a mask that does not broadcast to the
//     score shape fails on the host). Entries may be -inf.
//   - any pointer alignment: 16-byte-aligned q/k/v/out/dout take cp.async
//     16-byte copies; otherwise a scalar copy into the same shared tiles.
// Fully masked rows (or seq_k == 0): output 0, lse -inf, zero gradient — as the twin.
//
// Dropout (optional, on the probabilities): element (b, h, i, j) of the
// (B, H, Sq, Sk) probability tensor has flat index e = ((b*H + h)*Sq + i)*Sk + j
// and is kept iff philox_uniform(philox_block(seed, offset + e/4).v[e%4]) >= p,
// kept values scaled by 1/(1-p): exactly the mask cpu::dropout_forward draws
// for a tensor of that shape with the same RandomParams (kernels/cpu/random.h),
// so a reference can reproduce it. The forward consumes
// cpu::random_blocks(B*H*Sq*Sk) Philox blocks; the backward must be given the
// same AttentionDropout as its forward. lse is that of the undropped scores.
//
// Never run on a GPU yet (written without one); see tests/cuda/test_attention.cpp.
#pragma once

#include <cstdint>

#include "kernels/cpu/attention.h"  // AttentionParams
#include "kernels/cpu/random.h"     // RandomParams
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::AttentionParams;

struct AttentionDropout {
  float p = 0.f;  // probability of dropping; 0 disables dropout. Must be in [0, 1].
  cpu::RandomParams rng;
};

// Forward: out (B, H, Sq, D) in dtype dt, lse (B, H, Sq) f32 (saved for the backward).
// mask may be null (then mask_elements is ignored).
void attention_forward(DataType dt, const AttentionParams& p, const void* q, const void* k, const void* v,
                       const float* mask, int64_t mask_elements, const AttentionDropout& drop, void* out, float* lse,
                       cudaStream_t stream);

// Bytes of device workspace attention_backward needs: an f32 dQ accumulator
// (B*H*Sq*D floats) and the row dots delta = rowsum(dO * O) (B*H*Sq floats).
int64_t attention_backward_workspace_bytes(const AttentionParams& p);

// Backward by recomputation (flash-attention-2's scheme): a row kernel forms
// delta; the main kernel runs one CTA per (b, h, 64-key block), loops over the
// query blocks, recomputes S and P from q, k and lse, accumulates dV and dK
// in registers (each written once: deterministic) and adds its dQ share with
// f32 atomicAdd into the workspace; a last kernel converts dQ to dtype dt
// (dQ's summation order is therefore not deterministic). Why this scheme: P
// and dS are needed by both the key-side (dK, dV) and the query-side (dQ)
// sums; owning keys keeps dK and dV in registers and deterministic, and
// recomputing S and P once per (key block, query block) is the least
// arithmetic - a separate dQ pass over key blocks would recompute S, P and dP
// a second time (~+60 % of the backward's products) to avoid the atomics. Any of dq, dk, dv
// may be null (not computed). workspace: attention_backward_workspace_bytes(p)
// bytes, 4-byte aligned, contents ignored.
void attention_backward(DataType dt, const AttentionParams& p, const void* q, const void* k, const void* v,
                        const float* mask, int64_t mask_elements, const AttentionDropout& drop, const void* out,
                        const void* dout, const float* lse, void* dq, void* dk, void* dv, void* workspace,
                        cudaStream_t stream);

}  // namespace graft::kernels::cuda
