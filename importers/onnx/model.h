// An ONNX model as an engine module: initializers become named parameters
// (the file's names kept, so freezing by name works), and forward runs the
// graph through the same differentiable ops as every other module.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace onnx {
class NodeProto;
}

namespace graft::importer {

class OpRegistry;

struct LoadOptions {
  // Maximum elements of any one tensor the file may declare (absurd sizes are
  // an error, not an allocation).
  int64_t max_tensor_elements = int64_t(1) << 32;
  // Keep nodes whose operator Graft lacks (they fail when run, naming the
  // node) instead of refusing the file: for `graft info`.
  bool allow_unsupported_ops = false;
  // The operator table; null: Graft's (op_registry()). Another table (tests,
  // experiments) must outlive the model.
  const OpRegistry* ops = nullptr;
  // Graph outputs to use instead of the file's: values by name, e.g. the
  // feature map where a backbone ends. Nodes those values do not need are
  // dropped before anything else (their initializers never become
  // parameters), so the model is the backbone alone: forward() returns the
  // feature value and a new head goes after it (nn::Sequential).
  std::vector<std::string> outputs;
  // Run each attention pattern (MatMul -> [scale] -> [Add mask] -> Softmax ->
  // MatMul, as exporters write it) as one fused attention op that never
  // materialises the scores (importers/onnx/fuse.h); only with Graft's own
  // operator table. Off: every node runs as written (tests compare the two).
  bool fuse_attention = true;
};

struct ValueInfo {
  std::string name;
  int onnx_type = 0;
  std::vector<int64_t> shape;  // -1 for a symbolic or unknown dimension
  bool rank_known = true;      // false where the file declares no shape
};

class OnnxModel : public nn::Module {
 public:
  ~OnnxModel() override;
  // Single input, single output.
  Tensor forward(const Tensor& x) override;
  // Inputs in graph-input order (initializer-backed inputs excluded); outputs
  // in graph-output order.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);

  const std::vector<ValueInfo>& inputs() const;
  const std::vector<ValueInfo>& outputs() const;
  int opset() const;
  const std::string& path() const;
  // Operator types in the graph, each once, in first-use order.
  std::vector<std::string> op_types() const;
  // Each operator type with its number of nodes, in first-use order.
  std::vector<std::pair<std::string, int>> op_type_counts() const;
  // Operator types the registry lacks at this opset (only with
  // LoadOptions::allow_unsupported_ops; otherwise loading fails).
  std::vector<std::string> unsupported_op_types() const;
  // Attention patterns running as one fused op (LoadOptions::fuse_attention).
  int fused_attention_count() const;
  int64_t ir_version() const;
  const std::string& producer() const;  // "pytorch 2.1", or empty

  // The graph as Graft runs it, for the exporter (export.h): the live nodes in
  // run order (after constant folding, dead-node removal and any cut), and the
  // values fixed at load that those nodes or the outputs read, by value name:
  // parameters and buffers (the current tensors: fine-tuned values) and folded
  // constants. Node pointers live as long as the model.
  struct RunGraph {
    std::vector<const ::onnx::NodeProto*> nodes;
    std::vector<std::pair<std::string, Tensor>> fixed;
  };
  RunGraph run_graph() const;

  struct Impl;

 private:
  friend std::shared_ptr<OnnxModel> load_onnx(const std::string& path, const LoadOptions& opt);
  friend std::shared_ptr<OnnxModel> load_onnx_bytes(const std::string& bytes, const std::string& name,
                                                    const std::string& base_dir, const LoadOptions& opt);
  OnnxModel();
  std::unique_ptr<Impl> impl_;
};

// Reads and checks a model: every failure (truncated or corrupt file, missing
// initializer, dangling or cyclic edge, unsupported operator or opset, absurd
// dimension) is a graft::Error naming the file and the node.
std::shared_ptr<OnnxModel> load_onnx(const std::string& path, const LoadOptions& opt = {});
// The same from bytes already in memory (the fuzzer's entry point).
std::shared_ptr<OnnxModel> load_onnx_bytes(const std::string& bytes, const std::string& name,
                                           const std::string& base_dir = ".", const LoadOptions& opt = {});

}  // namespace graft::importer
