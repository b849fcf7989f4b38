// The ceiling compute-bound kernels are judged against: a large bf16 matrix
// product through cuBLAS (f32 accumulation, tensor cores), measured in the
// same run. tools/gpu/results.py takes the best "gemm_ceiling/bf16/..." as
// bf16_gemm_TFLOPs. Built only where CMake finds cuBLAS (GRAFT_HAVE_CUBLAS).
#ifdef GRAFT_HAVE_CUBLAS
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include "bench/cuda/harness.h"

namespace graft::bench {
namespace {

#define BENCH_CUBLAS_CHECK(call)                                                              \
  do {                                                                                        \
    cublasStatus_t s_ = (call);                                                               \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                        \
      std::fprintf(stderr, "cuBLAS error %d in %s at %s:%d\n", int(s_), #call, __FILE__, __LINE__); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

// Values in [-1, 1) from a hash of the index: random-looking data (a product
// of zeros or of one repeated value runs faster than real data would).
__global__ void fill_hash_bf16(__nv_bfloat16* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    p[i] = __float2bfloat16(static_cast<float>(h >> 8) * (2.f / 16777216.f) - 1.f);
  }
}

void gemm_ceiling_bf16(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int64_t elems = int64_t(n) * n;
  DeviceBuffer a(elems * 2), b(elems * 2), c(elems * 2);
  fill_hash_bf16<<<1024, 256>>>(a.as<__nv_bfloat16>(), elems, 1u);
  fill_hash_bf16<<<1024, 256>>>(b.as<__nv_bfloat16>(), elems, 2u);
  BENCH_CUDA_CHECK(cudaGetLastError());
  cublasHandle_t h;
  BENCH_CUBLAS_CHECK(cublasCreate(&h));
  const float alpha = 1.f, beta = 0.f;
  run_timed(state, [&] {
    BENCH_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.p, CUDA_R_16BF, n, b.p,
                                    CUDA_R_16BF, n, &beta, c.p, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
  });
  cublasDestroy(h);
  set_flops(state, 2.0 * double(n) * n * n);
}
BENCHMARK(gemm_ceiling_bf16)->Name("gemm_ceiling/bf16/8192x8192x8192")->Arg(8192)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace graft::bench
#endif  // GRAFT_HAVE_CUBLAS
