// The tensor-core GEMM (kernels/cuda/gemm.h) against cuBLASLt on the same
// layouts: 4096^3 in bf16 (NN, NT, TN), f16 and f32 (TF32: cuBLASLt with
// CUBLAS_COMPUTE_32F_FAST_TF32), and the linear-layer shapes of ViT-B/16
// (batch 8: 1576 tokens, 768 <-> 3072) and ResNet-50's fc (batch 64, 2048 ->
// 1000), forward (NT), dx (NN) and dW (TN). Names "gemm/<dtype>/<NN|NT|TN>/MxNxK",
// the baseline "...@cublaslt" (heuristic's first algorithm, 32 MB workspace).
// FLOPs 2 M N K. Ours is checked once before timing: a few output elements
// against float64 dot products of the same inputs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "bench/cuda/harness.h"
#include "kernels/cuda/gemm.h"

#ifdef GRAFT_HAVE_CUBLASLT
#include <cublasLt.h>
#endif

namespace graft::bench {
namespace {

namespace kc = kernels::cuda;
using kc::DataType;
using kc::Trans;

// Values in [-1, 1) from a hash of the index, in dtype t (random-looking: zeros
// or constants would run faster than real data and hide indexing errors).
__global__ void fill_hash(void* p, int64_t n, int dtype, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    const float v = static_cast<float>(h >> 8) * (2.f / 16777216.f) - 1.f;
    if (dtype == static_cast<int>(DataType::f32)) static_cast<float*>(p)[i] = v;
    else if (dtype == static_cast<int>(DataType::f16)) static_cast<__half*>(p)[i] = __float2half_rn(v);
    else static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  }
}

struct Problem {
  DataType dt;
  Trans ta, tb;
  int64_t m, n, k;
  int64_t lda() const { return ta == Trans::no ? k : m; }
  int64_t ldb() const { return tb == Trans::no ? n : k; }
  int64_t ldc() const { return n; }
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
};

struct Operands {
  DeviceBuffer a, b, c;
  explicit Operands(const Problem& p)
      : a(size_t(p.m * p.k) * kc::dtype_size(p.dt)),
        b(size_t(p.k * p.n) * kc::dtype_size(p.dt)),
        c(size_t(p.m * p.n) * kc::dtype_size(p.dt)) {
    fill_hash<<<1024, 256>>>(a.p, p.m * p.k, static_cast<int>(p.dt), 1u);
    fill_hash<<<1024, 256>>>(b.p, p.k * p.n, static_cast<int>(p.dt), 2u);
    BENCH_CUDA_CHECK(cudaGetLastError());
    BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  }
};

float host_value(const void* base, DataType t, int64_t i) {
  if (t == DataType::f32) {
    float v;
    BENCH_CUDA_CHECK(cudaMemcpy(&v, static_cast<const float*>(base) + i, 4, cudaMemcpyDeviceToHost));
    return v;
  }
  uint16_t bits;
  BENCH_CUDA_CHECK(cudaMemcpy(&bits, static_cast<const uint16_t*>(base) + i, 2, cudaMemcpyDeviceToHost));
  if (t == DataType::bf16) {
    const uint32_t w = uint32_t(bits) << 16;
    float v;
    std::memcpy(&v, &w, 4);
    return v;
  }
  __half h;
  std::memcpy(static_cast<void*>(&h), &bits, 2);
  return __half2float(h);
}

// Largest |C - reference| over a few elements, relative to the largest |reference|.
double sampled_error(const Problem& p, const Operands& o) {
  // Row i of op(A) and column j of op(B), fetched as strided copies.
  const size_t es = kc::dtype_size(p.dt);
  auto fetch = [&](const void* base, int64_t first, int64_t stride) {
    std::vector<uint8_t> raw(size_t(p.k) * es);
    BENCH_CUDA_CHECK(cudaMemcpy2D(raw.data(), es, static_cast<const char*>(base) + first * int64_t(es),
                                  size_t(stride) * es, es, size_t(p.k), cudaMemcpyDeviceToHost));
    std::vector<double> v(size_t(p.k));
    for (size_t i = 0; i < v.size(); ++i) {
      float f;
      if (p.dt == DataType::f32) {
        std::memcpy(&f, &raw[i * 4], 4);
      } else {
        uint16_t bits;
        std::memcpy(&bits, &raw[i * 2], 2);
        if (p.dt == DataType::bf16) {
          const uint32_t w = uint32_t(bits) << 16;
          std::memcpy(&f, &w, 4);
        } else {
          __half h;
          std::memcpy(static_cast<void*>(&h), &bits, 2);
          f = __half2float(h);
        }
      }
      v[i] = f;
    }
    return v;
  };
  double worst = 0, scale = 1e-6;
  const int64_t rows[] = {0, p.m / 3, p.m - 1}, cols[] = {0, p.n / 2 + 1 < p.n ? p.n / 2 + 1 : 0, p.n - 1};
  // op(A)[i][kk]: A[i * lda + kk] (N) or A[kk * lda + i] (T);
  // op(B)[kk][j]: B[kk * ldb + j] (N) or B[j * ldb + kk] (T).
  std::vector<std::vector<double>> a_rows, b_cols;
  for (int64_t i : rows) a_rows.push_back(p.ta == Trans::no ? fetch(o.a.p, i * p.lda(), 1) : fetch(o.a.p, i, p.lda()));
  for (int64_t j : cols) b_cols.push_back(p.tb == Trans::no ? fetch(o.b.p, j, p.ldb()) : fetch(o.b.p, j * p.ldb(), 1));
  for (size_t ri = 0; ri < 3; ++ri)
    for (size_t ci = 0; ci < 3; ++ci) {
      double ref = 0;
      for (size_t kk = 0; kk < size_t(p.k); ++kk) ref += a_rows[ri][kk] * b_cols[ci][kk];
      const double got = host_value(o.c.p, p.dt, rows[ri] * p.ldc() + cols[ci]);
      if (!std::isfinite(got)) return INFINITY;
      worst = std::max(worst, std::fabs(got - ref));
      scale = std::max(scale, std::fabs(ref));
    }
  return worst / scale;
}

std::string name(const Problem& p) {
  const char* tr = p.ta == Trans::no ? (p.tb == Trans::no ? "NN" : "NT") : (p.tb == Trans::no ? "TN" : "TT");
  return std::string("gemm/") + kc::dtype_name(p.dt) + "/" + tr + "/" + std::to_string(p.m) + "x" +
         std::to_string(p.n) + "x" + std::to_string(p.k);
}

void gemm_ours(benchmark::State& state, Problem p) {
  Operands o(p);
  const kc::GemmEpilogue ep;
  auto launch = [&] {
    kc::gemm(p.ta, p.tb, p.m, p.n, p.k, o.a.p, p.lda(), o.b.p, p.ldb(), o.c.p, p.ldc(), ep, p.dt, nullptr);
  };
  static std::string message;  // SkipWithError may keep the pointer
  try {
    launch();
  } catch (const std::exception& e) {
    message = e.what();
    return state.SkipWithError(message.c_str());
  }
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  // TF32 and 16-bit outputs: a few 1e-3 at most; 2e-2 leaves room for bf16 output rounding.
  const double err = sampled_error(p, o);
  state.counters["max_rel_err"] = err;
  if (!(err < 2e-2)) {
    message = "wrong result: relative error " + std::to_string(err);
    return state.SkipWithError(message.c_str());
  }
  run_timed(state, launch);
  set_flops(state, p.flops());
}

#ifdef GRAFT_HAVE_CUBLASLT
#define BENCH_LT_CHECK(call)                                                                    \
  do {                                                                                          \
    cublasStatus_t s_ = (call);                                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::fprintf(stderr, "cuBLASLt error %d in %s at %s:%d\n", int(s_), #call, __FILE__, __LINE__); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

// Row-major C (m x n) = op(A) op(B) is column-major C^T (n x m) = op(B)^T op(A)^T:
// cuBLASLt's first operand is our B (stored column-major as cols_b x rows_b with
// ld = ldb), its second our A, and its transposes are ours, swapped.
void gemm_cublaslt(benchmark::State& state, Problem p) {
  Operands o(p);
  static cublasLtHandle_t handle = [] {
    cublasLtHandle_t h;
    BENCH_LT_CHECK(cublasLtCreate(&h));
    return h;
  }();
  const size_t ws_bytes = size_t(32) << 20;
  DeviceBuffer ws(ws_bytes);
  const cudaDataType_t ty = p.dt == DataType::bf16 ? CUDA_R_16BF : (p.dt == DataType::f16 ? CUDA_R_16F : CUDA_R_32F);
  const cublasComputeType_t ct = p.dt == DataType::f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  cublasLtMatmulDesc_t desc;
  BENCH_LT_CHECK(cublasLtMatmulDescCreate(&desc, ct, CUDA_R_32F));
  const cublasOperation_t op_first = p.tb == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = p.ta == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  BENCH_LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
  BENCH_LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
  const int64_t rows_a = p.ta == Trans::no ? p.m : p.k, cols_a = p.ta == Trans::no ? p.k : p.m;
  const int64_t rows_b = p.tb == Trans::no ? p.k : p.n, cols_b = p.tb == Trans::no ? p.n : p.k;
  cublasLtMatrixLayout_t la, lb, lc;
  BENCH_LT_CHECK(cublasLtMatrixLayoutCreate(&la, ty, uint64_t(cols_b), uint64_t(rows_b), p.ldb()));
  BENCH_LT_CHECK(cublasLtMatrixLayoutCreate(&lb, ty, uint64_t(cols_a), uint64_t(rows_a), p.lda()));
  BENCH_LT_CHECK(cublasLtMatrixLayoutCreate(&lc, ty, uint64_t(p.n), uint64_t(p.m), p.ldc()));
  cublasLtMatmulPreference_t pref;
  BENCH_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  BENCH_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                      sizeof(ws_bytes)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  BENCH_LT_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, lc, pref, 1, &result, &found));
  if (found == 0) {
    state.SkipWithError("cuBLASLt: no algorithm for this problem");
  } else {
    const float alpha = 1.f, beta = 0.f;
    run_timed(state, [&] {
      BENCH_LT_CHECK(cublasLtMatmul(handle, desc, &alpha, o.b.p, la, o.a.p, lb, &beta, o.c.p, lc, o.c.p, lc,
                                    &result.algo, ws.p, ws_bytes, nullptr));
    });
    state.counters["max_rel_err"] = sampled_error(p, o);  // the layout mapping above, checked the same way
    set_flops(state, p.flops());
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(desc);
}
#endif  // GRAFT_HAVE_CUBLASLT

std::vector<Problem> problems() {
  const Trans N = Trans::no, T = Trans::yes;
  const int64_t tokens = 197 * 8;
  return {
      {DataType::bf16, N, T, 4096, 4096, 4096},
      {DataType::bf16, N, N, 4096, 4096, 4096},
      {DataType::bf16, T, N, 4096, 4096, 4096},
      {DataType::f16, N, T, 4096, 4096, 4096},
      {DataType::f32, N, T, 4096, 4096, 4096},
      // ViT-B/16 linear layers (qkv/proj 768 -> 768, fc1 768 -> 3072, fc2 3072 -> 768).
      {DataType::bf16, N, T, tokens, 768, 768},
      {DataType::bf16, N, T, tokens, 3072, 768},
      {DataType::bf16, N, T, tokens, 768, 3072},
      {DataType::bf16, N, N, tokens, 768, 3072},  // fc1 dx = dy W
      {DataType::bf16, T, N, 3072, 768, tokens},  // fc1 dW = dy^T x
      // ResNet-50 fc, batch 64.
      {DataType::bf16, N, T, 64, 1000, 2048},
      {DataType::bf16, N, N, 64, 2048, 1000},
      {DataType::bf16, T, N, 1000, 2048, 64},
  };
}

const bool registered = [] {
  for (const Problem& p : problems()) {
    benchmark::RegisterBenchmark(name(p).c_str(), [p](benchmark::State& s) { gemm_ours(s, p); })
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
#ifdef GRAFT_HAVE_CUBLASLT
    benchmark::RegisterBenchmark((name(p) + "@cublaslt").c_str(), [p](benchmark::State& s) { gemm_cublaslt(s, p); })
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
#endif
  }
  return true;
}();

}  // namespace
}  // namespace graft::bench
