// The one list of Graft's differentiable ops, with their names. Each device
// says per op which dtypes it supports (engine/ops/registry.cpp); an op a
// device lacks is a clear error, never a silent wrong path.
//
// X(id, "name")
#pragma once

#define GRAFT_OP_LIST(X)                        \
  /* elementwise and activations */             \
  X(add, "add")                                 \
  X(sub, "sub")                                 \
  X(mul, "mul")                                 \
  X(div, "div")                                 \
  X(neg, "neg")                                 \
  X(add_scalar, "add_scalar")                   \
  X(mul_scalar, "mul_scalar")                   \
  X(pow_scalar, "pow_scalar")                   \
  X(exp, "exp")                                 \
  X(log, "log")                                 \
  X(sqrt, "sqrt")                               \
  X(relu, "relu")                               \
  X(clip, "clip")                               \
  X(sigmoid, "sigmoid")                         \
  X(silu, "silu")                               \
  X(gelu, "gelu")                               \
  X(hardswish, "hardswish")                     \
  X(hardsigmoid, "hardsigmoid")                 \
  X(tanh, "tanh")                               \
  X(erf, "erf")                                 \
  X(pow, "pow")                                 \
  X(where, "where")                             \
  /* reductions */                              \
  X(sum, "sum")                                 \
  X(mean, "mean")                               \
  /* shape */                                   \
  X(reshape, "reshape")                         \
  X(permute, "permute")                         \
  X(concat, "concat")                           \
  X(slice, "slice")                             \
  X(pad, "pad")                                 \
  X(expand, "expand")                           \
  X(gather, "gather")                           \
  /* linear algebra */                          \
  X(matmul, "matmul")                           \
  X(linear, "linear")                           \
  /* convolution and pooling */                 \
  X(conv2d, "conv2d")                           \
  X(conv_transpose2d, "conv_transpose2d")       \
  X(max_pool2d, "max_pool2d")                   \
  X(avg_pool2d, "avg_pool2d")                   \
  X(global_avg_pool2d, "global_avg_pool2d")     \
  /* normalisation */                           \
  X(batch_norm, "batch_norm")                   \
  X(layer_norm, "layer_norm")                   \
  /* softmax, losses, regularisation */         \
  X(softmax, "softmax")                         \
  X(log_softmax, "log_softmax")                 \
  X(cross_entropy, "cross_entropy")             \
  X(dropout, "dropout")                         \
  /* attention */                               \
  X(attention, "attention")
