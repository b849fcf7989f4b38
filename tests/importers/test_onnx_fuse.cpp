// Attention-pattern fusion (importers/onnx/fuse.cpp): each pattern variant that
// exporters write, built here as a small graph, loaded with and without
// fusion; the fused model must fuse what it should (and nothing else), run the
// engine attention op (seen in its autograd graph), and give the unfused
// model's outputs and parameter gradients.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "gtest/gtest.h"
#include "importers/onnx/model.h"
#include "importers/onnx/tensor_proto.h"
#include "tests/support/onnx_node.h"
#include "tests/support/reference.h"

namespace graft::importer {
namespace {

using TP = ::onnx::TensorProto;

// ---- a small graph builder -------------------------------------------------------------

struct N : testing::OnnxAttrs<N> {
  ::onnx::NodeProto proto;
  N(const std::string& op, const std::vector<std::string>& in) {
    proto.set_op_type(op);
    for (const auto& s : in) proto.add_input(s);
  }
};

struct Graph {
  ::onnx::ModelProto m;
  ::onnx::GraphProto* g;
  int count = 0;
  explicit Graph(int opset) {
    m.set_ir_version(8);
    m.set_producer_name("graft-test");
    auto* o = m.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    g = m.mutable_graph();
    g->set_name("attention");
  }
  std::string input(const std::string& name, const Shape& dims) {
    auto* v = g->add_input();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(TP::FLOAT);
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
    return name;
  }
  void output(const std::string& name) {
    auto* v = g->add_output();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(TP::FLOAT);
  }
  std::string init(const std::string& name, const Tensor& t) {
    to_tensor_proto(t, name, g->add_initializer());
    return name;
  }
  std::string add(const N& n) {
    auto* p = g->add_node();
    *p = n.proto;
    const std::string out = "v" + std::to_string(++count);
    p->set_name(n.proto.op_type() + "_" + std::to_string(count));
    p->add_output(out);
    return out;
  }
  std::string constant(const Tensor& t) { return add(N("Constant", {}).tensor("value", t)); }
  std::string bytes() const {
    std::string s;
    EXPECT_TRUE(m.SerializeToString(&s));
    return s;
  }
};

// ---- the attention variants --------------------------------------------------------------

enum class Scale { none, scores_mul, scores_mul_const_first, scores_div, q_mul, q_div, k_div, both_sqrt, both_sqrt_dynamic };
enum class Mask { none, input, input_first, parameter, widening };
enum class KForm { transpose, transposed_input, transpose_shared };

struct Variant {
  int rank = 4;
  int opset = 17;
  Scale scale = Scale::scores_div;
  Mask mask = Mask::none;
  KForm k = KForm::transpose;
  bool casts = false;               // Cast(to=FLOAT) links, as the ONNX Attention expansion writes
  bool axis_attr = true;            // Softmax gets axis=`axis`; else the opset's default
  int64_t axis = -1;
  bool probs_output = false;        // the probabilities are a graph output too
  bool scores_read = false;         // the scores feed another node too
  bool broadcast_k = false;         // K has batch 1 against Q's batch B (MatMul broadcasting)
  bool scale_initializers = false;  // scalars as initializers (torch's dynamo exporter), i.e. parameters
};

constexpr int64_t B = 2, H = 3, Sq = 5, Sk = 7, D = 4, Dv = 6, E = 8;
constexpr float kScale = 0.37f;

Shape lead(const Variant& v, int64_t b) { return v.rank == 4 ? Shape{b, H} : Shape{b * H}; }
Shape with(Shape s, std::initializer_list<int64_t> tail) {
  s.insert(s.end(), tail);
  return s;
}

struct Built {
  std::string bytes;
  std::vector<Tensor> inputs;
};

Built build(const Variant& v, Generator& gen) {
  Graph g(v.opset);
  std::vector<Tensor> inputs;
  auto in = [&](const std::string& name, const Shape& s) {
    inputs.push_back(testing::random_tensor(s, gen));
    return g.input(name, s);
  };
  auto param = [&](const std::string& name, const Shape& s) { return g.init(name, testing::random_tensor(s, gen, -0.6f, 0.6f)); };
  // widening: scores of batch 1 under a mask of batch B
  const bool narrow = v.mask == Mask::widening;
  const Shape lq = lead(v, narrow ? 1 : B), lk = lead(v, v.broadcast_k || narrow ? 1 : B);
  const std::string q = g.add(N("MatMul", {in("xq", with(lq, {Sq, E})), param("wq", {E, D})}));
  std::string kt;
  if (v.k == KForm::transposed_input) {
    kt = g.add(N("MatMul", {param("wkt", {D, E}), in("xkt", with(lk, {E, Sk}))}));
  } else {
    const std::string k = g.add(N("MatMul", {in("xk", with(lk, {Sk, E})), param("wk", {E, D})}));
    kt = g.add(N("Transpose", {k}).ints("perm", v.rank == 4 ? std::vector<int64_t>{0, 1, 3, 2} : std::vector<int64_t>{0, 2, 1}));
    if (v.k == KForm::transpose_shared) g.output(kt);
  }
  const std::string val = g.add(N("MatMul", {in("xv", with(lk, {Sk, E})), param("wv", {E, Dv})}));
  auto link = [&](const std::string& x) { return v.casts ? g.add(N("Cast", {x}).i("to", TP::FLOAT)) : x; };
  int scalars = 0;
  auto scalar = [&](float x) {
    const Tensor t = Tensor::from_vector({x}, {});
    return v.scale_initializers ? g.init("scale" + std::to_string(scalars++), t) : g.constant(t);
  };

  std::string qs = q, kts = kt;
  switch (v.scale) {
    case Scale::q_mul: qs = g.add(N("Mul", {q, scalar(kScale)})); break;
    case Scale::q_div: qs = g.add(N("Div", {q, scalar(1.f / kScale)})); break;
    case Scale::k_div: kts = g.add(N("Div", {kt, scalar(1.f / kScale)})); break;
    case Scale::both_sqrt:
      qs = g.add(N("Mul", {q, scalar(std::sqrt(kScale))}));
      kts = g.add(N("Mul", {scalar(std::sqrt(kScale)), kt}));
      break;
    case Scale::both_sqrt_dynamic: {  // torch's SDPA export: sqrt(1 / sqrt(d)) from Q's shape at run time
      const std::string d = g.add(N("Cast", {g.add(N("Shape", {q}).i("start", -1))}).i("to", TP::FLOAT));
      const std::string s = g.add(N("Sqrt", {g.add(N("Div", {scalar(1.f), g.add(N("Sqrt", {d}))}))}));
      qs = g.add(N("Mul", {q, s}));
      kts = g.add(N("Mul", {kt, s}));
      break;
    }
    default: break;
  }
  std::string s = link(g.add(N("MatMul", {qs, kts})));
  if (v.scores_read) g.output(g.add(N("ReduceSum", {s}).i("keepdims", 0)));
  switch (v.scale) {
    case Scale::scores_mul: s = g.add(N("Mul", {s, scalar(kScale)})); break;
    case Scale::scores_mul_const_first: s = g.add(N("Mul", {scalar(kScale), s})); break;
    case Scale::scores_div: s = g.add(N("Div", {s, scalar(1.f / kScale)})); break;
    default: break;
  }
  if (v.mask != Mask::none) {
    // Additive mask with some -inf (never a whole row); (B, 1, Sq, Sk) for
    // 4-D scores, (Sq, Sk) for 3-D; wider than the scores for `widening`.
    const Shape ms = v.mask == Mask::widening ? with(lead(v, B), {Sq, Sk})
                     : v.rank == 4             ? Shape{B, 1, Sq, Sk}
                                               : Shape{Sq, Sk};
    Tensor m = testing::random_tensor(ms, gen, -2.f, 2.f);
    std::vector<float> mv = m.to_vector();
    for (size_t i = 0; i < mv.size(); i += 3)
      if (i % Sk != 0) mv[i] = -std::numeric_limits<float>::infinity();
    m = Tensor::from_vector(mv, ms);
    std::string mname;
    if (v.mask == Mask::parameter) {
      mname = g.init("bias", m);
    } else {
      mname = g.input("mask", ms);
      inputs.push_back(m);
    }
    s = link(g.add(N("Add", v.mask == Mask::input_first ? std::vector<std::string>{mname, s}
                                                         : std::vector<std::string>{s, mname})));
  }
  N sm("Softmax", {s});
  if (v.axis_attr) sm.i("axis", v.axis);
  const std::string p = link(g.add(sm));
  if (v.probs_output) g.output(p);
  g.output(g.add(N("MatMul", {p, val})));
  return {g.bytes(), inputs};
}

std::shared_ptr<OnnxModel> load(const Built& b, bool fuse) {
  LoadOptions opt;
  opt.fuse_attention = fuse;
  return load_onnx_bytes(b.bytes, "attention.onnx", ".", opt);
}

bool autograd_has(const Tensor& t, const std::string& op) {
  std::vector<const autograd::Node*> todo;
  std::set<const autograd::Node*> seen;
  if (t.grad_fn()) todo.push_back(t.grad_fn().get());
  while (!todo.empty()) {
    const autograd::Node* n = todo.back();
    todo.pop_back();
    if (!seen.insert(n).second) continue;
    if (n->op == op) return true;
    for (const auto& next : n->next)
      if (next) todo.push_back(next.get());
  }
  return false;
}

// Same NaN positions, and elsewhere ||a - b|| / ||b|| <= tol.
::testing::AssertionResult close(const Tensor& a, const Tensor& b, double tol, double* err = nullptr) {
  if (a.shape() != b.shape()) return ::testing::AssertionFailure() << "shapes " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  std::vector<float> av = a.to_vector(), bv = b.to_vector();
  std::vector<float> af;
  std::vector<double> bd;
  for (size_t i = 0; i < av.size(); ++i) {
    if (std::isnan(av[i]) != std::isnan(bv[i])) return ::testing::AssertionFailure() << "NaN at " << i << " in one only";
    if (std::isnan(av[i])) continue;
    af.push_back(av[i]);
    bd.push_back(bv[i]);
  }
  const double e = bd.empty() ? 0.0 : testing::rel_l2_error(af, bd);
  if (err) *err = std::max(*err, e);
  if (e <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << e << " > " << tol;
}

// Loads `v` fused and unfused; expects `fused` patterns fused, the fused path
// taken at run time when `runs_fused`, and equal outputs and gradients.
void check(const Variant& v, int fused, bool runs_fused) {
  Generator gen = testing::test_generator();
  const Built b = build(v, gen);
  auto mf = load(b, true), mu = load(b, false);
  double max_out_err = 0.0, max_grad_err = 0.0;
  EXPECT_EQ(mf->fused_attention_count(), fused);
  EXPECT_EQ(mu->fused_attention_count(), 0);
  // Forward without gradients.
  {
    autograd::NoGradGuard no_grad;
    const auto yf = mf->run(b.inputs), yu = mu->run(b.inputs);
    ASSERT_EQ(yf.size(), yu.size());
    for (size_t i = 0; i < yf.size(); ++i) EXPECT_TRUE(close(yf[i], yu[i], 1e-5, &max_out_err)) << "output " << i;
  }
  // With gradients: the same loss through both, then every parameter's gradient.
  const auto yf = mf->run(b.inputs), yu = mu->run(b.inputs);
  const Shape out_shape = yu.back().shape();
  const Tensor r = testing::random_tensor(out_shape, gen);
  EXPECT_EQ(autograd_has(yf.back(), "attention"), runs_fused);
  EXPECT_FALSE(autograd_has(yu.back(), "attention"));
  EXPECT_TRUE(close(yf.back(), yu.back(), 1e-5, &max_out_err));
  sum(mul(yf.back(), r)).backward();
  sum(mul(yu.back(), r)).backward();
  const auto pf = mf->named_parameters(), pu = mu->named_parameters();
  ASSERT_EQ(pf.size(), pu.size());
  ASSERT_GE(pf.size(), 3u);
  for (size_t i = 0; i < pf.size(); ++i) {
    ASSERT_EQ(pf[i].first, pu[i].first);
    ASSERT_TRUE(pf[i].second.grad().defined()) << pf[i].first;
    ASSERT_TRUE(pu[i].second.grad().defined()) << pu[i].first;
    EXPECT_TRUE(close(pf[i].second.grad(), pu[i].second.grad(), 2e-5, &max_grad_err)) << pf[i].first;
  }
  std::printf("fused %d, runs fused %d: relative L2 error vs unfused: outputs %.2g, gradients %.2g\n", fused,
              runs_fused, max_out_err, max_grad_err);
}

// ---- what fuses ----------------------------------------------------------------------------

TEST(OnnxFuse, ScoresScaledAfterTheMatMul) {
  for (int rank : {3, 4})
    for (Scale s : {Scale::scores_mul, Scale::scores_mul_const_first, Scale::scores_div}) {
      SCOPED_TRACE("rank " + std::to_string(rank) + " scale " + std::to_string(static_cast<int>(s)));
      Variant v;
      v.rank = rank;
      v.scale = s;
      check(v, 1, true);
    }
}

TEST(OnnxFuse, QOrKScaledBeforeTheMatMul) {
  for (int rank : {3, 4})
    for (Scale s : {Scale::q_mul, Scale::q_div, Scale::k_div, Scale::both_sqrt, Scale::both_sqrt_dynamic}) {
      SCOPED_TRACE("rank " + std::to_string(rank) + " scale " + std::to_string(static_cast<int>(s)));
      Variant v;
      v.rank = rank;
      v.scale = s;
      check(v, 1, true);
    }
}

TEST(OnnxFuse, ScalesStoredAsParametersGetTheirGradients) {
  // A float initializer is a parameter: the fused step applies it to Q with a
  // differentiable op instead of folding it into the attention scale.
  for (Scale s : {Scale::scores_div, Scale::q_mul, Scale::k_div, Scale::both_sqrt}) {
    SCOPED_TRACE("scale " + std::to_string(static_cast<int>(s)));
    Variant v;
    v.scale = s;
    v.scale_initializers = true;
    v.mask = Mask::input;
    check(v, 1, true);
  }
}

TEST(OnnxFuse, NoScaleMeansScaleOne) {
  Variant v;
  v.scale = Scale::none;
  check(v, 1, true);
}

TEST(OnnxFuse, AdditiveMaskEitherOperand) {
  for (int rank : {3, 4})
    for (Mask m : {Mask::input, Mask::input_first}) {
      SCOPED_TRACE("rank " + std::to_string(rank) + " mask " + std::to_string(static_cast<int>(m)));
      Variant v;
      v.rank = rank;
      v.mask = m;
      v.scale = Scale::both_sqrt_dynamic;
      check(v, 1, true);
    }
}

TEST(OnnxFuse, KGivenTransposedOrTransposeSharedStillFuses) {
  for (KForm k : {KForm::transposed_input, KForm::transpose_shared}) {
    SCOPED_TRACE("k form " + std::to_string(static_cast<int>(k)));
    Variant v;
    v.k = k;
    v.scale = Scale::both_sqrt;
    v.mask = Mask::input;
    check(v, 1, true);
  }
}

TEST(OnnxFuse, CastLinksAsTheOnnxAttentionExpansionWritesThem) {
  Variant v;
  v.casts = true;
  v.scale = Scale::both_sqrt_dynamic;
  v.mask = Mask::input;
  check(v, 1, true);
}

TEST(OnnxFuse, SoftmaxBeforeOpset13FusesOnlyOverTheLastAxis) {
  Variant v;
  v.opset = 11;
  v.axis = 3;
  check(v, 1, true);
  v.axis = -1;
  check(v, 1, true);
  v.axis_attr = false;  // default axis 1: softmax over (H, Sq, Sk) flattened
  check(v, 0, false);
}

// ---- what must not fuse, or falls back at run time ----------------------------------------------

TEST(OnnxFuse, SharedIntermediatesAreNotFused) {
  Variant v;
  v.probs_output = true;
  check(v, 0, false);
  v = Variant();
  v.scores_read = true;
  check(v, 0, false);
}

TEST(OnnxFuse, SoftmaxOverAnotherAxisIsNotFused) {
  Variant v;
  v.axis = 1;
  check(v, 0, false);
  v.axis = 2;  // accepted when loading (the last axis of 3-D scores), refused for 4-D when run
  check(v, 1, false);
}

TEST(OnnxFuse, WhatTheFusedOpCannotDoRunsTheOriginalNodes) {
  Variant v;
  v.broadcast_k = true;  // MatMul broadcasts K's batch of 1
  check(v, 1, false);
  v = Variant();
  v.mask = Mask::widening;  // a (B, H, Sq, Sk) mask on (1, H, Sq, Sk) scores
  check(v, 1, false);
  v = Variant();
  v.mask = Mask::parameter;  // a learned bias needs its gradient: the original nodes while training
  check(v, 1, false);
}

TEST(OnnxFuse, LearnedBiasRunsFusedWithoutGradients) {
  Generator gen = testing::test_generator();
  Variant v;
  v.mask = Mask::parameter;
  const Built b = build(v, gen);
  auto mf = load(b, true), mu = load(b, false);
  EXPECT_EQ(mf->fused_attention_count(), 1);
  autograd::NoGradGuard no_grad;
  EXPECT_TRUE(close(mf->run(b.inputs)[0], mu->run(b.inputs)[0], 1e-5));
}

TEST(OnnxFuse, FullyMaskedRowGivesWhatSoftmaxGives) {
  // A row of -inf: Softmax gives NaN, the engine op zeros; the fused step
  // must give NaN (it runs the original nodes).
  Generator gen = testing::test_generator();
  Variant v;
  v.mask = Mask::input;
  Built b = build(v, gen);
  std::vector<float> m = b.inputs.back().to_vector();
  for (int64_t j = 0; j < Sk; ++j) m[static_cast<size_t>(Sk + j)] = -std::numeric_limits<float>::infinity();
  b.inputs.back() = Tensor::from_vector(m, b.inputs.back().shape());
  auto mf = load(b, true), mu = load(b, false);
  autograd::NoGradGuard no_grad;
  const Tensor yf = mf->run(b.inputs)[0], yu = mu->run(b.inputs)[0];
  EXPECT_TRUE(close(yf, yu, 1e-5));
  bool any_nan = false;
  for (float x : yu.to_vector()) any_nan = any_nan || std::isnan(x);
  EXPECT_TRUE(any_nan);
}

TEST(OnnxFuse, OffByOption) {
  Generator gen = testing::test_generator();
  const Built b = build(Variant(), gen);
  EXPECT_EQ(load(b, false)->fused_attention_count(), 0);
  EXPECT_EQ(load(b, true)->fused_attention_count(), 1);
}

TEST(OnnxFuse, ErrorsInsideTheFallbackNameTheOriginalNode) {
  // Sk of V differs from K's: the fused op refuses, the original MatMul fails and says so.
  Graph g(17);
  const std::string q = g.input("q", {1, 2, 3, 4}), k = g.input("k", {1, 2, 5, 4}), v = g.input("v", {1, 2, 6, 4});
  const std::string s = g.add(N("MatMul", {q, g.add(N("Transpose", {k}).ints("perm", {0, 1, 3, 2}))}));
  const std::string p = g.add(N("Softmax", {s}).i("axis", -1));
  g.output(g.add(N("MatMul", {p, v})));
  auto m = load_onnx_bytes(g.bytes(), "bad.onnx");
  EXPECT_EQ(m->fused_attention_count(), 1);
  Generator gen = testing::test_generator();
  EXPECT_TRUE(testing::throws_naming(
      [&] {
        m->run({testing::random_tensor({1, 2, 3, 4}, gen), testing::random_tensor({1, 2, 5, 4}, gen),
                testing::random_tensor({1, 2, 6, 4}, gen)});
      },
      {"bad.onnx", "MatMul_4"}));
}

TEST(OnnxFuse, TwoLayersFuseTwice) {
  // Attention output feeding the next attention's Q: two patterns, both fused.
  Graph g(17);
  Generator gen = testing::test_generator();
  const std::string x = g.input("x", {2, 3, 5, 4});
  std::string h = x;
  for (int layer = 0; layer < 2; ++layer) {
    const std::string l = std::to_string(layer);
    const std::string q = g.add(N("MatMul", {h, g.init("wq" + l, testing::random_tensor({4, 4}, gen))}));
    const std::string k = g.add(N("MatMul", {h, g.init("wk" + l, testing::random_tensor({4, 4}, gen))}));
    const std::string v = g.add(N("MatMul", {h, g.init("wv" + l, testing::random_tensor({4, 4}, gen))}));
    const std::string s = g.add(N("Div", {g.add(N("MatMul", {q, g.add(N("Transpose", {k}).ints("perm", {0, 1, 3, 2}))})),
                                          g.constant(Tensor::from_vector({2.f}, {}))}));
    h = g.add(N("MatMul", {g.add(N("Softmax", {s}).i("axis", -1)), v}));
  }
  g.output(h);
  Built b{g.bytes(), {testing::random_tensor({2, 3, 5, 4}, gen)}};
  auto mf = load(b, true), mu = load(b, false);
  EXPECT_EQ(mf->fused_attention_count(), 2);
  const Tensor yf = mf->run(b.inputs)[0], yu = mu->run(b.inputs)[0];
  EXPECT_TRUE(close(yf, yu, 1e-5));
  sum(yf).backward();
  sum(yu).backward();
  const auto pf = mf->named_parameters(), pu = mu->named_parameters();
  for (size_t i = 0; i < pf.size(); ++i)
    EXPECT_TRUE(close(pf[i].second.grad(), pu[i].second.grad(), 2e-5)) << pf[i].first;
}


// The ONNX Attention operator's own expansion into primitive ops (the node
// tests' *_expanded cases): whatever fuses must still give the stored outputs,
// at the conformance runner's tolerance (rtol 1e-4, atol 1e-5).
TEST(OnnxFuse, ExpandedAttentionNodeTests) {
  const std::string root = testing::shared_path("onnx-node-tests");
  if (root.empty()) GTEST_SKIP() << "../shared/onnx-node-tests not found";
  int cases = 0, fused_cases = 0, fused_patterns = 0;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("test_attention", 0) != 0 || name.find("_expanded") == std::string::npos) continue;
    SCOPED_TRACE(name);
    std::shared_ptr<OnnxModel> m;
    try {
      m = load_onnx((e.path() / "model.onnx").string());
    } catch (const Error&) {
      continue;  // an operator or dtype Graft lacks: the conformance runner reports it
    }
    const auto set = e.path() / "test_data_set_0";
    std::vector<Tensor> inputs, expected;
    for (int i = 0; std::filesystem::exists(set / ("input_" + std::to_string(i) + ".pb")); ++i)
      inputs.push_back(read_tensor_file((set / ("input_" + std::to_string(i) + ".pb")).string()));
    for (int i = 0; std::filesystem::exists(set / ("output_" + std::to_string(i) + ".pb")); ++i)
      expected.push_back(read_tensor_file((set / ("output_" + std::to_string(i) + ".pb")).string()));
    if (std::any_of(expected.begin(), expected.end(), [](const Tensor& t) { return t.dtype() != DType::f32; }))
      continue;  // f16 cases: the engine computes in f32 only
    autograd::NoGradGuard no_grad;
    const auto got = m->run(inputs);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].shape(), expected[i].shape());
      // As the conformance runner compares: equal infinities and NaN match.
      const std::vector<float> g = got[i].to_vector(), w = expected[i].to_vector();
      int bad = 0;
      for (size_t j = 0; j < g.size(); ++j) {
        const bool same = g[j] == w[j] || (std::isnan(g[j]) && std::isnan(w[j])) ||
                          std::fabs(double(g[j]) - w[j]) <= 1e-5 + 1e-4 * std::fabs(double(w[j]));
        bad += !same;
      }
      EXPECT_EQ(bad, 0) << "output " << i << ": " << bad << " of " << g.size() << " elements differ";
    }
    ++cases;
    fused_cases += m->fused_attention_count() > 0;
    fused_patterns += m->fused_attention_count();
  }
  std::printf("expanded Attention node tests: %d run, %d with a fused pattern (%d patterns)\n", cases, fused_cases,
              fused_patterns);
  EXPECT_GT(fused_cases, 0);
}

// ---- an exported network ---------------------------------------------------------------------

// torchvision's VisionTransformer (2 layers, hidden 32) exported by
// torch.onnx.export at opset 17 (tools/onnx/make_attention_fixture.py), with
// onnxruntime's output.
TEST(OnnxFuse, ExportedVitFusesEveryLayerAndMatchesOnnxruntime) {
  const auto dir = std::filesystem::path(__FILE__).parent_path() / "data" / "vit_tiny";
  if (!std::filesystem::exists(dir / "model.onnx")) GTEST_SKIP() << dir << " not found";
  LoadOptions off;
  off.fuse_attention = false;
  auto mf = load_onnx((dir / "model.onnx").string()), mu = load_onnx((dir / "model.onnx").string(), off);
  EXPECT_EQ(mf->fused_attention_count(), 2);
  EXPECT_EQ(mu->fused_attention_count(), 0);
  const Tensor x = read_tensor_file((dir / "input_0.pb").string());
  const Tensor ref = read_tensor_file((dir / "output_0.pb").string());
  double err_ort = 0.0, err_out = 0.0, err_grad = 0.0;
  {
    autograd::NoGradGuard no_grad;
    const Tensor yf = mf->forward(x), yu = mu->forward(x);
    EXPECT_TRUE(close(yf, ref, 1e-5, &err_ort));
    EXPECT_TRUE(close(yf, yu, 1e-5, &err_out));
  }
  const Tensor yf = mf->forward(x), yu = mu->forward(x);
  EXPECT_TRUE(autograd_has(yf, "attention"));
  EXPECT_FALSE(autograd_has(yu, "attention"));
  Generator gen = testing::test_generator();
  const Tensor r = testing::random_tensor(yu.shape(), gen);
  sum(mul(yf, r)).backward();
  sum(mul(yu, r)).backward();
  const auto pf = mf->named_parameters(), pu = mu->named_parameters();
  ASSERT_EQ(pf.size(), pu.size());
  int with_grad = 0;
  for (size_t i = 0; i < pf.size(); ++i) {
    ASSERT_EQ(pf[i].first, pu[i].first);
    ASSERT_EQ(pf[i].second.grad().defined(), pu[i].second.grad().defined()) << pf[i].first;
    if (!pu[i].second.grad().defined()) continue;
    ++with_grad;
    EXPECT_TRUE(close(pf[i].second.grad(), pu[i].second.grad(), 2e-5, &err_grad)) << pf[i].first;
  }
  EXPECT_GT(with_grad, 10);
  std::printf("ViT: relative L2 error fused vs onnxruntime %.2g, fused vs unfused: outputs %.2g, gradients %.2g\n",
              err_ort, err_out, err_grad);
}

}  // namespace
}  // namespace graft::importer
