#include <unordered_map>
#include <unordered_set>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"

namespace graft::autograd {

namespace {
thread_local bool g_grad_enabled = true;

// dst = a + b without recording (both same shape, f32, same device).
Tensor sum_grads(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  out.add_(b);
  return out;
}
}  // namespace

Node::~Node() {
  std::vector<std::shared_ptr<Node>> stack;
  for (auto& n : next)
    if (n && n.use_count() == 1) stack.push_back(std::move(n));
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    for (auto& m : n->next)
      if (m && m.use_count() == 1) stack.push_back(std::move(m));
    n->next.clear();
  }
}

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

Saved::Saved(const Tensor& t, const char* op) : op_(op) {
  if (t.defined()) {
    t_ = t.detach();
    version_ = t.version();
  }
}

Tensor Saved::get() const {
  if (!t_.defined()) return t_;
  GRAFT_CHECK(t_.version() == version_,
              op_ << ": a tensor " << shape_str(t_.shape()) << " saved for the backward pass was modified in place "
                  << "after it was saved (version " << version_ << ", now " << t_.version()
                  << "); compute the gradient before changing it, or change a copy");
  return t_;
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* op, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->op = op;
  node->backward = std::move(backward);
  node->output_shape = output.shape();
  node->next.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    node->input_shapes.push_back(in.defined() ? in.shape() : Shape{});
    if (!in.defined() || !in.requires_grad()) {
      node->next.push_back(nullptr);
    } else if (in.grad_fn()) {
      node->next.push_back(in.grad_fn());
    } else {
      auto acc = std::make_shared<Node>();
      acc->op = "accumulate_grad";
      acc->accumulates = true;
      acc->leaf = in.impl_ptr();
      acc->output_shape = in.shape();
      node->next.push_back(std::move(acc));
    }
  }
  output.impl().requires_grad = true;
  output.impl().grad_fn = std::move(node);
}

namespace {
void accumulate_into_leaf(Node& acc, const Tensor& g) {
  auto leaf = acc.leaf.lock();
  if (!leaf) return;  // the parameter no longer exists
  Tensor t(leaf);
  GRAFT_CHECK(g.shape() == t.shape(), "backward: gradient " << shape_str(g.shape()) << " does not match leaf "
                                                            << shape_str(t.shape()));
  if (!leaf->grad) {
    leaf->grad = g.clone().impl_ptr();
  } else {
    Tensor(leaf->grad).add_(g);
  }
}
}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  GRAFT_CHECK(root.requires_grad(), "backward: the tensor " << root.str()
                                                            << " does not require grad (nothing it depends on needs a gradient)");
  Tensor grad = grad_in;
  if (!grad.defined()) {
    GRAFT_CHECK(root.numel() == 1, "backward: without an explicit gradient the output must be a scalar, got "
                                       << shape_str(root.shape()));
    grad = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  GRAFT_CHECK(grad.shape() == root.shape(), "backward: gradient " << shape_str(grad.shape())
                                                                  << " does not match the output " << shape_str(root.shape()));
  NoGradGuard no_grad;
  if (!root.grad_fn()) {  // a leaf
    Node acc;
    acc.leaf = root.impl_ptr();
    accumulate_into_leaf(acc, grad);
    return;
  }

  // Count, for every reachable node, how many edges point at it.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root.grad_fn().get()};
  std::unordered_set<Node*> seen{root.grad_fn().get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& nx : n->next) {
      if (!nx) continue;
      ++deps[nx.get()];
      if (seen.insert(nx.get()).second) stack.push_back(nx.get());
    }
  }

  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = grad;
  std::vector<Node*> ready{root.grad_fn().get()};
  // Keep nodes alive while we run even if a released closure held the last reference.
  std::vector<std::shared_ptr<Node>> keep{root.grad_fn()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g = std::move(grads[n]);
    grads.erase(n);
    if (n->accumulates) {
      accumulate_into_leaf(*n, g);
      continue;
    }
    GRAFT_CHECK(!n->released && n->backward,
                "backward: trying to run the backward of '" << n->op << "' (output " << shape_str(n->output_shape)
                                                            << ") a second time, but its saved tensors were freed by "
                                                               "the first backward; pass retain_graph=true to the first");
    NeedsGrad needs(n->next.size());
    for (size_t i = 0; i < n->next.size(); ++i) needs[i] = n->next[i] != nullptr;
    std::vector<Tensor> in_grads = n->backward(g, needs);
    GRAFT_CHECK(in_grads.size() == n->next.size(), "backward of '" << n->op << "' returned " << in_grads.size()
                                                                   << " gradients for " << n->next.size() << " inputs");
    for (auto& nx : n->next) keep.push_back(nx);
    if (!retain_graph) {
      n->backward = nullptr;  // frees the saved tensors captured by the closure
      n->released = true;
    }
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* nx = n->next[i].get();
      if (!nx) continue;
      const Tensor& gi = in_grads[i];
      GRAFT_CHECK(gi.defined(), "backward of '" << n->op << "' returned no gradient for input " << i << " "
                                                << shape_str(n->input_shapes[i]) << ", which needs one");
      GRAFT_CHECK(gi.shape() == n->input_shapes[i], "backward of '" << n->op << "' returned a gradient "
                                                                    << shape_str(gi.shape()) << " for input " << i
                                                                    << " of shape " << shape_str(n->input_shapes[i]));
      auto it = grads.find(nx);
      if (it == grads.end() || !it->second.defined()) grads[nx] = gi;
      else it->second = sum_grads(it->second, gi);
      if (--deps[nx] == 0) ready.push_back(nx);
    }
  }
}

}  // namespace graft::autograd
