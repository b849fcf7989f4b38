// The operator table: how each ONNX operator becomes engine ops. One
// converter per operator, grouped by family in ops_*.cpp. Converters use only
// differentiable engine ops, so an imported network trains.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/core/rng.h"
#include "engine/core/tensor.h"
#include "onnx/onnx_pb.h"  // defines ONNX_API, then includes onnx-ml.pb.h

namespace graft::importer {

// What a converter sees of one node: its attributes (typed access; errors
// name the node), the model's opset for the default domain, and the module's
// mode.
class NodeContext {
 public:
  NodeContext(const ::onnx::NodeProto& node, int opset, bool training, Generator* gen, std::string model_path);

  const ::onnx::NodeProto& node() const { return node_; }
  int opset() const { return opset_; }
  bool training() const { return training_; }
  Generator& generator() const { return *gen_; }
  // The most elements one value a node computes may hold (the model's
  // LoadOptions::max_tensor_elements): shapes read from data (ConstantOfShape,
  // Expand, Range, Pad) are checked against it before anything is allocated.
  int64_t max_elements() const { return max_elements_; }
  void set_max_elements(int64_t n) { max_elements_ = n; }
  // "model.onnx: node 'conv1' (Conv)": the prefix of every error about it.
  std::string where() const;

  bool has_attr(const std::string& name) const;
  int64_t attr_int(const std::string& name) const;  // required
  int64_t attr_int(const std::string& name, int64_t fallback) const;
  float attr_float(const std::string& name) const;
  float attr_float(const std::string& name, float fallback) const;
  std::string attr_string(const std::string& name, const std::string& fallback = "") const;
  std::vector<int64_t> attr_ints(const std::string& name) const;  // required
  std::vector<int64_t> attr_ints(const std::string& name, const std::vector<int64_t>& fallback) const;
  std::vector<float> attr_floats(const std::string& name, const std::vector<float>& fallback = {}) const;
  Tensor attr_tensor(const std::string& name) const;  // required

 private:
  const ::onnx::AttributeProto* find(const std::string& name) const;
  const ::onnx::NodeProto& node_;
  int opset_;
  bool training_;
  Generator* gen_;
  std::string model_path_;
  int64_t max_elements_ = int64_t(1) << 32;
};

// The element count of `shape`, checked before allocation: no negative
// dimension, no int64 overflow, at most ctx.max_elements(); else an error
// naming the node and `what`.
int64_t checked_numel(const NodeContext& ctx, const std::vector<int64_t>& shape, const char* what);

// Throws graft::Error prefixed with ctx.where().
#define GRAFT_NODE_CHECK(ctx, cond, msg) GRAFT_CHECK(cond, (ctx).where() << ": " << msg)

// Inputs in the node's order; an omitted optional input ("" name) is an
// undefined Tensor. Returns one tensor per node output (trailing optional
// outputs may be left out).
using Converter = std::vector<Tensor> (*)(const NodeContext& ctx, const std::vector<Tensor>& inputs);

struct OpSpec {
  std::string op_type;   // default domain ("" / "ai.onnx")
  int min_opset = 7;     // the earliest opset whose semantics the converter handles
  int max_opset = 24;    // the latest
  Converter convert = nullptr;
  // Inputs read as values (shapes, axes, pads, bounds, scales): an initializer
  // feeding only such inputs is a constant, never a trainable parameter.
  std::vector<int> value_inputs;
  // Inputs holding state, not weights (BatchNormalization's running mean and
  // variance): float initializers here become buffers.
  std::vector<int> buffer_inputs;
};

class OpRegistry {
 public:
  void add(OpSpec spec);
  // The converter for op_type at `opset`, or null.
  const OpSpec* find(const std::string& op_type, int opset) const;
  std::vector<std::string> op_types() const;

 private:
  std::multimap<std::string, OpSpec> specs_;
};

// Every converter Graft has.
const OpRegistry& op_registry();

// One registration function per family, each in its own file.
void register_nn_ops(OpRegistry& r);     // ops_nn.cpp
void register_math_ops(OpRegistry& r);   // ops_math.cpp
void register_shape_ops(OpRegistry& r);  // ops_shape.cpp

}  // namespace graft::importer
