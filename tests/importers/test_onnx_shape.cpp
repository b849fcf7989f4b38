// Converters of the ONNX shape family, called directly on engine tensors with
// hand-built NodeProtos: values against references written here (index
// arithmetic per the ONNX spec, independent of the engine's shape ops), the
// opset-dependent forms (attributes vs inputs), integer shape subgraphs,
// gradients through the converted ops, and errors that name the node.
#include <cstdint>
#include <limits>
#include <string>

#include "engine/ops/reduce.h"
#include "gtest/gtest.h"
#include "importers/onnx/converter.h"
#include "importers/onnx/tensor_proto.h"
#include "tests/support/gradcheck.h"
#include "tests/support/onnx_node.h"
#include "tests/support/reference.h"

namespace graft::importer {
namespace {

using Inputs = std::vector<Tensor>;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

// A NodeProto under construction.
struct Node : testing::OnnxAttrs<Node> {
  ::onnx::NodeProto proto;
  explicit Node(const std::string& op, int outputs = 1) {
    proto.set_op_type(op);
    proto.set_name("n_" + op);
    for (int i = 0; i < outputs; ++i) proto.add_output("y" + std::to_string(i));
  }
};

Inputs run(const Node& node, int opset, const Inputs& in) {
  Generator gen(1);
  return testing::run_converter(node.proto, opset, in, gen);
}
Tensor run1(const Node& node, int opset, const Inputs& in) { return run(node, opset, in).at(0); }

Tensor i64(const std::vector<int64_t>& v) { return Tensor::from_vector_i64(v, {static_cast<int64_t>(v.size())}); }

// Row-major multi-index helpers for the references.
std::vector<int64_t> unravel(int64_t f, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = f % s[d];
    f /= s[d];
  }
  return idx;
}
int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t f = 0;
  for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + idx[d];
  return f;
}

// ONNX Slice on one axis, as the spec's pseudo-code says: the positions taken.
std::vector<int64_t> slice_positions(int64_t L, int64_t start, int64_t end, int64_t step) {
  auto adj = [L](int64_t v) { return v < 0 ? (v < -L ? -L - 1 : v) + L : v; };  // no overflow at INT64_MIN
  int64_t s = adj(start), e = adj(end);
  if (step > 0) {
    s = std::clamp<int64_t>(s, 0, L);
    e = std::clamp<int64_t>(e, 0, L);
  } else {
    s = std::clamp<int64_t>(s, 0, L - 1);
    e = std::clamp<int64_t>(e, -1, L - 1);
  }
  std::vector<int64_t> out;
  for (__int128 i = s; step > 0 ? i < e : i > e; i += step) out.push_back(static_cast<int64_t>(i));  // no overflow
  return out;
}

TEST(OnnxShape, FlattenReshapeTranspose) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen);
  const std::vector<double> xv = testing::to_double(x);
  for (int64_t axis : {0, 2, 4, -1}) {
    Tensor y = run1(Node("Flatten").i("axis", axis), 13, {x});
    const int64_t a = axis < 0 ? axis + 4 : axis;
    int64_t rows = 1;
    for (int64_t d = 0; d < a; ++d) rows *= x.shape()[d];
    EXPECT_EQ(y.shape(), (Shape{rows, 120 / rows})) << axis;
    EXPECT_TRUE(testing::all_close(y.to_vector(), xv, 0, 0));
  }
  EXPECT_EQ(run1(Node("Reshape"), 13, {x, i64({0, -1, 5})}).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(run1(Node("Reshape"), 13, {x, i64({0, 0, -1})}).shape(), (Shape{2, 3, 20}));
  Tensor empty = Tensor::zeros({0, 3});
  EXPECT_EQ(run1(Node("Reshape").i("allowzero", 1), 14, {empty, i64({3, 0})}).shape(), (Shape{3, 0}));
  EXPECT_EQ(run1(Node("Reshape"), 14, {empty, i64({0, 3})}).shape(), (Shape{0, 3}));
  Tensor y = run1(Node("Reshape"), 13, {x, i64({5, -1})});
  EXPECT_TRUE(testing::all_close(y.to_vector(), xv, 0, 0));

  Tensor t = run1(Node("Transpose"), 13, {x});  // default: reversed dims
  ASSERT_EQ(t.shape(), (Shape{5, 4, 3, 2}));
  std::vector<double> ref(120);
  for (int64_t f = 0; f < 120; ++f) {
    std::vector<int64_t> o = unravel(f, t.shape());
    ref[f] = xv[ravel({o[3], o[2], o[1], o[0]}, x.shape())];
  }
  EXPECT_TRUE(testing::all_close(t.to_vector(), ref, 0, 0));
  Tensor t2 = run1(Node("Transpose").ints("perm", {0, 2, 3, 1}), 13, {x});
  for (int64_t f = 0; f < 120; ++f) {
    std::vector<int64_t> o = unravel(f, t2.shape());
    ref[f] = xv[ravel({o[0], o[3], o[1], o[2]}, x.shape())];
  }
  EXPECT_TRUE(testing::all_close(t2.to_vector(), ref, 0, 0));
}

TEST(OnnxShape, ConcatAndSplitAcrossOpsets) {
  Tensor a = Tensor::from_vector_i64({1, 2, 3, 4}, {2, 2}), b = Tensor::from_vector_i64({5, 6}, {2, 1});
  Tensor c = run1(Node("Concat").i("axis", -1), 13, {a, b});
  EXPECT_EQ(c.dtype(), DType::i64);
  EXPECT_EQ(c.to_vector_i64(), (std::vector<int64_t>{1, 2, 5, 3, 4, 6}));

  Tensor x = Tensor::from_vector(Tensor::arange(14).to_vector(), {2, 7});
  auto row = [](const Tensor& t) { return t.to_vector(); };
  Inputs s11 = run(Node("Split", 2).i("axis", 1).ints("split", {3, 4}), 11, {x});
  ASSERT_EQ(s11.size(), 2u);
  EXPECT_EQ(row(s11[0]), (std::vector<float>{0, 1, 2, 7, 8, 9}));
  EXPECT_EQ(s11[1].shape(), (Shape{2, 4}));
  Inputs s13 = run(Node("Split", 3).i("axis", 1), 13, {x, i64({1, 0, 6})});
  EXPECT_EQ(s13[1].shape(), (Shape{2, 0}));
  EXPECT_EQ(row(s13[0]), (std::vector<float>{0, 7}));
  Inputs eq = run(Node("Split", 2), 13, {x});  // equal parts along axis 0
  EXPECT_EQ(row(eq[1]), (std::vector<float>{7, 8, 9, 10, 11, 12, 13}));
  Inputs s18 = run(Node("Split", 3).i("axis", -1).i("num_outputs", 3), 18, {x});  // 7 -> 3, 3, 1
  EXPECT_EQ(s18[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(s18[2].shape(), (Shape{2, 1}));
  EXPECT_EQ(row(s18[2]), (std::vector<float>{6, 13}));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Split", 2).i("axis", 1), 13, {x}); },
                                     {"test.onnx", "n_Split", "equal parts"}));
}

TEST(OnnxShape, SliceMatchesTheSpecForEveryStepSign) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({5, 7}, gen);
  const std::vector<double> xv = testing::to_double(x);
  struct Case {
    int64_t s0, e0, st0, s1, e1, st1;
  };
  const std::vector<Case> cases{{0, 5, 1, 0, 7, 1},       {1, -1, 2, -3, kMax, 1}, {kMax, kMin, -1, 5, 1, -2},
                                {-1, -6, -2, kMin, 3, 3}, {4, 2, 1, 6, -8, -3},    {-100, 100, 3, 2, 2, -1},
                                {2, kMax, kMax, 6, kMin, kMin}};
  for (const Case& c : cases) {
    Tensor y = run1(Node("Slice"), 13, {x, i64({c.s0, c.s1}), i64({c.e0, c.e1}), i64({0, 1}), i64({c.st0, c.st1})});
    const std::vector<int64_t> r = slice_positions(5, c.s0, c.e0, c.st0), k = slice_positions(7, c.s1, c.e1, c.st1);
    ASSERT_EQ(y.shape(), (Shape{static_cast<int64_t>(r.size()), static_cast<int64_t>(k.size())}));
    std::vector<double> ref;
    for (int64_t i : r)
      for (int64_t j : k) ref.push_back(xv[i * 7 + j]);
    EXPECT_TRUE(testing::all_close(y.to_vector(), ref, 0, 0)) << c.s0 << " " << c.e0 << " " << c.st0;
  }
  // opset 9: attributes; axes given out of order and negative.
  Tensor y9 = run1(Node("Slice").ints("starts", {1, 2}).ints("ends", {3, 100}).ints("axes", {-1, 0}), 9, {x});
  std::vector<double> ref;
  for (int64_t i = 2; i < 5; ++i)
    for (int64_t j = 1; j < 3; ++j) ref.push_back(xv[i * 7 + j]);
  EXPECT_TRUE(testing::all_close(y9.to_vector(), ref, 0, 0));
  // i32 bounds, default axes and steps.
  Tensor b32 = Tensor::from_vector({1}, {1}, DType::i32), e32 = Tensor::from_vector({3}, {1}, DType::i32);
  EXPECT_EQ(run1(Node("Slice"), 13, {x, b32, e32}).shape(), (Shape{2, 7}));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Slice"), 13, {x, i64({0}), i64({1}), i64({0}), i64({0})}); },
                                     {"n_Slice", "step 0"}));
}

TEST(OnnxShape, SqueezeUnsqueezeAttributeAndInputForms) {
  Tensor x = Tensor::ones({1, 3, 1, 2});
  EXPECT_EQ(run1(Node("Squeeze"), 11, {x}).shape(), (Shape{3, 2}));
  EXPECT_EQ(run1(Node("Squeeze").ints("axes", {-2}), 11, {x}).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(run1(Node("Squeeze"), 13, {x, i64({0, 2})}).shape(), (Shape{3, 2}));
  EXPECT_EQ(run1(Node("Squeeze"), 13, {x}).shape(), (Shape{3, 2}));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Squeeze"), 13, {x, i64({1})}); }, {"n_Squeeze", "axis 1"}));
  Tensor v = Tensor::ones({3, 4});
  EXPECT_EQ(run1(Node("Unsqueeze").ints("axes", {0, 3}), 11, {v}).shape(), (Shape{1, 3, 4, 1}));
  EXPECT_EQ(run1(Node("Unsqueeze"), 13, {v, i64({-1, 1})}).shape(), (Shape{3, 1, 4, 1}));
  EXPECT_EQ(run1(Node("Unsqueeze"), 13, {Tensor::from_vector_i64({7}, {}), i64({0})}).to_vector_i64(),
            std::vector<int64_t>{7});
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Unsqueeze"), 13, {v, i64({1, 1})}); }, {"n_Unsqueeze", "twice"}));
}

TEST(OnnxShape, IntegerShapeSubgraphIsExact) {
  // Shape -> Gather -> Unsqueeze -> Concat -> Reshape, all on i64, as exporters write it.
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({2, 3, 4, 5}, gen);
  Tensor shape = run1(Node("Shape"), 13, {x});
  EXPECT_EQ(shape.dtype(), DType::i64);
  EXPECT_EQ(shape.to_vector_i64(), (std::vector<int64_t>{2, 3, 4, 5}));
  Tensor n = run1(Node("Gather").i("axis", 0), 13, {shape, Tensor::from_vector_i64({0}, {})});
  EXPECT_EQ(n.dim(), 0);
  Tensor n1 = run1(Node("Unsqueeze"), 13, {n, i64({0})});
  Tensor target = run1(Node("Concat").i("axis", 0), 13, {n1, i64({-1})});
  EXPECT_EQ(target.to_vector_i64(), (std::vector<int64_t>{2, -1}));
  Tensor y = run1(Node("Reshape"), 13, {x, target});
  EXPECT_EQ(y.shape(), (Shape{2, 60}));
  EXPECT_EQ(run1(Node("Shape").i("start", 1).i("end", -1), 15, {x}).to_vector_i64(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(run1(Node("Shape").i("start", -10), 15, {x}).numel(), 4);
  EXPECT_EQ(run1(Node("Shape").i("start", 1), 13, {x}).numel(), 4);  // start ignored before 15
  EXPECT_EQ(run1(Node("Gather").i("axis", 0), 13, {shape, i64({-1, 1})}).to_vector_i64(), (std::vector<int64_t>{5, 3}));
}

TEST(OnnxShape, SizeAndRange) {
  Tensor size = run1(Node("Size"), 13, {Tensor::zeros({2, 3, 5})});
  EXPECT_EQ(size.dtype(), DType::i64);
  EXPECT_EQ(size.dim(), 0);
  EXPECT_EQ(size.to_vector_i64(), std::vector<int64_t>{30});
  auto s64 = [](int64_t v) { return Tensor::from_vector_i64({v}, {}); };
  struct Case {
    int64_t start, limit, delta;
  };
  for (const Case& c : std::vector<Case>{{0, 5, 1}, {10, 4, -3}, {1, 8, 3}, {5, 5, 1}, {3, 1, 1}, {-7, 7, 7}}) {
    std::vector<int64_t> ref;
    for (int64_t v = c.start; c.delta > 0 ? v < c.limit : v > c.limit; v += c.delta) ref.push_back(v);
    Tensor r = run1(Node("Range"), 13, {s64(c.start), s64(c.limit), s64(c.delta)});
    EXPECT_EQ(r.dtype(), DType::i64);
    EXPECT_EQ(r.to_vector_i64(), ref) << c.start << " " << c.limit << " " << c.delta;
  }
  Tensor f = run1(Node("Range"), 13, {Tensor::scalar(1.0), Tensor::scalar(2.0), Tensor::scalar(0.3)});
  EXPECT_TRUE(testing::all_close(f.to_vector(), {1.0, 1.3, 1.6, 1.9}, 1e-6, 1e-6));
  Tensor i32 = Tensor::from_vector({2}, {}, DType::i32);
  EXPECT_EQ(run1(Node("Range"), 13, {i32, Tensor::from_vector({6}, {}, DType::i32), Tensor::from_vector({2}, {}, DType::i32)})
                .dtype(),
            DType::i32);
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Range"), 13, {s64(0), s64(3), s64(0)}); }, {"n_Range", "delta"}));
}

TEST(OnnxShape, GatherOfFloatsMatchesTake) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({3, 4, 2}, gen);
  const std::vector<double> xv = testing::to_double(x);
  Tensor idx = Tensor::from_vector_i64({3, -4, 1, 1, 0, -1}, {2, 3});
  Tensor y = run1(Node("Gather").i("axis", -2), 13, {x, idx});
  ASSERT_EQ(y.shape(), (Shape{3, 2, 3, 2}));
  const std::vector<int64_t> iv = idx.to_vector_i64();
  std::vector<double> ref;
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t k : iv)
      for (int64_t c = 0; c < 2; ++c) ref.push_back(xv[(a * 4 + (k < 0 ? k + 4 : k)) * 2 + c]);
  EXPECT_TRUE(testing::all_close(y.to_vector(), ref, 0, 0));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Gather"), 13, {x, i64({3})}); }, {"gather", "index 3", "size 3"}));
}

TEST(OnnxShape, ConstantAndConstantOfShape) {
  EXPECT_EQ(run1(Node("Constant").ints("value_ints", {4, -2}), 13, {}).to_vector_i64(), (std::vector<int64_t>{4, -2}));
  Tensor f = run1(Node("Constant").f("value_float", 2.5f), 13, {});
  EXPECT_EQ(f.dim(), 0);
  EXPECT_EQ(f.item(), 2.5f);
  EXPECT_EQ(run1(Node("Constant").i("value_int", kMax), 13, {}).to_vector_i64(), std::vector<int64_t>{kMax});
  EXPECT_EQ(run1(Node("Constant").floats("value_floats", {1.5f, -3.f}), 13, {}).to_vector(),
            (std::vector<float>{1.5f, -3.f}));
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor c = run1(Node("Constant").tensor("value", t), 13, {});
  EXPECT_EQ(c.shape(), t.shape());
  EXPECT_EQ(c.to_vector(), t.to_vector());
  Node sparse("Constant");
  sparse.attr("sparse_value", ::onnx::AttributeProto::SPARSE_TENSOR);
  EXPECT_TRUE(testing::throws_naming([&] { run(sparse, 13, {}); }, {"n_Constant", "sparse"}));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Constant").s("value_string", "a"), 13, {}); }, {"n_Constant", "string"}));

  Tensor z = run1(Node("ConstantOfShape"), 13, {i64({2, 3})});
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_EQ(z.to_vector(), std::vector<float>(6, 0.f));
  Tensor big = run1(Node("ConstantOfShape").tensor("value", Tensor::from_vector_i64({kMax - 1}, {1})), 13, {i64({3})});
  EXPECT_EQ(big.to_vector_i64(), std::vector<int64_t>(3, kMax - 1));
  Tensor h = run1(Node("ConstantOfShape").tensor("value", Tensor::from_vector({0.5f}, {1})), 13, {i64({})});
  EXPECT_EQ(h.dim(), 0);
  EXPECT_EQ(h.item(), 0.5f);
  Tensor i32 = run1(Node("ConstantOfShape").tensor("value", Tensor::from_vector({7}, {1}, DType::i32)), 13, {i64({2})});
  EXPECT_EQ(i32.dtype(), DType::i32);
  EXPECT_EQ(i32.to_vector_i64(), (std::vector<int64_t>{7, 7}));
}

TEST(OnnxShape, ExpandBroadcastsBothWays) {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3, 1});
  Tensor y = run1(Node("Expand"), 13, {x, i64({2, 1, 4})});  // target's 1 keeps x's 3
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  std::vector<double> ref;
  for (int a = 0; a < 2; ++a)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) ref.push_back(i + 1);
  EXPECT_TRUE(testing::all_close(y.to_vector(), ref, 0, 0));
  EXPECT_EQ(run1(Node("Expand"), 13, {x, i64({1})}).shape(), (Shape{3, 1}));
  EXPECT_EQ(run1(Node("Expand"), 13, {Tensor::from_vector_i64({4}, {}), i64({2})}).to_vector_i64(),
            (std::vector<int64_t>{4, 4}));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Expand"), 13, {x, i64({4, 1})}); }, {"n_Expand", "[3, 1]", "[4, 1]"}));
}

// ONNX Pad on a 2-D tensor, from the spec: out[i, j] = x at the source
// position per mode, or the constant.
std::vector<double> pad_reference(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode,
                                  double value, Shape* out_shape) {
  const int64_t H = x.shape()[0], W = x.shape()[1];
  const int64_t OH = H + pads[0] + pads[2], OW = W + pads[1] + pads[3];
  *out_shape = {OH, OW};
  const std::vector<double> xv = testing::to_double(x);
  auto src = [&](int64_t i, int64_t L, bool* inside) {
    *inside = i >= 0 && i < L;
    if (mode == "edge") return std::clamp<int64_t>(i, 0, L - 1);
    if (mode == "reflect") return i < 0 ? -i : i >= L ? 2 * (L - 1) - i : i;
    return i;
  };
  std::vector<double> out;
  for (int64_t i = 0; i < OH; ++i)
    for (int64_t j = 0; j < OW; ++j) {
      bool in_r, in_c;
      const int64_t r = src(i - pads[0], H, &in_r), c = src(j - pads[1], W, &in_c);
      out.push_back(mode == "constant" && !(in_r && in_c) ? value : xv[r * W + c]);
    }
  return out;
}

TEST(OnnxShape, PadModesAndOpsets) {
  Generator gen = testing::test_generator();
  Tensor x = Tensor::rand({4, 5}, gen);
  for (const std::string mode : {"constant", "reflect", "edge"}) {
    const std::vector<int64_t> pads{1, 2, 3, -1};  // begins, then ends
    Shape s;
    const std::vector<double> ref = pad_reference(x, pads, mode, mode == "constant" ? 1.5 : 0.0, &s);
    Tensor y11 = run1(Node("Pad").s("mode", mode), 11, {x, i64(pads), Tensor::scalar(1.5)});
    EXPECT_EQ(y11.shape(), s) << mode;
    EXPECT_TRUE(testing::all_close(y11.to_vector(), ref, 0, 0)) << mode;
    Tensor y7 = run1(Node("Pad").s("mode", mode).ints("pads", pads).f("value", 1.5f), 7, {x});
    EXPECT_TRUE(testing::all_close(y7.to_vector(), ref, 0, 0)) << mode;
  }
  // opset 18: axes name which dims the pads are for.
  Shape s;
  const std::vector<double> ref = pad_reference(x, {0, 2, 0, 1}, "constant", 0.0, &s);
  Tensor y18 = run1(Node("Pad"), 18, {x, i64({2, 1}), Tensor(), i64({-1})});
  EXPECT_EQ(y18.shape(), s);
  EXPECT_TRUE(testing::all_close(y18.to_vector(), ref, 0, 0));
  Tensor xi = Tensor::from_vector_i64({1, 2}, {2});
  EXPECT_EQ(run1(Node("Pad"), 13, {xi, i64({1, 0}), Tensor::from_vector_i64({9}, {})}).to_vector_i64(),
            (std::vector<int64_t>{9, 1, 2}));
  // wrap (opset 19): circular, crops too; the reference indexes modulo the size.
  Tensor yw = run1(Node("Pad").s("mode", "wrap"), 19, {x, i64({2, 6, -1, 1})});
  ASSERT_EQ(yw.shape(), (Shape{5, 12}));
  const std::vector<double> xv = testing::to_double(x);
  std::vector<double> wref;
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 12; ++j) wref.push_back(xv[(((i - 2) % 4 + 4) % 4) * 5 + ((j - 6) % 5 + 5) % 5]);
  EXPECT_TRUE(testing::all_close(yw.to_vector(), wref, 0, 0));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Pad").s("mode", "wrap"), 18, {x, i64({1, 1, 1, 1})}); },
                                     {"n_Pad", "wrap"}));
  EXPECT_TRUE(testing::throws_naming([&] { run(Node("Pad"), 13, {x, i64({1, 1})}); }, {"n_Pad", "pads"}));
}

TEST(OnnxShape, ConvertedGraphsAreDifferentiable) {
  Generator gen = testing::test_generator();
  Tensor x = testing::random_tensor({3, 6}, gen);
  auto f = [](const Inputs& in) {
    Tensor s = run1(Node("Slice"), 13, {in[0], i64({kMax, -2}), i64({kMin, 0}), i64({1, 0}), i64({-1, -2})});
    Tensor p = run1(Node("Pad").s("mode", "reflect"), 13, {s, i64({0, 1, 0, 1})});
    Inputs parts = run(Node("Split", 2).i("axis", 1), 13, {p, i64({3, 5})});
    Tensor g = run1(Node("Gather").i("axis", 1), 13, {parts[1], i64({0, 2, 0})});
    return run1(Node("Concat").i("axis", 1), 13, {parts[0], g});
  };
  EXPECT_TRUE(testing::gradcheck(f, {x}));
}

TEST(OnnxShape, TheTableClaimsTheTargetOpsets) {
  for (const char* op : {"Flatten", "Reshape", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze",
                         "Gather", "Shape", "Constant", "Pad"})
    for (int opset = 7; opset <= 24; ++opset) EXPECT_NE(op_registry().find(op, opset), nullptr) << op << " " << opset;
  EXPECT_EQ(op_registry().find("ConstantOfShape", 8), nullptr);
  EXPECT_NE(op_registry().find("ConstantOfShape", 9), nullptr);
  EXPECT_NE(op_registry().find("Expand", 8), nullptr);
}

}  // namespace
}  // namespace graft::importer

namespace graft::importer {
namespace {

// Shapes read from data are checked before anything is allocated (the fuzzer
// found a ConstantOfShape of 1.7e15 elements allocating): an error naming the
// node and the limit, for every converter whose output size comes from values.
TEST(OnnxShape, SizesFromDataAreCheckedBeforeAllocation) {
  auto i64 = [](std::vector<int64_t> v) { const int64_t n = static_cast<int64_t>(v.size()); return Tensor::from_vector_i64(v, {n}); };
  const int64_t big = int64_t(1) << 40;
  Tensor x = Tensor::zeros({1, 3});
  EXPECT_TRUE(testing::throws_naming([&] { run1(Node("ConstantOfShape"), 17, {i64({big, big})}); },
                                     {"ConstantOfShape", "max_tensor_elements"}));
  EXPECT_TRUE(testing::throws_naming([&] { run1(Node("Expand"), 17, {x, i64({big, 3})}); }, {"Expand", "max_tensor_elements"}));
  EXPECT_TRUE(testing::throws_naming(
      [&] { run1(Node("Range"), 17, {Tensor::from_vector_i64({0}, {}), Tensor::from_vector_i64({big * 8}, {}), Tensor::from_vector_i64({1}, {})}); },
      {"Range", "max_tensor_elements"}));
  EXPECT_TRUE(testing::throws_naming(
      [&] { run1(Node("Range"), 17, {Tensor::scalar(0.f), Tensor::scalar(1e30f), Tensor::scalar(1.f)}); }, {"Range", "max_tensor_elements"}));
  EXPECT_TRUE(testing::throws_naming([&] { run1(Node("Pad"), 17, {x, i64({0, 0, 0, big / 2})}); }, {"Pad", "max_tensor_elements"}));
  // Sizes within the limit still work.
  EXPECT_EQ(run1(Node("ConstantOfShape"), 17, {i64({2, 3})}).shape(), (Shape{2, 3}));
}

}  // namespace
}  // namespace graft::importer
