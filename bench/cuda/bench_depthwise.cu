// Depthwise NHWC convolution (kernels/cuda/depthwise.h) on MobileNetV2's
// depthwise layers at batch 256 (bf16) and 128 (f32): forward, backward-data,
// backward-weight, against cuDNN's grouped convolution (groups = C, NHWC
// descriptors, the fastest algorithm by cudnnFind*AlgorithmEx with a 256 MB
// workspace, searched once per shape and cached). Memory-bound: set_bytes
// counts each input read once and each output written once; set_flops the
// 2 * N * outH * outW * C * kH * kW of the convolution. Every benchmark checks
// sampled outputs (ours and cuDNN's) against a host computation before timing
// (on its first call).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bench/cuda/harness.h"
#include "bench/cuda/inputs.cuh"
#include "kernels/cuda/depthwise.h"

#ifdef GRAFT_HAVE_CUDNN
#include <cudnn.h>
#endif

namespace graft::bench {
namespace {

using kernels::cuda::Conv2dParams;
using kernels::cuda::DataType;
using kernels::cuda::DwActivation;
using kernels::cuda::DwEpilogue;

enum class Op { fwd, bwd_data, bwd_weight };
const char* op_name(Op op) {
  return op == Op::fwd ? "dwconv_fwd" : (op == Op::bwd_data ? "dwconv_bwd_data" : "dwconv_bwd_weight");
}

struct Layer {
  const char* name;  // MobileNetV2 stage (paper's table), kernel, stride, channels
  int64_t hw, c, stride;
};
// MobileNetV2 (224x224 input): the distinct depthwise layer shapes, all 3x3 pad 1.
const Layer kLayers[] = {
    {"mbv2_b1_3x3_s1_32", 112, 32, 1},  {"mbv2_b2_3x3_s2_96", 112, 96, 2}, {"mbv2_b2_3x3_s1_144", 56, 144, 1},
    {"mbv2_b3_3x3_s2_144", 56, 144, 2}, {"mbv2_b4_3x3_s1_384", 14, 384, 1}, {"mbv2_b6_3x3_s2_576", 14, 576, 2},
    {"mbv2_b6_3x3_s1_960", 7, 960, 1},
};

Conv2dParams params_of(const Layer& l, int64_t n) {
  Conv2dParams p;
  p.n = n, p.h = p.w = l.hw, p.c = p.o = p.groups = l.c;
  p.kh = p.kw = 3;
  p.stride_h = p.stride_w = l.stride;
  p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 1;
  return p;
}


float read_one(const void* p, int64_t i, DataType dt) {
  if (dt == DataType::f32) {
    float v;
    BENCH_CUDA_CHECK(cudaMemcpy(&v, static_cast<const float*>(p) + i, 4, cudaMemcpyDeviceToHost));
    return v;
  }
  __nv_bfloat16 b;
  BENCH_CUDA_CHECK(cudaMemcpy(&b, static_cast<const __nv_bfloat16*>(p) + i, 2, cudaMemcpyDeviceToHost));
  return __bfloat162float(b);
}

// The tensors of one layer: x (seed 1), w (seed 2), dy (seed 3), and the outputs y, dx, dw.
struct Buffers {
  Conv2dParams p;
  DataType dt;
  int64_t nx, ny, nw;
  DeviceBuffer x, w, dy, out;
  Buffers(const Conv2dParams& q, DataType t, Op op)
      : p(q), dt(t), nx(q.n * q.h * q.w * q.c), ny(q.n * q.out_h() * q.out_w() * q.c), nw(q.c * q.kh * q.kw),
        x(op == Op::bwd_data ? 16 : nx * kernels::cuda::dtype_size(t)), w(nw * kernels::cuda::dtype_size(t)),
        dy(op == Op::fwd ? 16 : ny * kernels::cuda::dtype_size(t)),
        out((op == Op::fwd ? ny : (op == Op::bwd_data ? nx : nw)) * kernels::cuda::dtype_size(t)) {
    if (op != Op::bwd_data) fill_pattern(x.p, nx, t, 1);
    fill_pattern(w.p, nw, t, 2);
    if (op != Op::fwd) fill_pattern(dy.p, ny, t, 3);
  }
  double bytes(Op op) const {
    const double es = static_cast<double>(kernels::cuda::dtype_size(dt));
    if (op == Op::fwd) return es * double(nx + nw + ny);
    if (op == Op::bwd_data) return es * double(ny + nw + nx);
    return es * double(nx + ny + nw);
  }
  double flops() const { return 2.0 * double(ny) * double(p.kh * p.kw); }
};

// Sampled outputs of `out` against the host's sum (f64) of the same terms:
// |got - want| <= tol * |want| + 1e-5 * sum |terms| (+ 1e-6), tol 1e-5 (f32) or 1e-2 (bf16).
bool check_samples(Op op, const Buffers& b, const void* out, std::string* why) {
  const Conv2dParams& p = b.p;
  const int64_t oh = p.out_h(), ow = p.out_w(), C = p.c;
  const double tol = b.dt == DataType::f32 ? 1e-5 : 1e-2;
  const int samples = op == Op::bwd_weight ? 6 : 400;
  const int64_t count = op == Op::fwd ? b.ny : (op == Op::bwd_data ? b.nx : b.nw);
  for (int k = 0; k < samples; ++k) {
    const int64_t o = (int64_t(k) * 7919 * 104729 + 17) % count;
    double want = 0, mag = 0;
    if (op == Op::fwd) {
      const int64_t c = o % C, x_ = (o / C) % ow, y_ = (o / C / ow) % oh, n = o / C / ow / oh;
      for (int64_t a = 0; a < p.kh; ++a)
        for (int64_t bb = 0; bb < p.kw; ++bb) {
          const int64_t ih = y_ * p.stride_h - p.pad_top + a, iw = x_ * p.stride_w - p.pad_left + bb;
          if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
          const double t = double(host_pattern(((n * p.h + ih) * p.w + iw) * C + c, b.dt, 1)) *
                           host_pattern((c * p.kh + a) * p.kw + bb, b.dt, 2);
          want += t, mag += std::fabs(t);
        }
    } else if (op == Op::bwd_data) {
      const int64_t c = o % C, iw = (o / C) % p.w, ih = (o / C / p.w) % p.h, n = o / C / p.w / p.h;
      for (int64_t a = 0; a < p.kh; ++a)
        for (int64_t bb = 0; bb < p.kw; ++bb) {
          const int64_t th = ih + p.pad_top - a, tw = iw + p.pad_left - bb;
          if (th < 0 || tw < 0 || th % p.stride_h || tw % p.stride_w || th / p.stride_h >= oh || tw / p.stride_w >= ow)
            continue;
          const double t = double(host_pattern(((n * oh + th / p.stride_h) * ow + tw / p.stride_w) * C + c, b.dt, 3)) *
                           host_pattern((c * p.kh + a) * p.kw + bb, b.dt, 2);
          want += t, mag += std::fabs(t);
        }
    } else {
      const int64_t c = o / (p.kh * p.kw), tap = o % (p.kh * p.kw), a = tap / p.kw, bb = tap % p.kw;
      for (int64_t n = 0; n < p.n; ++n)
        for (int64_t y_ = 0; y_ < oh; ++y_) {
          const int64_t ih = y_ * p.stride_h - p.pad_top + a;
          if (ih < 0 || ih >= p.h) continue;
          for (int64_t x_ = 0; x_ < ow; ++x_) {
            const int64_t iw = x_ * p.stride_w - p.pad_left + bb;
            if (iw < 0 || iw >= p.w) continue;
            const double t = double(host_pattern(((n * oh + y_) * ow + x_) * C + c, b.dt, 3)) *
                             host_pattern(((n * p.h + ih) * p.w + iw) * C + c, b.dt, 1);
            want += t, mag += std::fabs(t);
          }
        }
    }
    const double got = read_one(out, o, b.dt);
    if (!(std::fabs(got - want) <= tol * std::fabs(want) + 1e-5 * mag + 1e-6)) {
      *why = std::string(op_name(op)) + " check failed: element " + std::to_string(o) + " is " + std::to_string(got) +
             ", host computes " + std::to_string(want);
      return false;
    }
  }
  return true;
}

// Google Benchmark calls a benchmark function several times (growing the
// iteration count); the sampled check runs on the first call of each name only.
bool first_call(const std::string& name) {
  static std::set<std::string> seen;
  return seen.insert(name).second;
}

void run_ours(Op op, const Buffers& b, const DwEpilogue& ep) {
  if (op == Op::fwd) kernels::cuda::depthwise_conv2d_forward(b.x.p, b.w.p, b.out.p, b.dt, b.p, ep, nullptr);
  else if (op == Op::bwd_data) kernels::cuda::depthwise_conv2d_backward_data(b.dy.p, b.w.p, b.out.p, b.dt, b.p, nullptr);
  else kernels::cuda::depthwise_conv2d_backward_weight(b.x.p, b.dy.p, b.out.p, b.dt, b.p, nullptr);
}

void dwconv_ours(benchmark::State& state, Op op, DataType dt, Layer l, int64_t n) {
  const Buffers b(params_of(l, n), dt, op);
  run_ours(op, b, {});
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  std::string why;
  const std::string key = std::string(op_name(op)) + kernels::cuda::dtype_name(dt) + l.name + std::to_string(n);
  if (first_call(key) && !check_samples(op, b, b.out.p, &why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  run_timed(state, [&] { run_ours(op, b, {}); });
  set_bytes(state, b.bytes(op));
  set_flops(state, b.flops());
}

// Forward with MobileNetV2's folded BN + ReLU6 fused (ours only): scale and
// shift add 8 bytes per channel, negligible.
void dwconv_fwd_bn_relu6(benchmark::State& state, DataType dt, Layer l, int64_t n) {
  const Buffers b(params_of(l, n), dt, Op::fwd);
  DeviceBuffer scale(b.p.c * 4), shift(b.p.c * 4);
  const std::vector<float> ones(size_t(b.p.c), 1.f), zeros(size_t(b.p.c), 0.f);
  BENCH_CUDA_CHECK(cudaMemcpy(scale.p, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CUDA_CHECK(cudaMemcpy(shift.p, zeros.data(), zeros.size() * 4, cudaMemcpyHostToDevice));
  DwEpilogue ep;
  ep.scale = scale.as<float>(), ep.shift = shift.as<float>(), ep.act = DwActivation::relu6;
  run_timed(state, [&] { run_ours(Op::fwd, b, ep); });
  set_bytes(state, b.bytes(Op::fwd));
  set_flops(state, b.flops());
}

#ifdef GRAFT_HAVE_CUDNN
constexpr size_t kCudnnWorkspace = size_t(256) << 20;

// Algorithm found per (op, dtype, layer, batch), kept for the process.
std::map<std::string, int>& algo_cache() {
  static std::map<std::string, int> cache;
  return cache;
}

void dwconv_cudnn(benchmark::State& state, Op op, DataType dt, Layer l, int64_t n) {
  const Buffers b(params_of(l, n), dt, op);
  const Conv2dParams& p = b.p;
  const cudnnDataType_t cdt = dt == DataType::f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16;
  static cudnnHandle_t h = nullptr;  // one handle for the process (creating one costs ms)
  if (!h) CUDNN_SKIP_ON_ERROR(cudnnCreate(&h));
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&xd));
  CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&yd));
  CUDNN_SKIP_ON_ERROR(cudnnCreateFilterDescriptor(&wd));
  CUDNN_SKIP_ON_ERROR(cudnnCreateConvolutionDescriptor(&cd));
  CUDNN_SKIP_ON_ERROR(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, cdt, int(p.n), int(p.c), int(p.h), int(p.w)));
  CUDNN_SKIP_ON_ERROR(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, cdt, int(p.n), int(p.c), int(p.out_h()), int(p.out_w())));
  // (K = C, C/groups = 1, kh, kw) in NHWC: memory K, kh, kw, 1 = ours (C, kh, kw).
  CUDNN_SKIP_ON_ERROR(cudnnSetFilter4dDescriptor(wd, cdt, CUDNN_TENSOR_NHWC, int(p.c), 1, int(p.kh), int(p.kw)));
  CUDNN_SKIP_ON_ERROR(cudnnSetConvolution2dDescriptor(cd, int(p.pad_top), int(p.pad_left), int(p.stride_h), int(p.stride_w), 1, 1,
                                           CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_SKIP_ON_ERROR(cudnnSetConvolutionGroupCount(cd, int(p.c)));
  CUDNN_SKIP_ON_ERROR(cudnnSetConvolutionMathType(cd, dt == DataType::f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
  DeviceBuffer ws(kCudnnWorkspace);
  const std::string key = std::string(op_name(op)) + kernels::cuda::dtype_name(dt) + l.name + std::to_string(n);
  auto& cache = algo_cache();
  if (!cache.count(key)) {
    int returned = 0;
    if (op == Op::fwd) {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      CUDNN_SKIP_ON_ERROR(cudnnFindConvolutionForwardAlgorithmEx(h, xd, b.x.p, wd, b.w.p, cd, yd, b.out.p,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, ws.p,
                                                      kCudnnWorkspace));
      for (int i = 0; i < returned && !cache.count(key); ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS) cache[key] = int(perf[i].algo);
    } else if (op == Op::bwd_data) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      CUDNN_SKIP_ON_ERROR(cudnnFindConvolutionBackwardDataAlgorithmEx(h, wd, b.w.p, yd, b.dy.p, cd, xd, b.out.p,
                                                           CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf,
                                                           ws.p, kCudnnWorkspace));
      for (int i = 0; i < returned && !cache.count(key); ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS) cache[key] = int(perf[i].algo);
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      CUDNN_SKIP_ON_ERROR(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, xd, b.x.p, yd, b.dy.p, cd, wd, b.out.p,
                                                             CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, perf,
                                                             ws.p, kCudnnWorkspace));
      for (int i = 0; i < returned && !cache.count(key); ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS) cache[key] = int(perf[i].algo);
    }
    if (!cache.count(key)) {
      state.SkipWithError("cuDNN found no working algorithm");
      return;
    }
  }
  const int algo = cache[key];
  const float one = 1.f, zero = 0.f;
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  auto launch = [&] {
    if (op == Op::fwd)
      status = cudnnConvolutionForward(h, &one, xd, b.x.p, wd, b.w.p, cd, cudnnConvolutionFwdAlgo_t(algo), ws.p,
                                       kCudnnWorkspace, &zero, yd, b.out.p);
    else if (op == Op::bwd_data)
      status = cudnnConvolutionBackwardData(h, &one, wd, b.w.p, yd, b.dy.p, cd, cudnnConvolutionBwdDataAlgo_t(algo),
                                            ws.p, kCudnnWorkspace, &zero, xd, b.out.p);
    else
      status = cudnnConvolutionBackwardFilter(h, &one, xd, b.x.p, yd, b.dy.p, cd,
                                              cudnnConvolutionBwdFilterAlgo_t(algo), ws.p, kCudnnWorkspace, &zero, wd,
                                              b.out.p);
  };
  launch();
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  CUDNN_SKIP_ON_ERROR(status);
  std::string why;
  if (first_call(key + "@cudnn") && !check_samples(op, b, b.out.p, &why)) {
    state.SkipWithError(("cuDNN " + why).c_str());
    return;
  }
  run_timed(state, launch);
  CUDNN_SKIP_ON_ERROR(status);
  set_bytes(state, b.bytes(op));
  set_flops(state, b.flops());
  state.counters["algo"] = algo;
  cudnnDestroyConvolutionDescriptor(cd);
  cudnnDestroyFilterDescriptor(wd);
  cudnnDestroyTensorDescriptor(yd);
  cudnnDestroyTensorDescriptor(xd);
}
#endif

// ---- registration -----------------------------------------------------------------------------

int register_all() {
  struct Run {
    DataType dt;
    int64_t n;
    std::vector<int> layers;  // indices into kLayers
  };
  const Run runs[] = {{DataType::bf16, 256, {0, 1, 2, 3, 4, 5, 6}}, {DataType::f32, 128, {0, 3, 4, 6}}};
  const Op ops[] = {Op::fwd, Op::bwd_data, Op::bwd_weight};
  for (const Run& r : runs)
    for (int li : r.layers) {
      const Layer& l = kLayers[li];
      const std::string tail = std::string("/") + kernels::cuda::dtype_name(r.dt) + "/" + l.name + "/n" +
                               std::to_string(r.n);
      for (Op op : ops) {
        const std::string name = op_name(op) + tail;
        benchmark::RegisterBenchmark(name.c_str(), dwconv_ours, op, r.dt, l, r.n)
            ->UseManualTime()->Unit(benchmark::kMicrosecond);
#ifdef GRAFT_HAVE_CUDNN
        benchmark::RegisterBenchmark((name + "@cudnn").c_str(), dwconv_cudnn, op, r.dt, l, r.n)
            ->UseManualTime()->Unit(benchmark::kMicrosecond);
#endif
      }
      if (r.dt == DataType::bf16)
        benchmark::RegisterBenchmark(("dwconv_fwd_bn_relu6" + tail).c_str(), dwconv_fwd_bn_relu6, r.dt, l, r.n)
            ->UseManualTime()->Unit(benchmark::kMicrosecond);
    }
  return 0;
}
[[maybe_unused]] const int registered = register_all();

}  // namespace
}  // namespace graft::bench
