// NHWC pooling (kernels/cuda/pool.h) against cuDNN's cudnnPoolingForward on
// NHWC descriptors, and the fused multi-tensor AdamW (kernels/cuda/optim.h)
// over the ResNet-50 parameter list in one launch. Every benchmark checks its
// kernel once before timing: pooling against a host computation on sampled
// outputs (and, with cuDNN, cuDNN's full output against ours); AdamW against
// the update formula on sampled elements after one step from known values.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/harness.h"
#include "bench/cuda/inputs.cuh"
#include "kernels/cuda/optim.h"
#include "kernels/cuda/pool.h"

#ifdef GRAFT_HAVE_CUDNN
#include <cudnn.h>
#endif

namespace graft::bench {
namespace {

using kernels::cuda::DataType;
using kernels::cuda::Pool2dParams;

std::vector<float> download(const void* p, int64_t n, DataType dt) {
  std::vector<float> out(static_cast<size_t>(n));
  if (dt == DataType::f32) {
    BENCH_CUDA_CHECK(cudaMemcpy(out.data(), p, n * 4, cudaMemcpyDeviceToHost));
  } else {
    std::vector<__nv_bfloat16> b(static_cast<size_t>(n));
    BENCH_CUDA_CHECK(cudaMemcpy(b.data(), p, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < b.size(); ++i) out[i] = __bfloat162float(b[i]);
  }
  return out;
}

const char* dname(DataType dt) { return kernels::cuda::dtype_name(dt); }

// ---- pooling ----------------------------------------------------------------------------------

enum class Pool { max, avg, global };

struct PoolShape {
  int64_t n, h, w, c, k, s, pad;
};
const PoolShape kStem{64, 112, 112, 64, 3, 2, 1};  // ResNet stem max pool input
const PoolShape kHead{256, 7, 7, 2048, 7, 1, 0};   // ResNet-50 global average pool input

Pool2dParams params_of(const PoolShape& s) {
  Pool2dParams p;
  p.n = s.n, p.h = s.h, p.w = s.w, p.c = s.c;
  p.kernel_h = p.kernel_w = s.k;
  p.stride_h = p.stride_w = s.s;
  p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = s.pad;
  p.out_h = kernels::cuda::pool_output_size(s.h, s.k, s.s, s.pad, s.pad, 1, false);
  p.out_w = kernels::cuda::pool_output_size(s.w, s.k, s.s, s.pad, s.pad, 1, false);
  return p;  // count_include_pad false (cuDNN's EXCLUDE_PADDING)
}

std::string pool_name(const char* kernel, DataType dt, const PoolShape& s) {
  return std::string(kernel) + "/" + dname(dt) + "/" + std::to_string(s.n) + "x" + std::to_string(s.h) + "x" +
         std::to_string(s.w) + "x" + std::to_string(s.c) + ",k" + std::to_string(s.k) + "s" + std::to_string(s.s) +
         "p" + std::to_string(s.pad);
}

void run_ours(Pool kind, const void* x, void* y, int32_t* argmax, DataType dt, const Pool2dParams& p) {
  if (kind == Pool::max) kernels::cuda::max_pool2d_forward(x, y, argmax, dt, p, nullptr);
  else if (kind == Pool::avg) kernels::cuda::avg_pool2d_forward(x, y, dt, p, nullptr);
  else kernels::cuda::global_avg_pool2d_forward(x, y, dt, p.n, p.h * p.w, p.c, nullptr);
}

// Sampled outputs of ours against the host's computation of the same window.
bool check_pool_samples(Pool kind, const std::vector<float>& y, DataType dt, const Pool2dParams& p, uint32_t seed,
                        std::string* why) {
  const int64_t ny = static_cast<int64_t>(y.size());
  for (int64_t k = 0; k < 2000; ++k) {
    const int64_t o = (k * 7919 * 104729) % ny;
    const int64_t c = o % p.c, ow = (o / p.c) % p.out_w, oh = (o / p.c / p.out_w) % p.out_h,
                  n = o / p.c / p.out_w / p.out_h;
    double best = -INFINITY, sum = 0;
    int64_t count = 0;
    for (int64_t kh = 0; kh < p.kernel_h; ++kh)
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const int64_t ih = oh * p.stride_h - p.pad_top + kh, iw = ow * p.stride_w - p.pad_left + kw;
        if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
        const float v = host_pattern(static_cast<uint64_t>(((n * p.h + ih) * p.w + iw) * p.c + c), dt, seed);
        best = std::max(best, static_cast<double>(v));
        sum += v;
        ++count;
      }
    const double want = kind == Pool::max ? best : sum / static_cast<double>(count);
    const double tol = kind == Pool::max ? 0.0 : (dt == DataType::f32 ? 1e-5 : 1e-2);  // values in [-0.5, 0.5)
    if (!(std::fabs(y[static_cast<size_t>(o)] - want) <= tol)) {
      *why = "output " + std::to_string(o) + " is " + std::to_string(y[static_cast<size_t>(o)]) + ", host computes " +
             std::to_string(want);
      return false;
    }
  }
  return true;
}

void pool_forward(benchmark::State& state, Pool kind, DataType dt, PoolShape shape, bool save_argmax) {
  const Pool2dParams p = params_of(shape);
  const int64_t nx = p.n * p.h * p.w * p.c, ny = p.n * p.out_h * p.out_w * p.c;
  const size_t es = kernels::cuda::dtype_size(dt);
  DeviceBuffer x(nx * es), y(ny * es), idx(save_argmax ? ny * 4 : 0);
  const uint32_t seed = 1234;
  fill_pattern(x.p, nx, dt, seed);
  int32_t* argmax = save_argmax ? idx.as<int32_t>() : nullptr;
  run_ours(kind, x.p, y.p, argmax, dt, p);
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  std::string why;
  if (!check_pool_samples(kind, download(y.p, ny, dt), dt, p, seed, &why)) {
    state.SkipWithError(("check failed: " + why).c_str());
    return;
  }
  run_timed(state, [&] { run_ours(kind, x.p, y.p, argmax, dt, p); });
  set_bytes(state, static_cast<double>((nx + ny) * es + (save_argmax ? ny * 4 : 0)));
}

void max_pool_backward(benchmark::State& state, DataType dt, PoolShape shape) {
  const Pool2dParams p = params_of(shape);
  const int64_t nx = p.n * p.h * p.w * p.c, ny = p.n * p.out_h * p.out_w * p.c;
  const size_t es = kernels::cuda::dtype_size(dt);
  DeviceBuffer x(nx * es), y(ny * es), idx(ny * 4), gy(ny * es), gx(nx * es);
  fill_pattern(x.p, nx, dt, 7);
  fill_pattern(gy.p, ny, dt, 8);
  kernels::cuda::max_pool2d_forward(x.p, y.p, idx.as<int32_t>(), dt, p, nullptr);
  kernels::cuda::max_pool2d_backward(gy.p, idx.as<int32_t>(), gx.p, dt, p, nullptr);
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  // Check: the gradient sums to the sum of grad_y (every window routes its whole gradient).
  double sx = 0, sy = 0;
  for (float v : download(gx.p, nx, dt)) sx += v;
  for (float v : download(gy.p, ny, dt)) sy += v;
  if (std::fabs(sx - sy) > (dt == DataType::f32 ? 1e-3 : 0.02) * std::max(1.0, std::sqrt(static_cast<double>(ny)))) {
    state.SkipWithError(("check failed: sum grad_x " + std::to_string(sx) + " vs sum grad_y " + std::to_string(sy)).c_str());
    return;
  }
  run_timed(state, [&] { kernels::cuda::max_pool2d_backward(gy.p, idx.as<int32_t>(), gx.p, dt, p, nullptr); });
  set_bytes(state, static_cast<double>((nx + ny) * es + ny * 4));
}

void avg_pool_backward(benchmark::State& state, DataType dt, PoolShape shape) {
  const Pool2dParams p = params_of(shape);
  const int64_t nx = p.n * p.h * p.w * p.c, ny = p.n * p.out_h * p.out_w * p.c;
  const size_t es = kernels::cuda::dtype_size(dt);
  DeviceBuffer gy(ny * es), gx(nx * es);
  fill_pattern(gy.p, ny, dt, 9);
  kernels::cuda::avg_pool2d_backward(gy.p, gx.p, dt, p, nullptr);
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> g = download(gx.p, nx, dt);
  for (float v : g)
    if (!std::isfinite(v)) {
      state.SkipWithError("check failed: non-finite grad_x");
      return;
    }
  run_timed(state, [&] { kernels::cuda::avg_pool2d_backward(gy.p, gx.p, dt, p, nullptr); });
  set_bytes(state, static_cast<double>((nx + ny) * es));
}

#ifdef GRAFT_HAVE_CUDNN
// Inside the timed loop only (the same call has succeeded once before it).
#define CUDNN_OK(call)                                                                                  \
  do {                                                                                                  \
    cudnnStatus_t s_ = (call);                                                                          \
    if (s_ != CUDNN_STATUS_SUCCESS) {                                                                   \
      std::fprintf(stderr, "cuDNN error %s in %s at %s:%d\n", cudnnGetErrorString(s_), #call, __FILE__, \
                   __LINE__);                                                                           \
      std::exit(1);                                                                                     \
    }                                                                                                   \
  } while (0)

// Set-up calls: a failure (say, a dtype this cuDNN does not pool) skips the
// baseline with the reason instead of ending the whole benchmark program.
#define CUDNN_TRY(call)                                                                   \
  do {                                                                                    \
    if (why.empty()) {                                                                    \
      const cudnnStatus_t s_ = (call);                                                    \
      if (s_ != CUDNN_STATUS_SUCCESS) why = std::string(#call) + ": " + cudnnGetErrorString(s_); \
    }                                                                                     \
  } while (0)

// cudnnPoolingForward on NHWC descriptors; checked against ours on every element.
void pool_forward_cudnn(benchmark::State& state, Pool kind, DataType dt, PoolShape shape) {
  const Pool2dParams p = params_of(shape);
  const int64_t nx = p.n * p.h * p.w * p.c, ny = p.n * p.out_h * p.out_w * p.c;
  const size_t es = kernels::cuda::dtype_size(dt);
  DeviceBuffer x(nx * es), y(ny * es), ours(ny * es);
  fill_pattern(x.p, nx, dt, 4321);
  const cudnnDataType_t cdt = dt == DataType::f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16;
  std::string why;
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t xd = nullptr, yd = nullptr;
  cudnnPoolingDescriptor_t pd = nullptr;
  CUDNN_TRY(cudnnCreate(&h));
  CUDNN_TRY(cudnnCreateTensorDescriptor(&xd));
  CUDNN_TRY(cudnnCreateTensorDescriptor(&yd));
  CUDNN_TRY(cudnnCreatePoolingDescriptor(&pd));
  CUDNN_TRY(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, cdt, static_cast<int>(p.n), static_cast<int>(p.c),
                                       static_cast<int>(p.h), static_cast<int>(p.w)));
  CUDNN_TRY(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, cdt, static_cast<int>(p.n), static_cast<int>(p.c),
                                       static_cast<int>(p.out_h), static_cast<int>(p.out_w)));
  const cudnnPoolingMode_t mode = kind == Pool::max ? CUDNN_POOLING_MAX : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  CUDNN_TRY(cudnnSetPooling2dDescriptor(pd, mode, CUDNN_PROPAGATE_NAN, static_cast<int>(p.kernel_h),
                                        static_cast<int>(p.kernel_w), static_cast<int>(p.pad_top),
                                        static_cast<int>(p.pad_left), static_cast<int>(p.stride_h),
                                        static_cast<int>(p.stride_w)));
  int on = 0, oc = 0, oh = 0, ow = 0;
  CUDNN_TRY(cudnnGetPooling2dForwardOutputDim(pd, xd, &on, &oc, &oh, &ow));
  if (why.empty() && !(on == p.n && oc == p.c && oh == p.out_h && ow == p.out_w))
    why = "cuDNN output dims " + std::to_string(oh) + "x" + std::to_string(ow) + " differ from ours";
  const float alpha = 1.f, beta = 0.f;
  CUDNN_TRY(cudnnPoolingForward(h, pd, &alpha, xd, x.p, &beta, yd, y.p));
  if (why.empty()) {
    run_ours(kind, x.p, ours.p, nullptr, dt, p);
    BENCH_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<float> a = download(y.p, ny, dt), b = download(ours.p, ny, dt);
    const double tol = kind == Pool::max ? 0.0 : (dt == DataType::f32 ? 1e-5 : 1e-2);
    for (int64_t i = 0; i < ny && why.empty(); ++i)
      if (!(std::fabs(a[static_cast<size_t>(i)] - b[static_cast<size_t>(i)]) <= tol))
        why = "element " + std::to_string(i) + ": cuDNN " + std::to_string(a[static_cast<size_t>(i)]) + ", ours " +
              std::to_string(b[static_cast<size_t>(i)]);
  }
  if (why.empty()) {
    run_timed(state, [&] { CUDNN_OK(cudnnPoolingForward(h, pd, &alpha, xd, x.p, &beta, yd, y.p)); });
    set_bytes(state, static_cast<double>((nx + ny) * es));
  } else {
    state.SkipWithError(("cuDNN baseline: " + why).c_str());
  }
  if (pd) cudnnDestroyPoolingDescriptor(pd);
  if (xd) cudnnDestroyTensorDescriptor(xd);
  if (yd) cudnnDestroyTensorDescriptor(yd);
  if (h) cudnnDestroy(h);
}
#undef CUDNN_TRY
#endif

// ---- fused AdamW over the ResNet-50 parameter list ----------------------------------------------

// torchvision resnet50's 161 trainable tensors, in model order: conv weights
// (O, I, kH, kW), BatchNorm weight and bias, fc weight and bias.
std::vector<int64_t> resnet50_parameter_sizes() {
  std::vector<int64_t> sizes;
  auto conv = [&](int64_t o, int64_t i, int64_t k) { sizes.push_back(o * i * k * k); };
  auto bn = [&](int64_t c) { sizes.push_back(c), sizes.push_back(c); };
  conv(64, 3, 7), bn(64);
  int64_t in = 64;
  const int64_t planes[4] = {64, 128, 256, 512}, blocks[4] = {3, 4, 6, 3};
  for (int l = 0; l < 4; ++l)
    for (int64_t b = 0; b < blocks[l]; ++b) {
      const int64_t pl = planes[l];
      conv(pl, in, 1), bn(pl);
      conv(pl, pl, 3), bn(pl);
      conv(pl * 4, pl, 1), bn(pl * 4);
      if (b == 0) conv(pl * 4, in, 1), bn(pl * 4);  // downsample
      in = pl * 4;
    }
  sizes.push_back(1000 * 2048), sizes.push_back(1000);
  return sizes;
}

void adamw_resnet50(benchmark::State& state, DataType grad_dt) {
  const std::vector<int64_t> sizes = resnet50_parameter_sizes();
  int64_t numel = 0, padded = 0;
  std::vector<int64_t> offset;
  for (int64_t s : sizes) {
    offset.push_back(padded);
    numel += s;
    padded += (s + 7) / 8 * 8;  // each tensor 16-byte aligned, as an allocator hands them out
  }
  if (sizes.size() != 161 || numel != 25557032) {
    state.SkipWithError(("ResNet-50 list is wrong: " + std::to_string(sizes.size()) + " tensors, " +
                         std::to_string(numel) + " parameters (want 161, 25557032)").c_str());
    return;
  }
  const size_t gs = kernels::cuda::dtype_size(grad_dt);
  DeviceBuffer p(padded * 4), g(padded * gs), m(padded * 4), v(padded * 4);
  fill_pattern(p.p, padded, DataType::f32, 1);
  fill_pattern(g.p, padded, grad_dt, 2);
  BENCH_CUDA_CHECK(cudaMemset(m.p, 0, padded * 4));
  BENCH_CUDA_CHECK(cudaMemset(v.p, 0, padded * 4));
  std::vector<kernels::cuda::OptimTensor> list(sizes.size());
  for (size_t k = 0; k < sizes.size(); ++k) {
    list[k].param = p.as<float>() + offset[k];
    list[k].grad = static_cast<const char*>(g.p) + offset[k] * gs;
    list[k].state0 = m.as<float>() + offset[k];
    list[k].state1 = v.as<float>() + offset[k];
    list[k].numel = sizes[k];
    list[k].weight_decay = sizes[k] > 2048;  // no decay on BatchNorm and biases, as usual
  }
  kernels::cuda::AdamParams a;
  a.lr = 1e-3f, a.weight_decay = 0.05f, a.decoupled = true, a.step = 1;
  const int count = static_cast<int>(list.size());
  // Check step 1 from known values on sampled elements: m = (1-b1) g, v = (1-b2) g^2,
  // p = p (1 - lr wd) - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
  kernels::cuda::adam_update_multi(list.data(), count, grad_dt, a, nullptr);
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> pd = download(p.p, padded, DataType::f32);
  for (size_t k = 0; k < sizes.size(); k += 7) {
    for (int64_t j : {int64_t{0}, sizes[k] / 2, sizes[k] - 1}) {
      const uint64_t i = static_cast<uint64_t>(offset[k] + j);
      const double p0 = host_pattern(i, DataType::f32, 1), g0 = host_pattern(i, grad_dt, 2);
      const double wd = list[k].weight_decay ? a.weight_decay : 0.0;
      const double bc1 = 1 - a.beta1, bc2 = 1 - a.beta2;
      const double mm = (1 - a.beta1) * g0, vv = (1 - a.beta2) * g0 * g0;
      const double want = p0 * (1 - a.lr * wd) - a.lr / bc1 * mm / (std::sqrt(vv) / std::sqrt(bc2) + a.eps);
      if (!(std::fabs(pd[i] - want) <= 1e-5 * std::max(1.0, std::fabs(want)))) {
        state.SkipWithError(("check failed: tensor " + std::to_string(k) + " element " + std::to_string(j) + " is " +
                             std::to_string(pd[i]) + ", formula gives " + std::to_string(want)).c_str());
        return;
      }
    }
  }
  a.step = 10;
  run_timed(state, [&] { kernels::cuda::adam_update_multi(list.data(), count, grad_dt, a, nullptr); });
  set_bytes(state, static_cast<double>(numel) * (4 + gs + 8 + 12));  // read p, g, m, v; write p, m, v
  state.counters["launches"] = 1;
  state.counters["chunks"] = static_cast<double>(kernels::cuda::multi_tensor_chunks(list.data(), count));
}

// ---- registration -----------------------------------------------------------------------------

int register_all() {
  const DataType dts[] = {DataType::f32, DataType::bf16};
  for (DataType dt : dts) {
    struct P {
      Pool kind;
      const char* name;
      PoolShape shape;
    };
    const P pools[] = {{Pool::max, "max_pool2d_fwd", kStem},
                       {Pool::avg, "avg_pool2d_fwd", kStem},
                       {Pool::global, "global_avg_pool2d_fwd", kHead}};
    for (const P& q : pools) {
      const std::string name = pool_name(q.name, dt, q.shape);
      benchmark::RegisterBenchmark(name.c_str(), pool_forward, q.kind, dt, q.shape, false)
          ->UseManualTime()->Unit(benchmark::kMicrosecond);
#ifdef GRAFT_HAVE_CUDNN
      benchmark::RegisterBenchmark((name + "@cudnn").c_str(), pool_forward_cudnn, q.kind, dt, q.shape)
          ->UseManualTime()->Unit(benchmark::kMicrosecond);
#endif
    }
    benchmark::RegisterBenchmark(pool_name("max_pool2d_fwd_argmax", dt, kStem).c_str(), pool_forward, Pool::max, dt,
                                 kStem, true)
        ->UseManualTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(pool_name("max_pool2d_bwd", dt, kStem).c_str(), max_pool_backward, dt, kStem)
        ->UseManualTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(pool_name("avg_pool2d_bwd", dt, kStem).c_str(), avg_pool_backward, dt, kStem)
        ->UseManualTime()->Unit(benchmark::kMicrosecond);
    // The dtype in the name is the gradients' (parameters and states are f32).
    benchmark::RegisterBenchmark((std::string("adamw_fused/") + dname(dt) + "/resnet50:161_tensors").c_str(),
                                 adamw_resnet50, dt)
        ->UseManualTime()->Unit(benchmark::kMicrosecond);
  }
  return 0;
}
[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace graft::bench
