// Softmax, layer norm and NHWC batch norm (training forward) on the GPU, with
// cuDNN's softmax (ACCURATE, MODE_INSTANCE) and batch norm (SPATIAL_PERSISTENT,
// NHWC) as baselines where cuDNN is found. Each kernel's output is checked once
// on random data before it is timed. Bytes: each input read once and each
// output written once (the minimum any implementation must move).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bench/cuda/harness.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/random.h"
#include "kernels/cuda/softmax.h"

#ifdef GRAFT_HAVE_CUDNN
#include <cudnn.h>
#endif

namespace graft::bench {
namespace {

namespace kc = kernels::cuda;
using kc::DataType;

__global__ void to_bf16(const float* in, __nv_bfloat16* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}

// n random values uniform in [lo, hi) of dtype t at p (never constant data: it hides indexing errors).
void fill_random(void* p, int64_t n, DataType t, float lo, float hi, uint64_t seed) {
  if (t == DataType::f32) {
    kc::fill_uniform(static_cast<float*>(p), n, lo, hi, {seed, 0}, nullptr);
  } else {
    DeviceBuffer tmp(static_cast<size_t>(n) * 4);
    kc::fill_uniform(tmp.as<float>(), n, lo, hi, {seed, 0}, nullptr);
    to_bf16<<<2048, 256>>>(tmp.as<float>(), static_cast<__nv_bfloat16*>(p), n);
    BENCH_CUDA_CHECK(cudaGetLastError());
  }
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
}

// Elements [first, first + count) with a stride, converted to float on the host.
std::vector<float> fetch(const void* p, DataType t, int64_t first, int64_t count, int64_t stride = 1) {
  const size_t es = kc::dtype_size(t);
  std::vector<uint16_t> h16(static_cast<size_t>(count));
  std::vector<float> out(static_cast<size_t>(count));
  void* dst = t == DataType::f32 ? static_cast<void*>(out.data()) : static_cast<void*>(h16.data());
  BENCH_CUDA_CHECK(cudaMemcpy2D(dst, es, static_cast<const char*>(p) + first * es, stride * es, es, count,
                                cudaMemcpyDeviceToHost));
  if (t != DataType::f32)
    for (size_t i = 0; i < out.size(); ++i) {
      const uint32_t bits = uint32_t(h16[i]) << 16;  // bf16 -> f32
      std::memcpy(&out[i], &bits, 4);
    }
  return out;
}

double tol_for(DataType t) { return t == DataType::f32 ? 1e-4 : 3e-2; }

// ---- softmax ------------------------------------------------------------------------------

void softmax_fwd(benchmark::State& state, DataType t, int64_t rows, int64_t len) {
  const size_t bytes = static_cast<size_t>(rows * len) * kc::dtype_size(t);
  DeviceBuffer x(bytes), y(bytes);
  fill_random(x.p, rows * len, t, -4.0f, 4.0f, 1);
  const kc::SoftmaxParams p{rows, len, 1};
  kc::softmax_forward(x.p, y.p, p, t, nullptr);
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  double s = 0;
  for (float v : fetch(y.p, t, (rows - 1) * len, len)) s += v;
  if (!(std::fabs(s - 1.0) < tol_for(t))) return state.SkipWithError("softmax_forward: last row does not sum to 1");
  run_timed(state, [&] { kc::softmax_forward(x.p, y.p, p, t, nullptr); });
  set_bytes(state, 2.0 * static_cast<double>(bytes));
}

// ---- layer norm (ViT-B: 256 images x 197 tokens x 768) -----------------------------------

void layer_norm_fwd(benchmark::State& state, DataType t, int64_t rows, int64_t d) {
  const size_t bytes = static_cast<size_t>(rows * d) * kc::dtype_size(t);
  DeviceBuffer x(bytes), y(bytes), w(d * 4), b(d * 4), mean(rows * 4), rstd(rows * 4);
  fill_random(x.p, rows * d, t, -1.0f, 3.0f, 2);
  fill_random(w.p, d, DataType::f32, 0.5f, 1.5f, 3);
  fill_random(b.p, d, DataType::f32, -0.5f, 0.5f, 4);
  auto launch = [&] {
    kc::layer_norm_forward(x.p, w.as<float>(), b.as<float>(), y.p, mean.as<float>(), rstd.as<float>(), rows, d, 1e-5f,
                           t, nullptr);
  };
  launch();
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> xr = fetch(x.p, t, 0, d), m = fetch(mean.p, DataType::f32, 0, 1);
  double hm = 0;
  for (float v : xr) hm += v;
  hm /= double(d);
  if (!(std::fabs(hm - m[0]) < 1e-3)) return state.SkipWithError("layer_norm_forward: row 0 mean differs from host");
  run_timed(state, launch);
  set_bytes(state, 2.0 * static_cast<double>(bytes) + 8.0 * double(d) + 8.0 * double(rows));
}

// ---- batch norm training forward, NHWC ----------------------------------------------------

struct BnBuffers {
  int64_t rows, c;
  DeviceBuffer x, y, w, b, mean, var, rstd, rmean, rvar;
  BnBuffers(DataType t, int64_t rows_, int64_t c_)
      : rows(rows_), c(c_), x(rows_ * c_ * kc::dtype_size(t)), y(rows_ * c_ * kc::dtype_size(t)), w(c_ * 4),
        b(c_ * 4), mean(c_ * 4), var(c_ * 4), rstd(c_ * 4), rmean(c_ * 4), rvar(c_ * 4) {
    fill_random(x.p, rows * c, t, -1.0f, 3.0f, 5);
    fill_random(w.p, c, DataType::f32, 0.5f, 1.5f, 6);
    fill_random(b.p, c, DataType::f32, -0.5f, 0.5f, 7);
    fill_random(rmean.p, c, DataType::f32, -0.1f, 0.1f, 8);
    fill_random(rvar.p, c, DataType::f32, 0.9f, 1.1f, 9);
  }
  double bytes(DataType t) const { return 2.0 * double(rows * c) * double(kc::dtype_size(t)) + 7.0 * 4.0 * double(c); }
};

void batch_norm_train_fwd(benchmark::State& state, DataType t, int64_t rows, int64_t c) {
  BnBuffers k(t, rows, c);
  auto launch = [&] {
    kc::batch_norm_forward_train(k.x.p, k.w.as<float>(), k.b.as<float>(), k.y.p, k.mean.as<float>(), k.var.as<float>(),
                                 k.rstd.as<float>(), k.rmean.as<float>(), k.rvar.as<float>(), 0.1f, rows, c, 1e-5f, t,
                                 nullptr);
  };
  launch();
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> ch0 = fetch(k.x.p, t, 0, rows, c), m = fetch(k.mean.p, DataType::f32, 0, 1);
  double hm = 0;
  for (float v : ch0) hm += v;
  hm /= double(rows);
  if (!(std::fabs(hm - m[0]) < 1e-3)) return state.SkipWithError("batch_norm_forward_train: channel 0 mean differs");
  run_timed(state, launch);
  set_bytes(state, k.bytes(t));
}

#ifdef GRAFT_HAVE_CUDNN
#define BENCH_CUDNN(call, state)                                                   \
  do {                                                                             \
    const cudnnStatus_t s_ = (call);                                               \
    if (s_ != CUDNN_STATUS_SUCCESS) {                                              \
      (state).SkipWithError((std::string(#call) + ": " + cudnnGetErrorString(s_)).c_str()); \
      return;                                                                      \
    }                                                                              \
  } while (0)

cudnnDataType_t cudnn_type(DataType t) { return t == DataType::f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16; }

struct Cudnn {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t a = nullptr, b = nullptr;
  Cudnn() {
    cudnnCreate(&h);
    cudnnCreateTensorDescriptor(&a);
    cudnnCreateTensorDescriptor(&b);
  }
  ~Cudnn() {
    cudnnDestroyTensorDescriptor(a);
    cudnnDestroyTensorDescriptor(b);
    cudnnDestroy(h);
  }
};

void softmax_fwd_cudnn(benchmark::State& state, DataType t, int64_t rows, int64_t len) {
  const size_t bytes = static_cast<size_t>(rows * len) * kc::dtype_size(t);
  DeviceBuffer x(bytes), y(bytes);
  fill_random(x.p, rows * len, t, -4.0f, 4.0f, 1);
  Cudnn dnn;
  // (rows, len, 1, 1): MODE_INSTANCE normalises over C*H*W per row.
  BENCH_CUDNN(cudnnSetTensor4dDescriptor(dnn.a, CUDNN_TENSOR_NCHW, cudnn_type(t), int(rows), int(len), 1, 1), state);
  const float one = 1.0f, zero = 0.0f;
  auto launch = [&] {
    return cudnnSoftmaxForward(dnn.h, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_INSTANCE, &one, dnn.a, x.p, &zero,
                               dnn.a, y.p);
  };
  BENCH_CUDNN(launch(), state);
  run_timed(state, [&] { launch(); });
  set_bytes(state, 2.0 * static_cast<double>(bytes));
}

void batch_norm_train_fwd_cudnn(benchmark::State& state, DataType t, int64_t n, int64_t h, int64_t w, int64_t c) {
  BnBuffers k(t, n * h * w, c);
  Cudnn dnn;
  BENCH_CUDNN(cudnnSetTensor4dDescriptor(dnn.a, CUDNN_TENSOR_NHWC, cudnn_type(t), int(n), int(c), int(h), int(w)),
              state);
  BENCH_CUDNN(cudnnDeriveBNTensorDescriptor(dnn.b, dnn.a, CUDNN_BATCHNORM_SPATIAL_PERSISTENT), state);
  const float one = 1.0f, zero = 0.0f;
  auto launch = [&] {
    return cudnnBatchNormalizationForwardTraining(dnn.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, &one, &zero, dnn.a, k.x.p,
                                                  dnn.a, k.y.p, dnn.b, k.w.p, k.b.p, 0.1, k.rmean.p, k.rvar.p, 1e-5,
                                                  k.mean.p, k.rstd.p);
  };
  BENCH_CUDNN(launch(), state);
  run_timed(state, [&] { launch(); });
  set_bytes(state, k.bytes(t));
}
#endif

std::string dname(DataType t) { return kc::dtype_name(t); }

const int kRegistered = [] {
  const DataType types[] = {DataType::f32, DataType::bf16};
  for (DataType t : types) {
    for (int64_t len : {128, 256, 512, 1024, 4096}) {
      const std::string name = "softmax_fwd/" + dname(t) + "/rows=4096x" + std::to_string(len);
      benchmark::RegisterBenchmark(name.c_str(), softmax_fwd, t, int64_t(4096), len)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
#ifdef GRAFT_HAVE_CUDNN
      benchmark::RegisterBenchmark((name + "@cudnn").c_str(), softmax_fwd_cudnn, t, int64_t(4096), len)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
#endif
    }
  }
  for (DataType t : types)
    benchmark::RegisterBenchmark(("layer_norm_fwd/" + dname(t) + "/256x197x768").c_str(), layer_norm_fwd, t,
                                 int64_t(256 * 197), int64_t(768))
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  for (DataType t : types) {
    const std::string name = "batch_norm_train_fwd/" + dname(t) + "/nhwc=64x56x56x256";
    benchmark::RegisterBenchmark(name.c_str(), batch_norm_train_fwd, t, int64_t(64 * 56 * 56), int64_t(256))
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
#ifdef GRAFT_HAVE_CUDNN
    benchmark::RegisterBenchmark((name + "@cudnn").c_str(), batch_norm_train_fwd_cudnn, t, int64_t(64), int64_t(56),
                                 int64_t(56), int64_t(256))
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
#endif
  }
  return 0;
}();

}  // namespace
}  // namespace graft::bench
