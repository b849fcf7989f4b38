// Implicit-GEMM convolution (kernels/cuda/conv.h), bf16 NHWC: every distinct
// ResNet-50 conv layer at batch 256 (forward, backward-data,
// backward-weight), a few VGG-16 layers (forward, batch 64), and the fused
// conv + folded batch norm + ReLU against cuDNN's conv, batch-norm inference
// and activation run one after another (@cudnn_unfused). Baselines: cuDNN
// with NHWC descriptors, bf16 data and f32 compute, tensor-op math, the
// algorithm picked once per shape and pass by cudnnFind*AlgorithmEx with a
// 128 MB workspace (cached). flops = 2 * N * OH * OW * O * KH * KW * C/g for
// every pass. Each of our kernels is checked once before timing: sampled
// outputs against a direct f32 reference computed on the device.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/cuda/harness.h"
#include "kernels/cuda/conv.h"

#ifdef GRAFT_HAVE_CUDNN
#include <cudnn.h>
#endif

namespace graft::bench {
namespace {

namespace kc = kernels::cuda;
using kc::Conv2dParams;
using bf16 = __nv_bfloat16;

enum class Pass { fwd, bwd_data, bwd_weight, fwd_bn_relu };
const char* pass_name(Pass p) {
  switch (p) {
    case Pass::fwd: return "conv_fwd";
    case Pass::bwd_data: return "conv_bwd_data";
    case Pass::bwd_weight: return "conv_bwd_weight";
    case Pass::fwd_bn_relu: return "conv_bn_relu";
  }
  return "?";
}

struct Layer {
  const char* name;
  Conv2dParams p;
};
Conv2dParams conv(int64_t n, int64_t hw, int64_t c, int64_t o, int64_t k, int64_t s, int64_t pad) {
  Conv2dParams p;
  p.n = n, p.h = hw, p.w = hw, p.c = c, p.o = o, p.kh = k, p.kw = k, p.stride_h = s, p.stride_w = s;
  p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = pad;
  return p;
}

// ResNet-50 (torchvision v1.5: stride on the 3x3), 224x224 input, batch 256.
const std::vector<Layer>& resnet50() {
  static const std::vector<Layer> layers = {
      {"r50_conv1_7x7_64", conv(256, 224, 3, 64, 7, 2, 3)},
      {"r50_l1_1x1_64_64", conv(256, 56, 64, 64, 1, 1, 0)},
      {"r50_l1_3x3_64", conv(256, 56, 64, 64, 3, 1, 1)},
      {"r50_l1_1x1_64_256", conv(256, 56, 64, 256, 1, 1, 0)},
      {"r50_l1_1x1_256_64", conv(256, 56, 256, 64, 1, 1, 0)},
      {"r50_l2_1x1_256_128", conv(256, 56, 256, 128, 1, 1, 0)},
      {"r50_l2_3x3_128_s2", conv(256, 56, 128, 128, 3, 2, 1)},
      {"r50_l2_1x1_256_512_s2", conv(256, 56, 256, 512, 1, 2, 0)},
      {"r50_l2_1x1_128_512", conv(256, 28, 128, 512, 1, 1, 0)},
      {"r50_l2_1x1_512_128", conv(256, 28, 512, 128, 1, 1, 0)},
      {"r50_l2_3x3_128", conv(256, 28, 128, 128, 3, 1, 1)},
      {"r50_l3_1x1_512_256", conv(256, 28, 512, 256, 1, 1, 0)},
      {"r50_l3_3x3_256_s2", conv(256, 28, 256, 256, 3, 2, 1)},
      {"r50_l3_1x1_512_1024_s2", conv(256, 28, 512, 1024, 1, 2, 0)},
      {"r50_l3_1x1_256_1024", conv(256, 14, 256, 1024, 1, 1, 0)},
      {"r50_l3_1x1_1024_256", conv(256, 14, 1024, 256, 1, 1, 0)},
      {"r50_l3_3x3_256", conv(256, 14, 256, 256, 3, 1, 1)},
      {"r50_l4_1x1_1024_512", conv(256, 14, 1024, 512, 1, 1, 0)},
      {"r50_l4_3x3_512_s2", conv(256, 14, 512, 512, 3, 2, 1)},
      {"r50_l4_1x1_1024_2048_s2", conv(256, 14, 1024, 2048, 1, 2, 0)},
      {"r50_l4_1x1_512_2048", conv(256, 7, 512, 2048, 1, 1, 0)},
      {"r50_l4_1x1_2048_512", conv(256, 7, 2048, 512, 1, 1, 0)},
      {"r50_l4_3x3_512", conv(256, 7, 512, 512, 3, 1, 1)},
  };
  return layers;
}
// VGG-16, batch 64: the first full-resolution 3x3 and one layer per later stage.
const std::vector<Layer>& vgg16() {
  static const std::vector<Layer> layers = {
      {"vgg_3x3_64_224", conv(64, 224, 64, 64, 3, 1, 1)},
      {"vgg_3x3_256_56", conv(64, 56, 256, 256, 3, 1, 1)},
      {"vgg_3x3_512_28", conv(64, 28, 512, 512, 3, 1, 1)},
      {"vgg_3x3_512_14", conv(64, 14, 512, 512, 3, 1, 1)},
  };
  return layers;
}

std::string bench_name(Pass pass, const Layer& l, const char* baseline) {
  return std::string(pass_name(pass)) + "/bf16/" + l.name + "/n" + std::to_string(l.p.n) + baseline;
}

// ---- data and the sampled device reference --------------------------------------------------

__device__ __forceinline__ uint32_t mix(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
// Uniform in [-1, 1) (never constant data).
__global__ void fill_bf16(bf16* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16_rn(float(mix(i, seed) & 0xFFFF) / 32768.0f - 1.0f);
}
__global__ void fill_f32(float* p, int64_t n, float lo, float hi, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * float(mix(i, seed) & 0xFFFF) / 65536.0f;
}

struct Geo {
  int n, h, w, c, o, kh, kw, sh, sw, pt, pl, cg, og, oh, ow;
};
Geo geo(const Conv2dParams& p) {
  return Geo{int(p.n), int(p.h), int(p.w), int(p.c), int(p.o), int(p.kh), int(p.kw), int(p.stride_h),
             int(p.stride_w), int(p.pad_top), int(p.pad_left), int(p.c / p.groups), int(p.o / p.groups),
             int(p.out_h()), int(p.out_w())};
}

// One block per sampled output element: the direct sum in f32 (dilation 1).
// sample s checks element (s * 2654435761) mod count of the pass's output.
__global__ void reference_kernel(Pass pass, Geo q, const bf16* x, const bf16* w, const bf16* dy, const void* out,
                                 const float* scale, const float* shift, int64_t count, float* ref, float* got) {
  const int64_t idx = (int64_t(blockIdx.x) * 2654435761ll) % count;
  float acc = 0.0f;
  if (pass == Pass::fwd || pass == Pass::fwd_bn_relu) {
    const int oc = int(idx % q.o), pix = int(idx / q.o), ox = pix % q.ow, oy = (pix / q.ow) % q.oh,
              img = pix / (q.ow * q.oh), g = oc / q.og;
    for (int k = threadIdx.x; k < q.kh * q.kw * q.cg; k += blockDim.x) {
      const int ci = k % q.cg, s = (k / q.cg) % q.kw, r = k / (q.cg * q.kw);
      const int iy = oy * q.sh - q.pt + r, ix = ox * q.sw - q.pl + s;
      if (iy >= 0 && iy < q.h && ix >= 0 && ix < q.w)
        acc += __bfloat162float(x[((int64_t(img) * q.h + iy) * q.w + ix) * q.c + g * q.cg + ci]) *
               __bfloat162float(w[int64_t(oc) * q.kh * q.kw * q.cg + k]);
    }
  } else if (pass == Pass::bwd_data) {
    const int c = int(idx % q.c), pix = int(idx / q.c), ix = pix % q.w, iy = (pix / q.w) % q.h,
              img = pix / (q.w * q.h), g = c / q.cg;
    for (int k = threadIdx.x; k < q.kh * q.kw * q.og; k += blockDim.x) {
      const int oc = k % q.og, s = (k / q.og) % q.kw, r = k / (q.og * q.kw);
      const int ty = iy + q.pt - r, tx = ix + q.pl - s;
      if (ty < 0 || tx < 0 || ty % q.sh || tx % q.sw || ty / q.sh >= q.oh || tx / q.sw >= q.ow) continue;
      acc += __bfloat162float(dy[((int64_t(img) * q.oh + ty / q.sh) * q.ow + tx / q.sw) * q.o + g * q.og + oc]) *
             __bfloat162float(w[((int64_t(g * q.og + oc) * q.kh + r) * q.kw + s) * q.cg + (c - g * q.cg)]);
    }
  } else {
    const int ci = int(idx % q.cg), s = int(idx / q.cg) % q.kw, r = int(idx / (q.cg * q.kw)) % q.kh,
              oc = int(idx / (int64_t(q.cg) * q.kw * q.kh)), g = oc / q.og;
    for (int pix = threadIdx.x; pix < q.n * q.oh * q.ow; pix += blockDim.x) {
      const int ox = pix % q.ow, oy = (pix / q.ow) % q.oh, img = pix / (q.ow * q.oh);
      const int iy = oy * q.sh - q.pt + r, ix = ox * q.sw - q.pl + s;
      if (iy >= 0 && iy < q.h && ix >= 0 && ix < q.w)
        acc += __bfloat162float(dy[int64_t(pix) * q.o + oc]) *
               __bfloat162float(x[((int64_t(img) * q.h + iy) * q.w + ix) * q.c + g * q.cg + ci]);
    }
  }
  __shared__ float part[256];
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int st = blockDim.x / 2; st > 0; st >>= 1) {
    if (int(threadIdx.x) < st) part[threadIdx.x] += part[threadIdx.x + st];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    float v = part[0];
    if (pass == Pass::fwd_bn_relu) v = fmaxf(v * scale[idx % q.o] + shift[idx % q.o], 0.0f);
    ref[blockIdx.x] = v;
    got[blockIdx.x] = __bfloat162float(static_cast<const bf16*>(out)[idx]);
  }
}

// Buffers of one layer: x, w, y, dy, dx, dw (bf16) and the folded-BN vectors.
struct Buffers {
  Conv2dParams p;
  int64_t nx, nw, ny;
  DeviceBuffer x, w, y, dy, dx, dw, scale, shift;
  explicit Buffers(const Conv2dParams& p_)
      : p(p_),
        nx(p_.n * p_.h * p_.w * p_.c),
        nw(p_.o * p_.filter_size()),
        ny(p_.n * p_.out_h() * p_.out_w() * p_.o),
        x(nx * 2), w(nw * 2), y(ny * 2), dy(ny * 2), dx(nx * 2), dw(nw * 2), scale(p_.o * 4), shift(p_.o * 4) {
    fill_bf16<<<1024, 256>>>(x.as<bf16>(), nx, 1);
    fill_bf16<<<1024, 256>>>(w.as<bf16>(), nw, 2);
    fill_bf16<<<1024, 256>>>(dy.as<bf16>(), ny, 3);
    fill_f32<<<16, 256>>>(scale.as<float>(), p.o, 0.5f, 1.5f, 4);
    fill_f32<<<16, 256>>>(shift.as<float>(), p.o, -0.5f, 0.5f, 5);
    BENCH_CUDA_CHECK(cudaGetLastError());
    BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  }
  void* out(Pass pass) const { return pass == Pass::bwd_data ? dx.p : pass == Pass::bwd_weight ? dw.p : y.p; }
  int64_t out_count(Pass pass) const { return pass == Pass::bwd_data ? nx : pass == Pass::bwd_weight ? nw : ny; }
};

void run_ours(const Buffers& b, Pass pass) {
  switch (pass) {
    case Pass::fwd: kc::conv2d_forward(b.p, b.x.p, b.w.p, b.y.p, kc::DataType::bf16, {}, nullptr); break;
    case Pass::fwd_bn_relu: {
      kc::ConvEpilogue e;
      e.scale = b.scale.as<float>();
      e.shift = b.shift.as<float>();
      e.act = kc::ConvActivation::relu;
      kc::conv2d_forward(b.p, b.x.p, b.w.p, b.y.p, kc::DataType::bf16, e, nullptr);
      break;
    }
    case Pass::bwd_data: kc::conv2d_backward_data(b.p, b.dy.p, b.w.p, b.dx.p, kc::DataType::bf16, nullptr); break;
    case Pass::bwd_weight: kc::conv2d_backward_weight(b.p, b.x.p, b.dy.p, b.dw.p, kc::DataType::bf16, nullptr); break;
  }
}

// Sampled outputs within 2e-2 of the largest sampled reference value (bf16 output rounding).
bool check_sampled(benchmark::State& state, const Buffers& b, Pass pass) {
  constexpr int kSamples = 512;
  const DeviceBuffer out_ref(kSamples * 4), out_got(kSamples * 4);
  BENCH_CUDA_CHECK(cudaMemset(b.out(pass), 0xFF, static_cast<size_t>(b.out_count(pass)) * 2));  // NaN
  run_ours(b, pass);
  reference_kernel<<<kSamples, 256>>>(pass, geo(b.p), b.x.as<bf16>(), b.w.as<bf16>(), b.dy.as<bf16>(), b.out(pass),
                                      b.scale.as<float>(), b.shift.as<float>(), b.out_count(pass),
                                      out_ref.as<float>(), out_got.as<float>());
  BENCH_CUDA_CHECK(cudaGetLastError());
  std::vector<float> ref(kSamples), got(kSamples);
  BENCH_CUDA_CHECK(cudaMemcpy(ref.data(), out_ref.p, kSamples * 4, cudaMemcpyDeviceToHost));
  BENCH_CUDA_CHECK(cudaMemcpy(got.data(), out_got.p, kSamples * 4, cudaMemcpyDeviceToHost));
  double scale = 1e-6, worst = 0;
  for (float r : ref) scale = std::fmax(scale, std::fabs(r));
  for (int i = 0; i < kSamples; ++i) {
    const double e = std::fabs(double(got[i]) - ref[i]);
    if (std::isnan(e)) worst = INFINITY;
    else if (e > worst) worst = e;
  }
  if (!(worst <= 2e-2 * scale)) {
    state.SkipWithError(("sampled check failed: max error " + std::to_string(worst) + " vs max |ref| " +
                         std::to_string(scale))
                            .c_str());
    return false;
  }
  return true;
}

void bench_ours(benchmark::State& state, Layer l, Pass pass) {
  const Buffers b(l.p);
  if (!check_sampled(state, b, pass)) return;
  run_timed(state, [&] { run_ours(b, pass); });
  set_flops(state, l.p.forward_flops());
}

// ---- cuDNN ------------------------------------------------------------------------------------
#ifdef GRAFT_HAVE_CUDNN
constexpr size_t kWorkspace = size_t(128) << 20;

struct Cudnn {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t xd = nullptr, yd = nullptr, bnd = nullptr;
  cudnnFilterDescriptor_t wd = nullptr;
  cudnnConvolutionDescriptor_t cd = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  ~Cudnn() {
    if (act) cudnnDestroyActivationDescriptor(act);
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (wd) cudnnDestroyFilterDescriptor(wd);
    if (bnd) cudnnDestroyTensorDescriptor(bnd);
    if (yd) cudnnDestroyTensorDescriptor(yd);
    if (xd) cudnnDestroyTensorDescriptor(xd);
    if (h) cudnnDestroy(h);
  }
};

// Algorithm choices, found once per (pass, layer).
std::map<std::string, int>& algo_cache() {
  static std::map<std::string, int> cache;
  return cache;
}

void bench_cudnn(benchmark::State& state, Layer l, Pass pass, bool unfused) {
  const Conv2dParams& p = l.p;
  const Buffers b(p);
  const DeviceBuffer ws(kWorkspace), mean(p.o * 4), var(p.o * 4);
  fill_f32<<<16, 256>>>(mean.as<float>(), p.o, -0.1f, 0.1f, 6);
  fill_f32<<<16, 256>>>(var.as<float>(), p.o, 0.5f, 1.5f, 7);
  BENCH_CUDA_CHECK(cudaGetLastError());
  Cudnn c;
  CUDNN_SKIP_ON_ERROR(cudnnCreate(&c.h));
  CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&c.xd));
  CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&c.yd));
  CUDNN_SKIP_ON_ERROR(cudnnCreateFilterDescriptor(&c.wd));
  CUDNN_SKIP_ON_ERROR(cudnnCreateConvolutionDescriptor(&c.cd));
  CUDNN_SKIP_ON_ERROR(cudnnSetTensor4dDescriptor(c.xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, int(p.n), int(p.c), int(p.h),
                                      int(p.w)));
  CUDNN_SKIP_ON_ERROR(cudnnSetTensor4dDescriptor(c.yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, int(p.n), int(p.o),
                                      int(p.out_h()), int(p.out_w())));
  CUDNN_SKIP_ON_ERROR(cudnnSetFilter4dDescriptor(c.wd, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, int(p.o), int(p.c / p.groups),
                                      int(p.kh), int(p.kw)));
  CUDNN_SKIP_ON_ERROR(cudnnSetConvolution2dDescriptor(c.cd, int(p.pad_top), int(p.pad_left), int(p.stride_h), int(p.stride_w),
                                           int(p.dilation_h), int(p.dilation_w), CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT));
  CUDNN_SKIP_ON_ERROR(cudnnSetConvolutionGroupCount(c.cd, int(p.groups)));
  CUDNN_SKIP_ON_ERROR(cudnnSetConvolutionMathType(c.cd, CUDNN_TENSOR_OP_MATH));

  const std::string key = std::string(pass == Pass::fwd_bn_relu ? "conv_fwd" : pass_name(pass)) + l.name +
                          std::to_string(p.n);
  auto found = algo_cache().find(key);
  int algo = found == algo_cache().end() ? -1 : found->second;
  constexpr int kMax = 16;
  int returned = 0;
  if (algo < 0) {
    if (pass == Pass::bwd_data) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
      CUDNN_SKIP_ON_ERROR(cudnnFindConvolutionBackwardDataAlgorithmEx(c.h, c.wd, b.w.p, c.yd, b.dy.p, c.cd, c.xd, b.dx.p, kMax,
                                                           &returned, perf, ws.p, kWorkspace));
      for (int i = 0; i < returned && algo < 0; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kWorkspace) algo = int(perf[i].algo);
    } else if (pass == Pass::bwd_weight) {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
      CUDNN_SKIP_ON_ERROR(cudnnFindConvolutionBackwardFilterAlgorithmEx(c.h, c.xd, b.x.p, c.yd, b.dy.p, c.cd, c.wd, b.dw.p, kMax,
                                                             &returned, perf, ws.p, kWorkspace));
      for (int i = 0; i < returned && algo < 0; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kWorkspace) algo = int(perf[i].algo);
    } else {
      cudnnConvolutionFwdAlgoPerf_t perf[kMax];
      CUDNN_SKIP_ON_ERROR(cudnnFindConvolutionForwardAlgorithmEx(c.h, c.xd, b.x.p, c.wd, b.w.p, c.cd, c.yd, b.y.p, kMax,
                                                      &returned, perf, ws.p, kWorkspace));
      for (int i = 0; i < returned && algo < 0; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kWorkspace) algo = int(perf[i].algo);
    }
    if (algo < 0) return state.SkipWithError("cudnnFind*AlgorithmEx: no algorithm fits a 128 MB workspace");
    algo_cache()[key] = algo;
  }
  const float one = 1.0f, zero = 0.0f;
  if (pass == Pass::fwd_bn_relu) {
    CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&c.bnd));
    CUDNN_SKIP_ON_ERROR(cudnnDeriveBNTensorDescriptor(c.bnd, c.yd, CUDNN_BATCHNORM_SPATIAL));
    CUDNN_SKIP_ON_ERROR(cudnnCreateActivationDescriptor(&c.act));
    CUDNN_SKIP_ON_ERROR(cudnnSetActivationDescriptor(c.act, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  auto launch = [&] {
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    switch (pass) {
      case Pass::fwd:
      case Pass::fwd_bn_relu:
        s = cudnnConvolutionForward(c.h, &one, c.xd, b.x.p, c.wd, b.w.p, c.cd, cudnnConvolutionFwdAlgo_t(algo), ws.p,
                                    kWorkspace, &zero, c.yd, b.y.p);
        if (pass == Pass::fwd_bn_relu && s == CUDNN_STATUS_SUCCESS && unfused) {
          // scale / shift stand in for gamma / beta; the statistics are random.
          s = cudnnBatchNormalizationForwardInference(c.h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, c.yd, b.y.p, c.yd,
                                                      b.y.p, c.bnd, b.scale.p, b.shift.p, mean.p, var.p, 1e-5);
          if (s == CUDNN_STATUS_SUCCESS) s = cudnnActivationForward(c.h, c.act, &one, c.yd, b.y.p, &zero, c.yd, b.y.p);
        }
        break;
      case Pass::bwd_data:
        s = cudnnConvolutionBackwardData(c.h, &one, c.wd, b.w.p, c.yd, b.dy.p, c.cd,
                                         cudnnConvolutionBwdDataAlgo_t(algo), ws.p, kWorkspace, &zero, c.xd, b.dx.p);
        break;
      case Pass::bwd_weight:
        s = cudnnConvolutionBackwardFilter(c.h, &one, c.xd, b.x.p, c.yd, b.dy.p, c.cd,
                                           cudnnConvolutionBwdFilterAlgo_t(algo), ws.p, kWorkspace, &zero, c.wd,
                                           b.dw.p);
        break;
    }
    if (s != CUDNN_STATUS_SUCCESS) st = s;
  };
  launch();
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  CUDNN_SKIP_ON_ERROR(st);
  run_timed(state, launch);
  CUDNN_SKIP_ON_ERROR(st);
  set_flops(state, p.forward_flops());
}
#endif

// ---- registration -----------------------------------------------------------------------------

void add(const std::string& name, void (*fn)(benchmark::State&, Layer, Pass), const Layer& l, Pass pass) {
  benchmark::RegisterBenchmark(name.c_str(), fn, l, pass)->UseManualTime()->Unit(benchmark::kMillisecond);
}

const bool registered = [] {
  const Pass passes[] = {Pass::fwd, Pass::bwd_data, Pass::bwd_weight};
  for (const Layer& l : resnet50())
    for (Pass pass : passes) {
      add(bench_name(pass, l, ""), bench_ours, l, pass);
#ifdef GRAFT_HAVE_CUDNN
      benchmark::RegisterBenchmark(bench_name(pass, l, "@cudnn").c_str(), bench_cudnn, l, pass, false)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
#endif
    }
  for (const Layer& l : vgg16()) {
    add(bench_name(Pass::fwd, l, ""), bench_ours, l, Pass::fwd);
#ifdef GRAFT_HAVE_CUDNN
    benchmark::RegisterBenchmark(bench_name(Pass::fwd, l, "@cudnn").c_str(), bench_cudnn, l, Pass::fwd, false)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
#endif
  }
  for (const char* n : {"r50_l1_1x1_64_256", "r50_l2_3x3_128", "r50_l3_3x3_256", "r50_l4_1x1_2048_512"})
    for (const Layer& l : resnet50())
      if (std::string(l.name) == n) {
        add(bench_name(Pass::fwd_bn_relu, l, ""), bench_ours, l, Pass::fwd_bn_relu);
#ifdef GRAFT_HAVE_CUDNN
        benchmark::RegisterBenchmark(bench_name(Pass::fwd_bn_relu, l, "@cudnn_unfused").c_str(), bench_cudnn, l,
                                     Pass::fwd_bn_relu, true)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
#endif
      }
  return true;
}();

}  // namespace
}  // namespace graft::bench
