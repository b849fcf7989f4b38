// Graft model -> ONNX (see export.h).
//
// The model runs once on a sample input while it is written: every emitter
// sees the value its input holds (sample()), so layers that need a rank or a
// shape (Linear: Gemm on 2-D, MatMul beyond) read it from a real tensor rather
// than from shape rules repeated here, and an input the model cannot take
// fails before anything is written.
#include "importers/onnx/export.h"

#include <cxxabi.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <typeinfo>

#include "engine/autograd/grad_mode.h"
#include "engine/data/atomic_file.h"
#include "engine/nn/layers.h"
#include "importers/onnx/model.h"
#include "importers/onnx/tensor_proto.h"
#include "onnx/onnx_pb.h"

namespace graft::importer {

struct GraphWriter::State {
  ExportOptions opt;
  ::onnx::GraphProto graph;
  std::set<std::string> names;  // every value, initializer and node name taken
  Tensor sample;
  bool static_batch = false;  // an imported model fixes the batch dimension
};

namespace {

constexpr int kMinOpset = 7, kMaxOpset = 24, kMinLayerOpset = 13;

std::string type_name(const nn::Module& m) {
  const char* mangled = typeid(m).name();
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : mangled;
  std::free(d);
  return out;
}

std::string where(const std::string& path) { return path.empty() ? "the root module" : "module '" + path + "'"; }

// ---- opset conversion of imported nodes -------------------------------------------------

// For each operator: the opset that introduced it; the later opsets whose
// version changed what a float node computes or how its arguments are written
// (an attribute that became an input, a changed default or axis rule); and
// those that only added an attribute or optional input whose default keeps the
// old behaviour. Versions that only added types or clarified the text are not
// listed. A node converts up when no change lies between the two opsets, and
// down when no addition does either (it might use what was added).
struct OpHistory {
  int since;
  std::vector<int> changes, additions;
};

const std::map<std::string, OpHistory>& op_history() {
  static const std::map<std::string, OpHistory> h = {
      {"Abs", {1, {6}, {}}},           {"Add", {1, {7}, {}}},           {"AveragePool", {1, {}, {7, 10, 19}}},
      {"BatchNormalization", {1, {6, 7, 9}, {14}}},                     {"Cast", {1, {6}, {19}}},
      {"Ceil", {1, {6}, {}}},          {"Clip", {1, {6, 11}, {}}},      {"Concat", {1, {4}, {}}},
      {"Constant", {1, {}, {11, 12}}}, {"ConstantOfShape", {9, {}, {}}},                  {"Conv", {1, {}, {}}},
      {"ConvTranspose", {1, {}, {}}},  {"Div", {1, {7}, {}}},           {"Elu", {1, {6}, {}}},
      {"Equal", {1, {7}, {}}},         {"Erf", {9, {}, {}}},            {"Exp", {1, {6}, {}}},
      {"Expand", {8, {}, {}}},         {"Flatten", {1, {}, {11}}},      {"Floor", {1, {6}, {}}},
      {"Gather", {1, {}, {11}}},       {"Gemm", {1, {6, 7}, {11}}},     {"GlobalAveragePool", {1, {}, {}}},
      {"GlobalMaxPool", {1, {}, {}}},  {"HardSigmoid", {1, {6}, {}}},   {"HardSwish", {14, {}, {}}},
      {"Identity", {1, {}, {}}},       {"LRN", {1, {}, {}}},            {"LayerNormalization", {17, {}, {}}},
      {"LeakyRelu", {1, {6}, {}}},     {"Log", {1, {6}, {}}},           {"MatMul", {1, {}, {}}},
      {"Max", {1, {6, 8}, {}}},        {"MaxPool", {1, {}, {8, 10, 12}}},                 {"Mean", {1, {6, 8}, {}}},
      {"Min", {1, {6, 8}, {}}},        {"Mul", {1, {7}, {}}},           {"Neg", {1, {6}, {}}},
      {"Pad", {1, {2, 11, 18}, {}}},   {"Pow", {1, {7}, {}}},           {"PRelu", {1, {6, 7}, {}}},
      {"Reciprocal", {1, {6}, {}}},    {"ReduceMean", {1, {18}, {}}},   {"ReduceSum", {1, {13}, {}}},
      {"Relu", {1, {6}, {}}},          {"Reshape", {1, {5}, {14}}},     {"Shape", {1, {}, {15}}},
      {"Sigmoid", {1, {6}, {}}},       {"Slice", {1, {10}, {}}},        {"Softmax", {1, {13}, {}}},
      {"Split", {1, {2, 13, 18}, {}}}, {"Sqrt", {1, {6}, {}}},          {"Squeeze", {1, {13}, {}}},
      {"Sub", {1, {7}, {}}},           {"Sum", {1, {6, 8}, {}}},        {"Tanh", {1, {6}, {}}},
      {"Transpose", {1, {}, {}}},      {"Unsqueeze", {1, {13}, {}}},    {"Where", {9, {}, {}}},
  };
  return h;
}

bool converts(const std::string& op, int from, int to) {
  if (from == to) return true;
  auto it = op_history().find(op);
  const int lo = std::min(from, to), hi = std::max(from, to);
  if (it == op_history().end() || it->second.since > lo) return false;
  auto between = [&](const std::vector<int>& versions) {
    return std::any_of(versions.begin(), versions.end(), [&](int v) { return v > lo && v <= hi; });
  };
  return !between(it->second.changes) && (to > from || !between(it->second.additions));
}

// ---- node attributes --------------------------------------------------------------------

const ::onnx::AttributeProto* find_attr(const ::onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

// ---- batch-norm folding -----------------------------------------------------------------

// Conv weight (O, ...) and bias (O or undefined) followed by batch norm with
// running statistics: scale = gamma / sqrt(var + eps); W' = W * scale per
// output channel; b' = (b - mean) * scale + beta. Computed in double.
std::pair<Tensor, Tensor> fold_bn(const Tensor& weight, const Tensor& bias, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& mean, const Tensor& var, double eps, const std::string& what) {
  const int64_t o = weight.size(0);
  for (const Tensor* t : {&gamma, &beta, &mean, &var})
    GRAFT_CHECK(t->dim() == 1 && t->size(0) == o && t->dtype() == DType::f32,
                "save_onnx: cannot fold batch norm into " << what << ": statistics " << t->str() << " for " << o
                                                          << " output channels");
  GRAFT_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == o),
              "save_onnx: cannot fold batch norm into " << what << ": bias " << bias.str());
  const std::vector<float> w = weight.detach().contiguous().to_vector(), g = gamma.to_vector(),
                           bt = beta.to_vector(), mu = mean.to_vector(), v = var.to_vector();
  const std::vector<float> b = bias.defined() ? bias.to_vector() : std::vector<float>(static_cast<size_t>(o), 0.f);
  const size_t per = w.size() / static_cast<size_t>(o);
  std::vector<float> w2(w.size()), b2(static_cast<size_t>(o));
  for (size_t c = 0; c < static_cast<size_t>(o); ++c) {
    const double scale = static_cast<double>(g[c]) / std::sqrt(static_cast<double>(v[c]) + eps);
    for (size_t k = 0; k < per; ++k) w2[c * per + k] = static_cast<float>(w[c * per + k] * scale);
    b2[c] = static_cast<float>((static_cast<double>(b[c]) - mu[c]) * scale + bt[c]);
  }
  return {Tensor::from_vector(w2, weight.shape()), Tensor::from_vector(b2, {o})};
}

Tensor run_module(const nn::Module& m, const Tensor& x) {
  // Export does not change the model: forward runs without gradient, in eval
  // mode (save_onnx sets and restores the flags).
  return const_cast<nn::Module&>(m).forward(x);
}

}  // namespace

std::string param_name(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

// ---- GraphWriter ------------------------------------------------------------------------

int GraphWriter::opset() const { return s_.opt.opset; }
bool GraphWriter::fold_batch_norm() const { return s_.opt.fold_batch_norm; }
const Tensor& GraphWriter::sample() const { return s_.sample; }
void GraphWriter::set_sample(const Tensor& t) { s_.sample = t; }

::onnx::NodeProto& GraphWriter::node(const std::string& op, const std::vector<std::string>& inputs,
                                     const std::vector<std::string>& outputs) {
  ::onnx::NodeProto* n = s_.graph.add_node();
  n->set_op_type(op);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  if (!outputs.empty()) n->set_name(outputs[0]);
  return *n;
}

std::string GraphWriter::fresh(const std::string& base) {
  std::string name = base;
  for (int k = 1; s_.names.count(name); ++k) name = base + "_" + std::to_string(k);
  s_.names.insert(name);
  return name;
}

std::string GraphWriter::initializer(const std::string& name, const Tensor& t) {
  GRAFT_CHECK(s_.names.insert(name).second, "save_onnx: two values are both named '" << name << "'");
  to_tensor_proto(t, name, s_.graph.add_initializer());
  return name;
}

std::string GraphWriter::constant(const std::string& base, const Tensor& t) {
  const std::string name = fresh(base);
  to_tensor_proto(t, name, s_.graph.add_initializer());
  return name;
}

void GraphWriter::set_attr(::onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INT);
  a->set_i(v);
}

void GraphWriter::set_attr(::onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

void GraphWriter::set_attr(::onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

namespace {

using S = GraphWriter::State;

// ---- an imported graph ------------------------------------------------------------------

// Writes the graph of an imported model as Graft runs it. `inputs` maps its
// graph inputs to values of the graph being written; every other name gets
// the module path as a prefix, so that initializers carry the Graft parameter
// names. Returns the output values.
std::vector<std::string> emit_onnx_model(GraphWriter& g, S& s, const OnnxModel& m, const std::string& path,
                                         const std::vector<std::string>& inputs) {
  const OnnxModel::RunGraph rg = m.run_graph();
  const int from = m.opset(), to = s.opt.opset;
  std::map<std::string, Tensor> fixed(rg.fixed.begin(), rg.fixed.end());
  std::set<std::string> outputs;
  for (const auto& v : m.outputs()) outputs.insert(v.name);

  // Working copies: Dropout becomes Identity; Conv + BatchNormalization fold.
  std::vector<::onnx::NodeProto> nodes;
  for (const auto* n : rg.nodes) nodes.push_back(*n);
  std::map<std::string, int> readers;  // node inputs and graph outputs reading each value
  for (const auto& n : nodes)
    for (const auto& i : n.input())
      if (!i.empty()) ++readers[i];
  for (const auto& o : outputs) ++readers[o];
  auto unread_after_first = [&](const ::onnx::NodeProto& n) {
    for (int k = 1; k < n.output_size(); ++k)
      if (!n.output(k).empty() && readers[n.output(k)] != 0) return false;
    return true;
  };
  for (auto& n : nodes) {
    if (n.op_type() != "Dropout" || !unread_after_first(n) || n.input_size() < 1) continue;
    const std::string x = n.input(0), y = n.output(0), name = n.name();
    n.Clear();
    n.set_op_type("Identity");
    n.set_name(name);
    n.add_input(x);
    n.add_output(y);
  }
  std::vector<bool> dropped(nodes.size(), false);
  if (s.opt.fold_batch_norm) {
    std::map<std::string, size_t> producer;
    for (size_t i = 0; i < nodes.size(); ++i)
      for (const auto& o : nodes[i].output()) producer[o] = i;
    for (size_t j = 0; j < nodes.size(); ++j) {
      const auto& bn = nodes[j];
      if (bn.op_type() != "BatchNormalization" || bn.input_size() < 5 || !unread_after_first(bn)) continue;
      const auto* tm = find_attr(bn, "training_mode");
      if (tm && tm->i() != 0) continue;
      auto pit = producer.find(bn.input(0));
      if (pit == producer.end()) continue;
      auto& conv = nodes[pit->second];
      const bool has_bias = conv.input_size() > 2 && !conv.input(2).empty();
      bool ok = conv.op_type() == "Conv" && conv.output_size() == 1 && readers[conv.output(0)] == 1 &&
                conv.input_size() >= 2 && fixed.count(conv.input(1)) && readers[conv.input(1)] == 1 &&
                (!has_bias || (fixed.count(conv.input(2)) && readers[conv.input(2)] == 1));
      for (int k = 1; k < 5 && ok; ++k) ok = fixed.count(bn.input(k)) != 0;
      ok = ok && readers[bn.input(2)] == 1 && !outputs.count(bn.input(2));
      if (!ok) continue;
      const auto* e = find_attr(bn, "epsilon");
      const double eps = e ? e->f() : 1e-5;
      auto [w, b] = fold_bn(fixed[conv.input(1)], has_bias ? fixed[conv.input(2)] : Tensor(), fixed[bn.input(1)],
                            fixed[bn.input(2)], fixed[bn.input(3)], fixed[bn.input(4)], eps,
                            "conv '" + conv.name() + "' of " + where(path));
      fixed[conv.input(1)] = w;
      // The folded bias keeps the conv bias's name, or takes the batch norm's.
      const std::string bias_name = has_bias ? conv.input(2) : bn.input(2);
      fixed[bias_name] = b;
      if (conv.input_size() < 3) conv.add_input(bias_name);
      conv.set_input(2, bias_name);
      conv.set_output(0, bn.output(0));
      dropped[j] = true;
    }
  }

  std::vector<const ::onnx::NodeProto*> live;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (dropped[i]) continue;
    GRAFT_CHECK(converts(nodes[i].op_type(), from, to),
                "save_onnx: " << where(path) << " (an imported opset-" << from << " graph) has a "
                              << nodes[i].op_type() << " node ('" << nodes[i].name() << "') that Graft cannot carry to opset "
                              << to << " unchanged; export at opset " << from << " instead");
    live.push_back(&nodes[i]);
  }

  std::map<std::string, std::string> rename;
  for (size_t i = 0; i < inputs.size(); ++i) rename[m.inputs()[i].name] = inputs[i];
  const std::string prefix = path.empty() ? "" : path + ".";
  auto name_of = [&](const std::string& v) {
    if (v.empty()) return v;
    auto it = rename.find(v);
    return it != rename.end() ? it->second : prefix + v;
  };
  std::set<std::string> read;
  for (const auto* n : live)
    for (const auto& i : n->input()) read.insert(i);
  for (const auto& o : outputs) read.insert(o);
  for (const auto& [name, t] : fixed)
    if (read.count(name)) g.initializer(name_of(name), t);
  for (const auto* n : live) {
    for (const auto& o : n->output())
      if (!o.empty())
        GRAFT_CHECK(s.names.insert(name_of(o)).second, "save_onnx: " << where(path) << ": value name '" << name_of(o)
                                                                     << "' is taken twice");
    ::onnx::NodeProto* out = s.graph.add_node();
    *out = *n;
    if (!out->name().empty()) out->set_name(prefix + out->name());
    for (int k = 0; k < out->input_size(); ++k) out->set_input(k, name_of(out->input(k)));
    for (int k = 0; k < out->output_size(); ++k) out->set_output(k, name_of(out->output(k)));
  }
  std::vector<std::string> result;
  for (const auto& v : m.outputs()) result.push_back(name_of(v.name));
  return result;
}

// ---- layers -----------------------------------------------------------------------------

std::string emit_conv(GraphWriter& g, const nn::Conv2d& c, const std::string& path, const std::string& x,
                      const nn::BatchNorm2d* bn, const std::string& bn_path) {
  Tensor w = c.weight, b = c.bias;
  std::string bias_name = param_name(path, "bias");
  if (bn) {
    std::tie(w, b) = fold_bn(c.weight, c.bias, bn->weight, bn->bias, bn->running_mean, bn->running_var, bn->eps,
                             where(path));
    if (!c.bias.defined()) bias_name = param_name(bn_path, "bias");
  }
  std::vector<std::string> in = {x, g.initializer(param_name(path, "weight"), w)};
  if (b.defined()) in.push_back(g.initializer(bias_name, b));
  const auto& o = c.options;
  auto& n = g.node("Conv", in, {g.fresh(param_name(bn ? bn_path : path, "out"))});
  GraphWriter::set_attr(n, "kernel_shape", std::vector<int64_t>{c.weight.size(2), c.weight.size(3)});
  GraphWriter::set_attr(n, "strides", std::vector<int64_t>{o.stride[0], o.stride[1]});
  GraphWriter::set_attr(n, "pads", std::vector<int64_t>(o.padding.begin(), o.padding.end()));
  GraphWriter::set_attr(n, "dilations", std::vector<int64_t>{o.dilation[0], o.dilation[1]});
  GraphWriter::set_attr(n, "group", o.groups);
  return n.output(0);
}

std::string scalar_init(GraphWriter& g, const std::string& path, const std::string& what, float v) {
  return g.constant(param_name(path, what), Tensor::scalar(v));
}

std::string emit_act(GraphWriter& g, nn::Activation kind, const std::string& path, const std::string& x) {
  auto out = [&](const std::string& what) { return g.fresh(param_name(path, what)); };
  auto unary = [&](const std::string& op, const std::string& in, const std::string& what) {
    return g.node(op, {in}, {out(what)}).output(0);
  };
  auto binary = [&](const std::string& op, const std::string& a, const std::string& b, const std::string& what) {
    return g.node(op, {a, b}, {out(what)}).output(0);
  };
  switch (kind) {
    case nn::Activation::relu: return unary("Relu", x, "out");
    case nn::Activation::sigmoid: return unary("Sigmoid", x, "out");
    case nn::Activation::tanh: return unary("Tanh", x, "out");
    case nn::Activation::relu6:
      return g.node("Clip", {x, scalar_init(g, path, "min", 0.f), scalar_init(g, path, "max", 6.f)}, {out("out")})
          .output(0);
    case nn::Activation::silu: return binary("Mul", x, unary("Sigmoid", x, "sigmoid"), "out");
    case nn::Activation::gelu: {  // 0.5 x (1 + erf(x / sqrt 2)), as Graft's exact gelu
      if (g.opset() >= 20) return unary("Gelu", x, "out");
      std::string t = binary("Mul", x, scalar_init(g, path, "rsqrt2", static_cast<float>(1.0 / std::sqrt(2.0))), "scaled");
      t = binary("Add", unary("Erf", t, "erf"), scalar_init(g, path, "one", 1.f), "erf_plus_1");
      return binary("Mul", binary("Mul", x, t, "x_times"), scalar_init(g, path, "half", 0.5f), "out");
    }
    case nn::Activation::hardswish: {  // x * relu6(x + 3) / 6
      if (g.opset() >= 14) return unary("HardSwish", x, "out");
      auto& hs = g.node("HardSigmoid", {x}, {out("hardsigmoid")});
      GraphWriter::set_attr(hs, "alpha", 1.f / 6.f);
      GraphWriter::set_attr(hs, "beta", 0.5f);
      return binary("Mul", x, hs.output(0), "out");
    }
  }
  GRAFT_FAIL("save_onnx: " << where(path) << ": unknown activation");
}

std::string emit_layer_norm(GraphWriter& g, const nn::LayerNorm& ln, const std::string& path, const std::string& x) {
  const std::string w = g.initializer(param_name(path, "weight"), ln.weight);
  const std::string b = g.initializer(param_name(path, "bias"), ln.bias);
  auto out = [&](const std::string& what) { return g.fresh(param_name(path, what)); };
  if (g.opset() >= 17) {
    auto& n = g.node("LayerNormalization", {x, w, b}, {out("out")});
    GraphWriter::set_attr(n, "axis", int64_t{-1});
    GraphWriter::set_attr(n, "epsilon", static_cast<float>(ln.eps));
    return n.output(0);
  }
  // Before opset 17: mean and variance over the last axis (ReduceMean takes
  // its axes as an attribute below opset 18).
  auto mean = [&](const std::string& in, const std::string& what) {
    auto& n = g.node("ReduceMean", {in}, {out(what)});
    GraphWriter::set_attr(n, "axes", std::vector<int64_t>{-1});
    GraphWriter::set_attr(n, "keepdims", int64_t{1});
    return n.output(0);
  };
  const std::string d = g.node("Sub", {x, mean(x, "mean")}, {out("centred")}).output(0);
  const std::string var = mean(g.node("Mul", {d, d}, {out("squared")}).output(0), "var");
  const std::string eps = scalar_init(g, path, "eps", static_cast<float>(ln.eps));
  const std::string sd = g.node("Sqrt", {g.node("Add", {var, eps}, {out("var_eps")}).output(0)}, {out("sd")}).output(0);
  const std::string xhat = g.node("Div", {d, sd}, {out("normed")}).output(0);
  return g.node("Add", {g.node("Mul", {xhat, w}, {out("scaled")}).output(0), b}, {out("out")}).output(0);
}

std::string emit_linear(GraphWriter& g, const nn::Linear& l, const std::string& path, const std::string& x) {
  const std::string w = g.initializer(param_name(path, "weight"), l.weight);
  const std::string b = l.bias.defined() ? g.initializer(param_name(path, "bias"), l.bias) : std::string();
  if (g.sample().dim() == 2) {
    std::vector<std::string> in = {x, w};
    if (!b.empty()) in.push_back(b);
    auto& n = g.node("Gemm", in, {g.fresh(param_name(path, "out"))});
    GraphWriter::set_attr(n, "transB", int64_t{1});
    return n.output(0);
  }
  const std::string wt = g.node("Transpose", {w}, {g.fresh(param_name(path, "weight_t"))}).output(0);
  std::string y = g.node("MatMul", {x, wt}, {g.fresh(param_name(path, b.empty() ? "out" : "matmul"))}).output(0);
  if (!b.empty()) y = g.node("Add", {y, b}, {g.fresh(param_name(path, "out"))}).output(0);
  return y;
}

std::string emit_max_pool(GraphWriter& g, const nn::MaxPool2d& p, const std::string& path, const std::string& x) {
  const Pool2dOptions& o = p.options();
  auto& n = g.node("MaxPool", {x}, {g.fresh(param_name(path, "out"))});
  GraphWriter::set_attr(n, "kernel_shape", std::vector<int64_t>{o.kernel[0], o.kernel[1]});
  GraphWriter::set_attr(n, "strides", std::vector<int64_t>{o.stride[0], o.stride[1]});
  GraphWriter::set_attr(n, "pads", std::vector<int64_t>(o.padding.begin(), o.padding.end()));
  GraphWriter::set_attr(n, "dilations", std::vector<int64_t>{o.dilation[0], o.dilation[1]});
  if (o.ceil_mode) GraphWriter::set_attr(n, "ceil_mode", int64_t{1});
  return n.output(0);
}

std::string flatten(GraphWriter& g, const std::string& path, const std::string& x) {
  auto& n = g.node("Flatten", {x}, {g.fresh(param_name(path, "out"))});
  GraphWriter::set_attr(n, "axis", int64_t{1});
  return n.output(0);
}

template <class T>
const T* exactly(const nn::Module& m) {
  return typeid(m) == typeid(T) ? static_cast<const T*>(&m) : nullptr;
}

// The built-in kinds; "" when `m` is none of them. Sequential advances the
// sample itself; for the others the caller does.
std::string emit_builtin(GraphWriter& g, S& s, const nn::Module& m, const std::string& path, const std::string& x) {
  if (const auto* om = dynamic_cast<const OnnxModel*>(&m)) {
    GRAFT_CHECK(om->inputs().size() == 1 && om->outputs().size() == 1,
                "save_onnx: " << where(path) << " is an imported model with " << om->inputs().size() << " inputs and "
                              << om->outputs().size() << " outputs; inside another module it needs one of each");
    const auto& in = om->inputs()[0];
    if (in.rank_known && !in.shape.empty() && in.shape[0] >= 0) s.static_batch = true;
    return emit_onnx_model(g, s, *om, path, {x})[0];
  }
  if (const auto* l = exactly<nn::Linear>(m)) return emit_linear(g, *l, path, x);
  if (const auto* c = exactly<nn::Conv2d>(m)) return emit_conv(g, *c, path, x, nullptr, "");
  if (const auto* bn = exactly<nn::BatchNorm2d>(m)) {
    std::vector<std::string> in = {x};
    const std::pair<const Tensor*, const char*> tensors[] = {
        {&bn->weight, "weight"}, {&bn->bias, "bias"}, {&bn->running_mean, "running_mean"}, {&bn->running_var, "running_var"}};
    for (const auto& [t, name] : tensors) in.push_back(g.initializer(param_name(path, name), *t));
    auto& n = g.node("BatchNormalization", in, {g.fresh(param_name(path, "out"))});
    GraphWriter::set_attr(n, "epsilon", static_cast<float>(bn->eps));
    return n.output(0);
  }
  if (const auto* ln = exactly<nn::LayerNorm>(m)) return emit_layer_norm(g, *ln, path, x);
  if (const auto* a = exactly<nn::Act>(m)) return emit_act(g, a->kind(), path, x);
  if (const auto* p = exactly<nn::MaxPool2d>(m)) return emit_max_pool(g, *p, path, x);
  if (exactly<nn::GlobalAvgPool2d>(m)) {
    const std::string pooled = g.node("GlobalAveragePool", {x}, {g.fresh(param_name(path, "pooled"))}).output(0);
    return flatten(g, path, pooled);
  }
  if (exactly<nn::Flatten>(m)) return flatten(g, path, x);
  if (exactly<nn::Dropout>(m)) return g.node("Identity", {x}, {g.fresh(param_name(path, "out"))}).output(0);
  return "";
}

}  // namespace

std::string GraphWriter::emit(const nn::Module& m, const std::string& path, const std::string& input) {
  if (const auto* seq = exactly<nn::Sequential>(m)) {
    std::string x = input;
    const auto& ch = seq->children();
    for (size_t i = 0; i < ch.size(); ++i) {
      const std::string p = param_name(path, ch[i].first);
      const auto* conv = exactly<nn::Conv2d>(*ch[i].second);
      const auto* bn = i + 1 < ch.size() ? exactly<nn::BatchNorm2d>(*ch[i + 1].second) : nullptr;
      if (s_.opt.fold_batch_norm && conv && bn) {
        const std::string bn_path = param_name(path, ch[i + 1].first);
        Tensor y = run_module(*bn, run_module(*conv, s_.sample));
        x = emit_conv(*this, *conv, p, x, bn, bn_path);
        s_.sample = y;
        ++i;
        continue;
      }
      x = emit(*ch[i].second, p, x);
    }
    return x;
  }
  const Tensor in_sample = s_.sample;
  std::string out;
  for (const auto& e : s_.opt.emitters) {
    s_.sample = in_sample;
    out = e(*this, m, path, input);
    if (!out.empty()) break;
  }
  if (out.empty()) {
    s_.sample = in_sample;
    out = emit_builtin(*this, s_, m, path, input);
  }
  GRAFT_CHECK(!out.empty(), "save_onnx: cannot export " << where(path) << " of type " << type_name(m)
                                                        << " (Graft exports OnnxModel, Sequential, Linear, Conv2d, "
                                                           "BatchNorm2d, LayerNorm, Act, MaxPool2d, GlobalAvgPool2d, "
                                                           "Flatten and Dropout; others need an ExportOptions::emitters entry)");
  s_.sample = run_module(m, in_sample);
  return out;
}

// ---- the model file ---------------------------------------------------------------------

namespace {

void set_value_info(::onnx::ValueInfoProto* v, const std::string& name, int onnx_type, const std::vector<int64_t>& shape,
                    bool rank_known, bool dynamic_batch) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx_type == 0 ? ::onnx::TensorProto::FLOAT : onnx_type);
  if (!rank_known) return;
  auto* sh = tt->mutable_shape();
  for (size_t i = 0; i < shape.size(); ++i) {
    auto* d = sh->add_dim();
    if (i == 0 && dynamic_batch) d->set_dim_param("batch");
    else if (shape[i] < 0) d->set_dim_param("d" + std::to_string(i));
    else d->set_dim_value(shape[i]);
  }
}

int onnx_type_of(DType d) {
  switch (d) {
    case DType::f32: return ::onnx::TensorProto::FLOAT;
    case DType::f16: return ::onnx::TensorProto::FLOAT16;
    case DType::bf16: return ::onnx::TensorProto::BFLOAT16;
    case DType::i32: return ::onnx::TensorProto::INT32;
    case DType::i64: return ::onnx::TensorProto::INT64;
    case DType::u8: return ::onnx::TensorProto::UINT8;
    case DType::boolean: return ::onnx::TensorProto::BOOL;
  }
  return ::onnx::TensorProto::FLOAT;
}

int64_t ir_version_for(int opset) {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

// Renames value `from` to `to` in every node of the graph.
void rename_value(::onnx::GraphProto& g, const std::string& from, const std::string& to) {
  for (auto& n : *g.mutable_node()) {
    for (int k = 0; k < n.input_size(); ++k)
      if (n.input(k) == from) n.set_input(k, to);
    for (int k = 0; k < n.output_size(); ++k)
      if (n.output(k) == from) n.set_output(k, to);
  }
}

struct ModeSaver {  // training flags of every module, restored in pre-order
  std::vector<std::pair<nn::Module*, bool>> flags;
  explicit ModeSaver(const nn::Module& root) { collect(const_cast<nn::Module&>(root)); }
  void collect(nn::Module& m) {
    flags.emplace_back(&m, m.is_training());
    for (auto& [name, c] : m.children()) collect(*c);
  }
  ~ModeSaver() {
    for (auto& [m, on] : flags) m->train(on);
  }
};

}  // namespace

std::string export_onnx_bytes(const nn::Module& model, const std::vector<int64_t>& input_shape,
                              const ExportOptions& opt) {
  GRAFT_CHECK(opt.opset >= kMinOpset && opt.opset <= kMaxOpset,
              "save_onnx: opset " << opt.opset << " is outside " << kMinOpset << ".." << kMaxOpset);
  const auto* root_onnx = dynamic_cast<const OnnxModel*>(&model);
  GRAFT_CHECK(opt.opset >= kMinLayerOpset || root_onnx,
              "save_onnx: layers are written for opsets " << kMinLayerOpset << ".." << kMaxOpset << ", not "
                                                          << opt.opset);
  ModeSaver modes(model);
  const_cast<nn::Module&>(model).eval();
  NoGradGuard no_grad;

  GraphWriter::State s;
  s.opt = opt;
  GraphWriter g(s);
  ::onnx::ModelProto proto;
  auto* graph = &s.graph;
  graph->set_name(root_onnx ? "graft-export-" + root_onnx->path() : "graft-export");

  if (root_onnx && input_shape.empty()) {
    // An imported model as it is: its inputs and outputs, names and shapes.
    std::vector<std::string> inputs;
    for (size_t i = 0; i < root_onnx->inputs().size(); ++i) {
      const ValueInfo& v = root_onnx->inputs()[i];
      const std::string name = root_onnx->inputs().size() == 1 && !opt.input_name.empty() ? opt.input_name : v.name;
      GRAFT_CHECK(s.names.insert(name).second, "save_onnx: input name '" << name << "' is taken twice");
      inputs.push_back(name);
      set_value_info(graph->add_input(), name, v.onnx_type, v.shape, v.rank_known, false);
    }
    std::vector<std::string> outs = emit_onnx_model(g, s, *root_onnx, "", inputs);
    for (size_t i = 0; i < outs.size(); ++i) {
      const ValueInfo& v = root_onnx->outputs()[i];
      std::string name = outs[i];
      if (outs.size() == 1 && !opt.output_name.empty() && opt.output_name != name) {
        GRAFT_CHECK(!s.names.count(opt.output_name), "save_onnx: output name '" << opt.output_name << "' is taken");
        rename_value(*graph, name, opt.output_name);
        name = opt.output_name;
      }
      set_value_info(graph->add_output(), name, v.onnx_type, v.shape, v.rank_known, false);
    }
  } else {
    GRAFT_CHECK(!input_shape.empty(), "save_onnx: an input shape is needed (the model runs once on it)");
    for (int64_t d : input_shape)
      GRAFT_CHECK(d > 0, "save_onnx: input shape " << shape_str(input_shape) << " has a non-positive dimension");
    const std::string in_name =
        !opt.input_name.empty() ? opt.input_name : root_onnx ? root_onnx->inputs()[0].name : std::string("input");
    const std::string out_name =
        !opt.output_name.empty() ? opt.output_name : root_onnx ? root_onnx->outputs()[0].name : std::string("output");
    s.names.insert(in_name);
    s.sample = Tensor::zeros(input_shape);
    std::string out = g.emit(model, "", in_name);
    if (out != out_name) {
      const bool produced = std::any_of(graph->node().begin(), graph->node().end(), [&](const ::onnx::NodeProto& n) {
        return std::find(n.output().begin(), n.output().end(), out) != n.output().end();
      });
      GRAFT_CHECK(!s.names.count(out_name), "save_onnx: output name '" << out_name << "' is already a value's name");
      if (produced) rename_value(*graph, out, out_name);
      else g.node("Identity", {out}, {out_name});
    }
    const bool dynamic = opt.dynamic_batch && !s.static_batch;
    set_value_info(graph->add_input(), in_name, ::onnx::TensorProto::FLOAT, input_shape, true, dynamic);
    set_value_info(graph->add_output(), out_name, onnx_type_of(s.sample.dtype()), s.sample.shape(), true,
                   dynamic && s.sample.dim() > 0);
  }

  proto.set_ir_version(ir_version_for(opt.opset));
  proto.set_producer_name("graft");
  proto.set_producer_version("0.1.0");
  auto* os = proto.add_opset_import();
  os->set_domain("");
  os->set_version(opt.opset);
  proto.mutable_graph()->Swap(graph);
  std::string bytes;
  GRAFT_CHECK(proto.SerializeToString(&bytes), "save_onnx: the model does not serialize (over 2 GB?)");
  return bytes;
}

void save_onnx(const nn::Module& model, const std::vector<int64_t>& input_shape, const std::string& path,
               const ExportOptions& opt) {
  const std::string bytes = export_onnx_bytes(model, input_shape, opt);  // every error comes before the file
  data::AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

}  // namespace graft::importer
