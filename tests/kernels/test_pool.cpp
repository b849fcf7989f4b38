// Pooling forward (and the backward kernels) against naive float64 references
// written from the definitions: window positions are enumerated one by one,
// and output sizes come from enumerating which windows exist, not from the
// closed-form size formula the kernels use.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/pool.h"
#include "gtest/gtest.h"
#include "kernels/cpu/pool.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;
using testing::to_double;

// Number of windows along one dim. Windows sit at padded positions o * stride
// and span dilation * (kernel - 1) + 1 positions of the padded input
// [0, pad_begin + in + pad_end). Floor mode: a window must fit in the padded
// input. Ceil mode: one more window while the previous one did not reach the
// end, provided it starts inside the input or the begin padding.
int64_t ref_windows(int64_t in, int64_t kernel, int64_t stride, int64_t pad_begin, int64_t pad_end, int64_t dilation,
                    bool ceil_mode) {
  const int64_t padded = pad_begin + in + pad_end, extent = dilation * (kernel - 1) + 1;
  if (extent > padded) return 0;
  int64_t count = 0;
  for (int64_t o = 0;; ++o) {
    const int64_t start = o * stride;
    if (!ceil_mode) {
      if (start + extent > padded) break;
    } else {
      if (o > 0 && (o - 1) * stride + extent >= padded) break;
      if (start >= pad_begin + in) break;
    }
    ++count;
  }
  return count;
}

struct Case {
  Shape shape;  // N, C, H, W
  Pool2dOptions opt;
};

Pool2dOptions make_opt(int64_t kh, int64_t kw, int64_t sh, int64_t sw, std::array<int64_t, 4> pad,
                       std::array<int64_t, 2> dil = {1, 1}, bool ceil = false, bool include_pad = false) {
  Pool2dOptions o;
  o.kernel = {kh, kw};
  o.stride = {sh, sw};
  o.padding = pad;
  o.dilation = dil;
  o.ceil_mode = ceil;
  o.count_include_pad = include_pad;
  return o;
}

struct RefOut {
  Shape shape;
  std::vector<double> y;
  std::vector<int64_t> argmax;  // per output: flat h * W + w of the chosen input
};

RefOut ref_max_pool(const std::vector<double>& x, const Shape& s, const Pool2dOptions& o) {
  const int64_t N = s[0], C = s[1], H = s[2], W = s[3];
  const int64_t OH = ref_windows(H, o.kernel[0], o.stride[0], o.padding[0], o.padding[2], o.dilation[0], o.ceil_mode);
  const int64_t OW = ref_windows(W, o.kernel[1], o.stride[1], o.padding[1], o.padding[3], o.dilation[1], o.ceil_mode);
  RefOut r{{N, C, OH, OW}, {}, {}};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double best = -std::numeric_limits<double>::infinity();
          int64_t arg = -1;
          for (int64_t kh = 0; kh < o.kernel[0]; ++kh)
            for (int64_t kw = 0; kw < o.kernel[1]; ++kw) {
              const int64_t ih = oh * o.stride[0] - o.padding[0] + kh * o.dilation[0];
              const int64_t iw = ow * o.stride[1] - o.padding[1] + kw * o.dilation[1];
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const double v = x[((n * C + c) * H + ih) * W + iw];
              if (arg < 0 || v > best) {
                best = v;
                arg = ih * W + iw;
              }
            }
          r.y.push_back(best);
          r.argmax.push_back(arg);
        }
  return r;
}

RefOut ref_avg_pool(const std::vector<double>& x, const Shape& s, const Pool2dOptions& o) {
  const int64_t N = s[0], C = s[1], H = s[2], W = s[3];
  const int64_t OH = ref_windows(H, o.kernel[0], o.stride[0], o.padding[0], o.padding[2], 1, o.ceil_mode);
  const int64_t OW = ref_windows(W, o.kernel[1], o.stride[1], o.padding[1], o.padding[3], 1, o.ceil_mode);
  RefOut r{{N, C, OH, OW}, {}, {}};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double sum = 0;
          int64_t inside = 0, inside_padded = 0;
          for (int64_t kh = 0; kh < o.kernel[0]; ++kh)
            for (int64_t kw = 0; kw < o.kernel[1]; ++kw) {
              const int64_t ih = oh * o.stride[0] - o.padding[0] + kh;
              const int64_t iw = ow * o.stride[1] - o.padding[1] + kw;
              // Positions of the padded input count with count_include_pad;
              // those past it (added by ceil_mode) never count.
              if (ih < H + o.padding[2] && iw < W + o.padding[3]) ++inside_padded;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              sum += x[((n * C + c) * H + ih) * W + iw];
              ++inside;
            }
          r.y.push_back(sum / static_cast<double>(o.count_include_pad ? inside_padded : inside));
        }
  return r;
}

// d(sum_o g_o * y_o)/dx for the references above (g in logical order).
std::vector<double> ref_max_pool_backward(const RefOut& r, const std::vector<double>& g, const Shape& s) {
  const int64_t N = s[0], C = s[1], HW = s[2] * s[3], OHW = r.shape[2] * r.shape[3];
  std::vector<double> gx(static_cast<size_t>(N * C * HW), 0.0);
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t o = 0; o < OHW; ++o) gx[nc * HW + r.argmax[nc * OHW + o]] += g[nc * OHW + o];
  return gx;
}

std::vector<double> ref_avg_pool_backward(const std::vector<double>& g, const Shape& s, const Pool2dOptions& o,
                                          const Shape& out) {
  const int64_t N = s[0], C = s[1], H = s[2], W = s[3], OH = out[2], OW = out[3];
  std::vector<double> gx(static_cast<size_t>(shape_numel(s)), 0.0);
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t inside = 0, inside_padded = 0;
        for (int pass = 0; pass < 2; ++pass)  // count, then spread g / divisor
          for (int64_t kh = 0; kh < o.kernel[0]; ++kh)
            for (int64_t kw = 0; kw < o.kernel[1]; ++kw) {
              const int64_t ih = oh * o.stride[0] - o.padding[0] + kh;
              const int64_t iw = ow * o.stride[1] - o.padding[1] + kw;
              const bool in_padded = ih < H + o.padding[2] && iw < W + o.padding[3];
              const bool in_input = ih >= 0 && ih < H && iw >= 0 && iw < W;
              if (pass == 0) {
                inside_padded += in_padded;
                inside += in_input;
              } else if (in_input) {
                const double div = static_cast<double>(o.count_include_pad ? inside_padded : inside);
                gx[(nc * H + ih) * W + iw] += g[(nc * OH + oh) * OW + ow] / div;
              }
            }
      }
  return gx;
}

std::vector<Case> max_cases() {
  return {
      {{1, 1, 4, 4}, make_opt(2, 2, 2, 2, {0, 0, 0, 0})},
      {{2, 3, 7, 9}, make_opt(3, 3, 2, 2, {1, 1, 1, 1})},
      {{1, 13, 8, 7}, make_opt(3, 2, 2, 1, {1, 0, 2, 1})},              // asymmetric pads
      {{2, 5, 9, 9}, make_opt(3, 3, 2, 2, {1, 1, 1, 1}, {1, 1}, true)},  // ceil_mode
      {{1, 17, 5, 5}, make_opt(2, 2, 3, 3, {1, 1, 1, 1}, {1, 1}, true)},  // ceil drops a window
      {{2, 4, 10, 11}, make_opt(3, 2, 1, 2, {2, 1, 0, 1}, {2, 3})},      // dilation
      {{1, 9, 11, 8}, make_opt(2, 3, 3, 2, {1, 2, 1, 0}, {3, 2}, true)},  // dilation + ceil
      {{3, 1, 3, 3}, make_opt(3, 3, 1, 1, {0, 0, 0, 0})},                 // kernel = input
      {{1, 33, 6, 6}, make_opt(1, 1, 1, 1, {0, 0, 0, 0})},                // identity
      {{2, 64, 16, 16}, make_opt(3, 3, 2, 2, {1, 1, 1, 1}, {1, 1}, true)},  // large enough for threads
  };
}

std::vector<Case> avg_cases() {
  std::vector<Case> cases;
  const std::vector<Case> base = {
      {{1, 1, 4, 4}, make_opt(2, 2, 2, 2, {0, 0, 0, 0})},
      {{2, 3, 7, 9}, make_opt(3, 3, 2, 2, {1, 1, 1, 1})},
      {{1, 13, 8, 7}, make_opt(3, 2, 2, 1, {1, 0, 2, 1})},
      {{2, 5, 9, 9}, make_opt(3, 3, 2, 2, {1, 1, 1, 1}, {1, 1}, true)},
      {{1, 17, 5, 5}, make_opt(2, 2, 3, 3, {1, 1, 1, 1}, {1, 1}, true)},
      {{2, 6, 7, 6}, make_opt(3, 3, 2, 2, {0, 2, 1, 0}, {1, 1}, true)},  // ceil window past the padded end
      {{1, 9, 6, 5}, make_opt(3, 3, 3, 3, {2, 2, 0, 0}, {1, 1}, true)},  // last window mostly past the end
      {{2, 8, 7, 7}, make_opt(7, 7, 1, 1, {0, 0, 0, 0})},
      {{2, 48, 15, 15}, make_opt(3, 3, 2, 2, {1, 1, 1, 1}, {1, 1}, true)},  // large enough for threads
  };
  for (const Case& c : base)
    for (bool include : {false, true}) {
      Case k = c;
      k.opt.count_include_pad = include;
      cases.push_back(k);
    }
  return cases;
}

TEST(Pool, ReferenceWindowCountsAgreeWithTheKernelsSizeRule) {
  // The two independent descriptions of the output size must agree over a
  // grid of small configurations, including the ceil_mode window drop.
  int dropped = 0;
  for (int64_t in = 1; in <= 9; ++in)
    for (int64_t k = 1; k <= 4; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t d = 1; d <= 3; ++d)
          for (int64_t pb = 0; pb < k; ++pb)
            for (int64_t pe = 0; pe < k; ++pe)
              for (bool ceil : {false, true}) {
                const int64_t got = kernels::cpu::pool_output_size(in, k, s, pb, pe, d, ceil);
                ASSERT_EQ(got, ref_windows(in, k, s, pb, pe, d, ceil))
                    << "in " << in << " k " << k << " s " << s << " d " << d << " pads " << pb << "," << pe << " ceil "
                    << ceil;
                const int64_t span = in + pb + pe - d * (k - 1) - 1;
                if (ceil && span >= 0 && (span + s - 1) / s + 1 != got) ++dropped;
              }
  EXPECT_GT(dropped, 0);  // the grid exercised the "last window starts in the end padding" rule
}

TEST(Pool, MaxPoolForwardMatchesReference) {
  Generator gen = testing::test_generator();
  for (const Case& c : max_cases()) {
    for (bool cl_input : {false, true}) {
      Tensor x = testing::random_tensor(c.shape, gen, -2.f, 2.f);
      const std::vector<double> xd = to_double(x);
      if (cl_input) x = x.to_format(MemoryFormat::channels_last);
      const RefOut ref = ref_max_pool(xd, c.shape, c.opt);
      Tensor y = max_pool2d(x, c.opt);
      ASSERT_EQ(y.shape(), ref.shape) << shape_str(c.shape);
      EXPECT_TRUE(y.is_channels_last());
      EXPECT_TRUE(all_close(y.to_vector(), ref.y, 0, 0)) << "input " << shape_str(c.shape);  // max is exact
    }
  }
}

TEST(Pool, MaxPoolBackwardMatchesReference) {
  Generator gen = testing::test_generator();
  for (const Case& c : max_cases()) {
    Tensor x = testing::random_tensor(c.shape, gen, -2.f, 2.f).set_requires_grad(true);
    const RefOut ref = ref_max_pool(to_double(x), c.shape, c.opt);
    Tensor y = max_pool2d(x, c.opt);
    Tensor g = testing::random_tensor(y.shape(), gen);
    y.backward(g);
    const std::vector<double> want = ref_max_pool_backward(ref, to_double(g), c.shape);
    EXPECT_TRUE(all_close(x.grad().to_vector(), want, 1e-6, 1e-6)) << "input " << shape_str(c.shape);
  }
}

TEST(Pool, MaxPoolPropagatesNaN) {
  Tensor x = Tensor::from_vector({1, 2, NAN, 0, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const std::vector<float> y = max_pool2d(x, make_opt(2, 2, 1, 1, {0, 0, 0, 0})).to_vector();
  ASSERT_EQ(y.size(), 4u);
  EXPECT_FALSE(std::isnan(y[0]));  // window {1, 2, 0, 5}
  EXPECT_TRUE(std::isnan(y[1]));   // window {2, NaN, 5, 6}
  EXPECT_EQ(y[0], 5.f);
}

TEST(Pool, AvgPoolForwardMatchesReference) {
  Generator gen = testing::test_generator();
  for (const Case& c : avg_cases()) {
    for (bool cl_input : {false, true}) {
      Tensor x = testing::random_tensor(c.shape, gen, -2.f, 2.f);
      const std::vector<double> xd = to_double(x);
      if (cl_input) x = x.to_format(MemoryFormat::channels_last);
      const RefOut ref = ref_avg_pool(xd, c.shape, c.opt);
      Tensor y = avg_pool2d(x, c.opt);
      ASSERT_EQ(y.shape(), ref.shape) << shape_str(c.shape);
      EXPECT_TRUE(y.is_channels_last());
      // f32 sums of at most 49 terms against f64.
      EXPECT_TRUE(all_close(y.to_vector(), ref.y, 1e-5, 1e-6))
          << "input " << shape_str(c.shape) << " count_include_pad " << c.opt.count_include_pad;
    }
  }
}

TEST(Pool, AvgPoolCountIncludePadChangesOnlyPaddedWindows) {
  // A guard on the reference itself: with both settings the interior windows
  // agree and some border window differs, so neither test above is vacuous.
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({1, 1, 6, 6}, gen, 1.f, 2.f);
  Pool2dOptions o = make_opt(3, 3, 2, 2, {1, 1, 1, 1}, {1, 1}, true);
  const std::vector<float> a = avg_pool2d(x, o).to_vector();
  o.count_include_pad = true;
  const std::vector<float> b = avg_pool2d(x, o).to_vector();
  // Windows start at padded rows 0, 2, 4, 6 (4 x 4 outputs); the last covers
  // input row 5, the bottom padding row, and one row past the padded input.
  ASSERT_EQ(a.size(), 16u);
  EXPECT_FLOAT_EQ(a[5], b[5]);  // window (1, 1) has no padding
  EXPECT_LT(b[0], a[0]);        // zeros counted in the corner
  // Window (3, 3): one input value; with count_include_pad the divisor is 2 x 2
  // (padding counts, the positions past the padded input do not).
  EXPECT_FLOAT_EQ(a[15], x.to_vector()[35]);
  EXPECT_NEAR(b[15], a[15] / 4, 1e-6);
  const std::vector<double> ref = ref_avg_pool(to_double(x), {1, 1, 6, 6}, o).y;
  EXPECT_TRUE(all_close(b, ref, 1e-5, 1e-6));
}

TEST(Pool, AvgPoolBackwardMatchesReference) {
  Generator gen = testing::test_generator();
  for (const Case& c : avg_cases()) {
    Tensor x = testing::random_tensor(c.shape, gen).set_requires_grad(true);
    Tensor y = avg_pool2d(x, c.opt);
    Tensor g = testing::random_tensor(y.shape(), gen);
    y.backward(g);
    const std::vector<double> want = ref_avg_pool_backward(to_double(g), c.shape, c.opt, y.shape());
    EXPECT_TRUE(all_close(x.grad().to_vector(), want, 1e-5, 1e-6))
        << "input " << shape_str(c.shape) << " count_include_pad " << c.opt.count_include_pad;
  }
}

TEST(Pool, GlobalAvgPoolForwardAndBackwardMatchReference) {
  Generator gen = testing::test_generator();
  for (const Shape& s : std::vector<Shape>{{1, 1, 1, 1}, {2, 3, 7, 7}, {3, 70, 5, 3}, {1, 130, 13, 1}, {4, 130, 9, 9}}) {
    Tensor x = testing::random_tensor(s, gen).set_requires_grad(true);
    const std::vector<double> xd = to_double(x);
    Tensor y = global_avg_pool2d(x);
    ASSERT_EQ(y.shape(), (Shape{s[0], s[1], 1, 1}));
    const int64_t hw = s[2] * s[3];
    std::vector<double> ref(static_cast<size_t>(s[0] * s[1]), 0.0);
    for (int64_t nc = 0; nc < s[0] * s[1]; ++nc) {
      for (int64_t i = 0; i < hw; ++i) ref[nc] += xd[nc * hw + i];
      ref[nc] /= static_cast<double>(hw);
    }
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-5, 1e-6)) << shape_str(s);

    Tensor g = testing::random_tensor(y.shape(), gen);
    y.backward(g);
    const std::vector<double> gd = to_double(g);
    std::vector<double> want(xd.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = gd[i / hw] / static_cast<double>(hw);
    EXPECT_TRUE(all_close(x.grad().to_vector(), want, 1e-6, 1e-7)) << shape_str(s);
  }
}

TEST(Pool, MaxPoolWithoutGradSavesNoIndicesAndAgrees) {
  // The inference path (no argmax written) gives the same values.
  Generator gen = testing::test_generator();
  const Case c = max_cases()[3];
  Tensor x = testing::random_tensor(c.shape, gen).set_requires_grad(true);
  Tensor with_grad = max_pool2d(x, c.opt);
  Tensor without;
  {
    NoGradGuard ng;
    without = max_pool2d(x, c.opt);
  }
  EXPECT_TRUE(with_grad.requires_grad());
  EXPECT_FALSE(without.requires_grad());
  EXPECT_EQ(with_grad.to_vector(), without.to_vector());
}

}  // namespace
}  // namespace graft
