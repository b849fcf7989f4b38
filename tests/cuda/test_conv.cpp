// Implicit-GEMM convolution on the GPU (kernels/cuda/conv.h) against the CPU
// twin (kernels/cpu/conv.h): forward (plain and with each fused epilogue),
// backward-data and backward-weight, f32 (TF32), f16, bf16, on every distinct
// non-depthwise conv layer shape of ResNet-50, VGG-16, MobileNetV2 and
// EfficientNet-B0 (spatial sizes reduced where the shape class is kept, to
// keep the CPU twin quick) plus odd shapes. Inputs are multiples of 1/64 in
// [-1, 1], exact in every dtype (and in TF32), so one twin result serves all
// three dtypes and only accumulation order and the output rounding differ.
//
// Host-only (no GPU needed): the launchers' argument checks, the gather
// index helpers (kernels/cuda/conv_index.h) run as a host implicit GEMM
// against the twin, the 16-byte-chunk contiguity the vector path assumes,
// and the shared-memory layout (ldmatrix simulated on the lane addresses
// against mma.cuh's fragment layouts, bank conflicts, tile bounds).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/conv.h"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/conv_index.h"
#include "tests/cuda/cuda_test_util.h"

namespace graft::testing {
namespace {

namespace kc = kernels::cuda;
namespace kcpu = kernels::cpu;
namespace ci = kernels::cuda::convidx;
using kc::Conv2dParams;

const DataType kTypes[] = {DataType::f32, DataType::f16, DataType::bf16};

// TF32 keeps 10 mantissa bits: 2e-3 of the largest reference value for f32.
double conv_tolerance(DataType t) { return t == DataType::f32 ? 2e-3 : default_tolerance(t); }
// For the grid inputs below (multiples of 1/64 in [-1, 1]: exact in TF32,
// products multiples of 2^-12, partial sums far below 2^12) the f32 (TF32)
// result is exact in any accumulation order, so f32 can be held much tighter
// than TF32's general 2e-3: under 2e-3 of a large layer's max |y| (~50) a
// dropped or misplaced tap with |x * w| < 0.1 (about half of them) passes.
double exact_input_tolerance(DataType t) { return t == DataType::f32 ? 1e-4 : default_tolerance(t); }

struct Shape {
  const char* name;
  Conv2dParams p;
};

Conv2dParams conv(int64_t n, int64_t hw, int64_t c, int64_t o, int64_t k, int64_t stride, int64_t pad,
                  int64_t groups = 1, int64_t dilation = 1) {
  Conv2dParams p;
  p.n = n, p.h = hw, p.w = hw, p.c = c, p.o = o, p.kh = k, p.kw = k;
  p.stride_h = p.stride_w = stride;
  p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = pad;
  p.groups = groups;
  p.dilation_h = p.dilation_w = dilation;
  return p;
}
Conv2dParams general(int64_t n, int64_t h, int64_t w, int64_t c, int64_t o, int64_t kh, int64_t kw, int64_t sh,
                     int64_t sw, int64_t pt, int64_t pl, int64_t pb, int64_t pr, int64_t dh, int64_t dw,
                     int64_t groups) {
  Conv2dParams p;
  p.n = n, p.h = h, p.w = w, p.c = c, p.o = o, p.kh = kh, p.kw = kw, p.stride_h = sh, p.stride_w = sw;
  p.pad_top = pt, p.pad_left = pl, p.pad_bottom = pb, p.pad_right = pr;
  p.dilation_h = dh, p.dilation_w = dw, p.groups = groups;
  return p;
}

// Every distinct conv layer (depthwise excluded: kernels/cuda/depthwise.h) of
// the four networks at 224x224 input, as (name: network, stage, kernel,
// channels). Spatial size: the real one where the layer is small, else a
// smaller one with the same kernel, stride and padding (noted "was N").
//
// | name                     | N | H=W (was) | C    | O    | k | s | pad |
// |--------------------------|---|-----------|------|------|---|---|-----|
// ResNet-50 (torchvision, stride on the 3x3)
// | r50_conv1                | 1 | 48 (224)  | 3    | 64   | 7 | 2 | 3   |
// | r50_l1_1x1_64_64         | 1 | 28 (56)   | 64   | 64   | 1 | 1 | 0   |
// | r50_l1_3x3_64            | 1 | 28 (56)   | 64   | 64   | 3 | 1 | 1   |
// | r50_l1_1x1_64_256        | 1 | 28 (56)   | 64   | 256  | 1 | 1 | 0   |
// | r50_l1_1x1_256_64        | 1 | 28 (56)   | 256  | 64   | 1 | 1 | 0   |
// | r50_l2_1x1_256_128       | 1 | 28 (56)   | 256  | 128  | 1 | 1 | 0   |
// | r50_l2_3x3_128_s2        | 1 | 28 (56)   | 128  | 128  | 3 | 2 | 1   |
// | r50_l2_ds_256_512_s2     | 1 | 28 (56)   | 256  | 512  | 1 | 2 | 0   |
// | r50_l2_1x1_128_512       | 1 | 14 (28)   | 128  | 512  | 1 | 1 | 0   |
// | r50_l2_1x1_512_128       | 1 | 14 (28)   | 512  | 128  | 1 | 1 | 0   |
// | r50_l2_3x3_128           | 2 | 14 (28)   | 128  | 128  | 3 | 1 | 1   |
// | r50_l3_1x1_512_256       | 1 | 14 (28)   | 512  | 256  | 1 | 1 | 0   |
// | r50_l3_3x3_256_s2        | 1 | 14 (28)   | 256  | 256  | 3 | 2 | 1   |
// | r50_l3_ds_512_1024_s2    | 1 | 14 (28)   | 512  | 1024 | 1 | 2 | 0   |
// | r50_l3_1x1_256_1024      | 1 | 14        | 256  | 1024 | 1 | 1 | 0   |
// | r50_l3_1x1_1024_256      | 1 | 14        | 1024 | 256  | 1 | 1 | 0   |
// | r50_l3_3x3_256           | 1 | 14        | 256  | 256  | 3 | 1 | 1   |
// | r50_l4_1x1_1024_512      | 1 | 14        | 1024 | 512  | 1 | 1 | 0   |
// | r50_l4_3x3_512_s2        | 1 | 14        | 512  | 512  | 3 | 2 | 1   |
// | r50_l4_ds_1024_2048_s2   | 1 | 14        | 1024 | 2048 | 1 | 2 | 0   |
// | r50_l4_1x1_512_2048      | 1 | 7         | 512  | 2048 | 1 | 1 | 0   |
// | r50_l4_1x1_2048_512      | 1 | 7         | 2048 | 512  | 1 | 1 | 0   |
// | r50_l4_3x3_512           | 2 | 7         | 512  | 512  | 3 | 1 | 1   |
// VGG-16 (all 3x3, stride 1, pad 1)
// | vgg_3_64                 | 1 | 32 (224)  | 3    | 64   | 3 | 1 | 1   |
// | vgg_64_64                | 1 | 32 (224)  | 64   | 64   | 3 | 1 | 1   |
// | vgg_64_128               | 1 | 16 (112)  | 64   | 128  | 3 | 1 | 1   |
// | vgg_128_128              | 1 | 16 (112)  | 128  | 128  | 3 | 1 | 1   |
// | vgg_128_256              | 1 | 14 (56)   | 128  | 256  | 3 | 1 | 1   |
// | vgg_256_256              | 1 | 14 (56)   | 256  | 256  | 3 | 1 | 1   |
// | vgg_256_512              | 1 | 14 (28)   | 256  | 512  | 3 | 1 | 1   |
// | vgg_512_512              | 1 | 14 (28/14)| 512  | 512  | 3 | 1 | 1   |
// MobileNetV2 (stem 3x3 s2; every other non-depthwise conv is 1x1)
// | mv2_stem                 | 1 | 32 (224)  | 3    | 32   | 3 | 2 | 1   |
// | mv2_32_16                | 1 | 28 (112)  | 32   | 16   | 1 | 1 | 0   |
// | mv2_16_96                | 1 | 28 (112)  | 16   | 96   | 1 | 1 | 0   |
// | mv2_96_24                | 1 | 28 (56)   | 96   | 24   | 1 | 1 | 0   |
// | mv2_24_144               | 1 | 28 (56)   | 24   | 144  | 1 | 1 | 0   |
// | mv2_144_24               | 1 | 28 (56)   | 144  | 24   | 1 | 1 | 0   |
// | mv2_144_32               | 1 | 28        | 144  | 32   | 1 | 1 | 0   |
// | mv2_32_192               | 1 | 28        | 32   | 192  | 1 | 1 | 0   |
// | mv2_192_32               | 1 | 28        | 192  | 32   | 1 | 1 | 0   |
// | mv2_192_64               | 1 | 14        | 192  | 64   | 1 | 1 | 0   |
// | mv2_64_384               | 1 | 14        | 64   | 384  | 1 | 1 | 0   |
// | mv2_384_64               | 1 | 14        | 384  | 64   | 1 | 1 | 0   |
// | mv2_384_96               | 1 | 14        | 384  | 96   | 1 | 1 | 0   |
// | mv2_96_576               | 1 | 14        | 96   | 576  | 1 | 1 | 0   |
// | mv2_576_96               | 1 | 14        | 576  | 96   | 1 | 1 | 0   |
// | mv2_576_160              | 1 | 7         | 576  | 160  | 1 | 1 | 0   |
// | mv2_160_960              | 1 | 7         | 160  | 960  | 1 | 1 | 0   |
// | mv2_960_160              | 1 | 7         | 960  | 160  | 1 | 1 | 0   |
// | mv2_960_320              | 1 | 7         | 960  | 320  | 1 | 1 | 0   |
// | mv2_320_1280             | 1 | 7         | 320  | 1280 | 1 | 1 | 0   |
// EfficientNet-B0 (stem 3x3 s2 = mv2_stem; the 1x1 layers not listed above; SE on 1x1 maps)
// | eb0_16_96 .. as mv2      |   |           |      |      |   |   |     |
// | eb0_144_40               | 1 | 28        | 144  | 40   | 1 | 1 | 0   |
// | eb0_40_240               | 1 | 28        | 40   | 240  | 1 | 1 | 0   |
// | eb0_240_40               | 1 | 28        | 240  | 40   | 1 | 1 | 0   |
// | eb0_240_80               | 1 | 14        | 240  | 80   | 1 | 1 | 0   |
// | eb0_80_480               | 1 | 14        | 80   | 480  | 1 | 1 | 0   |
// | eb0_480_80               | 1 | 14        | 480  | 80   | 1 | 1 | 0   |
// | eb0_480_112              | 1 | 14        | 480  | 112  | 1 | 1 | 0   |
// | eb0_112_672              | 1 | 14        | 112  | 672  | 1 | 1 | 0   |
// | eb0_672_112              | 1 | 14        | 672  | 112  | 1 | 1 | 0   |
// | eb0_672_192              | 1 | 7         | 672  | 192  | 1 | 1 | 0   |
// | eb0_192_1152             | 1 | 7         | 192  | 1152 | 1 | 1 | 0   |
// | eb0_1152_192             | 1 | 7         | 1152 | 192  | 1 | 1 | 0   |
// | eb0_1152_320             | 1 | 7         | 1152 | 320  | 1 | 1 | 0   |
// | eb0_se_{32,96,...}       | 2 | 1         | C    | C/4, C/24 and back | 1 | 1 | 0 |
const std::vector<Shape>& network_shapes() {
  static const std::vector<Shape> shapes = {
      {"r50_conv1", conv(1, 48, 3, 64, 7, 2, 3)},
      {"r50_l1_1x1_64_64", conv(1, 28, 64, 64, 1, 1, 0)},
      {"r50_l1_3x3_64", conv(1, 28, 64, 64, 3, 1, 1)},
      {"r50_l1_1x1_64_256", conv(1, 28, 64, 256, 1, 1, 0)},
      {"r50_l1_1x1_256_64", conv(1, 28, 256, 64, 1, 1, 0)},
      {"r50_l2_1x1_256_128", conv(1, 28, 256, 128, 1, 1, 0)},
      {"r50_l2_3x3_128_s2", conv(1, 28, 128, 128, 3, 2, 1)},
      {"r50_l2_ds_256_512_s2", conv(1, 28, 256, 512, 1, 2, 0)},
      {"r50_l2_1x1_128_512", conv(1, 14, 128, 512, 1, 1, 0)},
      {"r50_l2_1x1_512_128", conv(1, 14, 512, 128, 1, 1, 0)},
      {"r50_l2_3x3_128", conv(2, 14, 128, 128, 3, 1, 1)},
      {"r50_l3_1x1_512_256", conv(1, 14, 512, 256, 1, 1, 0)},
      {"r50_l3_3x3_256_s2", conv(1, 14, 256, 256, 3, 2, 1)},
      {"r50_l3_ds_512_1024_s2", conv(1, 14, 512, 1024, 1, 2, 0)},
      {"r50_l3_1x1_256_1024", conv(1, 14, 256, 1024, 1, 1, 0)},
      {"r50_l3_1x1_1024_256", conv(1, 14, 1024, 256, 1, 1, 0)},
      {"r50_l3_3x3_256", conv(1, 14, 256, 256, 3, 1, 1)},
      {"r50_l4_1x1_1024_512", conv(1, 14, 1024, 512, 1, 1, 0)},
      {"r50_l4_3x3_512_s2", conv(1, 14, 512, 512, 3, 2, 1)},
      {"r50_l4_ds_1024_2048_s2", conv(1, 14, 1024, 2048, 1, 2, 0)},
      {"r50_l4_1x1_512_2048", conv(1, 7, 512, 2048, 1, 1, 0)},
      {"r50_l4_1x1_2048_512", conv(1, 7, 2048, 512, 1, 1, 0)},
      {"r50_l4_3x3_512", conv(2, 7, 512, 512, 3, 1, 1)},
      {"vgg_3_64", conv(1, 32, 3, 64, 3, 1, 1)},
      {"vgg_64_64", conv(1, 32, 64, 64, 3, 1, 1)},
      {"vgg_64_128", conv(1, 16, 64, 128, 3, 1, 1)},
      {"vgg_128_128", conv(1, 16, 128, 128, 3, 1, 1)},
      {"vgg_128_256", conv(1, 14, 128, 256, 3, 1, 1)},
      {"vgg_256_256", conv(1, 14, 256, 256, 3, 1, 1)},
      {"vgg_256_512", conv(1, 14, 256, 512, 3, 1, 1)},
      {"vgg_512_512", conv(1, 14, 512, 512, 3, 1, 1)},
      {"mv2_stem", conv(1, 32, 3, 32, 3, 2, 1)},
      {"mv2_32_16", conv(1, 28, 32, 16, 1, 1, 0)},
      {"mv2_16_96", conv(1, 28, 16, 96, 1, 1, 0)},
      {"mv2_96_24", conv(1, 28, 96, 24, 1, 1, 0)},
      {"mv2_24_144", conv(1, 28, 24, 144, 1, 1, 0)},
      {"mv2_144_24", conv(1, 28, 144, 24, 1, 1, 0)},
      {"mv2_144_32", conv(1, 28, 144, 32, 1, 1, 0)},
      {"mv2_32_192", conv(1, 28, 32, 192, 1, 1, 0)},
      {"mv2_192_32", conv(1, 28, 192, 32, 1, 1, 0)},
      {"mv2_192_64", conv(1, 14, 192, 64, 1, 1, 0)},
      {"mv2_64_384", conv(1, 14, 64, 384, 1, 1, 0)},
      {"mv2_384_64", conv(1, 14, 384, 64, 1, 1, 0)},
      {"mv2_384_96", conv(1, 14, 384, 96, 1, 1, 0)},
      {"mv2_96_576", conv(1, 14, 96, 576, 1, 1, 0)},
      {"mv2_576_96", conv(1, 14, 576, 96, 1, 1, 0)},
      {"mv2_576_160", conv(1, 7, 576, 160, 1, 1, 0)},
      {"mv2_160_960", conv(1, 7, 160, 960, 1, 1, 0)},
      {"mv2_960_160", conv(1, 7, 960, 160, 1, 1, 0)},
      {"mv2_960_320", conv(1, 7, 960, 320, 1, 1, 0)},
      {"mv2_320_1280", conv(1, 7, 320, 1280, 1, 1, 0)},
      {"eb0_144_40", conv(1, 28, 144, 40, 1, 1, 0)},
      {"eb0_40_240", conv(1, 28, 40, 240, 1, 1, 0)},
      {"eb0_240_40", conv(1, 28, 240, 40, 1, 1, 0)},
      {"eb0_240_80", conv(1, 14, 240, 80, 1, 1, 0)},
      {"eb0_80_480", conv(1, 14, 80, 480, 1, 1, 0)},
      {"eb0_480_80", conv(1, 14, 480, 80, 1, 1, 0)},
      {"eb0_480_112", conv(1, 14, 480, 112, 1, 1, 0)},
      {"eb0_112_672", conv(1, 14, 112, 672, 1, 1, 0)},
      {"eb0_672_112", conv(1, 14, 672, 112, 1, 1, 0)},
      {"eb0_672_192", conv(1, 7, 672, 192, 1, 1, 0)},
      {"eb0_192_1152", conv(1, 7, 192, 1152, 1, 1, 0)},
      {"eb0_1152_192", conv(1, 7, 1152, 192, 1, 1, 0)},
      {"eb0_1152_320", conv(1, 7, 1152, 320, 1, 1, 0)},
      {"eb0_se_32_8", conv(2, 1, 32, 8, 1, 1, 0)},
      {"eb0_se_8_32", conv(2, 1, 8, 32, 1, 1, 0)},
      {"eb0_se_96_4", conv(2, 1, 96, 4, 1, 1, 0)},
      {"eb0_se_4_96", conv(2, 1, 4, 96, 1, 1, 0)},
      {"eb0_se_144_6", conv(2, 1, 144, 6, 1, 1, 0)},
      {"eb0_se_6_144", conv(2, 1, 6, 144, 1, 1, 0)},
      {"eb0_se_240_10", conv(2, 1, 240, 10, 1, 1, 0)},
      {"eb0_se_10_240", conv(2, 1, 10, 240, 1, 1, 0)},
      {"eb0_se_480_20", conv(2, 1, 480, 20, 1, 1, 0)},
      {"eb0_se_20_480", conv(2, 1, 20, 480, 1, 1, 0)},
      {"eb0_se_672_28", conv(2, 1, 672, 28, 1, 1, 0)},
      {"eb0_se_28_672", conv(2, 1, 28, 672, 1, 1, 0)},
      {"eb0_se_1152_48", conv(2, 1, 1152, 48, 1, 1, 0)},
      {"eb0_se_48_1152", conv(2, 1, 48, 1152, 1, 1, 0)},
  };
  return shapes;
}

// Odd shapes: channels not a multiple of 8 (or 4), a 1x1 output, stride 2 on
// odd sizes, dilation 2, asymmetric padding, groups, stride above the kernel
// (input pixels no tap reaches), non-square everything.
const std::vector<Shape>& odd_shapes() {
  static const std::vector<Shape> shapes = {
      {"c3_o5_3x3", general(2, 7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1)},
      {"c12_o20_3x3_s2", general(1, 9, 9, 12, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1)},
      {"c1_o1_5x5", general(1, 6, 5, 1, 1, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1)},
      {"out_1x1_5x5", general(2, 5, 5, 16, 24, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1)},
      {"s2_odd_15x13", general(2, 15, 13, 32, 40, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1)},
      {"s2_odd_c33_o17", general(1, 11, 13, 33, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1)},
      {"dil2_3x3", general(1, 17, 17, 32, 64, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1)},
      {"dil2_s2_asym", general(1, 16, 15, 24, 8, 3, 3, 2, 1, 1, 2, 3, 0, 2, 3, 1)},
      {"asym_pad_3x2", general(2, 10, 11, 16, 16, 3, 2, 1, 1, 0, 2, 1, 0, 1, 1, 1)},
      {"asym_pad_s2", general(1, 12, 12, 40, 72, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, 1)},
      {"groups2_3x3", general(1, 14, 14, 64, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2)},
      {"groups2_1x1", general(1, 9, 9, 32, 48, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2)},
      {"groups4_cg6_og3", general(1, 8, 8, 24, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4)},
      {"groups3_cg8_og16", general(2, 8, 7, 24, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3)},
      {"groups2_og200", general(1, 6, 6, 32, 400, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2)},
      {"k2_s3", general(1, 11, 11, 8, 8, 2, 2, 3, 3, 0, 0, 0, 0, 1, 1, 1)},
      {"s3x2_d2x3_k5x3", general(2, 13, 11, 8, 8, 5, 3, 3, 2, 4, 1, 2, 3, 2, 3, 1)},
      {"s4_d2_taps_skip_phases", general(1, 12, 12, 8, 8, 3, 3, 4, 4, 2, 2, 2, 2, 2, 2, 1)},
      {"k1_s2_pad1", general(1, 9, 8, 16, 24, 1, 1, 2, 2, 1, 1, 1, 1, 1, 1, 1)},
      {"c130_o130_7x7", general(1, 9, 9, 130, 130, 7, 7, 1, 1, 3, 3, 3, 3, 1, 1, 1)},
      {"m_many_tiles", general(3, 20, 20, 8, 136, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1)},
  };
  return shapes;
}

// Multiples of 1/64 in [-1, 1]: exact in f32, TF32, f16 and bf16.
std::vector<float> grid_values(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(-64, 64);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(d(gen)) / 64.0f;
  return v;
}

int64_t x_count(const Conv2dParams& p) { return p.n * p.h * p.w * p.c; }
int64_t y_count(const Conv2dParams& p) { return p.n * p.out_h() * p.out_w() * p.o; }
int64_t w_count(const Conv2dParams& p) { return p.o * p.filter_size(); }

std::string describe(const Shape& s, DataType t) { return std::string(s.name) + " " + kc::dtype_name(t); }

// One shape's inputs and twin results (f32, from values exact in every dtype).
struct Case {
  Conv2dParams p;
  std::vector<float> x, w, dy, y, dx, dw;
  explicit Case(const Conv2dParams& p_) : p(p_) {
    x = grid_values(static_cast<size_t>(x_count(p)), 1u + static_cast<unsigned>(p.c));
    w = grid_values(static_cast<size_t>(w_count(p)), 2u + static_cast<unsigned>(p.o));
    dy = grid_values(static_cast<size_t>(y_count(p)), 3u + static_cast<unsigned>(p.kh));
    y.resize(static_cast<size_t>(y_count(p)));
    dx.resize(x.size());
    dw.resize(w.size());
    kcpu::conv2d_forward(p, x.data(), w.data(), nullptr, y.data());
    kcpu::conv2d_backward_data(p, dy.data(), w.data(), dx.data());
    kcpu::conv2d_backward_weight(p, x.data(), dy.data(), dw.data());
  }
};

void check_passes(const Shape& s, size_t shift = 0) {
  const Case cs(s.p);
  for (DataType t : kTypes) {
    const std::string what = describe(s, t) + (shift ? " shifted" : "");
    const double tol = exact_input_tolerance(t);
    ShiftedArray x(round_to(cs.x, t), t, shift), w(round_to(cs.w, t), t, shift), dy(round_to(cs.dy, t), t, shift);
    ShiftedArray y(cs.y.size(), t, shift), dx(cs.dx.size(), t, shift), dw(cs.dw.size(), t, shift);
    kc::conv2d_forward(s.p, x.ptr(), w.ptr(), y.ptr(), t, kc::ConvEpilogue{}, nullptr);
    kc::conv2d_backward_data(s.p, dy.ptr(), w.ptr(), dx.ptr(), t, nullptr);
    kc::conv2d_backward_weight(s.p, x.ptr(), dy.ptr(), dw.ptr(), t, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
    EXPECT_TRUE(close_to_twin(y.download(), cs.y, tol, "forward " + what));
    EXPECT_TRUE(close_to_twin(dx.download(), cs.dx, tol, "backward-data " + what));
    EXPECT_TRUE(close_to_twin(dw.download(), cs.dw, tol, "backward-weight " + what));
  }
}

TEST(CudaConv, NetworkLayersMatchTwin) {
  REQUIRE_GPU();
  // The emulator takes every fifth layer (all kernel paths still appear).
  const std::vector<Shape> shapes = network_shapes();
  for (size_t i = 0; i < shapes.size(); i += kEmulated ? 5 : 1) check_passes(shapes[i]);
}

TEST(CudaConv, OddShapesMatchTwin) {
  REQUIRE_GPU();
  for (const Shape& s : odd_shapes()) check_passes(s);
}

// Pointers one element off 16-byte alignment: the element-wise gather path
// on shapes whose channels would otherwise take the 16-byte one.
TEST(CudaConv, MisalignedPointersMatchTwin) {
  REQUIRE_GPU();
  check_passes({"r50_l1_3x3_64", conv(1, 12, 64, 64, 3, 1, 1)}, 1);
  check_passes({"r50_l1_1x1_64_256", conv(1, 10, 64, 256, 1, 1, 0)}, 1);
  check_passes({"groups2_3x3", general(1, 9, 9, 32, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2)}, 1);
}

// ---- fused epilogue ---------------------------------------------------------------------------

float act_ref(float v, kc::ConvActivation a) {
  switch (a) {
    case kc::ConvActivation::relu: return std::max(v, 0.0f);
    case kc::ConvActivation::relu6: return std::min(std::max(v, 0.0f), 6.0f);
    case kc::ConvActivation::silu: return v / (1.0f + std::exp(-v));
    default: return v;
  }
}

struct EpilogueCase {
  const char* name;
  bool scale, shift, residual;
  kc::ConvActivation act;
};

TEST(CudaConv, ForwardEpiloguesMatchTwin) {
  REQUIRE_GPU();
  const EpilogueCase cases[] = {
      {"bias", false, true, false, kc::ConvActivation::none},
      {"bn_relu", true, true, false, kc::ConvActivation::relu},
      {"bn_add_relu", true, true, true, kc::ConvActivation::relu},
      {"bias_relu6", false, true, false, kc::ConvActivation::relu6},
      {"bn_silu", true, true, false, kc::ConvActivation::silu},
      {"scale_add", true, false, true, kc::ConvActivation::none},
      {"relu_only", false, false, false, kc::ConvActivation::relu},
  };
  const Shape shapes[] = {
      {"r50_l1_3x3_64", conv(1, 14, 64, 64, 3, 1, 1)},
      {"r50_l1_1x1_64_256", conv(1, 14, 64, 256, 1, 1, 0)},
      {"c3_o5_3x3", general(2, 7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1)},
      {"groups2_3x3", general(1, 9, 9, 32, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2)},
  };
  for (const Shape& s : shapes) {
    const Case cs(s.p);
    const size_t ny = cs.y.size();
    const int64_t o = s.p.o;
    const std::vector<float> scale = uniform_values(o, 0.5f, 1.5f, 21), shift = uniform_values(o, -1.0f, 1.0f, 22);
    for (DataType t : kTypes) {
      const std::vector<float> res = round_to(uniform_values(ny, -2.0f, 2.0f, 23), t);
      DeviceArray x(round_to(cs.x, t), t), w(round_to(cs.w, t), t), r(res, t), dscale(scale), dshift(shift);
      for (const EpilogueCase& e : cases) {
        std::vector<float> want(ny);
        for (size_t i = 0; i < ny; ++i) {
          const size_t oc = i % static_cast<size_t>(o);
          float v = cs.y[i];
          if (e.scale) v *= scale[oc];
          if (e.shift) v += shift[oc];
          if (e.residual) v += res[i];
          want[i] = act_ref(v, e.act);
        }
        DeviceArray y(ny, t);
        kc::ConvEpilogue ep;
        ep.scale = e.scale ? dscale.f32() : nullptr;
        ep.shift = e.shift ? dshift.f32() : nullptr;
        ep.residual = e.residual ? r.get() : nullptr;
        ep.act = e.act;
        kc::conv2d_forward(s.p, x.get(), w.get(), y.get(), t, ep, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_TRUE(close_to_twin(y.download(), want, conv_tolerance(t), std::string(e.name) + " " + describe(s, t)));
      }
    }
  }
}

// ---- argument checks (host only, before any CUDA call) --------------------------------------

TEST(CudaConv, BadArgumentsThrow) {
  const Conv2dParams ok = conv(1, 8, 16, 16, 3, 1, 1);
  char buf[16];
  void* d = buf;  // never dereferenced: every call below fails its checks first
  const kc::ConvEpilogue none{};
  const DataType bf = DataType::bf16;
  expect_invalid([&] { kc::conv2d_forward(ok, nullptr, d, d, bf, none, nullptr); }, "conv2d_forward", "x is null");
  expect_invalid([&] { kc::conv2d_forward(ok, d, nullptr, d, bf, none, nullptr); }, "conv2d_forward", "w is null");
  expect_invalid([&] { kc::conv2d_forward(ok, d, d, nullptr, bf, none, nullptr); }, "conv2d_forward", "y is null");
  expect_invalid([&] { kc::conv2d_backward_data(ok, nullptr, d, d, bf, nullptr); }, "conv2d_backward_data",
                 "dy is null");
  expect_invalid([&] { kc::conv2d_backward_weight(ok, d, d, nullptr, bf, nullptr); }, "conv2d_backward_weight",
                 "dw is null");
  kc::ConvEpilogue bad_act;
  bad_act.act = static_cast<kc::ConvActivation>(9);
  expect_invalid([&] { kc::conv2d_forward(ok, d, d, d, bf, bad_act, nullptr); }, "conv2d_forward", "act");
  expect_invalid([&] { kc::conv2d_forward(ok, d, d, d, static_cast<DataType>(7), none, nullptr); },
                 "conv2d_forward", "dt");

  auto with = [&](auto edit) {
    Conv2dParams p = ok;
    edit(p);
    return p;
  };
  const std::pair<Conv2dParams, const char*> bad[] = {
      {with([](Conv2dParams& p) { p.c = 0; }), "c = 0"},
      {with([](Conv2dParams& p) { p.stride_h = 0; }), "stride_h"},
      {with([](Conv2dParams& p) { p.dilation_w = -1; }), "dilation_w"},
      {with([](Conv2dParams& p) { p.pad_left = -1; }), "padding"},
      {with([](Conv2dParams& p) { p.groups = 3; }), "not a multiple of groups"},
      {with([](Conv2dParams& p) { p.groups = 16; }), "depthwise"},
      {with([](Conv2dParams& p) { p.kh = 11; }), "larger than the padded input"},
      {with([](Conv2dParams& p) { p.n = 1 << 20, p.h = p.w = 64, p.c = 16; }), "int32 index overflow"},
      {with([](Conv2dParams& p) { p.o = 1 << 24, p.kh = p.kw = 3; }), "overflow"},
  };
  for (const auto& item : bad) {
    const Conv2dParams p = item.first;
    const std::string words = item.second;
    expect_invalid([&] { kc::conv2d_forward(p, d, d, d, bf, none, nullptr); }, "conv2d_forward", words);
    expect_invalid([&] { kc::conv2d_backward_data(p, d, d, d, bf, nullptr); }, "conv2d_backward_data", words);
    expect_invalid([&] { kc::conv2d_backward_weight(p, d, d, d, bf, nullptr); }, "conv2d_backward_weight", words);
  }
}

// ---- index helpers (host only) -----------------------------------------------------------------

ci::Geom geom_of(const Conv2dParams& p) {
  ci::Geom q;
  q.n = int(p.n), q.h = int(p.h), q.w = int(p.w), q.c = int(p.c), q.o = int(p.o);
  q.kh = int(p.kh), q.kw = int(p.kw), q.sh = int(p.stride_h), q.sw = int(p.stride_w);
  q.pt = int(p.pad_top), q.pl = int(p.pad_left), q.dh = int(p.dilation_h), q.dw = int(p.dilation_w);
  q.groups = int(p.groups), q.cg = int(p.c / p.groups), q.og = int(p.o / p.groups);
  q.oh = int(p.out_h()), q.ow = int(p.out_w());
  return q;
}
bool is_plain(const Conv2dParams& p) {
  return p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
         p.pad_bottom == 0 && p.pad_right == 0;
}

// The three GEMMs computed on the host exactly as the kernels gather them.
void check_host_gemms(const Shape& s) {
  const Conv2dParams& p = s.p;
  const ci::Geom q = geom_of(p);
  const Case cs(p);
  const int G = q.groups;
  const bool plain = is_plain(p);
  // Forward: y[m][g*og + n] = sum_k A[m][k] * B[n][k].
  {
    const int M = q.n * q.oh * q.ow, K = q.kh * q.kw * q.cg;
    std::vector<float> y(cs.y.size(), NAN);
    for (int g = 0; g < G; ++g)
      for (int m = 0; m < M; ++m) {
        const ci::PixelRow row = ci::fwd_a_row(q, g, m);
        const ci::DenseRow prow = ci::plain_row(m, M, q.c, g * q.cg);
        for (int n = 0; n < q.og; ++n) {
          const ci::DenseRow brow = ci::fwd_b_row(q, g, n);
          double acc = 0;
          for (int k = 0; k < K; ++k) {
            const int a = ci::fwd_a_at(q, row, k), b = ci::dense_at(brow, k, K);
            if (plain) {
              ASSERT_EQ(a, ci::dense_at(prow, k, K)) << s.name << " plain row " << m << " k " << k;
            }
            ASSERT_GE(b, 0);
            if (a >= 0) acc += double(cs.x[a]) * cs.w[b];
          }
          y[size_t(m) * q.o + g * q.og + n] = float(acc);
        }
      }
    EXPECT_TRUE(close_to_twin(y, cs.y, 1e-5, std::string("host forward gather ") + s.name));
  }
  // Backward-data through the transposed weight, one GEMM per stride phase;
  // every dx element must be written by exactly one phase row.
  {
    const int taps = q.kh * q.kw;
    std::vector<float> wt(cs.w.size(), NAN);
    for (int o = 0; o < q.o; ++o)
      for (int rs = 0; rs < taps; ++rs)
        for (int c = 0; c < q.cg; ++c)
          wt[ci::transposed_weight_at(q, o, rs, c)] = cs.w[(size_t(o) * taps + rs) * q.cg + c];
    std::vector<float> dx(cs.dx.size(), NAN);
    std::vector<int> writes(cs.dx.size(), 0);
    const int phases = ci::bwd_data_phase_count(q);
    int64_t macs = 0;
    for (int ph = 0; ph < phases; ++ph) {
      const ci::Phase f = ci::bwd_data_phase(q, ph);
      EXPECT_LE(f.M, ci::bwd_data_max_phase_m(q));
      if (plain) {
        ASSERT_EQ(phases, 1);
        ASSERT_EQ(f.K, q.og);
      }
      for (int g = 0; g < G; ++g)
        for (int m = 0; m < f.M; ++m) {
          const ci::InputRow row = ci::bwd_data_a_row(q, f, g, m);
          const ci::DenseRow prow = ci::plain_row(m, f.M, q.o, g * q.og);
          const int pixel = ci::bwd_data_pixel(q, f, m);
          for (int n = 0; n < q.cg; ++n) {
            const ci::DenseRow brow = ci::bwd_data_b_row(q, g, n);
            double acc = 0;
            for (int k = 0; k < f.K; ++k) {
              const int a = ci::bwd_data_a_at(q, f, row, k), b = ci::bwd_data_b_at(q, f, brow, k);
              if (plain) {
                ASSERT_EQ(a, ci::dense_at(prow, k, f.K)) << s.name << " plain row " << m << " k " << k;
                ASSERT_EQ(b, ci::dense_at(brow, k, f.K)) << s.name << " plain B row " << n << " k " << k;
              }
              ASSERT_GE(b, 0);
              ++macs;
              if (a >= 0) acc += double(cs.dy[a]) * wt[b];
            }
            const size_t at = size_t(pixel) * q.c + g * q.cg + n;
            ASSERT_LT(at, dx.size());
            dx[at] = float(acc);
            ++writes[at];
          }
        }
      EXPECT_FALSE(ci::bwd_data_a_row(q, f, 0, f.M).valid);
    }
    for (size_t i = 0; i < writes.size(); ++i) ASSERT_EQ(writes[i], 1) << s.name << " dx element " << i;
    // Only contributing taps are visited: at most the zero-filling GEMM's
    // work, and 1/(sh*sw) of it when every phase has taps (kh % sh == 0 ...).
    const int64_t all_taps = int64_t(G) * q.n * q.h * q.w * q.cg * q.kh * q.kw * q.og;
    EXPECT_LE(macs, all_taps) << s.name;
    if (q.sh > 1 && q.kh % q.sh == 0 && q.dh == 1 && q.sw == 1) {
      EXPECT_LE(macs * q.sh, all_taps) << s.name;
    }
    EXPECT_TRUE(close_to_twin(dx, cs.dx, 1e-5, std::string("host backward-data gather ") + s.name));
  }
  // Backward-weight: dw[g*og + m][n] = sum_pix A[m][pix] * B[pix][n].
  {
    const int K = q.n * q.oh * q.ow, N = q.kh * q.kw * q.cg;
    std::vector<float> dw(cs.dw.size(), NAN);
    for (int g = 0; g < G; ++g)
      for (int n = 0; n < N; ++n) {
        const ci::TapCol col = ci::bwd_weight_b_col(q, g, n);
        for (int m = 0; m < q.og; ++m) {
          double acc = 0;
          for (int pix = 0; pix < K; ++pix) {
            const int a = ci::bwd_weight_a_at(q, g, m, pix), b = ci::bwd_weight_b_at(q, col, pix);
            ASSERT_GE(a, 0);
            if (b >= 0) acc += double(cs.dy[a]) * cs.x[b];
          }
          dw[size_t(g * q.og + m) * N + n] = float(acc);
        }
      }
    EXPECT_TRUE(close_to_twin(dw, cs.dw, 1e-5, std::string("host backward-weight gather ") + s.name));
  }
  // Past the ends everything is -1 (zero fill).
  EXPECT_FALSE(ci::fwd_a_row(q, 0, q.n * q.oh * q.ow).valid);
  EXPECT_EQ(ci::fwd_a_at(q, ci::fwd_a_row(q, 0, 0), q.kh * q.kw * q.cg), -1);
  EXPECT_FALSE(ci::fwd_b_row(q, 0, q.og).valid);
  EXPECT_FALSE(ci::bwd_data_b_row(q, 0, q.cg).valid);
  EXPECT_EQ(ci::bwd_data_phase_count(q), std::min(q.sh, q.h) * std::min(q.sw, q.w));
  EXPECT_EQ(ci::bwd_weight_a_at(q, 0, q.og, 0), -1);
  EXPECT_EQ(ci::bwd_weight_a_at(q, 0, 0, q.n * q.oh * q.ow), -1);
  EXPECT_FALSE(ci::bwd_weight_b_col(q, 0, q.kh * q.kw * q.cg).valid);
}

TEST(CudaConvIndex, HostGatherGemmsMatchTwin) {
  for (const Shape& s : odd_shapes())
    if (s.p.forward_flops() < 2e7) check_host_gemms(s);  // the host GEMMs are naive
  check_host_gemms({"c20_7x7_s2", general(1, 9, 10, 20, 12, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1)});

  check_host_gemms({"1x1_plain", conv(2, 5, 16, 24, 1, 1, 0)});
  check_host_gemms({"1x1_plain_groups", general(1, 4, 3, 16, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2)});
  check_host_gemms({"r50_conv1_small", conv(1, 13, 3, 8, 7, 2, 3)});
  // Stride above the input extent (fewer phases than sh * sw), the ResNet
  // downsample (1x1, stride 2, unpadded: not plain, 3 of 4 phases have no
  // taps), and a dilation sharing a factor with the stride plus padding.
  check_host_gemms({"stride_gt_input", general(2, 2, 3, 8, 16, 3, 3, 4, 5, 1, 1, 1, 1, 1, 1, 1)});
  check_host_gemms({"1x1_s2_downsample", conv(2, 7, 16, 8, 1, 2, 0)});
  check_host_gemms({"d2_s4_pad3", general(1, 13, 11, 8, 8, 3, 3, 4, 2, 3, 1, 0, 2, 2, 2, 1)});
}

// A sweep of small random geometries (strides, dilations, asymmetric pads and
// kernel sizes drawn independently per axis, groups) through the same host
// GEMMs: the stride-phase decomposition must write each dx element once and
// match the twin whatever the combination.
TEST(CudaConvIndex, RandomSmallGeometriesMatchTwin) {
  std::mt19937 gen(20261127);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  int checked = 0;
  while (checked < 300) {
    const int groups = pick(1, 3), cg = pick(1, 3), og = pick(1, 3);
    const Conv2dParams p = general(pick(1, 2), pick(1, 9), pick(1, 9), groups * cg, groups * og, pick(1, 4), pick(1, 4),
                                   pick(1, 4), pick(1, 4), pick(0, 3), pick(0, 3), pick(0, 3), pick(0, 3), pick(1, 3),
                                   pick(1, 3), groups);
    if (p.dilation_h * (p.kh - 1) + 1 > p.h + p.pad_top + p.pad_bottom ||
        p.dilation_w * (p.kw - 1) + 1 > p.w + p.pad_left + p.pad_right)
      continue;  // empty output: the launchers refuse it
    check_host_gemms({"random", p});
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "geometry n " << p.n << " h " << p.h << " w " << p.w << " c " << p.c << " o " << p.o << " k "
                    << p.kh << "x" << p.kw << " s " << p.stride_h << "x" << p.stride_w << " pad " << p.pad_top << ","
                    << p.pad_left << "," << p.pad_bottom << "," << p.pad_right << " d " << p.dilation_h << "x"
                    << p.dilation_w << " groups " << p.groups;
      return;
    }
    ++checked;
  }
}

// The 16-byte path loads kVec consecutive k (or mn) as one chunk: when the
// launcher picks it (channel extents multiples of kVec), a chunk starting at a
// multiple of kVec must be all zero-fill or kVec consecutive offsets.
void expect_chunk(const std::vector<int>& offs, const std::string& what) {
  const bool any = std::any_of(offs.begin(), offs.end(), [](int o) { return o >= 0; });
  if (!any) return;
  for (size_t e = 0; e < offs.size(); ++e)
    ASSERT_EQ(offs[e], offs[0] + int(e)) << what << " element " << e;
  ASSERT_EQ(offs[0] % int(offs.size()), 0) << what << ": chunk not 16-byte aligned";
}

TEST(CudaConvIndex, VectorChunksAreContiguous) {
  const Shape shapes[] = {
      {"dil2_s2_asym_c24_o8", general(1, 16, 15, 24, 8, 3, 3, 2, 1, 1, 2, 3, 0, 2, 3, 1)},
      {"groups3_cg8_og16", general(2, 8, 7, 24, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3)},
      {"s2_odd", general(2, 15, 13, 32, 40, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1)},
  };
  for (const Shape& s : shapes)
    for (int vec : {4, 8}) {
      const ci::Geom q = geom_of(s.p);
      ASSERT_EQ(q.cg % vec, 0);
      ASSERT_EQ(q.og % vec, 0);
      const int Kf = q.kh * q.kw * q.cg, Kb = q.kh * q.kw * q.og, P = q.n * q.oh * q.ow;
      for (int g = 0; g < q.groups; ++g) {
        for (int m = 0; m < q.n * q.oh * q.ow + 3; ++m)
          for (int k0 = 0; k0 < Kf + vec; k0 += vec) {
            std::vector<int> o;
            for (int e = 0; e < vec; ++e) o.push_back(ci::fwd_a_at(q, ci::fwd_a_row(q, g, m), k0 + e));
            expect_chunk(o, std::string(s.name) + " forward A");
          }
        for (int ph = 0; ph < ci::bwd_data_phase_count(q); ++ph) {
          const ci::Phase f = ci::bwd_data_phase(q, ph);
          ASSERT_EQ(f.K % vec, 0);
          for (int m = 0; m < f.M + 3; ++m)
            for (int k0 = 0; k0 < Kb + vec; k0 += vec) {
              std::vector<int> o;
              for (int e = 0; e < vec; ++e) o.push_back(ci::bwd_data_a_at(q, f, ci::bwd_data_a_row(q, f, g, m), k0 + e));
              expect_chunk(o, std::string(s.name) + " backward-data A");
            }
          for (int n = 0; n < q.cg + 3; ++n)
            for (int k0 = 0; k0 < Kb + vec; k0 += vec) {
              std::vector<int> o;
              for (int e = 0; e < vec; ++e)
                o.push_back(ci::bwd_data_b_at(q, f, ci::bwd_data_b_row(q, g, n), k0 + e));
              expect_chunk(o, std::string(s.name) + " backward-data B");
            }
        }
        for (int pix = 0; pix < P + 3; ++pix) {
          for (int m0 = 0; m0 < q.og + vec; m0 += vec) {
            std::vector<int> o;
            for (int e = 0; e < vec; ++e) o.push_back(ci::bwd_weight_a_at(q, g, m0 + e, pix));
            expect_chunk(o, std::string(s.name) + " backward-weight A");
          }
          for (int n0 = 0; n0 < Kf + vec; n0 += vec) {
            std::vector<int> o;
            for (int e = 0; e < vec; ++e) o.push_back(ci::bwd_weight_b_at(q, ci::bwd_weight_b_col(q, g, n0 + e), pix));
            expect_chunk(o, std::string(s.name) + " backward-weight B");
          }
        }
      }
    }
}

// Shared-memory tiles: every (mn, k) of a tile has its own place inside the
// tile; ldmatrix (simulated on the lane addresses the kernel uses) delivers
// exactly mma.cuh's A and B fragments; no bank conflicts in ldmatrix phases
// or TF32 fragment reads.
TEST(CudaConvIndex, SharedTileLayoutAndFragments) {
  for (int eb : {2, 4})
    for (bool kcontig : {true, false}) {
      const int bk = ci::kKBytes / eb, bytes = ci::smem_tile_bytes(kcontig, eb);
      std::set<int> seen;
      for (int mn = 0; mn < ci::kTileMN; ++mn)
        for (int k = 0; k < bk; ++k) {
          const int off = ci::smem_offset(kcontig, eb, mn, k);
          ASSERT_GE(off, 0);
          ASSERT_LE(off + eb, bytes);
          ASSERT_TRUE(seen.insert(off).second) << "overlap at mn " << mn << " k " << k;
          if ((kcontig ? k : mn) % (16 / eb) == 0) {
            ASSERT_EQ(off % 16, 0) << "chunk start not 16-byte aligned";
          }
        }
    }

  // 16-bit tiles: simulate ldmatrix.x4 (with and without .trans) on the lane addresses.
  for (bool kcontig : {true, false}) {
    std::map<int, std::pair<int, int>> at;  // byte offset -> (mn, k)
    for (int mn = 0; mn < ci::kTileMN; ++mn)
      for (int k = 0; k < 32; ++k) at[ci::smem_offset(kcontig, 2, mn, k)] = {mn, k};
    const bool trans = !kcontig;  // the kernel uses .trans exactly for MN-contiguous tiles
    // Element h (0, 1) of register j in lane L, as (mn, k).
    auto ldsm = [&](auto offset_of_lane, int L, int j, int h) {
      int addr;
      if (!trans) addr = offset_of_lane(8 * j + L / 4) + 2 * (2 * (L % 4) + h);
      else addr = offset_of_lane(8 * j + 2 * (L % 4) + h) + 2 * (L / 4);
      EXPECT_TRUE(at.count(addr)) << "address " << addr << " outside the tile";
      return at[addr];
    };
    for (int mb : {0, 16, 48, 112})
      for (int k0 : {0, 16})
        for (int L = 0; L < 32; ++L) {
          const int g = L / 4, t = L % 4;
          auto aoff = [&](int lane) { return ci::ldsm_a_offset(kcontig, lane, mb, k0); };
          auto boff = [&](int lane) { return ci::ldsm_b_offset(kcontig, lane, mb, k0); };
          for (int h = 0; h < 2; ++h) {
            // A: a[0] = A[g][2t+h], a[1] = A[g+8][2t+h], a[2] = A[g][2t+8+h], a[3] = A[g+8][2t+8+h].
            const int am[4] = {g, g + 8, g, g + 8}, ak[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
            // B (two n8 blocks): reg 0, 1 = b[0], b[1] of n block 0; 2, 3 of block 1; b[i] = B[k][n = g].
            const int bn[4] = {g, g, g + 8, g + 8}, bkk[4] = {2 * t, 2 * t + 8, 2 * t, 2 * t + 8};
            for (int j = 0; j < 4; ++j) {
              EXPECT_EQ(ldsm(aoff, L, j, h), std::make_pair(mb + am[j], k0 + ak[j] + h))
                  << "A kcontig " << kcontig << " lane " << L << " reg " << j;
              EXPECT_EQ(ldsm(boff, L, j, h), std::make_pair(mb + bn[j], k0 + bkk[j] + h))
                  << "B kcontig " << kcontig << " lane " << L << " reg " << j;
            }
          }
        }
    // Bank conflicts: each 8-lane phase reads 8 rows of 16 bytes; distinct 16-byte bank groups.
    for (int k0 : {0, 16})
      for (int j = 0; j < 4; ++j) {
        std::set<int> a_groups, b_groups;
        for (int r = 0; r < 8; ++r) {
          a_groups.insert((ci::ldsm_a_offset(kcontig, 8 * j + r, 16, k0) / 16) % 8);
          b_groups.insert((ci::ldsm_b_offset(kcontig, 8 * j + r, 32, k0) / 16) % 8);
        }
        EXPECT_EQ(a_groups.size(), 8u) << "A ldmatrix conflict, kcontig " << kcontig;
        EXPECT_EQ(b_groups.size(), 8u) << "B ldmatrix conflict, kcontig " << kcontig;
      }
  }
  // TF32 fragment reads (lane (g, t) reads element (mn = base + g, k = k0 + t)): 32 banks.
  for (bool kcontig : {true, false})
    for (int k0 : {0, 4, 8, 12}) {
      std::set<int> banks;
      for (int L = 0; L < 32; ++L) banks.insert((ci::smem_offset(kcontig, 4, 16 + L / 4, k0 + L % 4) / 4) % 32);
      EXPECT_EQ(banks.size(), 32u) << "TF32 read conflict, kcontig " << kcontig;
    }
}

}  // namespace
}  // namespace graft::testing
