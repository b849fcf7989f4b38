// Elementwise ops and activations against naive float64 references:
// broadcasting over many shape pairs (size-1 and 0-d included), layouts
// (channels-last, non-dense views), both GELU forms, and the vectorisable
// exp / tanh / erf the kernels are built on.
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/fast_exp.h"

#include <cmath>
#include <functional>
#include <limits>

#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"
#include "gtest/gtest.h"
#include "tests/support/reference.h"

namespace graft {
namespace {

using testing::all_close;
using testing::to_double;

// f32 results against float64 references: a few ulp of the result.
constexpr double kRtol = 1e-5;
constexpr double kAtol = 1e-6;

std::vector<double> binary_reference(const Tensor& a, const Tensor& b, const Shape& out_shape,
                                     const std::function<double(double, double)>& f) {
  const std::vector<double> av = to_double(a), bv = to_double(b);
  const int64_t n = shape_numel(out_shape);
  std::vector<double> out(n);
  std::vector<int64_t> idx(out_shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    out[i] = f(av[testing::broadcast_flat_index(a.shape(), out_shape, idx)],
               bv[testing::broadcast_flat_index(b.shape(), out_shape, idx)]);
    for (size_t d = out_shape.size(); d-- > 0;) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
};

const std::vector<BinaryCase>& binary_cases() {
  static const std::vector<BinaryCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double x, double y) { return x + y; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double x, double y) { return x - y; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double x, double y) { return x * y; }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double x, double y) { return x / y; }},
  };
  return cases;
}

// b is kept in [0.5, 2) so that div is well conditioned.
void check_binary(const Tensor& a, const Tensor& b, const std::string& what) {
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), "test");
  for (const BinaryCase& c : binary_cases()) {
    Tensor out = c.op(a, b);
    ASSERT_EQ(out.shape(), out_shape) << c.name << " " << what;
    EXPECT_TRUE(all_close(out.to_vector(), binary_reference(a, b, out_shape, c.ref), kRtol, kAtol))
        << c.name << " " << what;
  }
}

TEST(Elementwise, BinaryBroadcastsOverManyShapePairs) {
  Generator gen = testing::test_generator();
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{}, {}},           {{}, {3}},           {{3}, {}},           {{1}, {7}},          {{7}, {1}},
      {{13}, {13}},       {{2, 3}, {3}},       {{3}, {2, 3}},       {{2, 3}, {2, 1}},    {{2, 1, 4}, {3, 1}},
      {{5, 1, 7}, {1, 6, 1}}, {{2, 3, 5, 7}, {1, 3, 1, 1}}, {{1, 3, 1, 1}, {2, 3, 5, 7}}, {{2, 3, 5, 7}, {7}},
      {{1, 1, 1}, {4, 1, 9}}, {{0, 3}, {1, 3}},  {{4, 1}, {1, 0}},    {{64, 1031}, {1031}}, {{64, 1031}, {64, 1}},
      {{300, 129}, {300, 129}}};
  for (const auto& [sa, sb] : pairs) {
    Tensor a = Tensor::rand(sa, gen, -2.f, 2.f), b = Tensor::rand(sb, gen, 0.5f, 2.f);
    check_binary(a, b, shape_str(sa) + " with " + shape_str(sb));
  }
}

TEST(Elementwise, BinaryOnNonDenseViews) {
  Generator gen = testing::test_generator();
  Tensor base = Tensor::rand({6, 9, 11}, gen, 0.5f, 2.f);
  Tensor t = transpose(base, 0, 2);                   // [11, 9, 6], permuted strides
  Tensor s = slice(slice(base, 1, 1, 8, 2), 2, 3, 11);  // [6, 4, 8], gaps
  check_binary(t, Tensor::rand({11, 9, 6}, gen, 0.5f, 2.f), "transposed a");
  check_binary(Tensor::rand({11, 9, 6}, gen), t, "transposed b");
  check_binary(s, Tensor::rand({4, 1}, gen, 0.5f, 2.f), "sliced a, broadcast b");
  check_binary(t, t, "same view twice");
}

TEST(Elementwise, ChannelsLastLayoutIsKept) {
  Generator gen = testing::test_generator();
  for (const Shape& shape : {Shape{2, 3, 5, 7}, Shape{1, 16, 4, 4}, Shape{3, 1, 2, 9}}) {
    Tensor a = Tensor::rand(shape, gen, -2.f, 2.f).to_format(MemoryFormat::channels_last);
    Tensor b = Tensor::rand(shape, gen, 0.5f, 2.f).to_format(MemoryFormat::channels_last);
    Tensor bias = Tensor::rand({1, shape[1], 1, 1}, gen, 0.5f, 2.f);
    Tensor row_major = Tensor::rand(shape, gen, 0.5f, 2.f);
    for (const BinaryCase& c : binary_cases()) {
      EXPECT_TRUE(c.op(a, b).is_channels_last()) << c.name << " cl, cl " << shape_str(shape);
      EXPECT_TRUE(c.op(a, bias).is_channels_last()) << c.name << " cl, bias " << shape_str(shape);
      EXPECT_TRUE(c.op(bias, a).is_channels_last()) << c.name << " bias, cl " << shape_str(shape);
      EXPECT_TRUE(c.op(a, row_major).is_channels_last()) << c.name << " cl, row-major " << shape_str(shape);
      EXPECT_TRUE(c.op(row_major, bias).is_contiguous()) << c.name << " row-major, bias " << shape_str(shape);
    }
    check_binary(a, b, "channels-last pair");
    check_binary(a, bias, "channels-last with bias");
    check_binary(bias, b, "bias with channels-last");
    check_binary(a, row_major, "channels-last with row-major");
    EXPECT_TRUE(relu(a).is_channels_last());
    EXPECT_TRUE(gelu(a).is_channels_last());
    EXPECT_TRUE(mul_scalar(a, 2.0).is_channels_last());
    EXPECT_TRUE(all_close(sigmoid(a).to_vector(), to_double(sigmoid(a.contiguous())), 0, 0));
  }
}

// ---- unary ops ----------------------------------------------------------------------

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  float lo, hi;  // input range
};

std::vector<UnaryCase> unary_cases() {
  const double k = std::sqrt(2.0 / M_PI);
  auto r6 = [](double v) { return std::min(std::max(v, 0.0), 6.0); };
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, -5, 5},
      {"add_scalar", [](const Tensor& x) { return add_scalar(x, 1.25); }, [](double v) { return v + 1.25; }, -5, 5},
      {"mul_scalar", [](const Tensor& x) { return mul_scalar(x, -0.75); }, [](double v) { return v * -0.75; }, -5, 5},
      {"pow 2", [](const Tensor& x) { return pow_scalar(x, 2.0); }, [](double v) { return v * v; }, -5, 5},
      {"pow 3", [](const Tensor& x) { return pow_scalar(x, 3.0); }, [](double v) { return v * v * v; }, -5, 5},
      {"pow 0.5", [](const Tensor& x) { return pow_scalar(x, 0.5); }, [](double v) { return std::sqrt(v); }, 0.01f, 9},
      {"pow -1", [](const Tensor& x) { return pow_scalar(x, -1.0); }, [](double v) { return 1 / v; }, 0.1f, 9},
      {"pow 1.7", [](const Tensor& x) { return pow_scalar(x, 1.7); }, [](double v) { return std::pow(v, 1.7); }, 0.01f, 9},
      {"pow 0", [](const Tensor& x) { return pow_scalar(x, 0.0); }, [](double) { return 1.0; }, -3, 3},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, -80, 80},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, 1e-3f, 1e3f},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, 0, 1e3f},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }, -5, 5},
      {"relu6", [](const Tensor& x) { return relu6(x); }, r6, -3, 9},
      {"clip", [](const Tensor& x) { return clip(x, -0.5, 1.5); },
       [](double v) { return std::min(std::max(v, -0.5), 1.5); }, -3, 3},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); }, -30, 30},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double v) { return v / (1 + std::exp(-v)); }, -30, 30},
      {"gelu erf", [](const Tensor& x) { return gelu(x); }, [](double v) { return v * normal_cdf(v); }, -12, 12},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, GeluApprox::tanh); },
       [k](double v) { return 0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v))); }, -12, 12},
      {"hardswish", [](const Tensor& x) { return hardswish(x); }, [r6](double v) { return v * r6(v + 3) / 6; },
       -6, 6},
      {"hardsigmoid", [](const Tensor& x) { return hardsigmoid(x); }, [r6](double v) { return r6(v + 3) / 6; },
       -6, 6},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, -12, 12},
  };
}

std::vector<double> map_reference(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = to_double(x);
  for (double& e : v) e = f(e);
  return v;
}

TEST(Elementwise, UnaryOpsMatchFloat64) {
  Generator gen = testing::test_generator();
  for (const UnaryCase& c : unary_cases()) {
    for (const Shape& shape : {Shape{}, Shape{1}, Shape{7}, Shape{3, 13}, Shape{2, 3, 5, 7}, Shape{70001}}) {
      Tensor x = Tensor::rand(shape, gen, c.lo, c.hi);
      Tensor y = c.op(x);
      ASSERT_EQ(y.shape(), shape) << c.name;
      EXPECT_TRUE(all_close(y.to_vector(), map_reference(x, c.ref), kRtol, kAtol)) << c.name << " " << shape_str(shape);
    }
    // Non-dense input: the op copies it first; the values must not care.
    Tensor base = Tensor::rand({9, 12}, gen, c.lo, c.hi);
    Tensor v = slice(transpose(base, 0, 1), 0, 1, 12, 3);
    EXPECT_TRUE(all_close(c.op(v).to_vector(), map_reference(v, c.ref), kRtol, kAtol)) << c.name << " on a view";
  }
}

TEST(Elementwise, ScalarOperators) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 7}, gen, -2.f, 2.f), y = Tensor::rand({7}, gen, 0.5f, 2.f);
  auto ref = [&](const std::function<double(double)>& f) { return map_reference(x, f); };
  EXPECT_TRUE(all_close((x - 1.5).to_vector(), ref([](double v) { return v - 1.5; }), kRtol, kAtol));
  EXPECT_TRUE(all_close((x / 3.0).to_vector(), ref([](double v) { return v / 3.0; }), kRtol, kAtol));
  EXPECT_TRUE(all_close((2.5 * x).to_vector(), ref([](double v) { return 2.5 * v; }), kRtol, kAtol));
  EXPECT_TRUE(all_close((1.0 + x).to_vector(), ref([](double v) { return 1.0 + v; }), kRtol, kAtol));
  EXPECT_TRUE(all_close((x * 2.0 + 1.0).to_vector(), ref([](double v) { return 2 * v + 1; }), kRtol, kAtol));
  EXPECT_TRUE(all_close((-x).to_vector(), ref([](double v) { return -v; }), 0, 0));
  EXPECT_TRUE(all_close((x / y - x * y + x - y).to_vector(),
                        binary_reference(x, y, {3, 7}, [](double a, double b) { return a / b - a * b + a - b; }), kRtol,
                        kAtol));
}

TEST(Elementwise, EmptyTensorsGiveEmptyResults) {
  Tensor e = Tensor::empty({0, 3});
  EXPECT_EQ(relu(e).shape(), (Shape{0, 3}));
  EXPECT_EQ(add(e, Tensor::ones({3})).shape(), (Shape{0, 3}));
}

// The backward kernels against analytic derivatives in double (tighter than
// finite differences, which tests/ops checks separately).
TEST(Elementwise, UnaryBackwardKernelsMatchDerivatives) {
  namespace kc = kernels::cpu;
  Generator gen = testing::test_generator();
  const double k = std::sqrt(2.0 / M_PI), c3 = 0.044715;
  struct Case {
    kc::UnaryParams p;
    std::function<double(double)> f, df;
    float lo, hi;
  };
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  auto phi = [](double v) { return std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI); };
  const std::vector<Case> cases = {
      {{kc::UnaryOp::neg}, nullptr, [](double) { return -1.0; }, -3, 3},
      {{kc::UnaryOp::add_scalar, 2.f}, nullptr, [](double) { return 1.0; }, -3, 3},
      {{kc::UnaryOp::mul_scalar, 2.5f}, nullptr, [](double) { return 2.5; }, -3, 3},
      {{kc::UnaryOp::pow_scalar, 2.f}, nullptr, [](double v) { return 2 * v; }, -3, 3},
      {{kc::UnaryOp::pow_scalar, 1.5f}, nullptr, [](double v) { return 1.5 * std::sqrt(v); }, 0.1f, 3},
      {{kc::UnaryOp::pow_scalar, -2.f}, nullptr, [](double v) { return -2 / (v * v * v); }, 0.5f, 3},
      {{kc::UnaryOp::exp}, [](double v) { return std::exp(v); }, [](double v) { return std::exp(v); }, -20, 20},
      {{kc::UnaryOp::log}, nullptr, [](double v) { return 1 / v; }, 0.01f, 10},
      {{kc::UnaryOp::sqrt}, [](double v) { return std::sqrt(v); }, [](double v) { return 0.5 / std::sqrt(v); }, 0.01f, 10},
      {{kc::UnaryOp::relu}, [](double v) { return v > 0 ? v : 0; }, [](double v) { return v > 0 ? 1.0 : 0.0; }, -3, 3},
      {{kc::UnaryOp::clip, -1.f, 2.f}, nullptr, [](double v) { return v >= -1 && v <= 2 ? 1.0 : 0.0; }, -3, 3},
      {{kc::UnaryOp::sigmoid}, sig, [sig](double v) { return sig(v) * (1 - sig(v)); }, -20, 20},
      {{kc::UnaryOp::silu}, nullptr, [sig](double v) { return sig(v) * (1 + v * (1 - sig(v))); }, -20, 20},
      {{kc::UnaryOp::gelu_erf}, nullptr, [phi](double v) { return normal_cdf(v) + v * phi(v); }, -10, 10},
      {{kc::UnaryOp::gelu_tanh}, nullptr,
       [k, c3](double v) {
         const double t = std::tanh(k * (v + c3 * v * v * v));
         return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * c3 * v * v);
       },
       -10, 10},
      {{kc::UnaryOp::hardswish}, nullptr, [](double v) { return v < -3 ? 0.0 : v > 3 ? 1.0 : (2 * v + 3) / 6; }, -5, 5},
      {{kc::UnaryOp::hardsigmoid}, nullptr, [](double v) { return v > -3 && v < 3 ? 1.0 / 6 : 0.0; }, -5, 5},
      {{kc::UnaryOp::tanh}, [](double v) { return std::tanh(v); }, [](double v) { return 1 - std::tanh(v) * std::tanh(v); },
       -10, 10},
  };
  const int64_t n = 4099;
  for (const Case& c : cases) {
    Tensor x = Tensor::rand({n}, gen, c.lo, c.hi), gy = Tensor::rand({n}, gen, -1.f, 1.f);
    Tensor y = Tensor::empty({n}), gx = Tensor::empty({n});
    kc::unary_forward(c.p, n, x.data<float>(), y.data<float>());
    const kc::UnarySaved what = kc::unary_backward_saves(c.p.op);
    const float* saved = what == kc::UnarySaved::input ? x.data<float>() : what == kc::UnarySaved::output ? y.data<float>() : nullptr;
    kc::unary_backward(c.p, n, saved, gy.data<float>(), gx.data<float>());
    std::vector<double> ref(n);
    const std::vector<double> xv = to_double(x), gv = to_double(gy);
    for (int64_t i = 0; i < n; ++i) ref[i] = gv[i] * c.df(xv[i]);
    EXPECT_TRUE(all_close(gx.to_vector(), ref, 2e-5, 1e-6)) << "op " << static_cast<int>(c.p.op);
  }
}

// ---- the vectorisable math ---------------------------------------------------------

TEST(Elementwise, ExpApproxIsAccurateOverTheWholeRange) {
  double worst = 0;
  for (double x = -86.0; x <= 88.7; x += 1e-3) {
    const double ref = std::exp(static_cast<double>(static_cast<float>(x)));
    worst = std::max(worst, std::fabs(kernels::cpu::exp_approx(static_cast<float>(x)) - ref) / ref);
  }
  EXPECT_LT(worst, 3e-7);  // about 2.5 ulp
  EXPECT_EQ(kernels::cpu::exp_approx(0.f), 1.f);
  EXPECT_EQ(kernels::cpu::exp_approx(-1000.f), 0.f);
  EXPECT_LT(kernels::cpu::exp_approx(-87.f), 3e-38f);
  EXPECT_TRUE(std::isinf(kernels::cpu::exp_approx(89.f)));
  EXPECT_TRUE(std::isinf(kernels::cpu::exp_approx(std::numeric_limits<float>::infinity())));
  EXPECT_EQ(kernels::cpu::exp_approx(-std::numeric_limits<float>::infinity()), 0.f);
  EXPECT_TRUE(std::isnan(kernels::cpu::exp_approx(std::nanf(""))));
  EXPECT_TRUE(std::isfinite(kernels::cpu::exp_approx(88.7f)));
}

TEST(Elementwise, TanhAndErfApproxAreAccurate) {
  double worst_tanh = 0, worst_erf = 0;
  for (double x = -12.0; x <= 12.0; x += 3.7e-4) {
    const float xf = static_cast<float>(x);
    const double th = std::tanh(static_cast<double>(xf)), ef = std::erf(static_cast<double>(xf));
    worst_tanh = std::max(worst_tanh, std::fabs(kernels::cpu::tanh_approx(xf) - th) / std::fabs(th));
    worst_erf = std::max(worst_erf, std::fabs(kernels::cpu::erf_approx(xf) - ef) / std::fabs(ef));
  }
  EXPECT_LT(worst_tanh, 1e-6);
  EXPECT_LT(worst_erf, 1e-6);
  for (float x : {1e-30f, 1e-6f, -3e-4f}) {
    EXPECT_NEAR(kernels::cpu::tanh_approx(x), x, 1e-7 * std::fabs(x));
    EXPECT_NEAR(kernels::cpu::erf_approx(x), 2 / std::sqrt(M_PI) * x, 1e-6 * std::fabs(x));
  }
  EXPECT_TRUE(std::isnan(kernels::cpu::tanh_approx(std::nanf(""))));
  EXPECT_EQ(kernels::cpu::tanh_approx(std::numeric_limits<float>::infinity()), 1.f);
}

// GELU in its far negative tail: the erf form stays accurate relative to its
// tiny value (it is computed with erfc), where 1 + erf(x) would cancel.
TEST(Elementwise, GeluErfTailIsRelativelyAccurate) {
  Tensor x = Tensor::from_vector({-3.f, -5.f, -7.f, -9.f}, {4});
  std::vector<double> ref = map_reference(x, [](double v) { return v * normal_cdf(v); });
  EXPECT_TRUE(all_close(gelu(x).to_vector(), ref, 1e-5, 0));
}

}  // namespace
}  // namespace graft
