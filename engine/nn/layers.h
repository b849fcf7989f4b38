// Layers built on the differentiable ops. Initialisation follows PyTorch's
// defaults (uniform in +-1/sqrt(fan_in) for weights and biases of linear and
// convolution layers), drawn from a counter-based generator.
#pragma once

#include <initializer_list>
#include <memory>

#include "engine/core/rng.h"
#include "engine/nn/module.h"
#include "engine/ops/conv.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/pool.h"

namespace graft::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;  // (out, in), (out)
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, const Conv2dOptions& opt = {}, bool bias = true,
         Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;  // (O, C/groups, k, k), (O)
  Conv2dOptions options;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double momentum = 0.1, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var;
  double momentum, eps;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t features, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  double eps;
};

enum class Activation { relu, relu6, sigmoid, silu, gelu, hardswish, tanh };

class Act : public Module {
 public:
  explicit Act(Activation kind) : kind_(kind) {}
  Tensor forward(const Tensor& x) override;
  Activation kind() const { return kind_; }

 private:
  Activation kind_;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dOptions& opt) : opt_(opt) {}
  Tensor forward(const Tensor& x) override;
  const Pool2dOptions& options() const { return opt_; }

 private:
  Pool2dOptions opt_;
};

class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;  // (N, C, H, W) -> (N, C)
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator& gen = default_generator()) : p_(p), gen_(gen) {}
  Tensor forward(const Tensor& x) override;

 private:
  double p_;
  Generator& gen_;
};

// Multi-head self-attention over (B, T, E) as in ViT and PyTorch's
// nn.MultiheadAttention(batch_first=True): a joint input projection to q, k,
// v (in_proj_weight (3E, E)), scaled-dot-product attention per head (the
// tiled online-softmax op), and an output projection (out_proj (E, E)).
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;  // self-attention
  // query (B, Tq, E), key/value (B, Tk, E); mask broadcastable to (B, H, Tq, Tk).
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& mask = Tensor());
  Tensor in_proj_weight, in_proj_bias;
  std::shared_ptr<Linear> out_proj;
  int64_t embed_dim, num_heads;
};

class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> layers);
  // Children are named by position: "0", "1", ...
  void push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return children().size(); }
};

}  // namespace graft::nn
