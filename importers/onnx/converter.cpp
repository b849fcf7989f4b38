#include "importers/onnx/converter.h"

#include <algorithm>

#include "importers/onnx/tensor_proto.h"

namespace graft::importer {

NodeContext::NodeContext(const ::onnx::NodeProto& node, int opset, bool training, Generator* gen,
                         std::string model_path)
    : node_(node), opset_(opset), training_(training), gen_(gen), model_path_(std::move(model_path)) {}

std::string NodeContext::where() const {
  return model_path_ + ": node '" + (node_.name().empty() ? node_.output_size() ? node_.output(0) : "?" : node_.name()) +
         "' (" + node_.op_type() + ")";
}

const ::onnx::AttributeProto* NodeContext::find(const std::string& name) const {
  for (const auto& a : node_.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

bool NodeContext::has_attr(const std::string& name) const { return find(name) != nullptr; }

namespace {
const char* attr_type_name(int t) {
  switch (t) {
    case ::onnx::AttributeProto::FLOAT: return "float";
    case ::onnx::AttributeProto::INT: return "int";
    case ::onnx::AttributeProto::STRING: return "string";
    case ::onnx::AttributeProto::TENSOR: return "tensor";
    case ::onnx::AttributeProto::FLOATS: return "floats";
    case ::onnx::AttributeProto::INTS: return "ints";
    default: return "another type";
  }
}
}  // namespace

#define GRAFT_ATTR(ctx, name, want)                                                                         \
  const ::onnx::AttributeProto* a = find(name);                                                            \
  GRAFT_NODE_CHECK(ctx, a != nullptr, "required attribute '" << name << "' is missing");                   \
  GRAFT_NODE_CHECK(ctx, a->type() == ::onnx::AttributeProto::want,                                          \
                   "attribute '" << name << "' should be " << attr_type_name(::onnx::AttributeProto::want) \
                                 << ", is " << attr_type_name(a->type()))

int64_t NodeContext::attr_int(const std::string& name) const {
  GRAFT_ATTR(*this, name, INT);
  return a->i();
}

int64_t NodeContext::attr_int(const std::string& name, int64_t fallback) const {
  return has_attr(name) ? attr_int(name) : fallback;
}

float NodeContext::attr_float(const std::string& name) const {
  GRAFT_ATTR(*this, name, FLOAT);
  return a->f();
}

float NodeContext::attr_float(const std::string& name, float fallback) const {
  return has_attr(name) ? attr_float(name) : fallback;
}

std::string NodeContext::attr_string(const std::string& name, const std::string& fallback) const {
  if (!has_attr(name)) return fallback;
  GRAFT_ATTR(*this, name, STRING);
  return a->s();
}

std::vector<int64_t> NodeContext::attr_ints(const std::string& name) const {
  GRAFT_ATTR(*this, name, INTS);
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

std::vector<int64_t> NodeContext::attr_ints(const std::string& name, const std::vector<int64_t>& fallback) const {
  return has_attr(name) ? attr_ints(name) : fallback;
}

std::vector<float> NodeContext::attr_floats(const std::string& name, const std::vector<float>& fallback) const {
  if (!has_attr(name)) return fallback;
  GRAFT_ATTR(*this, name, FLOATS);
  return std::vector<float>(a->floats().begin(), a->floats().end());
}

Tensor NodeContext::attr_tensor(const std::string& name) const {
  GRAFT_ATTR(*this, name, TENSOR);
  return from_tensor_proto(a->t(), ".", where() + " attribute '" + name + "'");
}

#undef GRAFT_ATTR

void OpRegistry::add(OpSpec spec) {
  GRAFT_CHECK(spec.convert != nullptr && spec.min_opset <= spec.max_opset,
              "onnx op registry: bad entry for " << spec.op_type);
  for (auto [it, end] = specs_.equal_range(spec.op_type); it != end; ++it)
    GRAFT_CHECK(spec.max_opset < it->second.min_opset || spec.min_opset > it->second.max_opset,
                "onnx op registry: overlapping opset ranges for " << spec.op_type);
  std::string key = spec.op_type;
  specs_.emplace(std::move(key), std::move(spec));
}

const OpSpec* OpRegistry::find(const std::string& op_type, int opset) const {
  for (auto [it, end] = specs_.equal_range(op_type); it != end; ++it)
    if (opset >= it->second.min_opset && opset <= it->second.max_opset) return &it->second;
  return nullptr;
}

std::vector<std::string> OpRegistry::op_types() const {
  std::vector<std::string> out;
  for (const auto& kv : specs_)
    if (out.empty() || out.back() != kv.first) out.push_back(kv.first);
  return out;
}

const OpRegistry& op_registry() {
  static const OpRegistry r = [] {
    OpRegistry reg;
    register_nn_ops(reg);
    register_math_ops(reg);
    register_shape_ops(reg);
    return reg;
  }();
  return r;
}

int64_t checked_numel(const NodeContext& ctx, const std::vector<int64_t>& shape, const char* what) {
  std::string why;
  const int64_t n = bounded_numel(shape, ctx.max_elements(), "LoadOptions::max_tensor_elements", false, why);
  GRAFT_NODE_CHECK(ctx, n >= 0, what << ": " << why);
  return n;
}

}  // namespace graft::importer
