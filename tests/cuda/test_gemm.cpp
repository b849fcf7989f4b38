// The tensor-core GEMM (kernels/cuda/gemm.h) against kernels::cpu::sgemm on
// the same dtype-rounded inputs, then the epilogue applied on the host with the
// CPU elementwise twin. Tolerances relative to max |reference|: bf16 1e-2,
// f16 2e-3, f32 2e-3 (the kernel rounds f32 inputs to TF32, 10 mantissa bits).
// Padding elements of every operand (past k / m / n inside a leading
// dimension) hold NaN, so a kernel that reads them fails; C starts NaN-poisoned
// where beta == 0, so an element never written fails.
//
// Host-only (run without a GPU): the index arithmetic of gemm_layout.h
// (ldmatrix addresses -> mma fragments by simulating ldmatrix, bank
// conflicts, chunk coverage, CTA order) and the launchers' argument checks.
#include "kernels/cuda/gemm.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cuda/gemm_layout.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cuda;
namespace kcpu = kernels::cpu;
namespace gl = kernels::cuda::gemm_layout;
using kc::GemmActivation;
using kc::GemmEpilogue;
using kcpu::Trans;

// ==== host-only: gemm_layout.h ===============================================================

// The documented fragments of kernels/cuda/mma.cuh, written out directly
// (independent of gemm_layout.h's formulas): element (row, k) of A held by
// register `reg`, half `half` of lane `lane`.
void doc_a16(int lane, int reg, int half, int* row, int* k) {
  const int g = lane / 4, t = lane % 4;
  const int rows[4] = {g, g + 8, g, g + 8};
  const int ks[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
  *row = rows[reg];
  *k = ks[reg] + half;
}
// B (k, n): b[0] = B[2t, 2t+1][g], b[1] = B[2t+8, 2t+9][g].
void doc_b16(int lane, int reg, int half, int* k, int* n) {
  const int g = lane / 4, t = lane % 4;
  *k = 2 * t + half + (reg == 0 ? 0 : 8);
  *n = g;
}

TEST(CudaGemmLayout, FragmentMapsMatchTheMmaDocumentation) {
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int reg = 0; reg < 4; ++reg)
      for (int half = 0; half < 2; ++half) {
        int row, k;
        doc_a16(lane, reg, half, &row, &k);
        EXPECT_EQ(gl::mma16_a_row(reg, lane), row);
        EXPECT_EQ(gl::mma16_a_k(reg, half, lane), k);
      }
    for (int reg = 0; reg < 2; ++reg)
      for (int half = 0; half < 2; ++half) {
        int k, n;
        doc_b16(lane, reg, half, &k, &n);
        EXPECT_EQ(gl::mma16_b_k(reg, half, lane), k);
        EXPECT_EQ(gl::mma16_b_n(lane), n);
      }
    // C/D: d[0], d[1] = D[g][2t, 2t+1]; d[2], d[3] = D[g+8][2t, 2t+1].
    const int crow[4] = {g, g, g + 8, g + 8}, ccol[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int reg = 0; reg < 4; ++reg) {
      EXPECT_EQ(gl::mma_c_row(reg, lane), crow[reg]);
      EXPECT_EQ(gl::mma_c_col(reg, lane), ccol[reg]);
    }
    // TF32: a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]; b[0] = B[t][g], b[1] = B[t+4][g].
    const int arow[4] = {g, g + 8, g, g + 8}, ak[4] = {t, t, t + 4, t + 4};
    for (int reg = 0; reg < 4; ++reg) {
      EXPECT_EQ(gl::mma8_a_row(reg, lane), arow[reg]);
      EXPECT_EQ(gl::mma8_a_k(reg, lane), ak[reg]);
    }
    EXPECT_EQ(gl::mma8_b_k(0, lane), t);
    EXPECT_EQ(gl::mma8_b_k(1, lane), t + 4);
    EXPECT_EQ(gl::mma8_b_n(lane), g);
  }
  // Every element of the 16x8 accumulator is held exactly once.
  std::set<int> seen;
  for (int lane = 0; lane < 32; ++lane)
    for (int reg = 0; reg < 4; ++reg) seen.insert(gl::mma_c_row(reg, lane) * 8 + gl::mma_c_col(reg, lane));
  EXPECT_EQ(seen.size(), 128u);
}

// Simulates ldmatrix.x4 (plain or .trans) on a shared-memory image whose
// element at Tile::offset(mn, k) encodes (mn, k), and checks that the
// registers are the A fragment of the 16x16 block and, regrouped as the kernel
// does (x4_reg_for_b), the B fragments of its two 8-wide n-tiles.
template <class Tile>
void check_ldmatrix_fragments(int mn0, int k0) {
  const std::string what = std::string(Tile::kKContiguous ? "k-contiguous" : "mn-contiguous") + " pitch " +
                           std::to_string(Tile::kPitch) + " block (" + std::to_string(mn0) + ", " +
                           std::to_string(k0) + ")";
  std::vector<int> smem(Tile::kElems, -1);  // padding: -1
  const int kMN = Tile::kKContiguous ? Tile::kRows : Tile::kCols, kBK = Tile::kKContiguous ? Tile::kCols : Tile::kRows;
  for (int mn = 0; mn < kMN; ++mn)
    for (int k = 0; k < kBK; ++k) smem[Tile::offset(mn, k)] = mn * 1000 + k;
  int addr[32];
  for (int lane = 0; lane < 32; ++lane) {
    addr[lane] = Tile::ldmatrix_offset(mn0, k0, lane);
    ASSERT_EQ(addr[lane] % 8, 0) << what << ": ldmatrix rows must be 16-byte aligned";
    ASSERT_LE(addr[lane] + 8, Tile::kElems) << what;
  }
  // reg[lane][i][h]: the two 16-bit elements lane receives in register i.
  for (int lane = 0; lane < 32; ++lane) {
    int got[4][2];
    for (int i = 0; i < 4; ++i)
      for (int h = 0; h < 2; ++h) {
        const int c = 2 * (lane % 4) + h;  // column of the (possibly transposed) matrix
        if (Tile::kKContiguous) {
          got[i][h] = smem[addr[8 * i + lane / 4] + c];  // row lane/4 of matrix i
        } else {
          got[i][h] = smem[addr[8 * i + c] + lane / 4];  // transposed: row c, column lane/4
        }
      }
    for (int i = 0; i < 4; ++i)
      for (int h = 0; h < 2; ++h) {
        int row, k;
        doc_a16(lane, i, h, &row, &k);
        EXPECT_EQ(got[i][h], (mn0 + row) * 1000 + (k0 + k)) << what << " A fragment lane " << lane << " reg " << i;
      }
    for (int j = 0; j < 2; ++j)  // n-tile j takes b[r] = got[Tile::x4_reg_for_b(j, r)], as the kernel does
      for (int r = 0; r < 2; ++r)
        for (int h = 0; h < 2; ++h) {
          int k, n;
          doc_b16(lane, r, h, &k, &n);
          EXPECT_EQ(got[Tile::x4_reg_for_b(j, r)][h], (mn0 + 8 * j + n) * 1000 + (k0 + k))
              << what << " B fragment n-tile " << j << " lane " << lane << " reg " << r;
        }
  }
}

// Each 8-lane phase of an ldmatrix.x4 reads 8 rows of 16 bytes; they must sit
// in 8 different 16-byte bank groups (128 bytes = 32 banks).
template <class Tile>
void check_ldmatrix_banks(int mn0, int k0) {
  for (int i = 0; i < 4; ++i) {
    std::set<int> groups;
    for (int r = 0; r < 8; ++r) groups.insert((Tile::ldmatrix_offset(mn0, k0, 8 * i + r) * 2 / 16) % 8);
    EXPECT_EQ(groups.size(), 8u) << "pitch " << Tile::kPitch << " matrix " << i << " block (" << mn0 << ", " << k0
                                 << ") has a bank conflict";
  }
}

// TF32: each fragment register is one 32-bit LDS by the 32 lanes: 32 banks.
template <class Tile>
void check_tf32_banks(int mn0, int k0) {
  for (int reg = 0; reg < 4; ++reg) {
    std::set<int> banks;
    for (int lane = 0; lane < 32; ++lane)
      banks.insert(Tile::offset(mn0 + gl::mma8_a_row(reg, lane), k0 + gl::mma8_a_k(reg, lane)) % 32);
    EXPECT_EQ(banks.size(), 32u) << "TF32 A reg " << reg << " pitch " << Tile::kPitch;
  }
  for (int reg = 0; reg < 2; ++reg) {
    std::set<int> banks;
    for (int lane = 0; lane < 32; ++lane)
      banks.insert(Tile::offset(mn0 + gl::mma8_b_n(lane), k0 + gl::mma8_b_k(reg, lane)) % 32);
    EXPECT_EQ(banks.size(), 32u) << "TF32 B reg " << reg << " pitch " << Tile::kPitch;
  }
}

// The 16-byte chunks cover each stored element of the tile exactly once and
// never the padding, at the offsets the fragment reads use.
template <class Tile>
void check_chunks() {
  std::vector<int> hits(Tile::kElems, 0);
  for (int c = 0; c < Tile::kChunks; ++c) {
    const int r = Tile::chunk_row(c), col = Tile::chunk_col(c);
    ASSERT_LT(r, Tile::kRows);
    ASSERT_LE(col + Tile::kChunkElems, Tile::kCols);
    ASSERT_EQ((r * Tile::kPitch + col) * (16 / Tile::kChunkElems) % 16, 0) << "chunk " << c << " misaligned";
    for (int e = 0; e < Tile::kChunkElems; ++e) {
      ++hits[r * Tile::kPitch + col + e];
      // What the loader writes at stored (row, column) is what the fragment
      // reads back through offset(mn, k): (mn, k) = (row, column) when
      // k-contiguous, (column, row) when mn-contiguous.
      const int at = Tile::kKContiguous ? Tile::offset(r, col + e) : Tile::offset(col + e, r);
      EXPECT_EQ(at, r * Tile::kPitch + col + e);
    }
  }
  for (int r = 0; r < Tile::kRows; ++r)
    for (int col = 0; col < Tile::kPitch; ++col)
      EXPECT_EQ(hits[r * Tile::kPitch + col], col < Tile::kCols ? 1 : 0) << "row " << r << " col " << col;
}

// The tiles the kernel instantiates: 128 or 64 (mn) x BK (32 16-bit or 16 f32 elements).
using A16Big = gl::SmemTile<128, 32, 2, true>;
using T16Big = gl::SmemTile<128, 32, 2, false>;
using A16Small = gl::SmemTile<64, 32, 2, true>;
using T16Small = gl::SmemTile<64, 32, 2, false>;
using A32Big = gl::SmemTile<128, 16, 4, true>;
using T32Big = gl::SmemTile<128, 16, 4, false>;
using A32Small = gl::SmemTile<64, 16, 4, true>;
using T32Small = gl::SmemTile<64, 16, 4, false>;

TEST(CudaGemmLayout, LdmatrixAddressesGiveTheMmaFragments) {
  for (int mn0 : {0, 16, 48, 112})
    for (int k0 : {0, 16}) {
      check_ldmatrix_fragments<A16Big>(mn0, k0);
      check_ldmatrix_fragments<T16Big>(mn0, k0);
      if (mn0 < 64) {
        check_ldmatrix_fragments<A16Small>(mn0, k0);
        check_ldmatrix_fragments<T16Small>(mn0, k0);
      }
    }
}

TEST(CudaGemmLayout, SharedMemoryReadsAreBankConflictFree) {
  for (int mn0 : {0, 16, 48}) {
    for (int k0 : {0, 16}) {
      check_ldmatrix_banks<A16Big>(mn0, k0);
      check_ldmatrix_banks<T16Big>(mn0, k0);
      check_ldmatrix_banks<A16Small>(mn0, k0);
      check_ldmatrix_banks<T16Small>(mn0, k0);
    }
    for (int k0 : {0, 8}) {
      check_tf32_banks<A32Big>(mn0, k0);
      check_tf32_banks<T32Big>(mn0, k0);
      check_tf32_banks<A32Small>(mn0, k0);
      check_tf32_banks<T32Small>(mn0, k0);
    }
  }
}

TEST(CudaGemmLayout, ChunksCoverEachTileOnce) {
  check_chunks<A16Big>();
  check_chunks<T16Big>();
  check_chunks<A16Small>();
  check_chunks<T16Small>();
  check_chunks<A32Big>();
  check_chunks<T32Big>();
  check_chunks<A32Small>();
  check_chunks<T32Small>();
}

TEST(CudaGemmLayout, TileOrderVisitsEveryTileOnce) {
  for (auto [tm, tn] : std::vector<std::pair<int, int>>{{1, 1}, {1, 7}, {7, 1}, {3, 5}, {8, 8}, {9, 2}, {13, 6},
                                                        {17, 3}, {32, 32}, {100, 1}}) {
    std::vector<int> hits(tm * tn, 0);
    for (int b = 0; b < tm * tn; ++b) {
      const gl::TileCoord c = gl::tile_of_block(b, tm, tn);
      ASSERT_TRUE(c.m >= 0 && c.m < tm && c.n >= 0 && c.n < tn) << tm << "x" << tn << " block " << b;
      ++hits[c.m * tn + c.n];
    }
    for (int h : hits) EXPECT_EQ(h, 1) << tm << "x" << tn;
  }
}

// ==== host-only: argument checks ==============================================================

TEST(CudaGemm, BadArgumentsThrowBeforeAnyCudaCall) {
  // Fake (never dereferenced) pointers: every call below must throw before launching.
  alignas(16) static char buf[64];
  const void* a = buf;
  const void* b = buf;
  void* c = buf;
  const GemmEpilogue ep;
  const auto N = Trans::no, T = Trans::yes;
  const DataType bf = DataType::bf16;
  expect_invalid([&] { kc::gemm(N, N, -1, 4, 4, a, 4, b, 4, c, 4, ep, bf, nullptr); }, "gemm", "m");
  expect_invalid([&] { kc::gemm(N, N, 4, -2, 4, a, 4, b, 4, c, 4, ep, bf, nullptr); }, "gemm", "n");
  expect_invalid([&] { kc::gemm(N, N, 4, 4, -3, a, 4, b, 4, c, 4, ep, bf, nullptr); }, "gemm", "k");
  expect_invalid([&] { kc::gemm(N, N, (int64_t(1) << 30) + 1, 4, 4, a, 4, b, 4, c, 4, ep, bf, nullptr); }, "gemm",
                 "2^30");
  expect_invalid([&] { kc::gemm(N, N, 4, 4, 5, a, 4, b, 4, c, 4, ep, bf, nullptr); }, "gemm", "lda");
  expect_invalid([&] { kc::gemm(T, N, 6, 4, 4, a, 4, b, 4, c, 4, ep, bf, nullptr); }, "gemm", "lda");
  expect_invalid([&] { kc::gemm(N, N, 4, 5, 4, a, 4, b, 4, c, 5, ep, bf, nullptr); }, "gemm", "ldb");
  expect_invalid([&] { kc::gemm(N, T, 4, 4, 5, a, 5, b, 4, c, 4, ep, bf, nullptr); }, "gemm", "ldb");
  expect_invalid([&] { kc::gemm(N, N, 4, 5, 4, a, 4, b, 5, c, 4, ep, bf, nullptr); }, "gemm", "ldc");
  expect_invalid([&] { kc::gemm(N, N, 4, 4, 4, nullptr, 4, b, 4, c, 4, ep, bf, nullptr); }, "gemm", "a is null");
  expect_invalid([&] { kc::gemm(N, N, 4, 4, 4, a, 4, nullptr, 4, c, 4, ep, bf, nullptr); }, "gemm", "b is null");
  expect_invalid([&] { kc::gemm(N, N, 4, 4, 4, a, 4, b, 4, nullptr, 4, ep, bf, nullptr); }, "gemm", "c is null");
  expect_invalid([&] { kc::gemm(N, N, 4, 4, 4, a, 4, b, 4, c, 4, ep, static_cast<DataType>(7), nullptr); }, "gemm",
                 "dt");
  GemmEpilogue bad_act;
  bad_act.act = static_cast<GemmActivation>(42);
  expect_invalid([&] { kc::gemm(N, N, 4, 4, 4, a, 4, b, 4, c, 4, bad_act, bf, nullptr); }, "gemm", "ep.act");
  // m x n too large for the grid: 2^30 x 2^30 in 64x64 tiles is 2^48 tiles.
  const int64_t big = int64_t(1) << 30;
  expect_invalid([&] { kc::gemm(N, N, big, big, 1, a, 1, b, big, c, big, ep, bf, nullptr); }, "gemm", "tiles");
  // Leading dimensions whose extent overflows int64.
  expect_invalid([&] { kc::gemm(N, N, 1 << 20, 4, 4, a, int64_t(1) << 50, b, 4, c, 4, ep, bf, nullptr); }, "gemm",
                 "overflow");
  // Batched: negative batch or strides, overlapping C_i.
  expect_invalid([&] { kc::gemm_batched(N, N, 4, 4, 4, a, 4, 16, b, 4, 16, c, 4, 16, -1, ep, bf, nullptr); },
                 "gemm_batched", "batch");
  expect_invalid([&] { kc::gemm_batched(N, N, 4, 4, 4, a, 4, -16, b, 4, 16, c, 4, 16, 2, ep, bf, nullptr); },
                 "gemm_batched", "stride_a");
  expect_invalid([&] { kc::gemm_batched(N, N, 4, 4, 4, a, 4, 16, b, 4, 16, c, 4, 0, 2, ep, bf, nullptr); },
                 "gemm_batched", "stride_c");
  expect_invalid([&] { kc::gemm_batched(N, N, 4, 4, 4, a, 4, 16, b, 4, 16, c, 4, 15, 2, ep, bf, nullptr); },
                 "gemm_batched", "overlap");
  // Nothing to do is not an error, whatever the pointers: no launch, no CUDA call.
  EXPECT_NO_THROW(kc::gemm(N, N, 0, 4, 4, nullptr, 4, nullptr, 4, nullptr, 4, ep, bf, nullptr));
  EXPECT_NO_THROW(kc::gemm(N, N, 4, 0, 4, nullptr, 4, nullptr, 1, nullptr, 1, ep, bf, nullptr));
  EXPECT_NO_THROW(kc::gemm_batched(N, N, 4, 4, 4, nullptr, 4, 16, nullptr, 4, 16, nullptr, 4, 16, 0, ep, bf, nullptr));
}

// ==== GPU: against the CPU twin ================================================================

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16};
const Trans kTrans[] = {Trans::no, Trans::yes};

double tolerance(DataType t) { return t == DataType::bf16 ? 1e-2 : 2e-3; }

struct Case {
  Trans ta = Trans::no, tb = Trans::no;
  int64_t m = 1, n = 1, k = 1;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;       // leading dimension = the minimum + pad
  size_t shift_a = 0, shift_b = 0, shift_c = 0;  // elements the data starts into its allocation
  int64_t batch = 1;                             // > 1 or batched: gemm_batched
  bool batched = false;
  int64_t gap = 0;                               // extra elements between batch items
  bool broadcast_a = false, broadcast_b = false;  // stride 0
  float alpha = 1.f, beta = 0.f;
  bool bias = false, bias_row = false;
  GemmActivation act = GemmActivation::none;
};

const char* trans_name(Trans ta, Trans tb) {
  return ta == Trans::no ? (tb == Trans::no ? "NN" : "NT") : (tb == Trans::no ? "TN" : "TT");
}

std::string describe(const Case& c, DataType t) {
  return std::string(kc::dtype_name(t)) + " " + trans_name(c.ta, c.tb) + " " + std::to_string(c.m) + "x" +
         std::to_string(c.n) + "x" + std::to_string(c.k) + " batch=" + std::to_string(c.batch) +
         " pads=" + std::to_string(c.pad_a) + "," + std::to_string(c.pad_b) + "," + std::to_string(c.pad_c) +
         " shifts=" + std::to_string(c.shift_a) + "," + std::to_string(c.shift_b) + "," + std::to_string(c.shift_c) +
         " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) + " bias=" + std::to_string(c.bias) +
         std::to_string(c.bias_row) + " act=" + std::to_string(static_cast<int>(c.act));
}

// A stored operand: `batch` matrices of rows x cols with row stride ld and
// `stride` elements between them; padding NaN, data uniform in [-1, 1) rounded to t.
std::vector<float> make_operand(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t items, DataType t,
                                unsigned seed) {
  const int64_t size = std::max<int64_t>(1, (items - 1) * stride + rows * ld);
  std::vector<float> v = round_to(uniform_values(static_cast<size_t>(size), -1.f, 1.f, seed), t);
  std::vector<bool> used(static_cast<size_t>(size), false);
  for (int64_t i = 0; i < items; ++i)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) used[static_cast<size_t>(i * stride + r * ld + c)] = true;
  for (size_t i = 0; i < v.size(); ++i)
    if (!used[i]) v[i] = std::numeric_limits<float>::quiet_NaN();
  return v;
}

kcpu::UnaryParams unary_of(GemmActivation act) {
  kcpu::UnaryParams p;
  switch (act) {
    case GemmActivation::relu: p.op = kcpu::UnaryOp::relu; break;
    case GemmActivation::relu6: p.op = kcpu::UnaryOp::clip, p.alpha = 0.f, p.beta = 6.f; break;
    case GemmActivation::silu: p.op = kcpu::UnaryOp::silu; break;
    case GemmActivation::gelu_erf: p.op = kcpu::UnaryOp::gelu_erf; break;
    case GemmActivation::gelu_tanh: p.op = kcpu::UnaryOp::gelu_tanh; break;
    case GemmActivation::none: break;
  }
  return p;
}

void run_case(const Case& cs, DataType t) {
  const std::string what = describe(cs, t);
  const int64_t m = cs.m, n = cs.n, k = cs.k, batch = cs.batch;
  const int64_t rows_a = cs.ta == Trans::no ? m : k, cols_a = cs.ta == Trans::no ? k : m;
  const int64_t rows_b = cs.tb == Trans::no ? k : n, cols_b = cs.tb == Trans::no ? n : k;
  const int64_t lda = std::max<int64_t>(1, cols_a) + cs.pad_a, ldb = std::max<int64_t>(1, cols_b) + cs.pad_b;
  const int64_t ldc = std::max<int64_t>(1, n) + cs.pad_c;
  const int64_t stride_a = cs.broadcast_a ? 0 : rows_a * lda + cs.gap;
  const int64_t stride_b = cs.broadcast_b ? 0 : rows_b * ldb + cs.gap;
  const int64_t stride_c = m * ldc + cs.gap;
  const auto seed = static_cast<unsigned>(m * 7 + n * 13 + k * 17 + batch);
  const std::vector<float> a = make_operand(rows_a, cols_a, lda, stride_a, cs.broadcast_a ? 1 : batch, t, seed + 1);
  const std::vector<float> b = make_operand(rows_b, cols_b, ldb, stride_b, cs.broadcast_b ? 1 : batch, t, seed + 2);
  std::vector<float> c0 = make_operand(m, n, ldc, stride_c, batch, t, seed + 3);
  if (cs.beta == 0.f) std::fill(c0.begin(), c0.end(), std::numeric_limits<float>::quiet_NaN());
  const std::vector<float> bias = uniform_values(static_cast<size_t>(std::max<int64_t>(1, n)), -1.f, 1.f, seed + 4);
  const std::vector<float> bias_row = uniform_values(static_cast<size_t>(std::max<int64_t>(1, m)), -1.f, 1.f, seed + 5);

  // Reference: the product by the CPU twin, then the epilogue in f32 on the host.
  std::vector<float> want = c0;
  std::vector<float> prod(static_cast<size_t>(std::max<int64_t>(1, m * n)));
  for (int64_t i = 0; i < batch; ++i) {
    kcpu::sgemm(cs.ta, cs.tb, m, n, k, 1.f, a.data() + i * stride_a, lda, b.data() + i * stride_b, ldb, 0.f,
                prod.data(), std::max<int64_t>(1, n));
    for (int64_t r = 0; r < m; ++r) {
      float* out = want.data() + i * stride_c + r * ldc;
      for (int64_t j = 0; j < n; ++j) {
        float v = cs.alpha * prod[static_cast<size_t>(r * n + j)];
        if (cs.beta != 0.f) v += cs.beta * out[j];
        if (cs.bias) v += bias[static_cast<size_t>(j)];
        if (cs.bias_row) v += bias_row[static_cast<size_t>(r)];
        out[j] = v;
      }
      if (cs.act != GemmActivation::none) kcpu::unary_forward(unary_of(cs.act), n, out, out);
    }
  }

  ShiftedArray da(a, t, cs.shift_a), db(b, t, cs.shift_b), dc(c0, t, cs.shift_c);
  DeviceArray dbias(bias), dbias_row(bias_row);
  GemmEpilogue ep;
  ep.alpha = cs.alpha;
  ep.beta = cs.beta;
  ep.bias = cs.bias ? dbias.f32() : nullptr;
  ep.bias_row = cs.bias_row ? dbias_row.f32() : nullptr;
  ep.act = cs.act;
  if (cs.batched || batch > 1) {
    kc::gemm_batched(cs.ta, cs.tb, m, n, k, da.ptr(), lda, stride_a, db.ptr(), ldb, stride_b, dc.ptr(), ldc,
                     stride_c, batch, ep, t, nullptr);
  } else {
    kc::gemm(cs.ta, cs.tb, m, n, k, da.ptr(), lda, db.ptr(), ldb, dc.ptr(), ldc, ep, t, nullptr);
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
  // The whole C allocation: padding must still be NaN (never written).
  EXPECT_TRUE(close_to_twin(dc.download(), want, tolerance(t), what));
}

Case shape(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k) {
  Case c;
  c.ta = ta;
  c.tb = tb;
  c.m = m;
  c.n = n;
  c.k = k;
  return c;
}

// Every transpose combination and dtype on odd shapes: partial tiles in m, n
// and k, k smaller than one k-tile, one element. Which kernel runs (on an
// H100, 132 SMs): sizes not a multiple of 8 (16-bit) / 4 (f32) along an
// operand's contiguous dimension take the element-by-element loads (64x64
// tiles); multiples of 8 take 16-byte cp.async with 64x64 tiles below 132
// tiles of 128x128, and 128x128 tiles from there (1000x2056, 2056x1032).
TEST(CudaGemm, EveryTransposeAndDtypeOnOddShapes) {
  REQUIRE_GPU();
  const int64_t shapes[][3] = {// element-by-element loads
                               {1, 1, 1}, {7, 33, 65}, {1000, 1025, 17}, {64, 48, 1}, {130, 129, 70}, {33, 1, 200},
                               {1, 300, 45},
                               // 16-byte loads, 64x64 tiles
                               {16, 8, 16}, {136, 200, 72}, {300, 520, 200}, {8, 1032, 8},
                               // 16-byte loads, 128x128 tiles with partial edges in m, n and k
                               {1000, 2056, 72}, {2056, 1032, 136}};
  for (DataType t : kTypes)
    for (Trans ta : kTrans)
      for (Trans tb : kTrans)
        for (const auto& s : shapes) run_case(shape(ta, tb, s[0], s[1], s[2]), t);
}

// Linear layers: forward y = x W^T (NT), dx = dy W (NN), dW = dy^T x (TN).
// ViT-B/16 at batch 8 (M = 197 * 8 tokens, 768 <-> 3072) and ResNet-50's fc
// (2048 -> 1000, batch 64).
TEST(CudaGemm, LinearLayerShapes) {
  REQUIRE_GPU();
  const int64_t tokens = kEmulated ? 197 : 197 * 8;  // ViT-B/16 tokens of 8 images (1 on the emulator)
  struct Layer {
    int64_t in, out, rows;
  };
  const Layer layers[] = {{768, 768, tokens}, {768, 3072, tokens}, {3072, 768, tokens}, {2048, 1000, 64}};
  for (size_t li = 0; li < std::size(layers); ++li) {
    const Layer& l = layers[li];
    for (size_t ti = 0; ti < std::size(kTypes); ++ti) {
      const DataType t = kTypes[ti];
      if (t == DataType::f16 && l.in == 3072) continue;  // f16 on the other three; keeps the run short
      if (kEmulated && (l.in == 3072 || ti != li % std::size(kTypes))) continue;  // one dtype per layer there
      Case fwd = shape(Trans::no, Trans::yes, l.rows, l.out, l.in);  // x (rows x in) . W^T (W: out x in)
      fwd.bias = true;
      run_case(fwd, t);
      run_case(shape(Trans::no, Trans::no, l.rows, l.in, l.out), t);   // dx = dy (rows x out) . W (out x in)
      run_case(shape(Trans::yes, Trans::no, l.out, l.in, l.rows), t);  // dW = dy^T (out x rows) . x (rows x in)
    }
  }
}

// Each activation with both biases, alpha and beta, on the three kernels
// (element-wise loads: k = 45 is not a multiple of the chunk; 16-byte loads
// with 64x64 and with 128x128 tiles).
TEST(CudaGemm, EpilogueMatchesTwin) {
  REQUIRE_GPU();
  const GemmActivation acts[] = {GemmActivation::none, GemmActivation::relu, GemmActivation::relu6,
                                 GemmActivation::silu, GemmActivation::gelu_erf, GemmActivation::gelu_tanh};
  for (DataType t : kTypes)
    for (GemmActivation act : acts)
      for (const auto& s : {std::array<int64_t, 3>{70, 90, 45}, std::array<int64_t, 3>{520, 304, 96},
                            std::array<int64_t, 3>{1032, 2056, 40}}) {
        // The emulator takes the 128x128-tile shape with one activation (the epilogue code is shared).
        if (kEmulated && s[0] == 1032 && act != GemmActivation::relu6) continue;
        Case c = shape(Trans::no, Trans::yes, s[0], s[1], s[2]);
        c.act = act;
        c.bias = true;
        run_case(c, t);
        c.bias_row = true;
        c.alpha = 0.5f;
        c.beta = -0.75f;
        run_case(c, t);
        c.bias = false;
        c.ta = Trans::yes;  // row bias alone, TN
        run_case(c, t);
      }
}

// beta != 0 reads C (with pairs and element by element), and k == 0 is act(beta C + bias).
TEST(CudaGemm, BetaAndEmptyK) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        Case c = shape(ta, tb, 77, 131, 50);
        c.beta = 1.f;  // ldc = n = 131 (odd): C element by element
        run_case(c, t);
        c.alpha = 2.f;
        c.beta = 0.5f;
        c.pad_c = 3;  // ldc = 134 (even): C in pairs, the last odd column alone
        run_case(c, t);
        Case e = shape(ta, tb, 33, 65, 0);
        e.beta = 0.5f;
        e.bias = true;
        e.act = GemmActivation::relu;
        run_case(e, t);
        e.beta = 0.f;  // C = act(bias) alone
        run_case(e, t);
      }
}

// Strided batches: gaps between items, broadcast A or B (stride 0), shared
// biases, batch items on both tile configurations.
TEST(CudaGemm, BatchedMatchesTwin) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        Case c = shape(ta, tb, 45, 70, 33);
        c.batch = 5;
        c.gap = 8;
        c.bias = true;
        run_case(c, t);
        c.broadcast_b = true;
        c.gap = 3;  // odd gap: misaligned items, element-by-element loads
        run_case(c, t);
        c.broadcast_b = false;
        c.broadcast_a = true;
        c.beta = 0.25f;
        run_case(c, t);
        Case big = shape(ta, tb, 197, 197, 64);  // attention scores: batch x heads products
        big.batch = 12;
        big.alpha = 0.125f;
        run_case(big, t);
        Case vec = shape(ta, tb, 64, 200, 96);  // 16-byte loads: every extent, ld and stride in 16-byte multiples
        vec.batch = 5;
        vec.gap = 8;
        vec.bias = true;
        run_case(vec, t);
        Case wide = shape(ta, tb, 256, 512, 64);  // 8 tiles x 20 items: 128x128 tiles
        wide.batch = 20;
        run_case(wide, t);
      }
  Case one = shape(Trans::no, Trans::yes, 100, 100, 100);
  one.batch = 1;
  one.batched = true;
  run_case(one, DataType::bf16);
}

// More batch items than grid.y allows (65535): blocks loop over the batch
// (z += gridDim.y), refilling shared memory after the previous item's
// epilogue. Element-wise loads (odd sizes) and 16-byte loads (8 x 8 x 8).
TEST(CudaGemm, BatchBeyondGridY) {
  REQUIRE_GPU();
  SKIP_ON_EMULATOR("135k blocks");
  Case odd = shape(Trans::no, Trans::no, 3, 5, 7);
  odd.batch = 70001;
  odd.bias = true;
  run_case(odd, DataType::f32);
  Case vec = shape(Trans::yes, Trans::yes, 8, 8, 8);
  vec.batch = 65536 + 7;
  run_case(vec, DataType::bf16);
}

// Pointers one element off 16 bytes and odd leading dimensions: the
// element-by-element loads and stores, on every transpose combination.
TEST(CudaGemm, MisalignedPointersAndOddLeadingDimensions) {
  REQUIRE_GPU();
  for (DataType t : kTypes)
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        Case c = shape(ta, tb, 150, 140, 130);
        c.shift_a = 1;
        run_case(c, t);
        c.shift_a = 0;
        c.shift_b = 1;
        run_case(c, t);
        c.shift_b = 0;
        c.shift_c = 1;
        c.beta = 0.5f;
        run_case(c, t);
        Case d = shape(ta, tb, 150, 140, 130);
        d.pad_a = 1;
        d.pad_b = 3;
        d.pad_c = 1;
        d.bias = true;
        run_case(d, t);
        Case e = shape(ta, tb, 152, 144, 136);  // aligned padding: the 16-byte path with padding present
        e.pad_a = 8;
        e.pad_b = 8;
        e.pad_c = 2;
        e.bias = true;
        run_case(e, t);
      }
}

// Long k with small m, n (the pipeline over many k-tiles, 64x64 tiles; a
// partial last k-tile with 16-byte loads) and 2048 x 2048 x 512 (128x128 tiles).
TEST(CudaGemm, LongKAndSquare) {
  REQUIRE_GPU();
  for (DataType t : {DataType::bf16, DataType::f32}) {
    run_case(shape(Trans::no, Trans::yes, 64, 64, 4096), t);
    run_case(shape(Trans::yes, Trans::no, 96, 80, 2049), t);
    run_case(shape(Trans::no, Trans::no, 2048, 2048, 512), t);
  }
}

}  // namespace
}  // namespace graft::testing
