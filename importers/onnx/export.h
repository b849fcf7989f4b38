// Writing a Graft model back out as ONNX (for onnxruntime, or Graft itself).
//
// What can be exported: an imported OnnxModel (its graph as Graft runs it, with
// the current parameter and buffer values: fine-tuned weights), nn::Sequential
// (recursively), and the nn layers Linear, Conv2d, BatchNorm2d, LayerNorm, Act,
// MaxPool2d, GlobalAvgPool2d, Flatten and Dropout (Identity: an exported model
// describes inference). Other module types go through ExportOptions::emitters
// (model-specific blocks); anything else is an error naming the module's path
// and type, raised before a byte is written. Initializers carry the Graft
// parameter names (the root's named_parameters()), and the file is written
// under a temporary name and renamed, so it is never half-written.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace onnx {
class NodeProto;
}

namespace graft::importer {

class GraphWriter;

// Emits a module type the exporter does not know (a model-specific block):
// writes its nodes reading value `input` and returns its output value's name,
// or "" when it does not handle this module (the next emitter is asked).
using ModuleEmitter =
    std::function<std::string(GraphWriter& g, const nn::Module& m, const std::string& path, const std::string& input)>;

struct ExportOptions {
  // The operator set written. An imported model's nodes are kept as they are
  // when its opset differs only where that does not change what they compute
  // (Conv, Relu, MatMul...); any other node makes the export an error that
  // names it (export at the model's own opset instead). Layers are written for
  // any opset from 13 to 24.
  int opset = 17;
  // Conv followed by BatchNormalization (running statistics), where nothing
  // else reads the conv output, becomes one Conv with folded weight and bias
  // (in imported graphs and in Sequential{Conv2d, BatchNorm2d}).
  bool fold_batch_norm = false;
  // The first input dimension is symbolic ("batch"). An imported model whose
  // input has a fixed first dimension keeps it fixed (its folded shape
  // constants may depend on it).
  bool dynamic_batch = true;
  // Graph input and output names; empty: the imported model's names when the
  // root is an OnnxModel, else "input" and "output".
  std::string input_name, output_name;
  // Tried in order before the built-in kinds.
  std::vector<ModuleEmitter> emitters;
};

// Writes `model` as ONNX to `path`. `input_shape` is the (N, C, H, W) or other
// input shape: the model runs once on it (eval mode, no gradient; each
// module's training flag is restored afterwards) to learn each value's shape.
// An OnnxModel root may pass {} to keep its declared inputs (and then may have
// several inputs and outputs).
void save_onnx(const nn::Module& model, const std::vector<int64_t>& input_shape, const std::string& path,
               const ExportOptions& opt = {});
// The same, returning the serialized ModelProto instead of writing a file.
std::string export_onnx_bytes(const nn::Module& model, const std::vector<int64_t>& input_shape,
                              const ExportOptions& opt = {});

// The graph being written, as emitters see it.
class GraphWriter {
 public:
  struct State;
  explicit GraphWriter(State& s) : s_(s) {}

  int opset() const;
  bool fold_batch_norm() const;
  // Emits any module (custom emitters first, then the built-in kinds) that
  // reads value `input`; returns its output value.
  std::string emit(const nn::Module& m, const std::string& path, const std::string& input);
  // The value `input` holds when the model runs on the sample input (its
  // shape is what emitters usually need).
  const Tensor& sample() const;
  // For emitters whose blocks branch: the sample of the value the next emit()
  // reads (emit() leaves sample() at the output of what it emitted).
  void set_sample(const Tensor& t);

  // A node reading `inputs` and writing `outputs` (named by fresh()).
  ::onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs);
  // A new value name, unique in the graph, derived from `base`.
  std::string fresh(const std::string& base);
  // An initializer holding t's current value (in logical order); returns
  // `name`, which must not be taken yet.
  std::string initializer(const std::string& name, const Tensor& t);
  // An initializer under a fresh name derived from `base` (a constant such as
  // an epsilon); returns its name.
  std::string constant(const std::string& base, const Tensor& t);

  static void set_attr(::onnx::NodeProto& n, const std::string& name, int64_t v);
  static void set_attr(::onnx::NodeProto& n, const std::string& name, float v);
  static void set_attr(::onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v);

 private:
  State& s_;
};

// "path.name", or "name" at the root ("").
std::string param_name(const std::string& path, const std::string& name);

}  // namespace graft::importer
