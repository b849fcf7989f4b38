// Tiled tensor-core GEMM (kernels/cuda/gemm.h). One kernel template:
//
//  - CTA tile BM x BN (128x128 with 8 warps of 64x32, or 64x64 with 4 warps
//    of 32x32), k in steps of BK = 64 bytes (32 bf16/f16 or 16 f32);
//  - a 4-stage cp.async pipeline: while the warps multiply stage s, the
//    copies of the next three k-tiles are in flight (16-byte copies; an
//    unaligned operand is loaded element by element instead: kVec = false);
//  - shared memory holds each operand as it lies in global memory
//    (k-contiguous or mn-contiguous, gemm_layout.h), rows padded by 16 bytes
//    so ldmatrix / LDS reads are free of bank conflicts;
//  - fragments: bf16/f16 by ldmatrix.x4 (.trans for an mn-contiguous operand)
//    into mma.m16n8k16; f32 by plain 32-bit LDS, rounded to TF32 (cvt.rna)
//    into mma.m16n8k8;
//  - epilogue: accumulators staged through shared memory, then alpha,
//    beta * C, biases, activation in f32 and one rounding to the output
//    dtype, with coalesced row runs of C.
// The index maps live in gemm_layout.h, where tests/cuda/test_gemm.cpp checks
// them on the host.
#include "kernels/cuda/gemm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_layout.h"
#include "kernels/cuda/mma.cuh"

namespace graft::kernels::cuda {
namespace {

namespace gl = gemm_layout;

// Everything a launch needs, by value (about 130 bytes of kernel parameters).
struct GemmArgs {
  const void* a;
  const void* b;
  void* c;
  int m, n, k;
  int tiles_m, tiles_n;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
  int64_t batch;
  float alpha, beta;
  const float* bias;      // per column, or null
  const float* bias_row;  // per row, or null
  int act;                // GemmActivation
  bool pair_c;            // C pairs (2 elements) aligned for one store
};

template <int kBM, int kBN, int kWarpsM, int kWarpsN, int kMinBlocksPerSM>
struct TileConfig {
  static constexpr int BM = kBM, BN = kBN;
  static constexpr int kWarpsAlongN = kWarpsN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int WM = BM / kWarpsM, WN = BN / kWarpsN;  // warp tile
  static constexpr int MT = WM / 16, NT = WN / 8;             // mma tiles per warp
  static constexpr int kStages = 4;
  static constexpr int kMinBlocks = kMinBlocksPerSM;
  static_assert(WM % 16 == 0 && WN % 16 == 0, "a warp tile is whole 16x16 blocks (B loads 16 n at a time)");
};
// 128x128: 8 warps as 2 (m) x 4 (n), warp tile 64x32 = 4x4 mma tiles, 64 accumulators per thread.
// 2 blocks per SM (<= 128 registers: ptxas -v shows 120-128 on sm_90, no spills; 2 x 80 KB smem).
using BigTile = TileConfig<128, 128, 2, 4, 2>;
// 64x64: 4 warps as 2 x 2, warp tile 32x32 = 2x4 mma tiles; for problems with too few big tiles
// and for unaligned operands. 4 blocks per SM (<= 128 registers; 40 KB smem each).
using SmallTile = TileConfig<64, 64, 2, 2, 4>;

// Shared-memory element: raw bits (cp.async and ldmatrix move bits).
template <typename T>
using Bits = std::conditional_t<sizeof(T) == 2, uint16_t, uint32_t>;

template <typename T, class Cfg, bool kTA, bool kTB>
struct Traits {
  using E = Bits<T>;
  static constexpr int kBK = 64 / static_cast<int>(sizeof(T));
  static constexpr int kKStep = sizeof(T) == 2 ? 16 : 8;  // k of one mma
  // A is k-contiguous unless transposed; B is k-contiguous when transposed.
  using TileA = gl::SmemTile<Cfg::BM, kBK, sizeof(T), !kTA>;
  using TileB = gl::SmemTile<Cfg::BN, kBK, sizeof(T), kTB>;
  static constexpr int kCPitch = Cfg::BN + 8;  // f32 C tile staged for the epilogue
  static constexpr int kPipeBytes = Cfg::kStages * (TileA::kBytes + TileB::kBytes);
  static constexpr int kEpilogueBytes = Cfg::BM * kCPitch * 4;
  static constexpr int kSmemBytes = kPipeBytes > kEpilogueBytes ? kPipeBytes : kEpilogueBytes;
  static_assert(TileA::kChunks % Cfg::kThreads == 0 && TileB::kChunks % Cfg::kThreads == 0,
                "each thread copies the same number of 16-byte chunks");
  static_assert(kBK % kKStep == 0, "whole mma steps per stage");
};

// ---- global -> shared, one operand tile of one stage -----------------------------------------
// The tile's stored rows row0.. (bound `rows`) and columns col0.. (bound
// `cols`, contiguous in global memory with row stride ld). Out-of-range
// elements become zeros.
//  - kVec: 16-byte cp.async per chunk, zero-filled (nothing read) when out of
//    range. The launcher picks this only when the operand's pointer, leading
//    dimension and batch stride are 16-byte multiples and `cols` is a multiple
//    of the chunk width, so a chunk is either wholly in range or wholly out.
//  - otherwise element by element through registers (any alignment).
template <class Tile, int kThreads, bool kVec, typename E>
__device__ __forceinline__ void load_tile(E* s, const E* g, int64_t ld, int row0, int col0, int rows, int cols) {
  constexpr int V = Tile::kChunkElems;
#pragma unroll
  for (int i = 0; i < Tile::kChunks / kThreads; ++i) {
    const int c = static_cast<int>(threadIdx.x) + i * kThreads;
    const int r = Tile::chunk_row(c), cc = Tile::chunk_col(c);
    const int gr = row0 + r, gc = col0 + cc;
    E* dst = s + r * Tile::kPitch + cc;
    const bool row_ok = gr < rows;
    const E* src = g + static_cast<int64_t>(gr) * ld + gc;
    if constexpr (kVec) {
      const bool in = row_ok && gc < cols;  // the whole chunk (cols % V == 0)
      mma::cp_async16(dst, in ? src : g, in);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) dst[e] = (row_ok && gc + e < cols) ? src[e] : E(0);
    }
  }
}

// ---- epilogue helpers ----------------------------------------------------------------------------
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluTanhC = 0.044715f;
constexpr float kInvSqrt2 = 0.70710678118654752f;

// The twin's formulas (kernels/cpu/elementwise.cpp; as kernels/cuda/elementwise.cu).
__device__ __forceinline__ float apply_activation(float v, int act) {
  switch (static_cast<GemmActivation>(act)) {
    case GemmActivation::relu: return 0.f > v ? 0.f : v;
    case GemmActivation::relu6: {
      const float r = 0.f > v ? 0.f : v;
      return 6.f < r ? 6.f : r;
    }
    case GemmActivation::silu: return v * (1.f / (1.f + expf(-v)));
    case GemmActivation::gelu_erf: return v * (0.5f * erfcf(-kInvSqrt2 * v));
    case GemmActivation::gelu_tanh: {
      const float u = kSqrt2OverPi * (v + kGeluTanhC * v * v * v);
      return v * (1.f / (1.f + expf(-2.f * u)));
    }
    case GemmActivation::none: break;
  }
  return v;
}

// Two adjacent elements of C (p 2-element aligned).
template <typename T>
__device__ __forceinline__ float2 load_pair(const T* p);
template <>
__device__ __forceinline__ float2 load_pair<float>(const float* p) { return *reinterpret_cast<const float2*>(p); }
template <>
__device__ __forceinline__ float2 load_pair<__half>(const __half* p) {
  return __half22float2(*reinterpret_cast<const __half2*>(p));
}
template <>
__device__ __forceinline__ float2 load_pair<__nv_bfloat16>(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
template <typename T>
__device__ __forceinline__ void store_pair(T* p, float lo, float hi) {
  if constexpr (std::is_same_v<T, float>) {
    *reinterpret_cast<float2*>(p) = make_float2(lo, hi);
  } else {
    *reinterpret_cast<uint32_t*>(p) = mma::pack2<T>(lo, hi);
  }
}

// ---- the kernel ------------------------------------------------------------------------------------
// grid.x: output tiles (gemm_layout::tile_of_block order); grid.y strides over the batch.
template <typename T, class Cfg, bool kTA, bool kTB, bool kVec>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) gemm_tc_kernel(const GemmArgs p) {
  using Tr = Traits<T, Cfg, kTA, kTB>;
  using E = typename Tr::E;
  using TileA = typename Tr::TileA;
  using TileB = typename Tr::TileB;
  constexpr int S = Cfg::kStages, BK = Tr::kBK, MT = Cfg::MT, NT = Cfg::NT;

  GRAFT_DYNAMIC_SMEM(unsigned char, smem_raw);
  E* const sA = reinterpret_cast<E*>(smem_raw);  // S stages of TileA
  E* const sB = sA + S * TileA::kElems;            // then S stages of TileB (kBytes % 16 == 0: aligned)

  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int wm0 = (warp / Cfg::kWarpsAlongN) * Cfg::WM;  // warp tile origin inside the CTA tile
  const int wn0 = (warp % Cfg::kWarpsAlongN) * Cfg::WN;
  const gl::TileCoord tile = gl::tile_of_block(static_cast<int>(blockIdx.x), p.tiles_m, p.tiles_n);
  const int m0 = tile.m * Cfg::BM, n0 = tile.n * Cfg::BN;
  const int k_tiles = (p.k + BK - 1) / BK;
  // Bounds of each operand as stored: A is m x k, or k x m when transposed; B k x n, or n x k.
  const int a_rows = kTA ? p.k : p.m, a_cols = kTA ? p.m : p.k;
  const int b_rows = kTB ? p.n : p.k, b_cols = kTB ? p.k : p.n;

  for (int64_t z = blockIdx.y; z < p.batch; z += gridDim.y) {
    const E* const ga = static_cast<const E*>(p.a) + z * p.stride_a;
    const E* const gb = static_cast<const E*>(p.b) + z * p.stride_b;
    T* const gc = static_cast<T*>(p.c) + z * p.stride_c;

    // k-tile kt -> pipeline stage `stage`.
    auto load_stage = [&](int stage, int kt) {
      const int k0 = kt * BK;
      E* const sa = sA + stage * TileA::kElems;
      E* const sb = sB + stage * TileB::kElems;
      if constexpr (kTA) load_tile<TileA, Cfg::kThreads, kVec>(sa, ga, p.lda, k0, m0, a_rows, a_cols);
      else load_tile<TileA, Cfg::kThreads, kVec>(sa, ga, p.lda, m0, k0, a_rows, a_cols);
      if constexpr (kTB) load_tile<TileB, Cfg::kThreads, kVec>(sb, gb, p.ldb, n0, k0, b_rows, b_cols);
      else load_tile<TileB, Cfg::kThreads, kVec>(sb, gb, p.ldb, k0, n0, b_rows, b_cols);
    };

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

    // Prologue: k-tiles 0 .. S-2 in flight, one commit group each (empty
    // groups past the end keep the count uniform).
#pragma unroll
    for (int s = 0; s < S - 1; ++s) {
      if (s < k_tiles) load_stage(s, s);
      mma::cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
      // Groups committed so far: S - 1 + kt; allowing S - 2 pending means
      // groups 0..kt are done, i.e. k-tile kt has landed (for this thread).
      mma::cp_async_wait<S - 2>();
      // ... and for every thread; also every warp is done with k-tile kt - 1,
      // whose stage (kt - 1) % S == (kt + S - 1) % S is refilled next.
      __syncthreads();
      const int next = kt + S - 1;
      if (next < k_tiles) load_stage(next % S, next);
      mma::cp_async_commit();

      const E* const sa = sA + (kt % S) * TileA::kElems;
      const E* const sb = sB + (kt % S) * TileB::kElems;
#pragma unroll
      for (int ks = 0; ks < BK; ks += Tr::kKStep) {
        uint32_t af[MT][4];
        uint32_t bf[NT][2];
        if constexpr (sizeof(T) == 2) {
          // A: one x4 per 16x16 block; registers come out as the A fragment
          // (r[0] rows 0-7 / k 0-7, r[1] rows 8-15 / k 0-7, r[2] rows 0-7 / k 8-15, r[3] rows 8-15 / k 8-15).
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const E* addr = sa + TileA::ldmatrix_offset(wm0 + mt * 16, ks, lane);
            if constexpr (TileA::kKContiguous) mma::ldmatrix_x4(af[mt], addr);
            else mma::ldmatrix_x4_trans(af[mt], addr);
          }
          // B: one x4 per 16 (n) x 16 (k) block, same register order with mn = n:
          // n-tile 2j gets {r[0] (k 0-7), r[2] (k 8-15)}, n-tile 2j+1 gets {r[1], r[3]}.
#pragma unroll
          for (int j = 0; j < NT / 2; ++j) {
            uint32_t r[4];
            const E* addr = sb + TileB::ldmatrix_offset(wn0 + j * 16, ks, lane);
            if constexpr (TileB::kKContiguous) mma::ldmatrix_x4(r, addr);
            else mma::ldmatrix_x4_trans(r, addr);
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
              for (int q = 0; q < 2; ++q) bf[2 * j + h][q] = r[TileB::x4_reg_for_b(h, q)];
          }
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) mma::mma_m16n8k16<T>(acc[mt][nt], af[mt], bf[nt]);
        } else {
          // TF32: a[j] = A[row(j)][k(j)], b[j] = B[k(j)][n], one 32-bit LDS each.
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int j = 0; j < 4; ++j)
              af[mt][j] = mma::to_tf32(__uint_as_float(
                  sa[TileA::offset(wm0 + mt * 16 + gl::mma8_a_row(j, lane), ks + gl::mma8_a_k(j, lane))]));
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int j = 0; j < 2; ++j)
              bf[nt][j] = mma::to_tf32(__uint_as_float(
                  sb[TileB::offset(wn0 + nt * 8 + gl::mma8_b_n(lane), ks + gl::mma8_b_k(j, lane))]));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) mma::mma_m16n8k8_tf32(acc[mt][nt], af[mt], bf[nt]);
        }
      }
    }
    mma::cp_async_wait<0>();
    // Every warp is done reading the stages: reuse shared memory for the C tile.
    __syncthreads();

    // Epilogue, through shared memory so that the per-element work (C, biases,
    // activation) is one small loop instead of unrolled code per accumulator,
    // and global loads/stores of C are coalesced row runs.
    // 1. accumulators -> sC (BM x BN f32, pitch BN + 8: a half-warp's 8-byte
    //    stores (g = 0..3, t = 0..3) land in banks 8g + 2t, +1: conflict-free).
    float* const sC = reinterpret_cast<float*>(smem_raw);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = wm0 + mt * 16 + gl::mma_c_row(2 * h, lane);
          const int cc = wn0 + nt * 8 + gl::mma_c_col(2 * h, lane);  // even; register 2h+1 is column cc+1
          *reinterpret_cast<float2*>(sC + r * Tr::kCPitch + cc) =
              make_float2(acc[mt][nt][2 * h], acc[mt][nt][2 * h + 1]);
        }
    __syncthreads();
    // 2. one thread per pair of columns, consecutive threads along a row.
    constexpr int kPairsPerRow = Cfg::BN / 2;
#pragma unroll 1
    for (int i = static_cast<int>(threadIdx.x); i < Cfg::BM * kPairsPerRow; i += Cfg::kThreads) {
      const int r = i / kPairsPerRow, cc = (i % kPairsPerRow) * 2;
      const int row = m0 + r, col = n0 + cc;
      if (row >= p.m || col >= p.n) continue;
      const float2 d = *reinterpret_cast<const float2*>(sC + r * Tr::kCPitch + cc);
      const float brow = p.bias_row ? p.bias_row[row] : 0.f;
      T* const crow = gc + static_cast<int64_t>(row) * p.ldc;
      float v[2] = {p.alpha * d.x, p.alpha * d.y};
      if (p.pair_c && col + 1 < p.n) {
        if (p.beta != 0.f) {
          const float2 old = load_pair<T>(crow + col);
          v[0] += p.beta * old.x;
          v[1] += p.beta * old.y;
        }
        if (p.bias) v[0] += p.bias[col], v[1] += p.bias[col + 1];
        store_pair<T>(crow + col, apply_activation(v[0] + brow, p.act), apply_activation(v[1] + brow, p.act));
      } else {
        for (int e = 0; e < 2 && col + e < p.n; ++e) {
          float x = v[e];
          if (p.beta != 0.f) x += p.beta * to_f32<T>(crow[col + e]);
          if (p.bias) x += p.bias[col + e];
          crow[col + e] = from_f32<T>(apply_activation(x + brow, p.act));
        }
      }
    }
    // sC is refilled by the next batch item's prologue.
    __syncthreads();
  }
}

// ---- launchers -----------------------------------------------------------------------------------------
constexpr int64_t kMaxDim = int64_t(1) << 30;

[[noreturn]] void bad_argument(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}

// rows * ld + (batch - 1) * stride (a bound on the elements one operand spans) must fit in int64.
bool extent_fits(int64_t rows, int64_t ld, int64_t batch, int64_t stride) {
  int64_t a = 0, b = 0, s = 0;
  if (rows <= 0 || batch <= 0) return true;
  if (__builtin_mul_overflow(rows, ld, &a)) return false;
  if (__builtin_mul_overflow(batch - 1, stride, &b)) return false;
  return !__builtin_add_overflow(a, b, &s);
}

template <typename T, class Cfg, bool kTA, bool kTB, bool kVec>
void launch_kernel(GemmArgs p, cudaStream_t stream) {
  constexpr int smem = Traits<T, Cfg, kTA, kTB>::kSmemBytes;
  auto* kernel = gemm_tc_kernel<T, Cfg, kTA, kTB, kVec>;
  // Above 48 KB a kernel must opt in; done once per kernel (static), its result checked at every call.
  static const cudaError_t opt_in = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  GRAFT_KERNEL_CUDA_CHECK(opt_in);
  p.tiles_m = (p.m + Cfg::BM - 1) / Cfg::BM;
  p.tiles_n = (p.n + Cfg::BN - 1) / Cfg::BN;
  const dim3 grid(static_cast<unsigned>(int64_t(p.tiles_m) * p.tiles_n),
                  static_cast<unsigned>(std::min<int64_t>(p.batch, 65535)));
  kernel<<<grid, Cfg::kThreads, smem, stream>>>(p);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, class Cfg, bool kVec>
void launch_trans(Trans ta, Trans tb, const GemmArgs& p, cudaStream_t stream) {
  if (ta == Trans::no && tb == Trans::no) launch_kernel<T, Cfg, false, false, kVec>(p, stream);
  else if (ta == Trans::no && tb == Trans::yes) launch_kernel<T, Cfg, false, true, kVec>(p, stream);
  else if (ta == Trans::yes && tb == Trans::no) launch_kernel<T, Cfg, true, false, kVec>(p, stream);
  else launch_kernel<T, Cfg, true, true, kVec>(p, stream);
}

int multiprocessors() {
  int dev = 0, sms = 0;
  GRAFT_KERNEL_CUDA_CHECK(cudaGetDevice(&dev));
  GRAFT_KERNEL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}

void gemm_impl(const char* fn, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
               int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b, void* c, int64_t ldc, int64_t stride_c,
               int64_t batch, const GemmEpilogue& ep, DataType dt, cudaStream_t stream) {
  // ---- host-side checks, before any CUDA call ----
  const auto dim = [fn](const char* name, int64_t v) {
    if (v < 0 || v > kMaxDim)
      bad_argument(fn, std::string(name) + " must be in [0, 2^30], got " + std::to_string(v));
  };
  dim("m", m);
  dim("n", n);
  dim("k", k);
  if (batch < 0) bad_argument(fn, "batch must be >= 0, got " + std::to_string(batch));
  if (dt != DataType::f32 && dt != DataType::f16 && dt != DataType::bf16)
    bad_argument(fn, "dt must be f32, f16 or bf16, got " + std::to_string(static_cast<int>(dt)));
  const int act = static_cast<int>(ep.act);
  if (act < static_cast<int>(GemmActivation::none) || act > static_cast<int>(GemmActivation::gelu_tanh))
    bad_argument(fn, "ep.act is not a GemmActivation (" + std::to_string(act) + ")");
  const int64_t min_lda = std::max<int64_t>(1, ta == Trans::no ? k : m);
  const int64_t min_ldb = std::max<int64_t>(1, tb == Trans::no ? n : k);
  const int64_t min_ldc = std::max<int64_t>(1, n);
  if (lda < min_lda)
    bad_argument(fn, "lda must be >= " + std::to_string(min_lda) + std::string(ta == Trans::no ? " (k)" : " (m)") +
                         ", got " + std::to_string(lda));
  if (ldb < min_ldb)
    bad_argument(fn, "ldb must be >= " + std::to_string(min_ldb) + std::string(tb == Trans::no ? " (n)" : " (k)") +
                         ", got " + std::to_string(ldb));
  if (ldc < min_ldc) bad_argument(fn, "ldc must be >= " + std::to_string(min_ldc) + " (n), got " + std::to_string(ldc));
  if (stride_a < 0 || stride_b < 0 || stride_c < 0)
    bad_argument(fn, "stride_a, stride_b and stride_c must be >= 0, got " + std::to_string(stride_a) + ", " +
                         std::to_string(stride_b) + ", " + std::to_string(stride_c));
  if (!extent_fits(ta == Trans::no ? m : k, lda, batch, stride_a) ||
      !extent_fits(tb == Trans::no ? k : n, ldb, batch, stride_b) || !extent_fits(m, ldc, batch, stride_c))
    bad_argument(fn, "the operands' extents (rows x ld + batch x stride) overflow int64");
  if (m == 0 || n == 0 || batch == 0) return;
  if (batch > 1 && stride_c < (m - 1) * ldc + n)
    bad_argument(fn, "stride_c must be >= (m - 1) * ldc + n = " + std::to_string((m - 1) * ldc + n) +
                         " so the C_i do not overlap, got " + std::to_string(stride_c));
  if (c == nullptr) bad_argument(fn, "c is null");
  if (k > 0 && a == nullptr) bad_argument(fn, "a is null");
  if (k > 0 && b == nullptr) bad_argument(fn, "b is null");
  // Output tiles of the smaller config (the larger count) must fit grid.x (and int).
  const int64_t small_tiles = ((m + SmallTile::BM - 1) / SmallTile::BM) * ((n + SmallTile::BN - 1) / SmallTile::BN);
  if (small_tiles > INT32_MAX)
    bad_argument(fn, "m x n is too large: " + std::to_string(small_tiles) + " output tiles of 64x64 exceed 2^31 - 1");

  // ---- launch ----
  const int64_t es = static_cast<int64_t>(dtype_size(dt));
  GemmArgs p{};
  p.a = a;
  p.b = b;
  p.c = c;
  p.m = static_cast<int>(m);
  p.n = static_cast<int>(n);
  p.k = static_cast<int>(k);
  p.lda = lda;
  p.ldb = ldb;
  p.ldc = ldc;
  p.stride_a = stride_a;
  p.stride_b = stride_b;
  p.stride_c = stride_c;
  p.batch = batch;
  p.alpha = ep.alpha;
  p.beta = ep.beta;
  p.bias = ep.bias;
  p.bias_row = ep.bias_row;
  p.act = act;
  // 16-byte loads need each operand's pointer, leading dimension and batch
  // stride in 16-byte multiples, and its contiguous extent (k, m or n) a
  // multiple of the chunk width (16 bytes), so that no chunk straddles the edge.
  const int64_t chunk = 16 / es;
  const bool vec = aligned16(a) && (lda * es) % 16 == 0 && (stride_a * es) % 16 == 0 &&
                   (ta == Trans::no ? k : m) % chunk == 0 && aligned16(b) && (ldb * es) % 16 == 0 &&
                   (stride_b * es) % 16 == 0 && (tb == Trans::no ? n : k) % chunk == 0;
  p.pair_c = (reinterpret_cast<uintptr_t>(c) % (2 * es)) == 0 && ldc % 2 == 0 && stride_c % 2 == 0;

  // Big tiles unless they would leave SMs idle (e.g. M = 64 or a 1576 x 768
  // linear layer); unaligned operands always take the small element-wise-loading kernel.
  const int64_t big_tiles = ((m + BigTile::BM - 1) / BigTile::BM) * ((n + BigTile::BN - 1) / BigTile::BN) *
                            std::min<int64_t>(batch, 65535);
  const bool small = !vec || big_tiles < multiprocessors();
  GRAFT_DISPATCH_FLOAT(dt, T, {
    if (!vec) launch_trans<T, SmallTile, false>(ta, tb, p, stream);
    else if (small) launch_trans<T, SmallTile, true>(ta, tb, p, stream);
    else launch_trans<T, BigTile, true>(ta, tb, p, stream);
  });
}

}  // namespace

void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, const void* b, int64_t ldb,
          void* c, int64_t ldc, const GemmEpilogue& ep, DataType dt, cudaStream_t stream) {
  gemm_impl("gemm", ta, tb, m, n, k, a, lda, 0, b, ldb, 0, c, ldc, 0, 1, ep, dt, stream);
}

void gemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, int64_t stride_a,
                  const void* b, int64_t ldb, int64_t stride_b, void* c, int64_t ldc, int64_t stride_c, int64_t batch,
                  const GemmEpilogue& ep, DataType dt, cudaStream_t stream) {
  gemm_impl("gemm_batched", ta, tb, m, n, k, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, batch, ep, dt,
            stream);
}

}  // namespace graft::kernels::cuda
