// An ONNX model as an engine module: initializers become named parameters
// (the file's names kept, so freezing by name works), and forward runs the
// graph through the same differentiable ops as every other module.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace graft::importer {

struct LoadOptions {
  // Maximum elements of any one tensor the file may declare (absurd sizes are
  // an error, not an allocation).
  int64_t max_tensor_elements = int64_t(1) << 32;
};

struct ValueInfo {
  std::string name;
  int onnx_type = 0;
  std::vector<int64_t> shape;  // -1 for a symbolic or unknown dimension
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
