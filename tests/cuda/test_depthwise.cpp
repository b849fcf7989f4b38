// CUDA depthwise convolution (kernels/cuda/depthwise.h) against its CPU twin
// (kernels/cpu/depthwise.h): forward (with each fused epilogue), backward-data
// and backward-weight, f32/f16/bf16, on every depthwise layer of MobileNetV2
// and EfficientNet-B0 (batch 1-2) and odd shapes (C not a multiple of the
// vector width, 1x1 images, odd sizes with stride 2, dilation, asymmetric
// padding, other kernel sizes, misaligned pointers). Inputs are rounded to the
// dtype first, so the twin sees the same values; tolerances are
// default_tolerance(dtype) relative to max |reference|, except f32
// backward-weight (see there). The tile index arithmetic and the argument
// checks are tested without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kernels/cpu/depthwise.h"
#include "kernels/cuda/depthwise.h"
#include "kernels/cuda/depthwise_index.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft {
namespace {

using kernels::cuda::Conv2dParams;
using kernels::cuda::DataType;
using kernels::cuda::DwActivation;
using kernels::cuda::DwEpilogue;
using testing::close_to_twin;
using testing::default_tolerance;
using testing::DeviceArray;
using testing::expect_invalid;
using testing::round_to;
using testing::ShiftedArray;

const DataType kDtypes[] = {DataType::f32, DataType::f16, DataType::bf16};

struct Shape {
  std::string name;
  int64_t n, h, w, c, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
};

// Square kernel k, stride s, symmetric padding (k - 1) / 2, no dilation.
Shape layer(const std::string& name, int64_t n, int64_t hw, int64_t c, int64_t k, int64_t s) {
  const int64_t p = (k - 1) / 2;
  return {name, n, hw, hw, c, k, k, s, s, p, p, p, p, 1, 1};
}

Conv2dParams params_of(const Shape& s) {
  Conv2dParams p;
  p.n = s.n, p.h = s.h, p.w = s.w, p.c = s.c, p.o = s.c, p.groups = s.c;
  p.kh = s.kh, p.kw = s.kw, p.stride_h = s.sh, p.stride_w = s.sw;
  p.pad_top = s.pt, p.pad_left = s.pl, p.pad_bottom = s.pb, p.pad_right = s.pr;
  p.dilation_h = s.dh, p.dilation_w = s.dw;
  return p;
}

// The depthwise layers of MobileNetV2 (224x224 input; stage numbers of the
// paper's table) and EfficientNet-B0 (torchvision: symmetric padding).
std::vector<Shape> network_layers() {
  return {
      layer("mbv2_b1_3x3_s1_32", 1, 112, 32, 3, 1),   layer("mbv2_b2_3x3_s2_96", 2, 112, 96, 3, 2),
      layer("mbv2_b2_3x3_s1_144", 1, 56, 144, 3, 1),  layer("mbv2_b3_3x3_s2_144", 2, 56, 144, 3, 2),
      layer("mbv2_b3_3x3_s1_192", 2, 28, 192, 3, 1),  layer("mbv2_b4_3x3_s2_192", 1, 28, 192, 3, 2),
      layer("mbv2_b4_3x3_s1_384", 2, 14, 384, 3, 1),  layer("mbv2_b5_3x3_s1_576", 1, 14, 576, 3, 1),
      layer("mbv2_b6_3x3_s2_576", 2, 14, 576, 3, 2),  layer("mbv2_b6_3x3_s1_960", 2, 7, 960, 3, 1),
      layer("effb0_3x3_s1_32", 1, 112, 32, 3, 1),     layer("effb0_3x3_s2_96", 2, 112, 96, 3, 2),
      layer("effb0_3x3_s1_144", 1, 56, 144, 3, 1),    layer("effb0_5x5_s2_144", 2, 56, 144, 5, 2),
      layer("effb0_5x5_s1_240", 1, 28, 240, 5, 1),    layer("effb0_3x3_s2_240", 2, 28, 240, 3, 2),
      layer("effb0_3x3_s1_480", 1, 14, 480, 3, 1),    layer("effb0_5x5_s1_480", 2, 14, 480, 5, 1),
      layer("effb0_5x5_s1_672", 1, 14, 672, 5, 1),    layer("effb0_5x5_s2_672", 2, 14, 672, 5, 2),
      layer("effb0_5x5_s1_1152", 2, 7, 1152, 5, 1),   layer("effb0_3x3_s1_1152", 1, 7, 1152, 3, 1),
  };
}

// Shapes off the fast paths' comfortable middle.
std::vector<Shape> odd_shapes() {
  return {
      layer("c1_3x3_s1", 2, 9, 1, 3, 1),  // groups == c == 1
      layer("c3_3x3_s2", 2, 7, 3, 3, 2),
      layer("c7_5x5_s1", 1, 11, 7, 5, 1),
      {"c33_3x3_s2_odd", 2, 15, 13, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      layer("hw1_3x3_c16", 3, 1, 16, 3, 1),  // 1x1 image: only the centre tap
      layer("hw1_5x5_s2_c8", 2, 1, 8, 5, 2),
      {"odd_3x3_s2_c64", 2, 15, 17, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {"odd_5x5_s2_c32", 1, 9, 11, 32, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1},
      {"dil2_3x3_c32", 2, 12, 10, 32, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
      {"dil2_5x5_s2_c16", 1, 17, 15, 16, 5, 5, 2, 2, 4, 4, 4, 4, 2, 2},
      {"asym_3x3_s2_pad0011_c32", 2, 16, 16, 32, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1},  // TF "same", phase 0
      {"asym_3x3_s2_pad1001_c40", 1, 13, 14, 40, 3, 3, 2, 2, 1, 0, 0, 1, 1, 1},
      {"asym_5x5_s1_pad2130_c24", 2, 10, 9, 24, 5, 5, 1, 1, 2, 1, 3, 0, 1, 1},
      {"bigpad_3x3_s1_pad3_c16", 1, 6, 5, 16, 3, 3, 1, 1, 3, 3, 3, 3, 1, 1},  // columns no tap reaches
      {"bigpad_3x3_s2_pad3_c16", 1, 6, 7, 16, 3, 3, 2, 2, 3, 3, 3, 3, 1, 1},
      {"k7_s1_c48", 1, 14, 14, 48, 7, 7, 1, 1, 3, 3, 3, 3, 1, 1},
      {"k1_s2_c24", 2, 9, 9, 24, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1},
      {"k3x5_s2x1_c16", 1, 11, 12, 16, 3, 5, 2, 1, 1, 2, 1, 2, 1, 1},
      {"s3_3x3_c16", 1, 13, 13, 16, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1},
      layer("c4_3x3_s1", 2, 10, 4, 3, 1),          // one f32 vector per pixel
      layer("c264_3x3_s2", 1, 9, 264, 3, 2),       // 33 bf16 vectors: two channel tiles
      layer("c1000_5x5_s1", 1, 6, 1000, 5, 1),     // f32: partial last channel tile
      layer("c12_3x3_s1", 1, 8, 12, 3, 1),         // f32 vectors but not bf16 ones
  };
}

std::vector<float> random_values(size_t n, unsigned seed) { return testing::uniform_values(n, -1.f, 1.f, seed); }

float activate(float v, DwActivation act) {
  switch (act) {
    case DwActivation::relu: return std::max(v, 0.f);
    case DwActivation::relu6: return std::min(std::max(v, 0.f), 6.f);
    case DwActivation::silu: return v / (1.f + std::exp(-v));
    default: return v;
  }
}

const char* act_name(DwActivation a) {
  switch (a) {
    case DwActivation::relu: return "relu";
    case DwActivation::relu6: return "relu6";
    case DwActivation::silu: return "silu";
    default: return "none";
  }
}

std::string what(const Shape& s, DataType t, const std::string& op) {
  return op + " " + s.name + " " + kernels::cuda::dtype_name(t);
}

// Element shift of every activation pointer (1: misaligned, the scalar path).
void check_forward(const Shape& s, DataType t, size_t shift, DwActivation act, bool scale, bool bias, unsigned seed) {
  const Conv2dParams p = params_of(s);
  const size_t nx = size_t(p.n * p.h * p.w * p.c), ny = size_t(p.n * p.out_h() * p.out_w() * p.c);
  const size_t nw = size_t(p.c * p.kh * p.kw);
  const std::vector<float> x = round_to(random_values(nx, seed), t), w = round_to(random_values(nw, seed + 1), t);
  const std::vector<float> sc = testing::uniform_values(size_t(p.c), 0.5f, 2.f, seed + 2);
  const std::vector<float> sh = testing::uniform_values(size_t(p.c), -1.f, 1.f, seed + 3);
  std::vector<float> want(ny);
  kernels::cpu::depthwise_conv2d_forward(p, x.data(), w.data(), nullptr, want.data());
  for (size_t i = 0; i < ny; ++i) {
    const size_t c = i % size_t(p.c);
    want[i] = activate(want[i] * (scale ? sc[c] : 1.f) + (bias ? sh[c] : 0.f), act);
  }
  ShiftedArray dx(x, t, shift), dy(ny, t, shift);
  DeviceArray dw(w, t), dsc(sc), dsh(sh);
  DwEpilogue ep;
  ep.scale = scale ? dsc.f32() : nullptr;
  ep.shift = bias ? dsh.f32() : nullptr;
  ep.act = act;
  kernels::cuda::depthwise_conv2d_forward(dx.ptr(), dw.get(), dy.ptr(), t, p, ep, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  const std::string label = what(s, t, "forward") + " shift " + std::to_string(shift) + " " + act_name(act) +
                            (scale ? " scale" : "") + (bias ? " shift" : "");
  EXPECT_TRUE(close_to_twin(dy.download(), want, default_tolerance(t), label));
}

void check_backward_data(const Shape& s, DataType t, size_t shift, unsigned seed) {
  const Conv2dParams p = params_of(s);
  const size_t nx = size_t(p.n * p.h * p.w * p.c), ny = size_t(p.n * p.out_h() * p.out_w() * p.c);
  const size_t nw = size_t(p.c * p.kh * p.kw);
  const std::vector<float> g = round_to(random_values(ny, seed), t), w = round_to(random_values(nw, seed + 1), t);
  std::vector<float> want(nx);
  kernels::cpu::depthwise_conv2d_backward_data(p, g.data(), w.data(), want.data());
  ShiftedArray dg(g, t, shift), dx(nx, t, shift);
  DeviceArray dw(w, t);
  kernels::cuda::depthwise_conv2d_backward_data(dg.ptr(), dw.get(), dx.ptr(), t, p, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_TRUE(close_to_twin(dx.download(), want, default_tolerance(t),
                            what(s, t, "backward_data") + " shift " + std::to_string(shift)));
}

// f32 backward-weight sums up to N * outH * outW (25088 here) products in a
// different order from the twin (which adds them row by row per thread), so
// its tolerance is 5e-5 rather than 1e-5; f16/bf16 are limited by the output rounding.
void check_backward_weight(const Shape& s, DataType t, size_t shift, unsigned seed) {
  const Conv2dParams p = params_of(s);
  const size_t nx = size_t(p.n * p.h * p.w * p.c), ny = size_t(p.n * p.out_h() * p.out_w() * p.c);
  const size_t nw = size_t(p.c * p.kh * p.kw);
  const std::vector<float> x = round_to(random_values(nx, seed), t), g = round_to(random_values(ny, seed + 1), t);
  std::vector<float> want(nw);
  kernels::cpu::depthwise_conv2d_backward_weight(p, x.data(), g.data(), want.data());
  ShiftedArray dx(x, t, shift), dg(g, t, shift);
  DeviceArray dw(nw, t);
  kernels::cuda::depthwise_conv2d_backward_weight(dx.ptr(), dg.ptr(), dw.get(), t, p, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  const double tol = t == DataType::f32 ? 5e-5 : default_tolerance(t);
  const std::vector<float> got = dw.download();
  EXPECT_TRUE(close_to_twin(got, want, tol, what(s, t, "backward_weight") + " shift " + std::to_string(shift)));
  // Deterministic: a second run gives the same bits.
  dw.poison();
  kernels::cuda::depthwise_conv2d_backward_weight(dx.ptr(), dg.ptr(), dw.get(), t, p, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<float> again = dw.download();
  EXPECT_TRUE(std::equal(got.begin(), got.end(), again.begin())) << what(s, t, "backward_weight") << " not repeatable";
}

TEST(CudaDepthwise, NetworkLayersMatchTwin) {
  REQUIRE_GPU();
  unsigned seed = 100;
  for (const Shape& s : network_layers())
    for (DataType t : kDtypes) {
      check_forward(s, t, 0, DwActivation::none, false, false, seed += 10);
      check_backward_data(s, t, 0, seed += 10);
      check_backward_weight(s, t, 0, seed += 10);
    }
}

TEST(CudaDepthwise, OddShapesMatchTwin) {
  REQUIRE_GPU();
  unsigned seed = 5000;
  for (const Shape& s : odd_shapes())
    for (DataType t : kDtypes) {
      check_forward(s, t, 0, DwActivation::none, false, true, seed += 10);
      check_backward_data(s, t, 0, seed += 10);
      check_backward_weight(s, t, 0, seed += 10);
    }
}

// Pointers one element past 16-byte alignment: the scalar (generic) kernels.
TEST(CudaDepthwise, MisalignedPointersMatchTwin) {
  REQUIRE_GPU();
  const Shape shapes[] = {layer("mis_3x3_s1_c64", 2, 10, 64, 3, 1), layer("mis_3x3_s2_c32", 1, 11, 32, 3, 2),
                          layer("mis_5x5_s1_c16", 1, 9, 16, 5, 1),
                          {"mis_dil2_c8", 1, 9, 8, 8, 3, 3, 1, 1, 2, 1, 2, 1, 2, 2}};
  unsigned seed = 9000;
  for (const Shape& s : shapes)
    for (DataType t : kDtypes) {
      check_forward(s, t, 1, DwActivation::relu6, true, true, seed += 10);
      check_backward_data(s, t, 1, seed += 10);
      check_backward_weight(s, t, 1, seed += 10);
    }
}

// Each activation, with and without scale/shift, on a specialised shape, a
// generic vector shape and a scalar shape.
TEST(CudaDepthwise, ForwardEpiloguesMatchTwin) {
  REQUIRE_GPU();
  const Shape shapes[] = {layer("epi_3x3_s1_c96", 2, 12, 96, 3, 1), layer("epi_5x5_s2_c48", 1, 13, 48, 5, 2),
                          {"epi_dil2_c32", 1, 10, 10, 32, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
                          layer("epi_3x3_c7", 2, 8, 7, 3, 1)};
  const DwActivation acts[] = {DwActivation::none, DwActivation::relu, DwActivation::relu6, DwActivation::silu};
  unsigned seed = 12000;
  for (const Shape& s : shapes)
    for (DataType t : kDtypes)
      for (DwActivation a : acts) {
        check_forward(s, t, 0, a, true, true, seed += 10);
        check_forward(s, t, 0, a, false, true, seed += 10);
        check_forward(s, t, 0, a, true, false, seed += 10);
      }
}

// An empty batch: forward and backward-data have nothing to write, backward-weight writes zeros.
TEST(CudaDepthwise, EmptyBatchGivesZeroWeightGradient) {
  REQUIRE_GPU();
  Shape s = layer("empty", 0, 8, 16, 3, 1);
  const Conv2dParams p = params_of(s);
  for (DataType t : kDtypes) {
    DeviceArray x(1, t), y(1, t), w(size_t(p.c * p.kh * p.kw), t);
    kernels::cuda::depthwise_conv2d_forward(x.get(), w.get(), y.get(), t, p, {}, nullptr);
    kernels::cuda::depthwise_conv2d_backward_data(y.get(), w.get(), x.get(), t, p, nullptr);
    kernels::cuda::depthwise_conv2d_backward_weight(x.get(), y.get(), w.get(), t, p, nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    for (float v : w.download()) ASSERT_EQ(v, 0.f) << kernels::cuda::dtype_name(t);
  }
}

// ---- without a GPU ------------------------------------------------------------------------------

// The specialised kernels' column/tap pairing against the direct rules, for
// every tile start, pad and image width a kernel sees.
TEST(CudaDepthwise, TileIndexArithmeticMatchesDirectFormulas) {
  namespace ix = kernels::cuda::dw_index;
  constexpr int TW = ix::kTileW;
  for (int K : {3, 5})
    for (int S : {1, 2}) {
      ASSERT_EQ(TW % S, 0);
      for (int pl = 0; pl <= 4; ++pl)
        for (int pr = 0; pr <= 3; ++pr)
          for (int W = 1; W <= 19; ++W) {
            const int OW = (W + pl + pr - K) / S + 1;
            if (OW < 1) continue;
            // Forward / backward-weight: output tiles.
            for (int ow0 = 0; ow0 < OW; ow0 += TW)
              for (int t = 0; t < TW && ow0 + t < OW; ++t) {
                std::set<std::pair<int, int>> tiled, direct;  // (tap, input column)
                const int iw0 = ow0 * S - pl;
                for (int j = 0; j < ix::fwd_columns(K, S); ++j) {
                  const int b = ix::fwd_tap(j, t, S), iw = iw0 + j;
                  if (b >= 0 && b < K && iw >= 0 && iw < W) tiled.insert({b, iw});
                }
                for (int b = 0; b < K; ++b) {
                  const int iw = (ow0 + t) * S - pl + b;
                  if (iw >= 0 && iw < W) direct.insert({b, iw});
                }
                ASSERT_EQ(tiled, direct) << "forward K " << K << " S " << S << " pl " << pl << " ow " << ow0 + t;
              }
            // Backward-data: input tiles.
            const int P = pl % S;
            for (int iw0 = 0; iw0 < W; iw0 += TW) {
              ASSERT_EQ((iw0 + pl) % S, P);
              const int qb = (iw0 + pl) / S;
              for (int t = 0; t < TW && iw0 + t < W; ++t) {
                std::set<std::pair<int, int>> tiled, direct;  // (tap, grad_y column)
                for (int j = ix::bwd_jlo(K, S, P); j <= ix::bwd_jhi(S, P); ++j) {
                  const int b = ix::bwd_tap(P, t, S, j), q = qb + j;
                  if (b >= 0 && b < K && q >= 0 && q < OW) tiled.insert({b, q});
                }
                const int iw = iw0 + t;
                for (int b = 0; b < K; ++b) {
                  const int tw = iw + pl - b;
                  if (tw >= 0 && tw % S == 0 && tw / S < OW) direct.insert({b, tw / S});
                }
                ASSERT_EQ(tiled, direct) << "backward-data K " << K << " S " << S << " pl " << pl << " iw " << iw;
              }
            }
          }
    }
}

TEST(CudaDepthwise, BadArgumentsThrowBeforeAnyCudaCall) {
  const Shape ok = layer("ok", 2, 8, 16, 3, 1);
  void* fake = reinterpret_cast<void*>(uintptr_t(0x1000));  // never dereferenced: the checks throw first
  const std::string fwd = "cuda::depthwise_conv2d_forward", bwd = "cuda::depthwise_conv2d_backward_data",
                    bww = "cuda::depthwise_conv2d_backward_weight";
  auto forward = [&](const Conv2dParams& p, DataType t = DataType::f32, DwEpilogue ep = {}, void* x = nullptr) {
    kernels::cuda::depthwise_conv2d_forward(x ? x : fake, fake, fake, t, p, ep, nullptr);
  };
  auto backward_data = [&](const Conv2dParams& p) {
    kernels::cuda::depthwise_conv2d_backward_data(fake, fake, fake, DataType::bf16, p, nullptr);
  };
  auto backward_weight = [&](const Conv2dParams& p) {
    kernels::cuda::depthwise_conv2d_backward_weight(fake, fake, fake, DataType::f16, p, nullptr);
  };
  Conv2dParams p = params_of(ok);
  expect_invalid([&] { forward(p, static_cast<DataType>(7)); }, fwd, "dtype");
  {
    Conv2dParams q = p;
    q.groups = 1;
    expect_invalid([&] { forward(q); }, fwd, "not depthwise");
    q = p, q.o = 32;
    expect_invalid([&] { backward_data(q); }, bwd, "not depthwise");
    q = p, q.stride_w = 0;
    expect_invalid([&] { backward_weight(q); }, bww, "stride");
    q = p, q.dilation_h = 0;
    expect_invalid([&] { forward(q); }, fwd, "dilation");
    q = p, q.kh = 0;
    expect_invalid([&] { backward_data(q); }, bwd, "kernel");
    q = p, q.pad_right = -1;
    expect_invalid([&] { forward(q); }, fwd, "negative padding");
    q = p, q.h = -2;
    expect_invalid([&] { backward_weight(q); }, bww, "negative input size");
    q = p, q.kh = 11, q.pad_top = q.pad_bottom = 0;  // 11 > 8: no output row
    expect_invalid([&] { forward(q); }, fwd, "no output");
    q = p, q.n = 256, q.h = q.w = 224, q.c = q.o = q.groups = 256;  // 3.3e9 elements
    expect_invalid([&] { backward_data(q); }, bwd, "32-bit");
    expect_invalid([&] { backward_weight(q); }, bww, "32-bit");
    q = p, q.kh = q.kw = 300, q.pad_top = q.pad_bottom = q.pad_left = q.pad_right = 150;  // 90000 taps
    expect_invalid([&] { forward(q); }, fwd, "kh * kw");
    // More channels than the channel tiles' grid.y (<= 65535 blocks of 32 vectors) can hold.
    q = p, q.c = q.o = q.groups = 2000001;
    expect_invalid([&] { backward_weight(q); }, bww, "c too large");
    // c * kh * kw past int32 (the finish kernel's and the filter's indices).
    q = p, q.c = q.o = q.groups = 2000000, q.kh = q.kw = 33, q.pad_top = q.pad_bottom = q.pad_left = q.pad_right = 16;
    expect_invalid([&] { backward_weight(q); }, bww, "filter too large");
  }
  DwEpilogue bad_act;
  bad_act.act = static_cast<DwActivation>(9);
  expect_invalid([&] { forward(p, DataType::f32, bad_act); }, fwd, "activation");
  expect_invalid([&] { kernels::cuda::depthwise_conv2d_forward(nullptr, fake, fake, DataType::f32, p, {}, nullptr); },
                 fwd, "x is null");
  expect_invalid([&] { kernels::cuda::depthwise_conv2d_forward(fake, nullptr, fake, DataType::f32, p, {}, nullptr); },
                 fwd, "w is null");
  expect_invalid(
      [&] { kernels::cuda::depthwise_conv2d_backward_data(fake, fake, nullptr, DataType::f32, p, nullptr); }, bwd,
      "grad_x is null");
  expect_invalid(
      [&] { kernels::cuda::depthwise_conv2d_backward_weight(nullptr, fake, fake, DataType::f32, p, nullptr); }, bww,
      "x is null");
  expect_invalid(
      [&] { kernels::cuda::depthwise_conv2d_backward_weight(fake, fake, nullptr, DataType::f32, p, nullptr); }, bww,
      "grad_w is null");
}

}  // namespace
}  // namespace graft
