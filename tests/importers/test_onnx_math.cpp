// The math family's converters (importers/onnx/ops_math.cpp), one node at a
// time: built with the protobuf API, run on engine tensors, compared with
// float64 references written here; integer arithmetic exactly; opset ranges
// of the table; errors that name the node.
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "engine/ops/reduce.h"
#include "gtest/gtest.h"
#include "importers/onnx/converter.h"
#include "tests/support/gradcheck.h"
#include "tests/support/onnx_node.h"
#include "tests/support/reference.h"

namespace graft::importer {
namespace {

using testing::all_close;
using testing::to_double;

constexpr double kRtol = 1e-5;  // f32 results against float64 references
constexpr double kAtol = 1e-6;

// One node of op_type with n inputs ("x0", "x1", ...) and one output.
struct Node : testing::OnnxAttrs<Node> {
  ::onnx::NodeProto proto;
  Node(const std::string& op, int n_inputs) {
    proto.set_op_type(op);
    proto.set_name("n_" + op);
    for (int i = 0; i < n_inputs; ++i) proto.add_input("x" + std::to_string(i));
    proto.add_output("y");
  }
  // Runs the converter the table has for this op at `opset`.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, int opset = 17) const {
    Generator gen(1);
    return testing::run_converter(proto, opset, inputs, gen);
  }
  Tensor run1(const std::vector<Tensor>& inputs, int opset = 17) const { return run(inputs, opset).at(0); }
};

std::vector<double> map(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> out;
  for (double v : to_double(x)) out.push_back(f(v));
  return out;
}

TEST(OnnxMath, UnaryActivationsMatchDouble) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 7}, gen, -4.f, 4.f), pos = Tensor::rand({13}, gen, 0.1f, 5.f);
  auto sigm = [](double v) { return 1 / (1 + std::exp(-v)); };
  auto hsig = [](double v, double a, double b) { return std::max(0.0, std::min(1.0, a * v + b)); };
  struct Case {
    const char* op;
    const Tensor* in;
    std::function<double(double)> ref;
    int opset;
  };
  const std::vector<Case> cases = {
      {"Relu", &x, [](double v) { return std::max(v, 0.0); }, 14},
      {"Sigmoid", &x, sigm, 13},
      {"Tanh", &x, [](double v) { return std::tanh(v); }, 13},
      {"Erf", &x, [](double v) { return std::erf(v); }, 13},
      {"Exp", &x, [](double v) { return std::exp(v); }, 13},
      {"Neg", &x, [](double v) { return -v; }, 13},
      {"Abs", &x, [](double v) { return std::abs(v); }, 13},
      {"Identity", &x, [](double v) { return v; }, 21},
      {"Sqrt", &pos, [](double v) { return std::sqrt(v); }, 13},
      {"Log", &pos, [](double v) { return std::log(v); }, 13},
      {"Reciprocal", &pos, [](double v) { return 1 / v; }, 13},
      {"HardSigmoid", &x, [&](double v) { return hsig(v, 0.2, 0.5); }, 22},
      {"HardSwish", &x, [&](double v) { return v * hsig(v, 1 / 6.0, 0.5); }, 14},
      {"Gelu", &x, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, 20},
  };
  for (const Case& c : cases) {
    Tensor y = Node(c.op, 1).run1({*c.in}, c.opset);
    EXPECT_EQ(y.shape(), c.in->shape()) << c.op;
    EXPECT_TRUE(all_close(y.to_vector(), map(*c.in, c.ref), kRtol, kAtol)) << c.op;
  }
}

TEST(OnnxMath, HardSigmoidTakesAnyAlphaBeta) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({50}, gen, -6.f, 6.f);
  for (auto [a, b] : std::vector<std::pair<float, float>>{{0.3f, 0.4f}, {1.f / 6.f, 0.5f}, {-0.5f, 0.1f}, {2.f, -1.f}}) {
    Tensor y = Node("HardSigmoid", 1).f("alpha", a).f("beta", b).run1({x});
    EXPECT_TRUE(all_close(y.to_vector(), map(x, [&](double v) { return std::max(0.0, std::min(1.0, a * v + b)); }),
                          kRtol, kAtol))
        << a << " " << b;
  }
}

TEST(OnnxMath, GeluTanhAndBadApproximation) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({31}, gen, -4.f, 4.f);
  Tensor y = Node("Gelu", 1).s("approximate", "tanh").run1({x}, 20);
  const double c = std::sqrt(2 / M_PI);
  EXPECT_TRUE(all_close(y.to_vector(), map(x, [&](double v) { return 0.5 * v * (1 + std::tanh(c * (v + 0.044715 * v * v * v))); }),
                        kRtol, kAtol));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Gelu", 1).s("approximate", "erf").run({x}, 20); },
                                     {"test.onnx", "n_Gelu", "approximate", "erf"}));
}

TEST(OnnxMath, ClipBoundsAsAttributesThenInputs) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({4, 5}, gen, -3.f, 3.f);
  auto clipped = [&](double lo, double hi) { return map(x, [=](double v) { return std::min(std::max(v, lo), hi); }); };
  // Opset 6-10: attributes, each optional.
  EXPECT_TRUE(all_close(Node("Clip", 1).f("min", -1.f).f("max", 0.5f).run1({x}, 10).to_vector(), clipped(-1, 0.5), 0, 0));
  EXPECT_TRUE(all_close(Node("Clip", 1).f("min", 0.f).run1({x}, 7).to_vector(), clipped(0, 1e30), 0, 0));
  EXPECT_TRUE(all_close(Node("Clip", 1).run1({x}, 7).to_vector(), clipped(-1e30, 1e30), 0, 0));
  // Opset 11+: optional inputs (undefined = omitted).
  Tensor lo = Tensor::scalar(-0.5), hi = Tensor::scalar(2.0);
  EXPECT_TRUE(all_close(Node("Clip", 3).run1({x, lo, hi}, 13).to_vector(), clipped(-0.5, 2), 0, 0));
  EXPECT_TRUE(all_close(Node("Clip", 3).run1({x, Tensor(), hi}, 13).to_vector(), clipped(-1e30, 2), 0, 0));
  EXPECT_TRUE(all_close(Node("Clip", 2).run1({x, lo}, 11).to_vector(), clipped(-0.5, 1e30), 0, 0));
  EXPECT_TRUE(all_close(Node("Clip", 1).run1({x}, 12).to_vector(), clipped(-1e30, 1e30), 0, 0));
  // min > max: every value becomes max.
  EXPECT_TRUE(all_close(Node("Clip", 3).run1({x, hi, lo}, 13).to_vector(), clipped(-0.5, -0.5), 0, 0));
  // Integer input, exact.
  Tensor xi = Tensor::from_vector_i64({-7, 0, 3, int64_t(1) << 60}, {4});
  EXPECT_EQ(Node("Clip", 3).run1({xi, Tensor::from_vector_i64({-2}, {}), Tensor::from_vector_i64({5}, {})}, 13).to_vector_i64(),
            (std::vector<int64_t>{-2, 0, 3, 5}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Clip", 3).run({x, Tensor::zeros({2}), hi}, 13); }, {"n_Clip", "min", "[2]"}));
  // The table: inputs 1 and 2 are values (bounds), never parameters.
  EXPECT_EQ(op_registry().find("Clip", 11)->value_inputs, (std::vector<int>{1, 2}));
  EXPECT_NE(op_registry().find("Clip", 10), op_registry().find("Clip", 11));
}

TEST(OnnxMath, FloatArithmeticBroadcasts) {
  Generator gen = testing::test_generator();
  Tensor a = Tensor::rand({2, 3, 4}, gen, -2.f, 2.f), b = Tensor::rand({3, 1}, gen, 0.5f, 2.f);
  struct Case {
    const char* op;
    std::function<double(double, double)> ref;
  };
  for (const Case& c : std::vector<Case>{{"Add", [](double x, double y) { return x + y; }},
                                         {"Sub", [](double x, double y) { return x - y; }},
                                         {"Mul", [](double x, double y) { return x * y; }},
                                         {"Div", [](double x, double y) { return x / y; }},
                                         {"Pow", [](double x, double y) { return std::pow(std::abs(x), y); }}}) {
    Tensor base = std::string(c.op) == "Pow" ? Node("Abs", 1).run1({a}) : a;
    Tensor y = Node(c.op, 2).run1({base, b}, 14);
    ASSERT_EQ(y.shape(), (Shape{2, 3, 4})) << c.op;
    const std::vector<double> av = to_double(a), bv = to_double(b);
    std::vector<double> ref(24);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 4; ++k) ref[(i * 3 + j) * 4 + k] = c.ref(av[(i * 3 + j) * 4 + k], bv[j]);
    EXPECT_TRUE(all_close(y.to_vector(), ref, kRtol, kAtol)) << c.op;
  }
}

TEST(OnnxMath, ImportedArithmeticTrains) {
  Generator gen = testing::test_generator();
  Tensor a = Tensor::rand({3, 4}, gen, 0.5f, 2.f), b = Tensor::rand({4}, gen, 0.5f, 2.f);
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"}) {
    EXPECT_TRUE(testing::gradcheck([op](const std::vector<Tensor>& in) { return Node(op, 2).run1({in[0], in[1]}, 14); },
                                   {a, b}))
        << op;
  }
  Tensor c = Tensor::from_vector({1.f, 0.f, 0.f, 1.f}, {4}, DType::boolean);
  EXPECT_TRUE(testing::gradcheck([c](const std::vector<Tensor>& in) { return Node("Where", 3).run1({c, in[0], in[1]}, 16); },
                                 {a, b}));
  EXPECT_TRUE(testing::gradcheck(
      [](const std::vector<Tensor>& in) { return Node("ReduceMean", 1).ints("axes", {0}).run1({in[0]}, 13); }, {a}));
  EXPECT_TRUE(testing::gradcheck(
      [](const std::vector<Tensor>& in) { return Node("HardSigmoid", 1).f("alpha", 0.3f).run1({in[0]}, 13); }, {a}));
}

TEST(OnnxMath, IntegerArithmeticIsExact) {
  const int64_t big = (int64_t(1) << 53) + 1;  // not representable in double
  Tensor a = Tensor::from_vector_i64({big, -7, 7, -8, 9}, {5});
  Tensor b = Tensor::from_vector_i64({2}, {1});
  EXPECT_EQ(Node("Add", 2).run1({a, b}).to_vector_i64(), (std::vector<int64_t>{big + 2, -5, 9, -6, 11}));
  EXPECT_EQ(Node("Sub", 2).run1({a, b}).to_vector_i64(), (std::vector<int64_t>{big - 2, -9, 5, -10, 7}));
  EXPECT_EQ(Node("Mul", 2).run1({a, b}).to_vector_i64(), (std::vector<int64_t>{2 * big, -14, 14, -16, 18}));
  // Division truncates toward zero (not floor): -7 / 2 = -3.
  EXPECT_EQ(Node("Div", 2).run1({a, b}).to_vector_i64(), (std::vector<int64_t>{big / 2, -3, 3, -4, 4}));
  Tensor neg3 = Tensor::from_vector_i64({-3}, {});
  EXPECT_EQ(Node("Div", 2).run1({a, neg3}).to_vector_i64(), (std::vector<int64_t>{big / -3, 2, -2, 2, -3}));
  EXPECT_EQ(Node("Div", 2).run1({a, neg3}).dtype(), DType::i64);
  EXPECT_TRUE(testing::throws_naming([&] { Node("Div", 2).run({a, Tensor::from_vector_i64({0}, {1})}); },
                                     {"n_Div", "division by zero"}));
  // Broadcasting: [2, 1] with [3].
  Tensor col = Tensor::from_vector_i64({10, 20}, {2, 1}), row = Tensor::from_vector_i64({1, 2, 3}, {3});
  Tensor s = Node("Add", 2).run1({col, row});
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(s.to_vector_i64(), (std::vector<int64_t>{11, 12, 13, 21, 22, 23}));
  // i32 and u8 keep their dtype and wrap as NumPy.
  Tensor i32 = Tensor::from_vector_i64({2147483647, -5}, {2}).to(DType::i32);
  Tensor y32 = Node("Add", 2).run1({i32, Tensor::from_vector_i64({1}, {1}).to(DType::i32)});
  EXPECT_EQ(y32.dtype(), DType::i32);
  EXPECT_EQ(y32.to_vector_i64(), (std::vector<int64_t>{-2147483648LL, -4}));
  Tensor u8 = Tensor::from_vector({250.f, 3.f}, {2}, DType::u8);
  Tensor y8 = Node("Add", 2).run1({u8, Tensor::from_vector({10.f}, {1}, DType::u8)});
  EXPECT_EQ(y8.dtype(), DType::u8);
  EXPECT_EQ(y8.to_vector_i64(), (std::vector<int64_t>{4, 13}));
  EXPECT_EQ(Node("Neg", 1).run1({a}).to_vector_i64(), (std::vector<int64_t>{-big, 7, -7, 8, -9}));
  EXPECT_EQ(Node("Abs", 1).run1({a}).to_vector_i64(), (std::vector<int64_t>{big, 7, 7, 8, 9}));
  EXPECT_EQ(Node("Max", 3).run1({a, b, Tensor::from_vector_i64({8}, {})}, 13).to_vector_i64(),
            (std::vector<int64_t>{big, 8, 8, 8, 9}));
  EXPECT_EQ(Node("Min", 2).run1({a, b}, 13).to_vector_i64(), (std::vector<int64_t>{2, -7, 2, -8, 2}));
  EXPECT_EQ(Node("Sum", 3).run1({a, b, b}, 13).to_vector_i64(), (std::vector<int64_t>{big + 4, -3, 11, -4, 13}));
  // Integer base: integer power.
  EXPECT_EQ(Node("Pow", 2).run1({row, Tensor::from_vector_i64({3}, {})}, 15).to_vector_i64(),
            (std::vector<int64_t>{1, 8, 27}));
  EXPECT_EQ(Node("Pow", 2).run1({row, Tensor::scalar(2.0)}, 15).dtype(), DType::i64);
  // Mixed float and integer operands are an error naming the node.
  EXPECT_TRUE(testing::throws_naming([&] { Node("Add", 2).run({a, Tensor::zeros({5})}); }, {"n_Add", "i64", "f32"}));
  // Float-only ops refuse integers as unsupported (the conformance runner's skip).
  EXPECT_TRUE(testing::throws_naming([&] { Node("Relu", 1).run({a}, 14); }, {"n_Relu", "i64", "not supported"}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("ReduceMean", 1).run({a}, 13); }, {"n_ReduceMean", "not supported"}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Mean", 2).run({a, a}, 13); }, {"n_Mean", "not supported"}));
}

TEST(OnnxMath, PowExponentForms) {
  Generator gen = testing::test_generator();
  Tensor a = Tensor::rand({2, 5}, gen, 0.2f, 3.f);
  // Scalar f32 exponent, i64 exponent (opset 12+), exponent of higher rank.
  EXPECT_TRUE(all_close(Node("Pow", 2).run1({a, Tensor::scalar(2.0)}, 13).to_vector(), map(a, [](double v) { return v * v; }),
                        kRtol, kAtol));
  EXPECT_TRUE(all_close(Node("Pow", 2).run1({a, Tensor::from_vector_i64({3}, {1})}, 13).to_vector(),
                        map(a, [](double v) { return v * v * v; }), kRtol, kAtol));
  Tensor y = Node("Pow", 2).run1({a, Tensor::full({1, 1, 1}, 0.5)}, 13);
  EXPECT_EQ(y.shape(), (Shape{1, 2, 5}));
  EXPECT_TRUE(all_close(y.to_vector(), map(a, [](double v) { return std::sqrt(v); }), kRtol, kAtol));
  Tensor e = Tensor::rand({5}, gen, -1.f, 2.f);
  const std::vector<double> av = to_double(a), ev = to_double(e);
  std::vector<double> ref;
  for (int i = 0; i < 10; ++i) ref.push_back(std::pow(av[i], ev[i % 5]));
  EXPECT_TRUE(all_close(Node("Pow", 2).run1({a, e}, 13).to_vector(), ref, kRtol, kAtol));
  EXPECT_EQ(op_registry().find("Pow", 15)->value_inputs, (std::vector<int>{1}));
}

TEST(OnnxMath, ReduceMeanAndSumAxes) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4}, gen, -1.f, 1.f);
  const std::vector<double> xv = to_double(x);
  // Reference mean over axes 0 and 2, and over everything.
  std::vector<double> m02(3, 0.0);
  double all = 0;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        m02[j] += xv[(i * 3 + j) * 4 + k] / 8;
        all += xv[(i * 3 + j) * 4 + k] / 24;
      }
  // Opset 13: axes attribute (negative allowed); keepdims default 1.
  Tensor y = Node("ReduceMean", 1).ints("axes", {0, -1}).run1({x}, 13);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 1}));
  EXPECT_TRUE(all_close(y.to_vector(), m02, kRtol, kAtol));
  y = Node("ReduceMean", 1).ints("axes", {2, 0}).i("keepdims", 0).run1({x}, 11);
  EXPECT_EQ(y.shape(), (Shape{3}));
  EXPECT_TRUE(all_close(y.to_vector(), m02, kRtol, kAtol));
  y = Node("ReduceMean", 1).run1({x}, 13);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 1}));
  EXPECT_TRUE(all_close(y.to_vector(), {all}, kRtol, kAtol));
  // Opset 18: axes input; empty axes reduce everything unless noop_with_empty_axes.
  Tensor axes = Tensor::from_vector_i64({0, 2}, {2});
  y = Node("ReduceMean", 2).i("keepdims", 0).run1({x, axes}, 18);
  EXPECT_EQ(y.shape(), (Shape{3}));
  EXPECT_TRUE(all_close(y.to_vector(), m02, kRtol, kAtol));
  y = Node("ReduceMean", 1).i("keepdims", 0).run1({x}, 18);
  EXPECT_EQ(y.shape(), (Shape{}));
  EXPECT_TRUE(all_close(y.to_vector(), {all}, kRtol, kAtol));
  y = Node("ReduceMean", 2).i("noop_with_empty_axes", 1).run1({x, Tensor::from_vector_i64({}, {0})}, 18);
  EXPECT_EQ(y.to_vector(), x.to_vector());
  EXPECT_EQ(op_registry().find("ReduceMean", 18)->value_inputs, (std::vector<int>{1}));
  EXPECT_TRUE(op_registry().find("ReduceMean", 17)->value_inputs.empty());
  // ReduceSum: attribute before 13, input from 13.
  y = Node("ReduceSum", 1).ints("axes", {1}).i("keepdims", 0).run1({x}, 11);
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  std::vector<double> s1(8, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) s1[i * 4 + k] += xv[(i * 3 + j) * 4 + k];
  EXPECT_TRUE(all_close(y.to_vector(), s1, kRtol, kAtol));
  EXPECT_TRUE(all_close(Node("ReduceSum", 2).i("keepdims", 0).run1({x, Tensor::from_vector_i64({-2}, {1})}, 13).to_vector(),
                        s1, kRtol, kAtol));
  // Bad axes name the node.
  EXPECT_TRUE(testing::throws_naming([&] { Node("ReduceMean", 1).ints("axes", {3}).run({x}, 13); }, {"n_ReduceMean", "axis 3"}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("ReduceMean", 1).ints("axes", {1, -2}).run({x}, 13); },
                                     {"n_ReduceMean", "repeated"}));
}

TEST(OnnxMath, ReduceMaxMinAndTheirGradients) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4}, gen, -1.f, 1.f);
  const std::vector<double> xv = to_double(x);
  std::vector<double> mx(8, -1e30), mn(8, 1e30);  // over axis 1, keepdims 0: [2, 4]
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        mx[i * 4 + k] = std::max(mx[i * 4 + k], xv[(i * 3 + j) * 4 + k]);
        mn[i * 4 + k] = std::min(mn[i * 4 + k], xv[(i * 3 + j) * 4 + k]);
      }
  Tensor y = Node("ReduceMax", 1).ints("axes", {1}).i("keepdims", 0).run1({x}, 13);
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  EXPECT_TRUE(all_close(y.to_vector(), mx, 0, 0));
  y = Node("ReduceMin", 2).run1({x, Tensor::from_vector_i64({-2}, {1})}, 18);
  EXPECT_EQ(y.shape(), (Shape{2, 1, 4}));
  EXPECT_TRUE(all_close(y.to_vector(), mn, 0, 0));
  EXPECT_EQ(Node("ReduceMax", 1).i("keepdims", 0).run1({x}, 18).shape(), (Shape{}));
  // The gradient reaches the maxima (split between ties) and nothing else.
  EXPECT_TRUE(testing::gradcheck(
      [](const std::vector<Tensor>& in) { return Node("ReduceMax", 1).ints("axes", {0, 2}).run1({in[0]}, 13); }, {x}));
  Tensor t = Tensor::from_vector({1.f, 3.f, 3.f, 2.f}, {4}).set_requires_grad(true);
  sum(Node("ReduceMax", 1).run1({t}, 13)).backward();
  EXPECT_EQ(t.grad().to_vector(), (std::vector<float>{0.f, 0.5f, 0.5f, 0.f}));
  EXPECT_TRUE(std::isnan(Node("ReduceMin", 1).run1({Tensor::from_vector({1.f, std::nanf(""), 0.f}, {3})}, 13).item()));
}

TEST(OnnxMath, ComparisonsAndWhere) {
  Tensor a = Tensor::from_vector({1.f, 2.f, 3.f, std::nanf("")}, {4}), b = Tensor::from_vector({2.f}, {1});
  auto bools = [](const Tensor& t) {
    EXPECT_EQ(t.dtype(), DType::boolean);
    return t.to_vector();
  };
  EXPECT_EQ(bools(Node("Equal", 2).run1({a, b})), (std::vector<float>{0, 1, 0, 0}));
  EXPECT_EQ(bools(Node("Less", 2).run1({a, b})), (std::vector<float>{1, 0, 0, 0}));
  EXPECT_EQ(bools(Node("Greater", 2).run1({a, b})), (std::vector<float>{0, 0, 1, 0}));
  EXPECT_EQ(bools(Node("LessOrEqual", 2).run1({a, b})), (std::vector<float>{1, 1, 0, 0}));
  EXPECT_EQ(bools(Node("GreaterOrEqual", 2).run1({a, b})), (std::vector<float>{0, 1, 1, 0}));
  // Integers compare exactly (2^53 + 1 vs 2^53).
  Tensor i = Tensor::from_vector_i64({(int64_t(1) << 53) + 1, 4}, {2}), j = Tensor::from_vector_i64({int64_t(1) << 53, 4}, {2});
  EXPECT_EQ(bools(Node("Equal", 2).run1({i, j})), (std::vector<float>{0, 1}));
  EXPECT_EQ(bools(Node("Greater", 2).run1({i, j})), (std::vector<float>{1, 0}));
  // Where over integers (shape arithmetic), broadcasting the condition.
  Tensor c = Tensor::from_vector({1.f, 0.f}, {2}, DType::boolean);
  Tensor w = Node("Where", 3).run1({c, i, Tensor::from_vector_i64({-1}, {})}, 16);
  EXPECT_EQ(w.dtype(), DType::i64);
  EXPECT_EQ(w.to_vector_i64(), (std::vector<int64_t>{(int64_t(1) << 53) + 1, -1}));
  Tensor wf = Node("Where", 3).run1({Node("Less", 2).run1({a, b}), a, b}, 16);
  EXPECT_EQ(wf.to_vector()[0], 1.f);
  EXPECT_EQ(wf.to_vector()[2], 2.f);
  EXPECT_TRUE(testing::throws_naming([&] { Node("Where", 3).run({a, a, a}, 16); }, {"n_Where", "condition"}));
  // Max/Min propagate NaN as NumPy.
  Tensor mx = Node("Max", 2).run1({a, b}, 13);
  EXPECT_EQ(mx.to_vector()[0], 2.f);
  EXPECT_EQ(mx.to_vector()[2], 3.f);
  EXPECT_TRUE(std::isnan(mx.to_vector()[3]));
  EXPECT_TRUE(std::isnan(Node("Min", 2).run1({b, a}, 13).to_vector()[3]));
}

TEST(OnnxMath, CastBetweenEveryHeldDtype) {
  Tensor x = Tensor::from_vector({-2.7f, -0.5f, 0.f, 1.5f, 3.9f}, {5});
  auto cast = [](const Tensor& t, int to) { return Node("Cast", 1).i("to", to).run1({t}, 19); };
  // Float to integer truncates toward zero.
  Tensor i = cast(x, ::onnx::TensorProto::INT64);
  EXPECT_EQ(i.dtype(), DType::i64);
  EXPECT_EQ(i.to_vector_i64(), (std::vector<int64_t>{-2, 0, 0, 1, 3}));
  EXPECT_EQ(cast(x, ::onnx::TensorProto::INT32).to_vector_i64(), (std::vector<int64_t>{-2, 0, 0, 1, 3}));
  EXPECT_EQ(cast(x, ::onnx::TensorProto::BOOL).to_vector(), (std::vector<float>{1, 1, 0, 1, 1}));
  EXPECT_EQ(cast(cast(x, ::onnx::TensorProto::BOOL), ::onnx::TensorProto::FLOAT).to_vector(), (std::vector<float>{1, 1, 0, 1, 1}));
  // Through f16 and bf16 and back: those values are exact there.
  EXPECT_EQ(cast(cast(x, ::onnx::TensorProto::FLOAT16), ::onnx::TensorProto::FLOAT).to_vector(),
            (std::vector<float>{-2.69921875f, -0.5f, 0.f, 1.5f, 3.900390625f}));
  EXPECT_EQ(cast(x, ::onnx::TensorProto::BFLOAT16).dtype(), DType::bf16);
  // Integers: exact to float where representable, wrapping between integer widths.
  Tensor big = Tensor::from_vector_i64({(int64_t(1) << 32) + 5, -1, 300}, {3});
  EXPECT_EQ(cast(big, ::onnx::TensorProto::INT32).to_vector_i64(), (std::vector<int64_t>{5, -1, 300}));
  EXPECT_EQ(cast(big, ::onnx::TensorProto::UINT8).to_vector_i64(), (std::vector<int64_t>{5, 255, 44}));
  EXPECT_EQ(cast(big, ::onnx::TensorProto::FLOAT).to_vector(), (std::vector<float>{4294967301.f, -1.f, 300.f}));
  // Unsupported targets are a clear error.
  EXPECT_TRUE(testing::throws_naming([&] { cast(x, ::onnx::TensorProto::DOUBLE); }, {"n_Cast", "unsupported dtype"}));
  EXPECT_TRUE(testing::throws_naming([&] { cast(x, ::onnx::TensorProto::INT8); }, {"n_Cast", "unsupported dtype"}));
  // CastLike takes the second input's dtype.
  EXPECT_EQ(Node("CastLike", 2).run1({x, big}, 15).to_vector_i64(), (std::vector<int64_t>{-2, 0, 0, 1, 3}));
  // A float-to-float cast stays differentiable; a float-to-int one carries no gradient.
  Tensor xr = x.clone().set_requires_grad(true);
  EXPECT_TRUE(cast(xr, ::onnx::TensorProto::FLOAT16).requires_grad());
  EXPECT_FALSE(cast(xr, ::onnx::TensorProto::INT64).requires_grad());
}

TEST(OnnxMath, HalfInputsComputeInF32AndKeepTheirDtype) {
  Tensor x = Tensor::from_vector({-1.f, 0.5f, 2.f}, {3}, DType::f16);
  Tensor y = Node("Relu", 1).run1({x}, 14);
  EXPECT_EQ(y.dtype(), DType::f16);
  EXPECT_EQ(y.to_vector(), (std::vector<float>{0.f, 0.5f, 2.f}));
  Tensor s = Node("Add", 2).run1({x, x}, 14);
  EXPECT_EQ(s.dtype(), DType::f16);
  EXPECT_EQ(s.to_vector(), (std::vector<float>{-2.f, 1.f, 4.f}));
}

TEST(OnnxMath, LogicAndIntegerMod) {
  const Tensor t = Tensor::from_vector({1, 0, 1, 0}, {4}, DType::boolean);
  const Tensor u = Tensor::from_vector({1, 1, 0, 0}, {4}, DType::boolean);
  EXPECT_EQ(Node("Not", 1).run1({t}).to_vector(), (std::vector<float>{0, 1, 0, 1}));
  EXPECT_EQ(Node("And", 2).run1({t, u}).to_vector(), (std::vector<float>{1, 0, 0, 0}));
  EXPECT_EQ(Node("Or", 2).run1({t, u}).to_vector(), (std::vector<float>{1, 1, 1, 0}));
  EXPECT_EQ(Node("Xor", 2).run1({t, u}).to_vector(), (std::vector<float>{0, 1, 1, 0}));
  EXPECT_EQ(Node("And", 2).run1({t, Tensor::from_vector({1}, {1}, DType::boolean)}).dtype(), DType::boolean);
  // fmod = 0: the divisor's sign, as Python's %; fmod = 1: the dividend's, as C's %.
  const Tensor a = Tensor::from_vector_i64({-7, 7, -7, 7, 6}, {5}), b = Tensor::from_vector_i64({3, -3, -3, 3, 3}, {5});
  EXPECT_EQ(Node("Mod", 2).run1({a, b}).to_vector_i64(), (std::vector<int64_t>{2, -2, -1, 1, 0}));
  EXPECT_EQ(Node("Mod", 2).i("fmod", 1).run1({a, b}).to_vector_i64(), (std::vector<int64_t>{-1, 1, -1, 1, 0}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Mod", 2).run1({a, Tensor::from_vector_i64({0}, {1})}); },
                                     {"n_Mod", "by zero"}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Mod", 2).run1({Tensor::ones({2}), Tensor::ones({2})}); },
                                     {"n_Mod", "not supported"}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Not", 1).run1({Tensor::ones({2})}); }, {"n_Not", "bool"}));
}

TEST(OnnxMath, OpsetRangesOfTheTable) {
  const OpRegistry& r = op_registry();
  EXPECT_EQ(r.find("Gelu", 19), nullptr);  // Gelu is opset 20
  EXPECT_NE(r.find("Gelu", 20), nullptr);
  EXPECT_EQ(r.find("HardSwish", 13), nullptr);
  EXPECT_NE(r.find("HardSwish", 14), nullptr);
  EXPECT_EQ(r.find("Erf", 8), nullptr);
  EXPECT_EQ(r.find("Where", 8), nullptr);
  for (const char* op : {"Relu", "Clip", "Sigmoid", "HardSigmoid", "Tanh", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt",
                         "ReduceMean", "Equal", "Cast", "Identity"}) {
    EXPECT_NE(r.find(op, 7), nullptr) << op;
    EXPECT_NE(r.find(op, 25), nullptr) << op;  // opset 25 only added 2-bit integer types
    EXPECT_EQ(r.find(op, 26), nullptr) << op;
  }
  // Opset 6: the ops whose version there is the one opset 7 still uses, and
  // Add/Sub/Mul/Div with their legacy broadcast attribute; not Pow-1.
  for (const char* op : {"Relu", "Clip", "Sigmoid", "Add", "Mul", "ReduceMean", "Cast", "Identity"})
    EXPECT_NE(r.find(op, 6), nullptr) << op;
  EXPECT_EQ(r.find("Pow", 6), nullptr);
  EXPECT_EQ(r.find("Equal", 6), nullptr);
  EXPECT_EQ(r.find("Attention", 25), nullptr);  // Attention-25 changed its attributes
}

// Opset 6's Add/Mul/Sub/Div: without broadcast=1 the shapes must match; with
// it, B lines up with A's dims from `axis` (default: A's trailing dims).
TEST(OnnxMath, Opset6LegacyBroadcast) {
  Generator gen = testing::test_generator();
  Tensor a = Tensor::rand({2, 3, 4, 5}, gen), b = Tensor::rand({3, 4}, gen), c = Tensor::rand({4, 5}, gen);
  // Float64 references: A (2,3,4,5) with B (3,4) at axis 1, and with C (4,5) trailing.
  const auto da = to_double(a), db = to_double(b), dc = to_double(c);
  std::vector<double> sum_ref(da.size()), prod_ref(da.size());
  for (size_t i = 0; i < da.size(); ++i) {
    const size_t w = i % 5, h = (i / 5) % 4, ch = (i / 20) % 3;
    sum_ref[i] = da[i] + db[ch * 4 + h];
    prod_ref[i] = da[i] * dc[h * 5 + w];
  }
  Tensor y = Node("Add", 2).i("broadcast", 1).i("axis", 1).run1({a, b}, 6);
  EXPECT_EQ(y.shape(), a.shape());
  EXPECT_TRUE(all_close(y.to_vector(), sum_ref, kRtol, kAtol));
  Tensor z = Node("Mul", 2).i("broadcast", 1).run1({a, c}, 6);  // default axis: trailing dims
  EXPECT_TRUE(all_close(z.to_vector(), prod_ref, kRtol, kAtol));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Sub", 2).run1({a, c}, 6); }, {"n_Sub", "broadcast=1"}));
  EXPECT_TRUE(testing::throws_naming([&] { Node("Div", 2).i("broadcast", 1).i("axis", 0).run1({a, c}, 6); },
                                     {"n_Div", "axis 0"}));
  // Opset 7 on: NumPy broadcasting whatever the (no longer defined) attribute.
  EXPECT_TRUE(all_close(Node("Mul", 2).run1({a, c}, 7).to_vector(), prod_ref, kRtol, kAtol));
}

}  // namespace
}  // namespace graft::importer
