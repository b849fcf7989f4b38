// conv2d (im2col + sgemm, the 1x1 fast path, depthwise) forward, backward-data,
// backward-weight and bias gradient against naive float64 loops over the
// logical NCHW / (O, C/groups, kH, kW) tensors.
//
// Tolerance: f32 dot products of length K = C/groups*kH*kW against float64:
// relative L2 error < 1e-5, elementwise |err| <= 1e-4 * (1 + |ref|).
#include <cmath>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/conv.h"
#include "gtest/gtest.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/depthwise.h"
#include "tests/support/conv_options.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;
using testing::rel_l2_error;

struct ConvCase {
  const char* what;
  int64_t n, c, h, w, o, kh, kw;
  Conv2dOptions opt;
};

// The output size and, for each (output pixel, tap), the input pixel or -1: the
// one place that decides which input a tap reads.
struct RefGeometry {
  int64_t oh, ow;
  RefGeometry(const ConvCase& k)
      : oh((k.h + k.opt.padding[0] + k.opt.padding[2] - k.opt.dilation[0] * (k.kh - 1) - 1) / k.opt.stride[0] + 1),
        ow((k.w + k.opt.padding[1] + k.opt.padding[3] - k.opt.dilation[1] * (k.kw - 1) - 1) / k.opt.stride[1] + 1) {}
};

struct Reference {
  std::vector<double> y, dx, dw, db;
};

// y = conv(x, w) + b; given dL/dy = g: dx, dw, db. All logical NCHW, double.
Reference ref_conv(const ConvCase& k, const std::vector<float>& x, const std::vector<float>& w,
                   const std::vector<float>& b, const std::vector<float>& g) {
  const RefGeometry geo(k);
  const int64_t G = k.opt.groups, cg = k.c / G, og = k.o / G;
  Reference r;
  r.y.assign(k.n * k.o * geo.oh * geo.ow, 0.0);
  r.dx.assign(x.size(), 0.0);
  r.dw.assign(w.size(), 0.0);
  r.db.assign(k.o, 0.0);
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t o = 0; o < k.o; ++o)
      for (int64_t i = 0; i < geo.oh; ++i)
        for (int64_t j = 0; j < geo.ow; ++j) {
          const int64_t yi = ((n * k.o + o) * geo.oh + i) * geo.ow + j;
          double s = b.empty() ? 0.0 : b[o];
          const double gy = g[yi];
          r.db[o] += gy;
          const int64_t grp = o / og;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t a = 0; a < k.kh; ++a)
              for (int64_t e = 0; e < k.kw; ++e) {
                const int64_t ih = i * k.opt.stride[0] - k.opt.padding[0] + a * k.opt.dilation[0];
                const int64_t iw = j * k.opt.stride[1] - k.opt.padding[1] + e * k.opt.dilation[1];
                if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                const int64_t xi = ((n * k.c + grp * cg + c) * k.h + ih) * k.w + iw;
                const int64_t wi = ((o * cg + c) * k.kh + a) * k.kw + e;
                s += double(x[xi]) * w[wi];
                r.dx[xi] += gy * w[wi];
                r.dw[wi] += gy * x[xi];
              }
          r.y[yi] = s;
        }
  return r;
}

::testing::AssertionResult close(const std::vector<float>& got, const std::vector<double>& ref) {
  const double rel = rel_l2_error(got, ref);
  if (!(rel < 1e-5)) return ::testing::AssertionFailure() << "relative L2 error " << rel;
  return all_close(got, ref, 1e-4, 1e-4);
}

// Runs forward and backward through the op and compares all four results.
void check_case(const ConvCase& k, bool with_bias, bool channels_last_input) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({k.n, k.c, k.h, k.w}, gen);
  if (channels_last_input) x = x.to_format(MemoryFormat::channels_last);
  Tensor w = testing::random_tensor({k.o, k.c / k.opt.groups, k.kh, k.kw}, gen);
  Tensor b = with_bias ? testing::random_tensor({k.o}, gen) : Tensor();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  if (with_bias) b.set_requires_grad(true);

  Tensor y = conv2d(x, w, b, k.opt);
  const RefGeometry geo(k);
  ASSERT_EQ(y.shape(), (Shape{k.n, k.o, geo.oh, geo.ow})) << k.what;
  EXPECT_TRUE(y.is_channels_last()) << k.what;
  Tensor g = testing::random_tensor(y.shape(), gen);
  y.backward(g);

  const Reference ref = ref_conv(k, x.to_vector(), w.to_vector(), with_bias ? b.to_vector() : std::vector<float>{},
                                 g.to_vector());
  EXPECT_TRUE(close(y.to_vector(), ref.y)) << k.what << ": forward";
  ASSERT_TRUE(x.grad().defined() && w.grad().defined()) << k.what;
  EXPECT_TRUE(close(x.grad().to_vector(), ref.dx)) << k.what << ": backward data";
  EXPECT_TRUE(close(w.grad().to_vector(), ref.dw)) << k.what << ": backward weight";
  if (with_bias) {
    EXPECT_TRUE(close(b.grad().to_vector(), ref.db)) << k.what << ": bias gradient";
  }
}

const Conv2dOptions kPlain = testing::conv_options({1, 1}, {0, 0, 0, 0}, {1, 1}, 1);

TEST(Conv2d, Im2colPathMatchesReference) {
  const ConvCase cases[] = {
      {"3x3 pad 1", 2, 3, 7, 5, 4, 3, 3, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 1)},
      {"3x3 stride 2 odd sizes", 2, 5, 9, 7, 6, 3, 3, testing::conv_options({2, 2}, {1, 1, 1, 1}, {1, 1}, 1)},
      {"asymmetric padding", 1, 3, 6, 7, 5, 3, 3, testing::conv_options({1, 1}, {0, 1, 2, 1}, {1, 1}, 1)},
      {"asymmetric padding stride 2", 2, 4, 8, 9, 3, 3, 3, testing::conv_options({2, 2}, {1, 0, 0, 2}, {1, 1}, 1)},
      {"dilation 2", 1, 3, 9, 8, 4, 3, 3, testing::conv_options({1, 1}, {2, 2, 2, 2}, {2, 2}, 1)},
      {"rectangular kernel, mixed stride and dilation", 2, 3, 11, 10, 5, 3, 2, testing::conv_options({2, 1}, {1, 0, 1, 1}, {1, 3}, 1)},
      {"groups 2", 2, 4, 6, 5, 6, 3, 3, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 2)},
      {"groups 3 stride 2", 1, 9, 7, 7, 3, 3, 3, testing::conv_options({2, 2}, {1, 1, 1, 1}, {1, 1}, 3)},
      {"7x7 stem stride 2", 1, 3, 15, 13, 8, 7, 7, testing::conv_options({2, 2}, {3, 3, 3, 3}, {1, 1}, 1)},
      {"5x5 no padding", 1, 2, 7, 6, 3, 5, 5, kPlain},
      {"kernel larger than stride 1 row", 3, 1, 1, 13, 2, 1, 3, testing::conv_options({1, 2}, {0, 1, 0, 1}, {1, 1}, 1)},
      {"1x1 stride 2", 2, 5, 7, 9, 4, 1, 1, testing::conv_options({2, 2}, {0, 0, 0, 0}, {1, 1}, 1)},
      {"2x2 stride 2", 2, 3, 8, 6, 5, 2, 2, testing::conv_options({2, 2}, {0, 0, 0, 0}, {1, 1}, 1)},
      {"1x1 padded", 1, 3, 4, 5, 2, 1, 1, testing::conv_options({1, 1}, {1, 0, 0, 1}, {1, 1}, 1)},
  };
  for (const ConvCase& k : cases) {
    check_case(k, true, false);
    check_case(k, false, true);
  }
}

TEST(Conv2d, PointwisePathMatchesReference) {
  const ConvCase cases[] = {
      {"1x1", 2, 7, 5, 3, 13, 1, 1, kPlain},
      {"1x1 groups 2", 1, 6, 3, 5, 4, 1, 1, testing::conv_options({1, 1}, {0, 0, 0, 0}, {1, 1}, 2)},
      {"1x1 one pixel", 3, 16, 1, 1, 9, 1, 1, kPlain},
  };
  for (const ConvCase& k : cases) {
    check_case(k, true, true);
    check_case(k, false, false);
  }
}

// Shapes that make several chunks per thread, thread-private weight-gradient
// partials, per-image backward-data (N >= threads) and the batch-1 sequential
// backward-data path.
TEST(Conv2d, ManyChunksMatchReference) {
  const ConvCase cases[] = {
      {"3x3 64 channels, batch 2", 2, 64, 24, 23, 8, 3, 3, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 1)},
      {"3x3 64 channels, batch 1", 1, 64, 25, 24, 8, 3, 3, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 1)},
      {"1x1 wide", 3, 32, 17, 19, 16, 1, 1, kPlain},
  };
  for (const ConvCase& k : cases) check_case(k, true, true);
}

TEST(Conv2d, DepthwiseMatchesReference) {
  const ConvCase cases[] = {
      {"depthwise 3x3, 13 channels", 2, 13, 7, 6, 13, 3, 3, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 13)},
      {"depthwise stride 2 asymmetric padding, 40 channels", 2, 40, 9, 8, 40, 3, 3,
       testing::conv_options({2, 2}, {0, 1, 1, 0}, {1, 1}, 40)},
      {"depthwise 5x5 dilation 2, 75 channels", 1, 75, 11, 9, 75, 5, 5, testing::conv_options({1, 1}, {4, 4, 4, 4}, {2, 2}, 75)},
      {"depthwise rectangular, stride (1, 3)", 1, 9, 6, 10, 9, 2, 3, testing::conv_options({1, 3}, {0, 2, 1, 0}, {2, 1}, 9)},
  };
  for (const ConvCase& k : cases) {
    check_case(k, true, true);
    check_case(k, false, false);
  }
}

// The raw kernel on hand-packed NHWC / (O, kH, kW, C) data, without the op:
// what a kernel researcher swaps in is checked on its own.
TEST(Conv2dKernel, ForwardOnPackedLayouts) {
  Generator gen = testing::test_generator();
  const ConvCase k{"raw", 2, 6, 7, 8, 5, 3, 3, testing::conv_options({2, 1}, {1, 2, 0, 1}, {1, 2}, 1)};
  const Tensor x = testing::random_tensor({k.n, k.c, k.h, k.w}, gen);
  const Tensor w = testing::random_tensor({k.o, k.c, k.kh, k.kw}, gen);
  const Tensor b = testing::random_tensor({k.o}, gen);
  const std::vector<float> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  std::vector<float> x_nhwc(xv.size()), w_ohwi(wv.size());
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t c = 0; c < k.c; ++c)
      for (int64_t i = 0; i < k.h; ++i)
        for (int64_t j = 0; j < k.w; ++j) x_nhwc[((n * k.h + i) * k.w + j) * k.c + c] = xv[((n * k.c + c) * k.h + i) * k.w + j];
  for (int64_t o = 0; o < k.o; ++o)
    for (int64_t c = 0; c < k.c; ++c)
      for (int64_t a = 0; a < k.kh; ++a)
        for (int64_t e = 0; e < k.kw; ++e)
          w_ohwi[((o * k.kh + a) * k.kw + e) * k.c + c] = wv[((o * k.c + c) * k.kh + a) * k.kw + e];
  kernels::cpu::Conv2dParams p;
  p.n = k.n, p.c = k.c, p.h = k.h, p.w = k.w, p.o = k.o, p.kh = k.kh, p.kw = k.kw;
  p.stride_h = 2, p.stride_w = 1, p.pad_top = 1, p.pad_left = 2, p.pad_bottom = 0, p.pad_right = 1;
  p.dilation_h = 1, p.dilation_w = 2;
  const RefGeometry geo(k);
  ASSERT_EQ(p.out_h(), geo.oh);
  ASSERT_EQ(p.out_w(), geo.ow);
  std::vector<float> y(k.n * geo.oh * geo.ow * k.o, std::nanf(""));
  kernels::cpu::conv2d_forward(p, x_nhwc.data(), w_ohwi.data(), bv.data(), y.data());
  const std::vector<float> zeros(k.n * k.o * geo.oh * geo.ow, 0.f);
  const Reference ref = ref_conv(k, xv, wv, bv, zeros);
  std::vector<double> ref_nhwc(y.size());
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t o = 0; o < k.o; ++o)
      for (int64_t i = 0; i < geo.oh; ++i)
        for (int64_t j = 0; j < geo.ow; ++j)
          ref_nhwc[((n * geo.oh + i) * geo.ow + j) * k.o + o] = ref.y[((n * k.o + o) * geo.oh + i) * geo.ow + j];
  EXPECT_TRUE(close(y, ref_nhwc));
}

TEST(Conv2d, FrozenWeightGetsNoGradientAndInputStillDoes) {
  Generator gen = testing::test_generator();
  const ConvCase k{"frozen", 2, 4, 6, 5, 3, 3, 3, testing::conv_options({1, 1}, {1, 1, 1, 1}, {1, 1}, 1)};
  Tensor x = testing::random_tensor({k.n, k.c, k.h, k.w}, gen).set_requires_grad(true);
  Tensor w = testing::random_tensor({k.o, k.c, k.kh, k.kw}, gen);  // frozen
  Tensor y = conv2d(x, w, Tensor(), k.opt);
  Tensor g = testing::random_tensor(y.shape(), gen);
  y.backward(g);
  EXPECT_FALSE(w.grad().defined());
  const Reference ref = ref_conv(k, x.to_vector(), w.to_vector(), {}, g.to_vector());
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(close(x.grad().to_vector(), ref.dx));

  // Neither input needs a gradient: nothing is recorded.
  Tensor x2 = testing::random_tensor({k.n, k.c, k.h, k.w}, gen);
  EXPECT_FALSE(conv2d(x2, w, Tensor(), k.opt).requires_grad());
  NoGradGuard no_grad;
  EXPECT_FALSE(conv2d(x, w, Tensor(), k.opt).requires_grad());
}

}  // namespace
}  // namespace graft
