// Building one ONNX node and running the converter table on it: the harness
// of the converter unit tests (tests/importers/test_onnx_*.cpp).
#pragma once

#include <string>
#include <vector>

#include "engine/core/error.h"
#include "importers/onnx/converter.h"
#include "importers/onnx/tensor_proto.h"

namespace graft::testing {

// Attribute setters for a node type with a `::onnx::NodeProto proto` member;
// each returns the node so that calls chain: Node("Conv", 2).i("group", 2).
template <class Node>
struct OnnxAttrs {
  Node& i(const std::string& n, int64_t v) { return attr(n, ::onnx::AttributeProto::INT)->set_i(v), self(); }
  Node& f(const std::string& n, float v) { return attr(n, ::onnx::AttributeProto::FLOAT)->set_f(v), self(); }
  Node& s(const std::string& n, const std::string& v) {
    return attr(n, ::onnx::AttributeProto::STRING)->set_s(v), self();
  }
  Node& ints(const std::string& n, const std::vector<int64_t>& v) {
    auto* a = attr(n, ::onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
    return self();
  }
  Node& floats(const std::string& n, const std::vector<float>& v) {
    auto* a = attr(n, ::onnx::AttributeProto::FLOATS);
    for (float x : v) a->add_floats(x);
    return self();
  }
  Node& tensor(const std::string& n, const Tensor& t) {
    importer::to_tensor_proto(t, n, attr(n, ::onnx::AttributeProto::TENSOR)->mutable_t());
    return self();
  }
  // A bare attribute of any type (for the types without a setter above).
  ::onnx::AttributeProto* attr(const std::string& name, ::onnx::AttributeProto::AttributeType t) {
    auto* a = self().proto.add_attribute();
    a->set_name(name);
    a->set_type(t);
    return a;
  }

 private:
  Node& self() { return static_cast<Node&>(*this); }
};

// The table's converter for the node's operator at `opset`, run on `inputs`
// (errors name the model "test.onnx" and the node).
inline std::vector<Tensor> run_converter(const ::onnx::NodeProto& node, int opset, const std::vector<Tensor>& inputs,
                                         Generator& gen, bool training = false) {
  const importer::OpSpec* spec = importer::op_registry().find(node.op_type(), opset);
  GRAFT_CHECK(spec != nullptr, "no converter for " << node.op_type() << " at opset " << opset);
  importer::NodeContext ctx(node, opset, training, &gen, "test.onnx");
  return spec->convert(ctx, inputs);
}

}  // namespace graft::testing
