// Loading, checking and running an ONNX graph (see model.h).
//
// Loading: parse -> Graft's own checks (IR version, opsets, domains, dims,
// names, edges, cycles, operator table) -> topological order -> initializers
// become parameters, buffers or constants -> constant folding.
//
// Constant folding happens once, at load time: a node folds when every input
// is a constant (an integer or value-only initializer, a Constant output, an
// earlier folded value), and a Shape/Size node folds when its input's shape is
// fixed at load time (a constant, a parameter, a buffer, or a graph input whose
// declared dims are all static — run() refuses any other shape for it). Folding
// is transitive, so torch's Shape -> Gather -> Unsqueeze -> Concat -> Reshape
// chains on static inputs become one constant shape. Shape nodes on
// intermediate values, or on inputs with symbolic dims, are evaluated at run
// time: they are a handful of integer ops per run, and evaluating them keeps
// every run exact for whatever shapes it gets (no per-shape cache to go stale).
#include "importers/onnx/model.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <sstream>
#include <unordered_map>

#include "engine/autograd/grad_mode.h"
#include "engine/core/rng.h"
#include "importers/onnx/converter.h"
#include "importers/onnx/fuse.h"
#include "importers/onnx/tensor_proto.h"

namespace graft::importer {

namespace {

constexpr int kMinOpset = 6, kMaxOpset = 25;
constexpr int64_t kMinIr = 3, kMaxIr = 13;

bool default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

// Ops whose result is not a pure function of their inputs: never folded.
bool never_fold(const std::string& op) {
  static const std::set<std::string> ops = {"Dropout",          "BatchNormalization", "RandomNormal",
                                            "RandomUniform",    "RandomNormalLike",   "RandomUniformLike",
                                            "Multinomial",      "Bernoulli"};
  return ops.count(op) != 0;
}

// Ops that read only the shape of input 0.
bool reads_shape_only(const std::string& op) { return op == "Shape" || op == "Size"; }

std::string node_label(const ::onnx::NodeProto& n, int index) {
  std::string name = !n.name().empty() ? n.name() : n.output_size() > 0 && !n.output(0).empty() ? n.output(0) : "#" + std::to_string(index);
  return "'" + name + "' (" + n.op_type() + ")";
}

bool has_onnx_dtype(int onnx_type, DType* out) {
  switch (onnx_type) {
    case ::onnx::TensorProto::FLOAT: *out = DType::f32; return true;
    case ::onnx::TensorProto::FLOAT16: *out = DType::f16; return true;
    case ::onnx::TensorProto::BFLOAT16: *out = DType::bf16; return true;
    case ::onnx::TensorProto::INT32: *out = DType::i32; return true;
    case ::onnx::TensorProto::INT64: *out = DType::i64; return true;
    case ::onnx::TensorProto::UINT8: *out = DType::u8; return true;
    case ::onnx::TensorProto::BOOL: *out = DType::boolean; return true;
    default: return false;
  }
}

// What a file starts with when it is something else than an ONNX model.
std::string not_onnx_hint(const std::string& bytes) {
  auto starts = [&](const char* magic, size_t n) { return bytes.size() >= n && bytes.compare(0, n, magic, n) == 0; };
  if (starts("\x93NUMPY", 6)) return " (it is a .npy array)";
  if (starts("PK\x03\x04", 4)) return " (it is a zip archive, e.g. a PyTorch checkpoint)";
  if (starts("\x89PNG", 4)) return " (it is a PNG image)";
  if (starts("\xff\xd8\xff", 3)) return " (it is a JPEG image)";
  if (starts("{", 1)) return " (it looks like JSON text)";
  return "";
}

}  // namespace

struct OnnxModel::Impl {
  std::string path;      // as given: the prefix of every error
  std::string base_dir;  // external data
  ::onnx::ModelProto proto;
  int opset = 0;
  LoadOptions options;

  std::vector<ValueInfo> inputs, outputs;
  std::vector<DType> input_dtypes;
  std::vector<bool> input_dtype_known;

  std::unordered_map<std::string, int> value_id;
  std::vector<std::string> value_names;
  std::vector<Tensor> fixed;  // by value id: constants, parameters, buffers

  std::vector<int> input_ids, output_ids;
  using Step = PlanStep;  // fuse.h
  std::vector<Step> steps;
  FusedNodes fused;  // the nodes of fused steps
  std::vector<std::pair<std::string, int>> op_counts;
  std::vector<std::string> unsupported;

  int id(const std::string& name) {
    auto it = value_id.find(name);
    if (it != value_id.end()) return it->second;
    const int i = static_cast<int>(value_names.size());
    value_id.emplace(name, i);
    value_names.push_back(name);
    return i;
  }
  std::string value(int v) const { return "'" + value_names[static_cast<size_t>(v)] + "'"; }
};

// ---- loading -------------------------------------------------------------------------

namespace {

using Impl = OnnxModel::Impl;

void check_dims(const Impl& m, const std::vector<int64_t>& dims, bool allow_unknown, const std::string& what) {
  std::string why;
  GRAFT_CHECK(bounded_numel(dims, m.options.max_tensor_elements, "LoadOptions::max_tensor_elements", allow_unknown,
                            why) >= 0,
              m.path << ": " << what << ": " << why);
}

ValueInfo value_info(const Impl& m, const ::onnx::ValueInfoProto& v, const std::string& what) {
  ValueInfo out;
  out.name = v.name();
  if (!v.has_type()) {
    out.rank_known = false;
    return out;
  }
  GRAFT_CHECK(v.type().has_tensor_type(), m.path << ": " << what << " '" << v.name()
                                                  << "' is not a tensor (sequences, maps and optionals are not supported)");
  const auto& tt = v.type().tensor_type();
  out.onnx_type = tt.elem_type();
  if (!tt.has_shape()) {
    out.rank_known = false;
    return out;
  }
  for (const auto& d : tt.shape().dim()) out.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
  for (const auto& d : tt.shape().dim())
    GRAFT_CHECK(!d.has_dim_value() || d.dim_value() >= 0,
                m.path << ": " << what << " '" << v.name() << "' has a negative dimension " << d.dim_value());
  check_dims(m, out.shape, true, what + " '" + v.name() + "'");
  return out;
}

void check_tensor_dims(const Impl& m, const ::onnx::TensorProto& t, const std::string& what) {
  check_dims(m, std::vector<int64_t>(t.dims().begin(), t.dims().end()), false, what);
}

void parse_and_check_header(Impl& m, const std::string& bytes) {
  GRAFT_CHECK(!bytes.empty(), m.path << ": empty file, not an ONNX model");
  GRAFT_CHECK(m.proto.ParseFromString(bytes), m.path << ": not a valid ONNX model (truncated or corrupt protobuf)"
                                                      << not_onnx_hint(bytes));
  GRAFT_CHECK(m.proto.has_graph() && m.proto.has_ir_version(),
              m.path << ": not an ONNX model (no graph or no IR version)" << not_onnx_hint(bytes));
  const int64_t ir = m.proto.ir_version();
  GRAFT_CHECK(ir >= kMinIr && ir <= kMaxIr,
              m.path << ": unsupported IR version " << ir << " (Graft reads IR " << kMinIr << ".." << kMaxIr << ")");

  std::map<std::string, int64_t> opsets;
  for (const auto& o : m.proto.opset_import()) opsets[default_domain(o.domain()) ? "" : o.domain()] = o.version();
  std::set<std::string> used_domains;
  for (const auto& n : m.proto.graph().node()) used_domains.insert(default_domain(n.domain()) ? "" : n.domain());
  for (const auto& [domain, version] : opsets)
    GRAFT_CHECK(domain.empty() || used_domains.count(domain) == 0,
                m.path << ": operator domain '" << domain << "' (opset " << version << ") is not supported; Graft runs the default ONNX domain only");
  for (const auto& d : used_domains)
    GRAFT_CHECK(d.empty(), m.path << ": operator domain '" << d << "' is not supported (and not imported either)");
  auto it = opsets.find("");
  GRAFT_CHECK(it != opsets.end() || m.proto.graph().node_size() == 0,
              m.path << ": no opset imported for the default ONNX domain");
  m.opset = it == opsets.end() ? kMaxOpset : static_cast<int>(std::min<int64_t>(it->second, 1 << 20));
  GRAFT_CHECK(it == opsets.end() || (it->second >= kMinOpset && it->second <= kMaxOpset),
              m.path << ": unsupported opset " << it->second << " for the default domain (Graft supports " << kMinOpset
                     << ".." << kMaxOpset << ")");
}

// Names, edges, dims, duplicates, topological order, the operator table.
void check_graph(Impl& m, std::vector<int>& order) {
  const auto& g = m.proto.graph();
  GRAFT_CHECK(g.sparse_initializer_size() == 0, m.path << ": sparse initializers are not supported");
  // Producers of every name: initializer, graph input, or node.
  std::unordered_map<std::string, int> producer;  // -1 initializer, -2 graph input, >= 0 node
  for (const auto& t : g.initializer()) {
    GRAFT_CHECK(!t.name().empty(), m.path << ": an initializer has no name");
    GRAFT_CHECK(producer.emplace(t.name(), -1).second, m.path << ": duplicate initializer '" << t.name() << "'");
    check_tensor_dims(m, t, "initializer '" + t.name() + "'");
  }
  for (const auto& v : g.input()) {
    GRAFT_CHECK(!v.name().empty(), m.path << ": a graph input has no name");
    auto [pit, fresh] = producer.emplace(v.name(), -2);
    GRAFT_CHECK(fresh || pit->second == -1, m.path << ": duplicate graph input '" << v.name() << "'");
  }
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    for (const auto& out : n.output()) {
      if (out.empty()) continue;
      auto [pit, fresh] = producer.emplace(out, i);
      GRAFT_CHECK(fresh, m.path << ": node " << node_label(n, i) << " output '" << out << "' is already produced by "
                                << (pit->second == -1   ? std::string("an initializer")
                                    : pit->second == -2 ? std::string("a graph input")
                                                        : "node " + node_label(g.node(pit->second), pit->second)));
    }
    for (const auto& a : n.attribute()) {
      if (a.has_t()) check_tensor_dims(m, a.t(), "node " + node_label(n, i) + " attribute '" + a.name() + "'");
      for (const auto& t : a.tensors()) check_tensor_dims(m, t, "node " + node_label(n, i) + " attribute '" + a.name() + "'");
    }
  }
  // Dangling edges, and the dependency counts for Kahn's algorithm.
  std::vector<int> pending(static_cast<size_t>(g.node_size()), 0);
  std::vector<std::vector<int>> users(static_cast<size_t>(g.node_size()));
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    for (const auto& in : n.input()) {
      if (in.empty()) continue;
      auto pit = producer.find(in);
      GRAFT_CHECK(pit != producer.end(), m.path << ": node " << node_label(n, i) << " reads '" << in
                                                << "', which no initializer, graph input or node produces");
      if (pit->second >= 0) {
        ++pending[static_cast<size_t>(i)];
        users[static_cast<size_t>(pit->second)].push_back(i);
      }
    }
  }
  for (const auto& v : g.output())
    GRAFT_CHECK(producer.count(v.name()) != 0, m.path << ": graph output '" << v.name() << "' is never produced");
  // Kahn, taking the lowest-numbered ready node first (keeps the file's order when it is already sorted).
  std::set<int> ready;
  for (int i = 0; i < g.node_size(); ++i)
    if (pending[static_cast<size_t>(i)] == 0) ready.insert(i);
  order.clear();
  while (!ready.empty()) {
    const int i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (int u : users[static_cast<size_t>(i)])
      if (--pending[static_cast<size_t>(u)] == 0) ready.insert(u);
  }
  if (static_cast<int>(order.size()) != g.node_size()) {
    std::ostringstream os;
    int listed = 0;
    for (int i = 0; i < g.node_size() && listed < 8; ++i)
      if (pending[static_cast<size_t>(i)] > 0) os << (listed++ ? ", " : "") << node_label(g.node(i), i);
    GRAFT_FAIL(m.path << ": the graph has a cycle through nodes " << os.str());
  }
  // The operator table: one error listing every operator Graft lacks.
  const OpRegistry& reg = m.options.ops ? *m.options.ops : op_registry();
  std::vector<std::string> missing;
  std::map<std::string, std::vector<std::string>> missing_nodes;
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    if (reg.find(n.op_type(), m.opset) != nullptr) continue;
    if (missing_nodes.count(n.op_type()) == 0) missing.push_back(n.op_type());
    missing_nodes[n.op_type()].push_back(node_label(n, i));
  }
  m.unsupported = missing;
  if (missing.empty() || m.options.allow_unsupported_ops) return;
  std::ostringstream os;
  for (const auto& op : missing) {
    const auto& nodes = missing_nodes[op];
    os << "\n  " << op;
    std::vector<int> other;
    for (int v = kMinOpset; v <= kMaxOpset; ++v)
      if (reg.find(op, v) != nullptr) other.push_back(v);
    if (!other.empty()) os << " (Graft has it for opsets " << other.front() << ".." << other.back() << " only)";
    os << ": " << nodes.size() << " node" << (nodes.size() > 1 ? "s" : "") << " ";
    for (size_t k = 0; k < nodes.size() && k < 5; ++k) os << (k ? ", " : "") << nodes[k];
    if (nodes.size() > 5) os << ", ...";
  }
  GRAFT_FAIL(m.path << ": unsupported operator" << (missing.size() > 1 ? "s" : "") << " at opset " << m.opset << ":"
                    << os.str());
}

}  // namespace

OnnxModel::OnnxModel() : impl_(std::make_unique<Impl>()) {}
OnnxModel::~OnnxModel() = default;

namespace {

// LoadOptions::outputs: the named values become the graph outputs, and only
// the nodes they need stay in `order`.
void cut_at_outputs(Impl& m, std::vector<int>& order) {
  const auto& g = m.proto.graph();
  std::unordered_map<std::string, int> producer;
  for (int i = 0; i < g.node_size(); ++i)
    for (const auto& out : g.node(i).output())
      if (!out.empty()) producer.emplace(out, i);
  std::set<std::string> known;
  for (const auto& v : m.inputs) known.insert(v.name);
  for (const auto& t : g.initializer()) known.insert(t.name());
  m.outputs.clear();
  m.output_ids.clear();
  for (const auto& name : m.options.outputs) {
    GRAFT_CHECK(producer.count(name) || known.count(name),
                m.path << ": LoadOptions::outputs: no node, input or initializer produces '" << name << "'");
    GRAFT_CHECK(std::none_of(m.outputs.begin(), m.outputs.end(), [&](const ValueInfo& v) { return v.name == name; }),
                m.path << ": LoadOptions::outputs names '" << name << "' twice");
    ValueInfo info;
    info.name = name;
    info.rank_known = false;
    for (const auto* list : {&g.output(), &g.value_info(), &g.input()})
      for (const auto& v : *list)
        if (v.name() == name && info.onnx_type == 0 && !info.rank_known) info = value_info(m, v, "value");
    m.outputs.push_back(info);
    m.output_ids.push_back(m.id(name));
  }
  std::set<std::string> needed(m.options.outputs.begin(), m.options.outputs.end());
  std::vector<int> kept;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const auto& n = g.node(*it);
    if (std::none_of(n.output().begin(), n.output().end(), [&](const std::string& o) { return needed.count(o) != 0; }))
      continue;
    for (const auto& in : n.input()) needed.insert(in);
    kept.push_back(*it);
  }
  order.assign(kept.rbegin(), kept.rend());
}

enum class InitKind { unused, constant, buffer, parameter };

}  // namespace

std::shared_ptr<OnnxModel> load_onnx_bytes(const std::string& bytes, const std::string& name,
                                           const std::string& base_dir, const LoadOptions& opt) {
  std::shared_ptr<OnnxModel> model(new OnnxModel());
  Impl& m = *model->impl_;
  m.path = name;
  m.base_dir = base_dir;
  m.options = opt;
  model->eval();  // a file describes inference; train() to fine-tune

  parse_and_check_header(m, bytes);
  std::vector<int> order;
  check_graph(m, order);
  const auto& g = m.proto.graph();
  const OpRegistry& reg = m.options.ops ? *m.options.ops : op_registry();

  // ---- inputs and outputs ----
  std::set<std::string> init_names;
  for (const auto& t : g.initializer()) init_names.insert(t.name());
  for (const auto& v : g.input()) {
    if (init_names.count(v.name())) continue;  // old exporters list initializers as inputs
    ValueInfo info = value_info(m, v, "graph input");
    DType dt = DType::f32;
    const bool known = has_onnx_dtype(info.onnx_type, &dt);
    GRAFT_CHECK(known || info.onnx_type == 0, m.path << ": graph input '" << v.name() << "' has unsupported dtype "
                                                     << onnx_dtype_name(info.onnx_type));
    m.inputs.push_back(info);
    m.input_dtypes.push_back(dt);
    m.input_dtype_known.push_back(known);
    m.input_ids.push_back(m.id(v.name()));
  }
  for (const auto& v : g.output()) {
    ValueInfo info = value_info(m, v, "graph output");
    GRAFT_CHECK(info.onnx_type == 0 || supported_onnx_dtype(info.onnx_type),
                m.path << ": graph output '" << v.name() << "' has unsupported dtype " << onnx_dtype_name(info.onnx_type));
    m.outputs.push_back(info);
    m.output_ids.push_back(m.id(v.name()));
  }
  for (const auto& v : g.value_info()) (void)value_info(m, v, "value");
  if (!m.options.outputs.empty()) cut_at_outputs(m, order);

  // ---- steps, in topological order ----
  for (int i : order) {
    const auto& n = g.node(i);
    Impl::Step s;
    s.node = &n;
    s.spec = reg.find(n.op_type(), m.opset);
    for (const auto& in : n.input()) s.in.push_back(in.empty() ? -1 : m.id(in));
    for (const auto& out : n.output()) s.out.push_back(out.empty() ? -1 : m.id(out));
    m.steps.push_back(std::move(s));
    auto cit = std::find_if(m.op_counts.begin(), m.op_counts.end(), [&](const auto& kv) { return kv.first == n.op_type(); });
    if (cit == m.op_counts.end())
      m.op_counts.emplace_back(n.op_type(), 1);
    else
      ++cit->second;
  }

  // ---- initializers: parameters, buffers or constants ----
  std::unordered_map<int, std::vector<std::pair<const Impl::Step*, int>>> uses;
  for (const auto& s : m.steps)
    for (size_t k = 0; k < s.in.size(); ++k)
      if (s.in[k] >= 0) uses[s.in[k]].emplace_back(&s, static_cast<int>(k));
  std::set<int> output_set(m.output_ids.begin(), m.output_ids.end());
  m.fixed.resize(m.value_names.size());
  std::vector<bool> is_constant(m.value_names.size(), false);
  std::vector<bool> shape_fixed(m.value_names.size(), false);
  for (const auto& t : g.initializer()) {
    auto vit = m.value_id.find(t.name());
    if (vit == m.value_id.end()) continue;  // unused and not an output
    const int v = vit->second;
    const bool floating = t.data_type() == ::onnx::TensorProto::FLOAT || t.data_type() == ::onnx::TensorProto::DOUBLE;
    InitKind kind = InitKind::unused;
    bool conv_weight = false;
    if (output_set.count(v)) kind = InitKind::constant;
    for (const auto& [step, k] : uses[v]) {
      const OpSpec* spec = step->spec;
      auto has = [k = k](const std::vector<int>& list) { return std::find(list.begin(), list.end(), k) != list.end(); };
      InitKind use = InitKind::parameter;
      if (!floating || reads_shape_only(step->node->op_type()) || (spec && has(spec->value_inputs)))
        use = InitKind::constant;
      else if (spec && has(spec->buffer_inputs))
        use = InitKind::buffer;
      if (step->node->op_type() == "Conv" && k == 1) conv_weight = true;
      kind = std::max(kind, use);
    }
    if (kind == InitKind::unused) continue;
    Tensor value = from_tensor_proto(t, m.base_dir, m.path + ": initializer '" + t.name() + "'");
    if (kind == InitKind::parameter) {
      if (conv_weight && value.dim() == 4) value = value.to_format(MemoryFormat::channels_last);
      value = model->register_parameter(t.name(), value);
    } else if (kind == InitKind::buffer) {
      value = model->register_buffer(t.name(), value);
    } else {
      is_constant[static_cast<size_t>(v)] = true;
    }
    m.fixed[static_cast<size_t>(v)] = value;
    shape_fixed[static_cast<size_t>(v)] = true;
  }
  m.proto.mutable_graph()->clear_initializer();  // the tensors hold the data now

  // Graph inputs with every dim static: run() refuses any other shape, so
  // their shapes are known now (for folding Shape nodes).
  std::vector<Shape> known_shape(m.value_names.size());
  for (size_t i = 0; i < m.inputs.size(); ++i) {
    const auto& info = m.inputs[i];
    if (!info.rank_known || std::count(info.shape.begin(), info.shape.end(), -1) > 0) continue;
    const auto v = static_cast<size_t>(m.input_ids[i]);
    shape_fixed[v] = true;
    known_shape[v] = info.shape;
  }

  // ---- constant folding ----
  std::vector<Impl::Step> remaining;
  for (auto& s : m.steps) {
    const std::string& op = s.node->op_type();
    bool fold = s.spec != nullptr && !never_fold(op);
    if (fold && reads_shape_only(op))
      fold = !s.in.empty() && s.in[0] >= 0 && shape_fixed[static_cast<size_t>(s.in[0])];
    else if (fold)
      for (int v : s.in) fold = fold && (v < 0 || is_constant[static_cast<size_t>(v)]);
    if (!fold) {
      remaining.push_back(std::move(s));
      continue;
    }
    std::vector<Tensor> ins;
    for (int v : s.in) {
      if (v < 0) {
        ins.emplace_back();
      } else if (m.fixed[static_cast<size_t>(v)].defined()) {
        ins.push_back(m.fixed[static_cast<size_t>(v)].detach());
      } else {  // a static-shaped graph input: only its shape is read
        const Shape& shp = known_shape[static_cast<size_t>(v)];
        size_t idx = static_cast<size_t>(std::find(m.input_ids.begin(), m.input_ids.end(), v) - m.input_ids.begin());
        ins.push_back(Tensor::empty_strided(shp, Strides(shp.size(), 0), m.input_dtypes[idx]));
      }
    }
    std::vector<Tensor> outs;
    {
      NoGradGuard no_grad;
      NodeContext ctx(*s.node, m.opset, model->is_training(), &default_generator(), m.path);
      ctx.set_max_elements(m.options.max_tensor_elements);
      try {
        outs = s.spec->convert(ctx, ins);
      } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.find(ctx.where()) != std::string::npos) throw;
        throw Error(ctx.where() + ": " + msg);
      } catch (const std::bad_alloc&) {
        GRAFT_FAIL(ctx.where() << ": out of memory while folding constants");
      }
      GRAFT_CHECK(outs.size() <= s.out.size(), ctx.where() << ": converter returned " << outs.size() << " outputs for "
                                                           << s.out.size());
    }
    for (size_t k = 0; k < s.out.size(); ++k) {
      const int v = s.out[k];
      if (v < 0 || k >= outs.size() || !outs[k].defined()) continue;
      m.fixed[static_cast<size_t>(v)] = outs[k];
      is_constant[static_cast<size_t>(v)] = true;
      shape_fixed[static_cast<size_t>(v)] = true;
    }
  }
  // Attention patterns become one fused step (fuse.cpp); only with Graft's own operator table.
  if (m.options.fuse_attention && &reg == &op_registry())
    fuse_attention(remaining, {m.path, m.opset, m.value_names, m.fixed, m.output_ids}, m.fused);
  // Dead nodes (no path to a graph output) never run.
  std::vector<bool> needed(m.value_names.size(), false);
  for (int v : m.output_ids) needed[static_cast<size_t>(v)] = true;
  std::vector<Impl::Step> live;
  for (auto it = remaining.rbegin(); it != remaining.rend(); ++it) {
    if (std::none_of(it->out.begin(), it->out.end(), [&](int v) { return v >= 0 && needed[static_cast<size_t>(v)]; }))
      continue;
    for (int v : it->in)
      if (v >= 0) needed[static_cast<size_t>(v)] = true;
    live.push_back(std::move(*it));
  }
  m.steps.assign(std::make_move_iterator(live.rbegin()), std::make_move_iterator(live.rend()));

  // ---- lifetimes: drop folded intermediates; free each value after its last use ----
  std::vector<int> last_use(m.value_names.size(), -1);
  for (size_t i = 0; i < m.steps.size(); ++i)
    for (int v : m.steps[i].in)
      if (v >= 0) last_use[static_cast<size_t>(v)] = static_cast<int>(i);
  for (size_t v = 0; v < m.value_names.size(); ++v) {
    const bool needed = last_use[v] >= 0 || output_set.count(static_cast<int>(v)) != 0;
    if (!needed && is_constant[v]) m.fixed[v] = Tensor();
    if (last_use[v] >= 0 && !output_set.count(static_cast<int>(v)) && !m.fixed[v].defined())
      m.steps[static_cast<size_t>(last_use[v])].release.push_back(static_cast<int>(v));
  }
  return model;
}

std::shared_ptr<OnnxModel> load_onnx(const std::string& path, const LoadOptions& opt) {
  std::ifstream f(path, std::ios::binary);
  GRAFT_CHECK(f.good(), "cannot open ONNX model '" << path << "'");
  std::stringstream ss;
  ss << f.rdbuf();
  GRAFT_CHECK(!f.bad(), "cannot read ONNX model '" << path << "'");
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  return load_onnx_bytes(ss.str(), path, dir, opt);
}

// ---- running ---------------------------------------------------------------------------

std::vector<Tensor> OnnxModel::run(const std::vector<Tensor>& inputs) {
  Impl& m = *impl_;
  GRAFT_CHECK(inputs.size() == m.inputs.size(), m.path << ": the model takes " << m.inputs.size() << " input"
                                                       << (m.inputs.size() == 1 ? "" : "s") << ", got "
                                                       << inputs.size());
  std::vector<Tensor> values = m.fixed;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ValueInfo& info = m.inputs[i];
    const Tensor& x = inputs[i];
    GRAFT_CHECK(x.defined(), m.path << ": input '" << info.name << "' is undefined");
    GRAFT_CHECK(!m.input_dtype_known[i] || x.dtype() == m.input_dtypes[i],
                m.path << ": input '" << info.name << "' should be " << onnx_dtype_name(info.onnx_type) << " ("
                       << dtype_name(m.input_dtypes[i]) << "), got " << x.str());
    if (info.rank_known) {
      bool ok = x.dim() == static_cast<int64_t>(info.shape.size());
      for (size_t d = 0; ok && d < info.shape.size(); ++d) ok = info.shape[d] < 0 || info.shape[d] == x.shape()[d];
      std::ostringstream want;
      want << "[";
      for (size_t d = 0; d < info.shape.size(); ++d) want << (d ? ", " : "") << (info.shape[d] < 0 ? "?" : std::to_string(info.shape[d]));
      want << "]";
      GRAFT_CHECK(ok, m.path << ": input '" << info.name << "' should have shape " << want.str() << ", got "
                             << shape_str(x.shape()));
    }
    values[static_cast<size_t>(m.input_ids[i])] = x;
  }
  Generator& gen = default_generator();
  for (const auto& s : m.steps) {
    NodeContext ctx(*s.node, m.opset, is_training(), &gen, m.path);
    ctx.set_max_elements(m.options.max_tensor_elements);
    GRAFT_CHECK(s.spec != nullptr, ctx.where() << ": unsupported operator " << s.node->op_type() << " at opset " << m.opset);
    std::vector<Tensor> ins;
    ins.reserve(s.in.size());
    for (size_t k = 0; k < s.in.size(); ++k) {
      const int v = s.in[k];
      if (v < 0) {
        ins.emplace_back();
        continue;
      }
      GRAFT_CHECK(values[static_cast<size_t>(v)].defined(),
                  ctx.where() << ": input " << k << " " << m.value(v) << " was not produced (an omitted optional output?)");
      ins.push_back(values[static_cast<size_t>(v)]);
    }
    std::vector<Tensor> outs;
    try {
      outs = s.spec->convert(ctx, ins);
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.find(ctx.where()) != std::string::npos) throw;
      throw Error(ctx.where() + ": " + msg);
    }
    GRAFT_CHECK(outs.size() <= s.out.size(),
                ctx.where() << ": converter returned " << outs.size() << " outputs for " << s.out.size());
    for (size_t k = 0; k < outs.size(); ++k)
      if (s.out[k] >= 0) values[static_cast<size_t>(s.out[k])] = outs[k];
    for (int v : s.release) values[static_cast<size_t>(v)] = Tensor();
  }
  std::vector<Tensor> out;
  for (size_t i = 0; i < m.output_ids.size(); ++i) {
    const Tensor& t = values[static_cast<size_t>(m.output_ids[i])];
    GRAFT_CHECK(t.defined(), m.path << ": graph output '" << m.outputs[i].name << "' was not produced");
    out.push_back(t);
  }
  return out;
}

Tensor OnnxModel::forward(const Tensor& x) {
  GRAFT_CHECK(impl_->inputs.size() == 1 && impl_->outputs.size() == 1,
              impl_->path << ": forward() needs a model with one input and one output (this one has "
                          << impl_->inputs.size() << " and " << impl_->outputs.size() << "); use run()");
  return run({x})[0];
}

const std::vector<ValueInfo>& OnnxModel::inputs() const { return impl_->inputs; }
const std::vector<ValueInfo>& OnnxModel::outputs() const { return impl_->outputs; }
int OnnxModel::opset() const { return impl_->opset; }
const std::string& OnnxModel::path() const { return impl_->path; }
int64_t OnnxModel::ir_version() const { return impl_->proto.ir_version(); }
const std::string& OnnxModel::producer() const { return impl_->proto.producer_name(); }

std::vector<std::string> OnnxModel::op_types() const {
  std::vector<std::string> out;
  for (const auto& kv : impl_->op_counts) out.push_back(kv.first);
  return out;
}

std::vector<std::pair<std::string, int>> OnnxModel::op_type_counts() const { return impl_->op_counts; }
std::vector<std::string> OnnxModel::unsupported_op_types() const { return impl_->unsupported; }
int OnnxModel::fused_attention_count() const { return impl_->fused.attention; }

OnnxModel::RunGraph OnnxModel::run_graph() const {
  const Impl& m = *impl_;
  RunGraph g;
  std::vector<bool> read(m.value_names.size(), false);
  for (const auto& s : m.steps) {
    g.nodes.push_back(s.node);
    for (int v : s.in)
      if (v >= 0) read[static_cast<size_t>(v)] = true;
  }
  for (int v : m.output_ids) read[static_cast<size_t>(v)] = true;
  for (size_t v = 0; v < m.fixed.size(); ++v)
    if (read[v] && m.fixed[v].defined()) g.fixed.emplace_back(m.value_names[v], m.fixed[v]);
  return g;
}

}  // namespace graft::importer
