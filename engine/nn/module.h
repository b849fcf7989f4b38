// Modules: named parameters, buffers and children, train/eval mode.
// Parameter names are stable dotted paths ("features.0.weight"), the handle by
// which freeze plans and checkpoints find them.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/tensor.h"

namespace graft::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  NamedTensors named_parameters() const;  // recursive, dotted names
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;     // e.g. batch-norm running statistics
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  int64_t num_parameters() const;
  // Moves every parameter and buffer (recursively) to `device`, in place: the
  // tensors keep their identity (handles held by layers, optimizers' lists and
  // freeze plans see the move), their values, dtype and memory layout, and
  // lose any accumulated gradient. Build the optimizer after moving: state it
  // already holds stays where it was.
  void to(Device device);

 protected:
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, bool params, NamedTensors& out) const;

  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace graft::nn
