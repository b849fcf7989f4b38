#include "engine/nn/layers.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/ops/dropout.h"
#include "engine/ops/attention.h"
#include "engine/ops/linear.h"
#include "engine/ops/norm.h"
#include "engine/ops/shape.h"

namespace graft::nn {

namespace {
Tensor uniform_init(const Shape& shape, int64_t fan_in, Generator& gen) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  return Tensor::rand(shape, gen, -bound, bound);
}
}  // namespace

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen) {
  weight = register_parameter("weight", uniform_init({out, in}, in, gen));
  if (has_bias) bias = register_parameter("bias", uniform_init({out}, in, gen));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, const Conv2dOptions& opt, bool has_bias, Generator& gen)
    : options(opt) {
  GRAFT_CHECK(opt.groups > 0 && in % opt.groups == 0 && out % opt.groups == 0,
              "Conv2d: channels " << in << " -> " << out << " not divisible by groups " << opt.groups);
  const int64_t fan_in = in / opt.groups * k * k;
  weight = register_parameter("weight", uniform_init({out, in / opt.groups, k, k}, fan_in, gen));
  if (has_bias) bias = register_parameter("bias", uniform_init({out}, fan_in, gen));
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, options); }

BatchNorm2d::BatchNorm2d(int64_t c, double momentum_, double eps_) : momentum(momentum_), eps(eps_) {
  weight = register_parameter("weight", Tensor::ones({c}));
  bias = register_parameter("bias", Tensor::zeros({c}));
  running_mean = register_buffer("running_mean", Tensor::zeros({c}));
  running_var = register_buffer("running_var", Tensor::ones({c}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  return batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

LayerNorm::LayerNorm(int64_t features, double eps_) : eps(eps_) {
  weight = register_parameter("weight", Tensor::ones({features}));
  bias = register_parameter("bias", Tensor::zeros({features}));
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, 1, weight, bias, eps); }

Tensor Act::forward(const Tensor& x) {
  switch (kind_) {
    case Activation::relu: return relu(x);
    case Activation::relu6: return relu6(x);
    case Activation::sigmoid: return sigmoid(x);
    case Activation::silu: return silu(x);
    case Activation::gelu: return gelu(x);
    case Activation::hardswish: return hardswish(x);
    case Activation::tanh: return graft::tanh(x);
  }
  return x;
}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, opt_); }

Tensor GlobalAvgPool2d::forward(const Tensor& x) { return flatten(global_avg_pool2d(x), 1); }

Tensor Flatten::forward(const Tensor& x) { return flatten(x, 1); }

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

MultiheadAttention::MultiheadAttention(int64_t e, int64_t h, bool has_bias, Generator& gen)
    : embed_dim(e), num_heads(h) {
  GRAFT_CHECK(e > 0 && h > 0 && e % h == 0,
              "MultiheadAttention: embed_dim " << e << " must be a positive multiple of num_heads " << h);
  in_proj_weight = register_parameter("in_proj_weight", uniform_init({3 * e, e}, e, gen));
  if (has_bias) in_proj_bias = register_parameter("in_proj_bias", Tensor::zeros({3 * e}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(e, e, has_bias, gen));
}

Tensor MultiheadAttention::forward(const Tensor& x) { return forward(x, x, x); }

Tensor MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& mask) {
  for (const Tensor* t : {&query, &key, &value})
    GRAFT_CHECK(t->dim() == 3 && t->size(2) == embed_dim,
                "MultiheadAttention: inputs must be (B, T, " << embed_dim << "), got " << shape_str(t->shape()));
  const int64_t e = embed_dim, d = e / num_heads;
  auto project = [&](const Tensor& t, int64_t part) {  // (B, T, E) -> (B, H, T, D)
    Tensor w = slice(in_proj_weight, 0, part * e, (part + 1) * e);
    Tensor b = in_proj_bias.defined() ? slice(in_proj_bias, 0, part * e, (part + 1) * e) : Tensor();
    Tensor y = linear(t, w, b);
    return permute(reshape(y, {t.size(0), t.size(1), num_heads, d}), {0, 2, 1, 3});
  };
  Tensor attn = scaled_dot_product_attention(project(query, 0), project(key, 1), project(value, 2), mask);
  Tensor merged = reshape(permute(attn, {0, 2, 1, 3}), {query.size(0), query.size(1), e});
  return out_proj->forward(merged);
}

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> layers) {
  for (auto& m : layers) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> m) { register_module(std::to_string(size()), std::move(m)); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& [name, child] : children()) h = child->forward(h);
  return h;
}

}  // namespace graft::nn
