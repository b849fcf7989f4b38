// The define-by-run tape. Each differentiable op that has an input needing a
// gradient creates one Node with its backward function right beside the
// forward (see engine/ops). A value computed only from inputs that need no
// gradient records nothing: that is what keeps a frozen backbone cheap.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace graft::autograd {

// Which inputs of an op need a gradient; the backward function may skip the
// others (a frozen conv computes no weight gradient; the first conv computes
// no input gradient).
using NeedsGrad = std::vector<bool>;

// Backward: given dL/d(output), returns dL/d(input_i) per input (an undefined
// Tensor where needs[i] is false).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output, const NeedsGrad& needs)>;

struct Node {
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node();  // iterative: a long chain must not recurse once per node
  std::string op;                            // "conv2d"
  std::vector<std::shared_ptr<Node>> next;   // per input; null when that input needs no gradient
  std::vector<Shape> input_shapes;           // to check what backward returns
  Shape output_shape;
  BackwardFn backward;                       // null for a leaf accumulator or once released
  bool accumulates = false;                  // an AccumulateGrad node: adds into leaf->grad
  std::weak_ptr<TensorImpl> leaf;
  bool released = false;                     // saved tensors freed by a backward pass
};

// A tensor saved for backward. Stores a detached alias (no reference cycle
// through the output's grad_fn) and the storage version at save time; get()
// throws if the tensor was modified in place since.
class Saved {
 public:
  Saved() = default;
  Saved(const Tensor& t, const char* op);
  Tensor get() const;
  bool defined() const { return t_.defined(); }

 private:
  Tensor t_;
  uint64_t version_ = 0;
  const char* op_ = "";
};

// True when grad mode is on and any defined input requires a gradient.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a Node to `output` (which then requires grad). Inputs may contain
// undefined tensors (optional arguments such as a missing bias).
void record(const char* op, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn backward);

// Runs backward from `root` with gradient `grad` (ones for a scalar root when
// undefined). Without retain_graph, saved tensors are freed as it goes.
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace graft::autograd
