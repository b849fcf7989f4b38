// conv_transpose2d (conv2d's backward-data kernel run forward) and its
// gradients against naive float64 loops that scatter each input pixel through
// the kernel — independent of the conv-adjoint derivation the op relies on.
//
// Tolerance: f32 sums of at most C/groups*kH*kW products against float64:
// elementwise |err| <= 1e-4 * (1 + |ref|), relative L2 error < 1e-5.
#include <vector>

#include "engine/ops/conv.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;
using testing::rel_l2_error;

struct TCase {
  const char* what;
  int64_t n, c, h, w, o, kh, kw;  // o: output channels (weight is (c, o/groups, kh, kw))
  ConvTranspose2dOptions opt;
};

ConvTranspose2dOptions make_opt(std::array<int64_t, 2> stride, std::array<int64_t, 4> pad,
                                std::array<int64_t, 2> out_pad, std::array<int64_t, 2> dil, int64_t groups) {
  ConvTranspose2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.output_padding = out_pad;
  o.dilation = dil;
  o.groups = groups;
  return o;
}

struct Ref {
  int64_t oh, ow;
  std::vector<double> y, dx, dw, db;
};

// y[n, o, i*s - pad + a*d, ...] += x[n, c, i, j] * w[c, o % og, a, e]; then the
// gradients of <y, g>.
Ref reference(const TCase& k, const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
              const std::vector<float>& g) {
  const auto& o = k.opt;
  Ref r;
  r.oh = (k.h - 1) * o.stride[0] - o.padding[0] - o.padding[2] + o.dilation[0] * (k.kh - 1) + 1 + o.output_padding[0];
  r.ow = (k.w - 1) * o.stride[1] - o.padding[1] - o.padding[3] + o.dilation[1] * (k.kw - 1) + 1 + o.output_padding[1];
  const int64_t cg = k.c / o.groups, og = k.o / o.groups;
  r.y.assign(k.n * k.o * r.oh * r.ow, 0.0);
  r.dx.assign(x.size(), 0.0);
  r.dw.assign(w.size(), 0.0);
  r.db.assign(k.o, 0.0);
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t oc = 0; oc < k.o; ++oc)
      for (int64_t i = 0; i < r.oh; ++i)
        for (int64_t j = 0; j < r.ow; ++j) {
          const int64_t yi = ((n * k.o + oc) * r.oh + i) * r.ow + j;
          if (!b.empty()) r.y[yi] += b[oc];
          r.db[oc] += g[yi];
        }
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t c = 0; c < k.c; ++c)
      for (int64_t i = 0; i < k.h; ++i)
        for (int64_t j = 0; j < k.w; ++j) {
          const int64_t xi = ((n * k.c + c) * k.h + i) * k.w + j;
          const int64_t grp = c / cg;
          for (int64_t oo = 0; oo < og; ++oo)
            for (int64_t a = 0; a < k.kh; ++a)
              for (int64_t e = 0; e < k.kw; ++e) {
                const int64_t yh = i * o.stride[0] - o.padding[0] + a * o.dilation[0];
                const int64_t yw = j * o.stride[1] - o.padding[1] + e * o.dilation[1];
                if (yh < 0 || yh >= r.oh || yw < 0 || yw >= r.ow) continue;
                const int64_t oc = grp * og + oo;
                const int64_t yi = ((n * k.o + oc) * r.oh + yh) * r.ow + yw;
                const int64_t wi = ((c * og + oo) * k.kh + a) * k.kw + e;
                r.y[yi] += double(x[xi]) * w[wi];
                r.dx[xi] += double(g[yi]) * w[wi];
                r.dw[wi] += double(g[yi]) * x[xi];
              }
        }
  return r;
}

const TCase kCases[] = {
    {"3x3 stride 1", 2, 3, 5, 4, 4, 3, 3, make_opt({1, 1}, {0, 0, 0, 0}, {0, 0}, {1, 1}, 1)},
    {"stride 2 pad 1 output_padding 1", 1, 4, 4, 5, 3, 3, 3, make_opt({2, 2}, {1, 1, 1, 1}, {1, 1}, {1, 1}, 1)},
    {"asymmetric pads rectangular", 2, 2, 3, 7, 5, 2, 3, make_opt({3, 2}, {1, 0, 0, 2}, {2, 0}, {1, 1}, 1)},
    {"dilation 2", 1, 3, 4, 4, 2, 3, 2, make_opt({1, 2}, {0, 1, 1, 0}, {0, 1}, {2, 2}, 1)},
    {"groups 2", 2, 4, 3, 5, 6, 3, 3, make_opt({2, 1}, {1, 1, 0, 1}, {1, 0}, {1, 1}, 2)},
    {"depthwise-like groups", 1, 3, 5, 5, 3, 3, 3, make_opt({2, 2}, {1, 1, 1, 1}, {0, 0}, {1, 1}, 3)},
    {"1x1 stride 1", 3, 7, 3, 2, 13, 1, 1, make_opt({1, 1}, {0, 0, 0, 0}, {0, 0}, {1, 1}, 1)},
    {"1x1 stride 2", 1, 5, 4, 3, 3, 1, 1, make_opt({2, 2}, {0, 0, 0, 0}, {1, 1}, {1, 1}, 1)},
    // output_padding beyond the stride (allowed with dilation): rows no tap reaches hold the bias only
    {"output_padding >= stride", 1, 2, 3, 3, 2, 2, 2, make_opt({1, 1}, {0, 0, 0, 0}, {1, 2}, {3, 3}, 1)},
    {"odd sizes", 1, 13, 7, 1, 7, 3, 1, make_opt({1, 3}, {2, 0, 1, 0}, {0, 2}, {1, 1}, 1)},
};

TEST(ConvTranspose2d, ForwardAndGradientsMatchFloat64Reference) {
  Generator gen = testing::test_generator();
  for (const TCase& k : kCases) {
    for (bool with_bias : {true, false}) {
      Tensor x = Tensor::rand({k.n, k.c, k.h, k.w}, gen, -1.f, 1.f).set_requires_grad(true);
      Tensor w = Tensor::rand({k.c, k.o / k.opt.groups, k.kh, k.kw}, gen, -1.f, 1.f).set_requires_grad(true);
      Tensor b = with_bias ? Tensor::rand({k.o}, gen, -1.f, 1.f).set_requires_grad(true) : Tensor();
      Tensor y = conv_transpose2d(x, w, b, k.opt);
      Tensor g = Tensor::rand(y.shape(), gen, -1.f, 1.f);
      const Ref r = reference(k, x.to_vector(), w.to_vector(), with_bias ? b.to_vector() : std::vector<float>{},
                              g.to_vector());
      ASSERT_EQ(y.shape(), (Shape{k.n, k.o, r.oh, r.ow})) << k.what;
      EXPECT_TRUE(all_close(y.to_vector(), r.y, 1e-4, 1e-4)) << k.what;
      EXPECT_LT(rel_l2_error(y.to_vector(), r.y), 1e-5) << k.what;
      y.backward(g);
      EXPECT_TRUE(all_close(x.grad().to_vector(), r.dx, 1e-4, 1e-4)) << k.what << " dx";
      EXPECT_TRUE(all_close(w.grad().to_vector(), r.dw, 1e-4, 1e-4)) << k.what << " dw";
      if (with_bias) {
        EXPECT_TRUE(all_close(b.grad().to_vector(), r.db, 1e-4, 1e-4)) << k.what << " db";
      }
      EXPECT_EQ(x.grad().shape(), x.shape());
      EXPECT_EQ(w.grad().shape(), w.shape());
    }
  }
}

// A row-major input and weight give the same result as channels-last ones.
TEST(ConvTranspose2d, AnyInputLayout) {
  Generator gen = testing::test_generator();
  const TCase& k = kCases[1];
  Tensor x = Tensor::rand({k.n, k.c, k.h, k.w}, gen, -1.f, 1.f);
  Tensor w = Tensor::rand({k.c, k.o, k.kh, k.kw}, gen, -1.f, 1.f);
  const Ref r = reference(k, x.to_vector(), w.to_vector(), {}, std::vector<float>(k.n * k.o * 8 * 10, 0.f));
  for (MemoryFormat f : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
    Tensor y = conv_transpose2d(x.to_format(f), w.to_format(f), Tensor(), k.opt);
    EXPECT_TRUE(all_close(y.to_vector(), r.y, 1e-4, 1e-4));
  }
}

}  // namespace
}  // namespace graft
