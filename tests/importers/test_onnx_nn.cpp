// Converters of the nn family, one node at a time: each node is built with the
// protobuf API, converted on engine tensors and compared with a float64
// reference written here from the ONNX operator's definition (not from the
// engine op it maps to). Tolerance: f32 vs f64, |err| <= 1e-4 * (1 + |ref|).
#include <cmath>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "importers/onnx/converter.h"
#include "tests/support/onnx_node.h"
#include "tests/support/reference.h"

namespace graft::importer {
namespace {

using graft::testing::all_close;

struct Node : graft::testing::OnnxAttrs<Node> {
  ::onnx::NodeProto proto;
  explicit Node(const std::string& op, int inputs = 1, int outputs = 1) {
    proto.set_op_type(op);
    proto.set_name("n_" + op);
    for (int i = 0; i < inputs; ++i) proto.add_input("in" + std::to_string(i));
    for (int i = 0; i < outputs; ++i) proto.add_output("out" + std::to_string(i));
  }
};

std::vector<Tensor> run(const Node& n, int opset, const std::vector<Tensor>& inputs, bool training = false) {
  static Generator gen(1234);
  return graft::testing::run_converter(n.proto, opset, inputs, gen, training);
}

Tensor rnd(const Shape& s, Generator& g) { return Tensor::rand(s, g, -1.f, 1.f); }

// Naive 2-D convolution over NCHW doubles with explicit pads [top, left, bottom, right].
std::vector<double> ref_conv(const Tensor& xt, const Tensor& wt, const std::vector<float>& b, int64_t sh, int64_t sw,
                             std::array<int64_t, 4> p, int64_t dh, int64_t dw, int64_t groups, Shape* out) {
  const auto x = xt.to_vector(), w = wt.to_vector();
  const int64_t N = xt.size(0), C = xt.size(1), H = xt.size(2), W = xt.size(3);
  const int64_t O = wt.size(0), KH = wt.size(2), KW = wt.size(3), cg = C / groups, og = O / groups;
  const int64_t OH = (H + p[0] + p[2] - dh * (KH - 1) - 1) / sh + 1, OW = (W + p[1] + p[3] - dw * (KW - 1) - 1) / sw + 1;
  *out = {N, O, OH, OW};
  std::vector<double> y(N * O * OH * OW, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          double acc = b.empty() ? 0.0 : b[o];
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t a = 0; a < KH; ++a)
              for (int64_t e = 0; e < KW; ++e) {
                const int64_t ih = i * sh - p[0] + a * dh, iw = j * sw - p[1] + e * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += double(x[((n * C + (o / og) * cg + c) * H + ih) * W + iw]) * w[((o * cg + c) * KH + a) * KW + e];
              }
          y[((n * O + o) * OH + i) * OW + j] = acc;
        }
  return y;
}

TEST(OnnxNn, ConvAutoPadSameAndStrides) {
  Generator g = graft::testing::test_generator();
  const Tensor x = rnd({2, 3, 7, 6}, g), w = rnd({4, 3, 3, 2}, g), b = rnd({4}, g);
  // SAME: output = ceil(in / stride); total pad = (out-1)*s + k - in, the odd one at the end (UPPER) or start (LOWER).
  // H: out 4, total 3*2+3-7 = 2 -> 1/1. W: out 3, total 2*2+2-6 = 0.
  for (const char* mode : {"SAME_UPPER", "SAME_LOWER"}) {
    Node n("Conv", 3);
    n.s("auto_pad", mode).ints("strides", {2, 2}).ints("kernel_shape", {3, 2});
    const Tensor y = run(n, 11, {x, w, b})[0];
    Shape shape;
    const auto ref = ref_conv(x, w, b.to_vector(), 2, 2, {1, 0, 1, 0}, 1, 1, 1, &shape);
    EXPECT_EQ(y.shape(), shape) << mode;
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-4)) << mode;
  }
  {  // stride 1, kernel 2: total 1 -> UPPER pads the end, LOWER the start
    const Tensor w2 = rnd({2, 3, 2, 2}, g);
    for (const char* mode : {"SAME_UPPER", "SAME_LOWER"}) {
      Node n("Conv", 2);
      n.s("auto_pad", mode);
      const Tensor y = run(n, 11, {x, w2})[0];
      Shape shape;
      const bool upper = std::string(mode) == "SAME_UPPER";
      const auto ref = ref_conv(x, w2, {}, 1, 1, upper ? std::array<int64_t, 4>{0, 0, 1, 1} : std::array<int64_t, 4>{1, 1, 0, 0},
                                1, 1, 1, &shape);
      EXPECT_EQ(y.shape(), (Shape{2, 2, 7, 6})) << mode;
      EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-4)) << mode;
    }
  }
  {  // explicit pads, dilations, groups
    const Tensor w3 = rnd({6, 1, 3, 3}, g);
    Node n("Conv", 2);
    n.ints("pads", {1, 0, 2, 1}).ints("dilations", {2, 1}).i("group", 3);
    const Tensor y = run(n, 11, {x, w3})[0];
    Shape shape;
    const auto ref = ref_conv(x, w3, {}, 1, 1, {1, 0, 2, 1}, 2, 1, 3, &shape);
    EXPECT_EQ(y.shape(), shape);
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-4));
  }
}

TEST(OnnxNn, Conv1dRunsAs2dAnd3dIsRefused) {
  Generator g = graft::testing::test_generator();
  const Tensor x = rnd({2, 3, 9}, g), w = rnd({4, 3, 3}, g);
  Node n("Conv", 2);
  n.ints("pads", {2, 1}).ints("strides", {2});
  const Tensor y = run(n, 11, {x, w})[0];
  Shape shape;
  const auto ref = ref_conv(reshape(x, {2, 3, 1, 9}), reshape(w, {4, 3, 1, 3}), {}, 1, 2, {0, 2, 0, 1}, 1, 1, 1, &shape);
  EXPECT_EQ(y.shape(), (Shape{2, 4, shape[3]}));
  EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-4));
  Node bad("Conv", 2);
  EXPECT_TRUE(graft::testing::throws_naming([&] { run(bad, 11, {rnd({1, 2, 3, 3, 3}, g), rnd({2, 2, 1, 1, 1}, g)}); },
                                            {"test.onnx", "n_Conv", "3-D"}));
  Node wrong_k("Conv", 2);
  wrong_k.ints("kernel_shape", {2});
  EXPECT_TRUE(graft::testing::throws_naming([&] { run(wrong_k, 11, {x, w}); }, {"n_Conv", "kernel_shape"}));
  Node weird("Conv", 2);
  weird.s("auto_pad", "SOMETHING");
  EXPECT_TRUE(graft::testing::throws_naming([&] { run(weird, 11, {x, w}); }, {"n_Conv", "auto_pad"}));
}

// y[n, o, i*s - pad + a*d] += x[n, c, i] * w[c, o, a], then cropped to out_size (extra positions: bias only).
TEST(OnnxNn, ConvTransposeOutputShapeAndAutoPad) {
  Generator g = graft::testing::test_generator();
  const Tensor x = rnd({1, 2, 3, 3}, g), w = rnd({2, 3, 3, 3}, g), b = rnd({3}, g);
  const auto ref = [&](int64_t s, std::array<int64_t, 2> begin, std::array<int64_t, 2> out) {
    const auto xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
    std::vector<double> y(3 * out[0] * out[1]);
    for (int64_t o = 0; o < 3; ++o)
      for (int64_t i = 0; i < out[0] * out[1]; ++i) y[o * out[0] * out[1] + i] = bv[o];
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j)
          for (int64_t o = 0; o < 3; ++o)
            for (int64_t a = 0; a < 3; ++a)
              for (int64_t e = 0; e < 3; ++e) {
                const int64_t yh = i * s - begin[0] + a, yw = j * s - begin[1] + e;
                if (yh < 0 || yh >= out[0] || yw < 0 || yw >= out[1]) continue;
                y[(o * out[0] + yh) * out[1] + yw] += double(xv[(c * 3 + i) * 3 + j]) * wv[((c * 3 + o) * 3 + a) * 3 + e];
              }
    return y;
  };
  {  // natural size (3-1)*3 + 3 = 9; output_shape 10 x 8 asks for more: the rest is bias
    Node n("ConvTranspose", 3);
    n.ints("strides", {3, 3}).ints("output_shape", {10, 8});
    const Tensor y = run(n, 11, {x, w, b})[0];
    EXPECT_EQ(y.shape(), (Shape{1, 3, 10, 8}));
    // width 8 < 9: total padding 1; the spec puts total - total/2 at the start unless SAME_UPPER
    EXPECT_TRUE(all_close(y.to_vector(), ref(3, {0, 1}, {10, 8}), 1e-4, 1e-4));
  }
  {  // SAME_UPPER: output = input * stride = 6; total = 2*2 + 3 - 6 = 1
    Node n("ConvTranspose", 3);
    n.ints("strides", {2, 2}).s("auto_pad", "SAME_UPPER");
    const Tensor y = run(n, 11, {x, w, b})[0];
    EXPECT_EQ(y.shape(), (Shape{1, 3, 6, 6}));
    EXPECT_TRUE(all_close(y.to_vector(), ref(2, {0, 0}, {6, 6}), 1e-4, 1e-4));
  }
  {  // pads and output_padding
    Node n("ConvTranspose", 3);
    n.ints("strides", {2, 2}).ints("pads", {1, 1, 1, 1}).ints("output_padding", {1, 1});
    const Tensor y = run(n, 11, {x, w, b})[0];
    EXPECT_EQ(y.shape(), (Shape{1, 3, 6, 6}));
    EXPECT_TRUE(all_close(y.to_vector(), ref(2, {1, 1}, {6, 6}), 1e-4, 1e-4));
  }
}

TEST(OnnxNn, GemmAttributesAndBroadcast) {
  Generator g = graft::testing::test_generator();
  const Tensor a = rnd({5, 3}, g), b = rnd({4, 5}, g);  // transA: A is (K, M) = (5, 3); transB: B is (N, K) = (4, 5)
  for (const Shape& cs : {Shape{3, 4}, Shape{4}, Shape{1}, Shape{3, 1}, Shape{}}) {
    const Tensor c = rnd(cs, g);
    Node n("Gemm", 3);
    n.f("alpha", 0.25f).f("beta", 0.35f).i("transA", 1).i("transB", 1);
    const Tensor y = run(n, 11, {a, b, c})[0];
    const auto av = a.to_vector(), bv = b.to_vector(), cv = c.to_vector();
    std::vector<double> ref(12);
    for (int m = 0; m < 3; ++m)
      for (int k = 0; k < 4; ++k) {
        double s = 0;
        for (int q = 0; q < 5; ++q) s += double(av[q * 3 + m]) * bv[k * 5 + q];
        const int64_t ci = cs.size() == 2 ? (cs[1] == 1 ? m : m * 4 + k) : (cs.size() == 1 && cs[0] == 4 ? k : 0);
        ref[m * 4 + k] = 0.25 * s + 0.35 * cv[ci];
      }
    ASSERT_EQ(y.shape(), (Shape{3, 4})) << shape_str(cs);
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-4)) << shape_str(cs);
  }
  {  // the plain layer (transB, vector bias) and no C at opset 11
    const Tensor x = rnd({2, 5}, g), bias = rnd({4}, g);
    Node n("Gemm", 3);
    n.i("transB", 1);
    const Tensor y = run(n, 13, {x, b, bias})[0];
    Node n2("Gemm", 2);
    const Tensor y2 = run(n2, 13, {x, transpose(b, 0, 1)})[0];
    const auto xv = x.to_vector(), bv = b.to_vector(), biv = bias.to_vector();
    std::vector<double> ref(8), ref2(8);
    for (int m = 0; m < 2; ++m)
      for (int k = 0; k < 4; ++k) {
        double s = 0;
        for (int q = 0; q < 5; ++q) s += double(xv[m * 5 + q]) * bv[k * 5 + q];
        ref[m * 4 + k] = s + biv[k];
        ref2[m * 4 + k] = s;
      }
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-4));
    EXPECT_TRUE(all_close(y2.to_vector(), ref2, 1e-4, 1e-4));
  }
}

TEST(OnnxNn, SoftmaxBeforeOpset13FlattensAtAxis) {
  Generator g = graft::testing::test_generator();
  const Tensor x = rnd({2, 3, 4}, g);
  const auto xv = x.to_vector();
  // opset 11, axis 1: rows of 12 (dims 1 and 2 together); opset 13, axis 1: along dim 1 only.
  std::vector<double> old_ref(24), new_ref(24);
  for (int n = 0; n < 2; ++n) {
    double mx = -1e30, s = 0;
    for (int i = 0; i < 12; ++i) mx = std::max<double>(mx, xv[n * 12 + i]);
    for (int i = 0; i < 12; ++i) s += std::exp(xv[n * 12 + i] - mx);
    for (int i = 0; i < 12; ++i) old_ref[n * 12 + i] = std::exp(xv[n * 12 + i] - mx) / s;
    for (int k = 0; k < 4; ++k) {
      double t = 0;
      for (int c = 0; c < 3; ++c) t += std::exp(double(xv[n * 12 + c * 4 + k]));
      for (int c = 0; c < 3; ++c) new_ref[n * 12 + c * 4 + k] = std::exp(double(xv[n * 12 + c * 4 + k])) / t;
    }
  }
  Node n("Softmax");
  n.i("axis", 1);
  const Tensor y11 = run(n, 11, {x})[0], y13 = run(n, 13, {x})[0];
  EXPECT_EQ(y11.shape(), x.shape());
  EXPECT_TRUE(all_close(y11.to_vector(), old_ref, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(y13.to_vector(), new_ref, 1e-5, 1e-6));
  Node dflt("LogSoftmax");  // opset 11 default axis 1 (flattened); log of the same
  std::vector<double> log_ref(24);
  for (int i = 0; i < 24; ++i) log_ref[i] = std::log(old_ref[i]);
  EXPECT_TRUE(all_close(run(dflt, 11, {x})[0].to_vector(), log_ref, 1e-5, 1e-5));
}

TEST(OnnxNn, BatchNormInferenceAndTrainingMode) {
  Generator g = graft::testing::test_generator();
  const Tensor x = rnd({3, 2, 5}, g), scale = rnd({2}, g), bias = rnd({2}, g), mean = rnd({2}, g);
  const Tensor var = Tensor::rand({2}, g, 0.5f, 1.5f);
  const auto xv = x.to_vector(), sv = scale.to_vector(), bv = bias.to_vector(), mv = mean.to_vector(), vv = var.to_vector();
  Node n("BatchNormalization", 5);
  n.f("epsilon", 1e-3f);
  std::vector<double> ref(30);
  for (int i = 0; i < 30; ++i) {
    const int c = (i / 5) % 2;
    ref[i] = (xv[i] - mv[c]) / std::sqrt(vv[c] + 1e-3) * sv[c] + bv[c];
  }
  const Tensor y = run(n, 15, {x, scale, bias, mean, var})[0];
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-4));

  Node t("BatchNormalization", 5, 3);
  t.f("epsilon", 1e-3f).f("momentum", 0.8f).i("training_mode", 1);
  const std::vector<Tensor> out = run(t, 15, {x, scale, bias, mean, var});
  ASSERT_EQ(out.size(), 3u);
  std::vector<double> yt(30), rm(2), rv(2);
  for (int c = 0; c < 2; ++c) {
    double m = 0, v = 0;
    for (int n2 = 0; n2 < 3; ++n2)
      for (int l = 0; l < 5; ++l) m += xv[(n2 * 2 + c) * 5 + l];
    m /= 15;
    for (int n2 = 0; n2 < 3; ++n2)
      for (int l = 0; l < 5; ++l) v += std::pow(xv[(n2 * 2 + c) * 5 + l] - m, 2);
    v /= 15;  // biased, as ONNX
    for (int n2 = 0; n2 < 3; ++n2)
      for (int l = 0; l < 5; ++l) {
        const int i = (n2 * 2 + c) * 5 + l;
        yt[i] = (xv[i] - m) / std::sqrt(v + 1e-3) * sv[c] + bv[c];
      }
    rm[c] = mv[c] * 0.8 + m * 0.2;
    rv[c] = vv[c] * 0.8 + v * 0.2;
  }
  EXPECT_TRUE(all_close(out[0].to_vector(), yt, 1e-4, 1e-4));
  EXPECT_TRUE(all_close(out[1].to_vector(), rm, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(out[2].to_vector(), rv, 1e-5, 1e-6));
  // In a training module the buffers themselves move.
  Tensor rmean = mean.clone(), rvar = var.clone();
  run(n, 15, {x, scale, bias, rmean, rvar}, /*training=*/true);
  EXPECT_TRUE(all_close(rmean.to_vector(), [&] {
    std::vector<double> r(2);
    for (int c = 0; c < 2; ++c) r[c] = (rm[c] - mv[c] * 0.8) / 0.2 * 0.1 + mv[c] * 0.9;  // default momentum 0.9
    return r;
  }(), 1e-5, 1e-6));
}

TEST(OnnxNn, LayerNormAxisAndStatistics) {
  Generator g = graft::testing::test_generator();
  const Tensor x = rnd({2, 3, 4}, g), scale = rnd({3, 4}, g), bias = rnd({3, 4}, g);
  Node n("LayerNormalization", 3, 3);
  n.i("axis", 1).f("epsilon", 1e-2f);
  const std::vector<Tensor> out = run(n, 17, {x, scale, bias});
  ASSERT_EQ(out.size(), 3u);
  const auto xv = x.to_vector(), sv = scale.to_vector(), bv = bias.to_vector();
  std::vector<double> y(24), m(2), inv(2);
  for (int r = 0; r < 2; ++r) {
    double s = 0, v = 0;
    for (int i = 0; i < 12; ++i) s += xv[r * 12 + i];
    s /= 12;
    for (int i = 0; i < 12; ++i) v += std::pow(xv[r * 12 + i] - s, 2);
    v /= 12;
    m[r] = s;
    inv[r] = 1 / std::sqrt(v + 1e-2);
    for (int i = 0; i < 12; ++i) y[r * 12 + i] = (xv[r * 12 + i] - s) * inv[r] * sv[i] + bv[i];
  }
  EXPECT_TRUE(all_close(out[0].to_vector(), y, 1e-4, 1e-4));
  EXPECT_EQ(out[1].shape(), (Shape{2, 1, 1}));
  EXPECT_TRUE(all_close(out[1].to_vector(), m, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(out[2].to_vector(), inv, 1e-4, 1e-5));
}

TEST(OnnxNn, DropoutModesAndMask) {
  Generator g = graft::testing::test_generator();
  const Tensor x = Tensor::rand({4, 50}, g, 0.5f, 1.5f);  // no zeros: a dropped element is exactly 0
  Node n("Dropout", 3, 2);
  const Tensor ratio = Tensor::scalar(0.3);
  std::vector<Tensor> eval = run(n, 13, {x, ratio, Tensor()});
  EXPECT_TRUE(eval[0].same(x));
  const auto mask_all = eval[1].to_vector();
  EXPECT_EQ(eval[1].dtype(), DType::boolean);
  for (float v : mask_all) ASSERT_EQ(v, 1.f);
  std::vector<Tensor> train = run(n, 13, {x, ratio, Tensor::from_vector({1.f}, {}, DType::boolean)});
  const auto y = train[0].to_vector(), mask = train[1].to_vector(), xv = x.to_vector();
  int dropped = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    dropped += mask[i] == 0.f;
    ASSERT_NEAR(y[i], mask[i] != 0.f ? xv[i] / 0.7 : 0.0, 1e-5) << i;
  }
  EXPECT_GT(dropped, 20);
  EXPECT_LT(dropped, 100);
  Node old("Dropout");  // opset 7: ratio attribute, identity in inference
  old.f("ratio", 0.9f);
  EXPECT_TRUE(run(old, 7, {x})[0].same(x));
}

// softmax(scale * q.k + mask) v per head, in doubles; kv head h * hkv / hq serves query head h.
std::vector<double> ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<float>& mask,
                                  bool causal, double scale, double softcap = 0.0, int64_t past = 0) {
  const auto qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3), HK = k.size(1), L = k.size(2), DV = v.size(3);
  std::vector<double> y(B * H * S * DV, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t hk = h / (H / HK);
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> s(L);
        double mx = -INFINITY;
        for (int64_t j = 0; j < L; ++j) {
          double d = 0;
          for (int64_t e = 0; e < D; ++e) d += double(qv[((b * H + h) * S + i) * D + e]) * kv[((b * HK + hk) * L + j) * D + e];
          s[j] = d * scale;
          if (softcap > 0) s[j] = softcap * std::tanh(s[j] / softcap);
          s[j] += mask.empty() ? 0.0 : mask[i * L + j];
          if (causal && j > i + past) s[j] = -INFINITY;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < L; ++j) z += (s[j] = std::exp(s[j] - mx));
        for (int64_t j = 0; j < L; ++j)
          for (int64_t e = 0; e < DV; ++e) y[((b * H + h) * S + i) * DV + e] += s[j] / z * vv[((b * HK + hk) * L + j) * DV + e];
      }
    }
  return y;
}

TEST(OnnxNn, Attention3dGroupedQueryMaskCausal) {
  Generator g = graft::testing::test_generator();
  const int64_t B = 2, S = 3, L = 5, HQ = 4, HK = 2, D = 4, DV = 3;
  const Tensor q = rnd({B, S, HQ * D}, g), k = rnd({B, L, HK * D}, g), v = rnd({B, L, HK * DV}, g);
  const Tensor mask = rnd({S, L}, g);
  const auto heads = [](const Tensor& t, int64_t h) {
    return permute(reshape(t, {t.size(0), t.size(1), h, t.size(2) / h}), {0, 2, 1, 3}).contiguous();
  };
  for (bool causal : {false, true}) {
    Node n("Attention", 4);
    n.i("q_num_heads", HQ).i("kv_num_heads", HK).i("is_causal", causal ? 1 : 0).f("scale", 0.7f);
    const Tensor y = run(n, 23, {q, k, v, mask})[0];
    ASSERT_EQ(y.shape(), (Shape{B, S, HQ * DV}));
    const auto ref4 = ref_attention(heads(q, HQ), heads(k, HK), heads(v, HK), mask.to_vector(), causal, 0.7);
    std::vector<double> ref(ref4.size());  // (B, H, S, DV) -> (B, S, H*DV)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < HQ; ++h)
        for (int64_t i = 0; i < S; ++i)
          for (int64_t e = 0; e < DV; ++e) ref[((b * S + i) * HQ + h) * DV + e] = ref4[((b * HQ + h) * S + i) * DV + e];
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-4, 1e-5)) << causal;
  }
  {  // 4-D with a boolean mask: false = masked out
    const Tensor q4 = rnd({1, 2, 3, 4}, g), k4 = rnd({1, 2, 4, 4}, g), v4 = rnd({1, 2, 4, 4}, g);
    std::vector<float> keep{1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1};
    std::vector<float> additive(12);
    for (int i = 0; i < 12; ++i) additive[i] = keep[i] != 0.f ? 0.f : -INFINITY;
    Node n("Attention", 4);
    const Tensor y = run(n, 23, {q4, k4, v4, Tensor::from_vector(keep, {3, 4}, DType::boolean)})[0];
    EXPECT_TRUE(all_close(y.to_vector(), ref_attention(q4, k4, v4, additive, false, 0.5), 1e-4, 1e-5));
  }
  {  // softcap (before the mask) and a key cache with causal masking aligned bottom-right
    const Tensor q4 = rnd({1, 2, 3, 4}, g), k4 = rnd({1, 2, 2, 4}, g), v4 = rnd({1, 2, 2, 3}, g);
    const Tensor pk = rnd({1, 2, 3, 4}, g), pv = rnd({1, 2, 3, 3}, g);
    const Tensor mask4 = rnd({3, 5}, g);
    Node n("Attention", 6, 3);
    n.f("softcap", 0.8f).i("is_causal", 1);
    const std::vector<Tensor> out = run(n, 23, {mul_scalar(q4, 3.0), k4, v4, mask4, pk, pv});
    ASSERT_EQ(out.size(), 3u);
    const Tensor kk = concat({pk, k4}, 2), vv = concat({pv, v4}, 2);
    EXPECT_TRUE(all_close(out[0].to_vector(),
                          ref_attention(mul_scalar(q4, 3.0), kk, vv, mask4.to_vector(), true, 0.5, 0.8, 3), 1e-4, 1e-5));
    EXPECT_TRUE(all_close(out[1].to_vector(), graft::testing::to_double(kk), 0, 0));
    EXPECT_EQ(out[2].shape(), (Shape{1, 2, 5, 3}));
  }
  {  // qk_matmul_output mode 3: the attention probabilities, (B, H, Sq, Sk), rows summing to 1
    Node qk("Attention", 3, 4);
    qk.i("qk_matmul_output_mode", 3).i("is_causal", 1);
    const std::vector<Tensor> out = run(qk, 23, {rnd({1, 2, 3, 4}, g), rnd({1, 2, 5, 4}, g), rnd({1, 2, 5, 4}, g)});
    ASSERT_EQ(out.size(), 4u);
    ASSERT_EQ(out[3].shape(), (Shape{1, 2, 3, 5}));
    const auto p = out[3].to_vector();
    for (int r = 0; r < 6; ++r) {
      double sum = 0;
      for (int j = 0; j < 5; ++j) sum += p[r * 5 + j];
      EXPECT_NEAR(sum, 1.0, 1e-5);
      EXPECT_EQ(p[r * 5 + 4], 0.f);  // causal: no row of 3 queries sees key 4
    }
    Node bad("Attention", 3, 4);
    bad.i("qk_matmul_output_mode", 7);
    EXPECT_TRUE(graft::testing::throws_naming([&] { run(bad, 23, {rnd({1, 1, 2, 2}, g), rnd({1, 1, 2, 2}, g), rnd({1, 1, 2, 2}, g)}); },
                                              {"n_Attention", "qk_matmul_output_mode"}));
  }
}

TEST(OnnxNn, PoolingRefusesWhatItCannotDo) {
  Generator g = graft::testing::test_generator();
  const Tensor x = rnd({1, 2, 5, 5}, g);
  Node order("MaxPool");
  order.ints("kernel_shape", {2, 2}).i("storage_order", 1);
  EXPECT_TRUE(graft::testing::throws_naming([&] { run(order, 12, {x}); }, {"n_MaxPool", "storage_order"}));
  Node idx("MaxPool", 1, 2);
  idx.ints("kernel_shape", {2, 2});
  EXPECT_TRUE(graft::testing::throws_naming([&] { run(idx, 12, {x}); }, {"n_MaxPool", "Indices"}));
  Node dil("AveragePool");
  dil.ints("kernel_shape", {2, 2}).ints("dilations", {2, 2});
  EXPECT_TRUE(graft::testing::throws_naming([&] { run(dil, 19, {x}); }, {"n_AveragePool", "dilations"}));
  // SAME_UPPER max pooling, kernel 3 stride 2 on 5: out 3, total pad 2 -> 1/1; compare with explicit pads.
  Node same("MaxPool");
  same.ints("kernel_shape", {3, 3}).ints("strides", {2, 2}).s("auto_pad", "SAME_UPPER");
  Node expl("MaxPool");
  expl.ints("kernel_shape", {3, 3}).ints("strides", {2, 2}).ints("pads", {1, 1, 1, 1});
  const auto a = run(same, 12, {x})[0], b = run(expl, 12, {x})[0];
  EXPECT_EQ(a.shape(), (Shape{1, 2, 3, 3}));
  const auto av = a.to_vector(), bv = b.to_vector();
  for (size_t i = 0; i < av.size(); ++i) EXPECT_EQ(av[i], bv[i]);
  // A 3-D global average pool reduces every spatial dim.
  const Tensor x5 = rnd({1, 2, 3, 2, 2}, g);
  Node gap("GlobalAveragePool");
  const Tensor y = run(gap, 13, {x5})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 2, 1, 1, 1}));
  const auto xv = x5.to_vector();
  double s = 0;
  for (int i = 0; i < 12; ++i) s += xv[i];
  EXPECT_NEAR(y.to_vector()[0], s / 12, 1e-5);
}

}  // namespace
}  // namespace graft::importer
