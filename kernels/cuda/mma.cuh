// Tensor-core and asynchronous-copy primitives shared by the tiled kernels
// (GEMM, implicit-GEMM convolution, fused attention). Thin inline-PTX
// wrappers, each documented with the fragment layout it uses, so a kernel
// can be read without the PTX manual open. sm_80 and later (mma.sync,
// ldmatrix, cp.async all exist from sm_80). Included only by .cu files.
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16" and
// "mma.m16n8k8"), with lane = threadIdx.x % 32, g = lane / 4 (the "group",
// 0..7) and t = lane % 4 (the thread in the group, 0..3):
//
//   m16n8k16, A (16x16, row-major, .f16/.bf16), 4 registers of 2 elements:
//     a[0] = A[g    ][2t, 2t+1]      a[1] = A[g + 8][2t, 2t+1]
//     a[2] = A[g    ][2t+8, 2t+9]    a[3] = A[g + 8][2t+8, 2t+9]
//   m16n8k16, B (16x8, "col": element (k, n)), 2 registers of 2 elements:
//     b[0] = B[2t, 2t+1][g]          b[1] = B[2t+8, 2t+9][g]
//   C/D (16x8, f32), 4 floats, for both shapes:
//     d[0], d[1] = D[g    ][2t, 2t+1]
//     d[2], d[3] = D[g + 8][2t, 2t+1]
//   m16n8k8 .tf32, A (16x8): a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]
//   m16n8k8 .tf32, B (8x8):  b[0] = B[t][g], b[1] = B[t+4][g]
// In every 2-element register the lower k (or column) index sits in the low
// 16 bits.
//
// ldmatrix.x4 loads four 8x8 matrices of 16-bit elements: lanes 8i..8i+7
// give the row addresses (16 contiguous bytes each) of matrix i, and register
// r[i] receives matrix i in the layout "row lane/4, columns 2(lane%4), +1".
// That is exactly the A fragment above when matrices 0..3 are the tiles
// (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
// With .trans each 8x8 matrix is transposed on the way, which turns a
// k-major (row = k) tile of B in shared memory into the B fragment.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace graft::kernels::cuda::mma {

#if defined(GRAFT_CUDA_EMULATION)
// The host emulator (tests/emu/cuda_emu.h) executes these instructions with
// the lane layouts documented above; same signatures, no PTX.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
  ::graft::emu::cp_async(smem, gmem, 16, pred ? 16 : 0);
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, bool pred) {
  ::graft::emu::cp_async(smem, gmem, 4, pred ? 4 : 0);
}
__device__ __forceinline__ void cp_async_commit() { ::graft::emu::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { ::graft::emu::cp_async_wait(N); }
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) { ::graft::emu::ldmatrix(r, 4, false, p); }
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* p) { ::graft::emu::ldmatrix(r, 2, false, p); }
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  ::graft::emu::ldmatrix(r, 4, true, p);
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* p) {
  ::graft::emu::ldmatrix(r, 2, true, p);
}
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  ::graft::emu::mma(d, a, b,
                    std::is_same<T, __half>::value ? ::graft::emu::MmaKind::f16_16816 : ::graft::emu::MmaKind::bf16_16816);
}
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  ::graft::emu::mma(d, a, b, ::graft::emu::MmaKind::tf32_1688);
}
// cvt.rna: round the magnitude to 10 mantissa bits, ties away from zero.
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;  // inf, nan
  return (u + 0x1000u) & 0xffffe000u;
}
#else

// ---- addresses ---------------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- cp.async (global -> shared without registers) --------------------------------------------
// Copies 16 bytes when `pred`, otherwise writes 16 zero bytes to shared
// memory and reads nothing from `gmem` (the src-size operand is 0), so
// out-of-bounds tiles are zero-filled without a branch around the copy. Both
// addresses must be 16-byte aligned. .cg bypasses L1 (data is staged in
// shared memory anyway).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
  const int src_bytes = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}
// 4-byte variant (.ca: .cg only allows 16 bytes) for operands whose rows are
// not 16-byte aligned; same zero-fill rule.
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, bool pred) {
  const int src_bytes = pred ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- ldmatrix (shared -> fragments, 16-bit elements) -----------------------------------------
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_addr(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_addr(smem_row)));
}

// ---- mma.sync ----------------------------------------------------------------------------------
// d += A * B with f32 accumulation; fragments as documented at the top.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                            const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float (&d)[4], const uint32_t (&a)[4],
                                                     const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// TF32: the registers hold f32 bit patterns already rounded with to_tf32().
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// f32 -> tf32 (round to nearest, ties away), returned as the register bits.
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

#endif  // GRAFT_CUDA_EMULATION

// ---- packing -----------------------------------------------------------------------------------
// Two f32 values -> one register of two 16-bit elements, `lo` in the low half
// (the layout every fragment above uses).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo (low half), .y = hi
  uint32_t r;
  memcpy(&r, &v, sizeof(r));  // not a pointer cast: the host emulator's compiler assumes strict aliasing
  return r;
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, sizeof(r));  // not a pointer cast: the host emulator's compiler assumes strict aliasing
  return r;
}

}  // namespace graft::kernels::cuda::mma
