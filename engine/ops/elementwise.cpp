#include "engine/ops/elementwise.h"

#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/layout.h"
#include "engine/ops/reduce.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"

namespace graft {

namespace kc = kernels::cpu;
namespace kg = kernels::cuda;
using autograd::NeedsGrad;
using autograd::Saved;
using ops::OpId;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    GRAFT_CHECK(da == db || da == 1 || db == 1, op << ": shapes " << shape_str(a) << " and " << shape_str(b)
                                                   << " cannot be broadcast together (aligned from the right, "
                                                   << "dimension " << i << " is " << da << " vs " << db << ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

void check_defined(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) GRAFT_CHECK(t->defined(), op << ": an operand is an undefined tensor");
}

// The output layout: that of the first operand (a, then b) that already has
// the output's shape and is dense -- channels-last x + bias (1, C, 1, 1) stays
// channels-last -- otherwise row-major.
Strides binary_out_strides(const Tensor& a, const Tensor& b, const Shape& shape) {
  for (const Tensor* t : {&a, &b})
    if (t->shape() == shape && t->is_dense()) return t->strides();
  return contiguous_strides(shape);
}

// Strides of t along each dim of `out` (right-aligned), 0 where t broadcasts.
void set_operand(kernels::StridedIter<3>& it, int k, const Tensor& t) {
  const int64_t off = it.ndim - t.dim();
  for (int64_t d = 0; d < it.ndim; ++d)
    it.stride[k][d] = (d < off || t.shape()[d - off] == 1) ? 0 : t.strides()[d - off];
}

Tensor binary(OpId id, kc::BinaryOp kop, const Tensor& a, const Tensor& b) {
  const char* name = ops::op_name(id);
  check_defined(name, {&a, &b});
  ops::check_supported(id, {&a, &b});
  ops::check_same_dtype(id, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty_strided(shape, binary_out_strides(a, b, shape), a.dtype(), a.device());
  if (out.numel() == 0) return out;
  const bool on_gpu = out.device().is_cuda();
  if (ops::same_dense_layout(a, b) && ops::same_dense_layout(a, out)) {
    if (on_gpu) {
      cuda::launch(name, out.device(), [&](cudaStream_t s) {
        kg::binary_forward_flat(kop, cuda::kernel_dtype(out.dtype(), name), out.numel(), out.raw_data(), a.raw_data(),
                                b.raw_data(), s);
      });
    } else {
      kc::binary_forward_flat(kop, out.numel(), out.data<float>(), a.data<float>(), b.data<float>());
    }
    return out;
  }
  kernels::StridedIter<3> it;
  it.ndim = static_cast<int>(out.dim());
  for (int d = 0; d < it.ndim; ++d) {
    it.size[d] = shape[d];
    it.stride[0][d] = out.strides()[d];
  }
  set_operand(it, 1, a);
  set_operand(it, 2, b);
  if (on_gpu) {
    cuda::launch(name, out.device(), [&](cudaStream_t s) {
      kg::binary_forward(kop, cuda::kernel_dtype(out.dtype(), name), it, out.raw_data(), a.raw_data(), b.raw_data(), s);
    });
  } else {
    kc::binary_forward(kop, it, out.data<float>(), a.data<float>(), b.data<float>());
  }
  return out;
}

// ---- unary ops: one kernel call over the dense input's memory ---------------------

}  // namespace

namespace ops {

void unary_forward_any(const char* op, const kc::UnaryParams& p, const Tensor& x, const Tensor& y) {
  if (x.device().is_cpu()) return kc::unary_forward(p, x.numel(), x.data<float>(), y.data<float>());
  cuda::launch(op, x.device(), [&](cudaStream_t st) {
    kg::unary_forward(p, cuda::kernel_dtype(x.dtype(), op), x.numel(), x.raw_data(), y.raw_data(), st);
  });
}

void unary_backward_any(const char* op, const kc::UnaryParams& p, const Tensor& saved, const Tensor& gy,
                        const Tensor& gx) {
  if (gy.device().is_cpu())
    return kc::unary_backward(p, gx.numel(), saved.defined() ? saved.data<float>() : nullptr, gy.data<float>(),
                              gx.data<float>());
  GRAFT_CHECK(!saved.defined() || saved.dtype() == gy.dtype(),
              op << " backward: gradient " << gy.str() << " and saved " << saved.str() << " differ in dtype");
  cuda::launch(op, gy.device(), [&](cudaStream_t st) {
    kg::unary_backward(p, cuda::kernel_dtype(gy.dtype(), op), gx.numel(), saved.defined() ? saved.raw_data() : nullptr,
                       gy.raw_data(), gx.raw_data(), st);
  });
}

}  // namespace ops

namespace {

using ops::unary_backward_any;
using ops::unary_forward_any;

struct UnaryResult {
  Tensor x;  // the input as the kernel saw it (dense; a differentiable copy if it was not)
  Tensor y;
};

UnaryResult unary(OpId id, kc::UnaryParams p, const Tensor& x_in) {
  const char* name = ops::op_name(id);
  check_defined(name, {&x_in});
  ops::check_supported(id, {&x_in});
  Tensor x = x_in.is_dense() ? x_in : x_in.contiguous();
  Tensor y = Tensor::empty_strided(x.shape(), x.strides(), x.dtype(), x.device());
  if (x.numel() > 0) unary_forward_any(name, p, x, y);
  return {x, y};
}

// Records the backward of a unary op; it saves x or y as the kernel needs.
void record_unary(OpId id, kc::UnaryParams p, const Tensor& x, Tensor& y) {
  if (!autograd::needs_grad({&x})) return;
  const char* name = ops::op_name(id);
  const kc::UnarySaved what = kc::unary_backward_saves(p.op);
  Saved saved = what == kc::UnarySaved::input ? Saved(x, name) : what == kc::UnarySaved::output ? Saved(y, name) : Saved();
  autograd::record(name, y, {x}, [p, saved, name](const Tensor& g, const NeedsGrad&) {
    const Tensor s = saved.get();
    const Tensor gy = s.defined() ? ops::with_layout_of(g, s) : (g.is_dense() ? g : g.contiguous());
    Tensor gx = Tensor::empty_strided(gy.shape(), gy.strides(), gy.dtype(), gy.device());
    if (gx.numel() > 0) unary_backward_any(name, p, s, gy, gx);
    return std::vector<Tensor>{gx};
  });
}

Tensor unary_op(OpId id, kc::UnaryOp op, const Tensor& x, float alpha = 0.f, float beta = 0.f) {
  const kc::UnaryParams p{op, alpha, beta};
  UnaryResult r = unary(id, p, x);
  record_unary(id, p, r.x, r.y);
  return r.y;
}

}  // namespace

// ---- binary ops --------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary(OpId::add, kc::BinaryOp::add, a, b);
  if (autograd::needs_grad({&a, &b})) {
    autograd::record("add", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const NeedsGrad& needs) {
      return std::vector<Tensor>{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(g, sb) : Tensor()};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary(OpId::sub, kc::BinaryOp::sub, a, b);
  if (autograd::needs_grad({&a, &b})) {
    autograd::record("sub", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const NeedsGrad& needs) {
      return std::vector<Tensor>{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? neg(sum_to(g, sb)) : Tensor()};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary(OpId::mul, kc::BinaryOp::mul, a, b);
  if (autograd::needs_grad({&a, &b})) {
    // Each gradient needs the other operand; save only what will be used.
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    Saved sa = gb ? Saved(a, "mul") : Saved(), sb = ga ? Saved(b, "mul") : Saved();
    autograd::record("mul", out, {a, b},
                     [sa, sb, sha = a.shape(), shb = b.shape()](const Tensor& g, const NeedsGrad& needs) {
                       return std::vector<Tensor>{needs[0] ? sum_to(mul(g, sb.get()), sha) : Tensor(),
                                                  needs[1] ? sum_to(mul(g, sa.get()), shb) : Tensor()};
                     });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary(OpId::div, kc::BinaryOp::div, a, b);
  if (autograd::needs_grad({&a, &b})) {
    // d/da = 1/b; d/db = -a/b^2 = -(a/b)/b = -out/b.
    Saved sb(b, "div"), so = b.requires_grad() ? Saved(out, "div") : Saved();
    autograd::record("div", out, {a, b},
                     [sb, so, sha = a.shape(), shb = b.shape()](const Tensor& g, const NeedsGrad& needs) {
                       const Tensor g_over_b = div(g, sb.get());
                       return std::vector<Tensor>{needs[0] ? sum_to(g_over_b, sha) : Tensor(),
                                                  needs[1] ? neg(sum_to(mul(g_over_b, so.get()), shb)) : Tensor()};
                     });
  }
  return out;
}

// ---- unary ops ------------------------------------------------------------------------

Tensor neg(const Tensor& x) { return unary_op(OpId::neg, kc::UnaryOp::neg, x); }
Tensor add_scalar(const Tensor& x, double s) {
  return unary_op(OpId::add_scalar, kc::UnaryOp::add_scalar, x, static_cast<float>(s));
}
Tensor mul_scalar(const Tensor& x, double s) {
  return unary_op(OpId::mul_scalar, kc::UnaryOp::mul_scalar, x, static_cast<float>(s));
}
Tensor pow_scalar(const Tensor& x, double exponent) {
  return unary_op(OpId::pow_scalar, kc::UnaryOp::pow_scalar, x, static_cast<float>(exponent));
}
Tensor exp(const Tensor& x) { return unary_op(OpId::exp, kc::UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary_op(OpId::log, kc::UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary_op(OpId::sqrt, kc::UnaryOp::sqrt, x); }

Tensor relu(const Tensor& x) { return unary_op(OpId::relu, kc::UnaryOp::relu, x); }
Tensor relu6(const Tensor& x) { return clip(x, 0.0, 6.0); }
Tensor clip(const Tensor& x, double lo, double hi) {
  GRAFT_CHECK(!(lo > hi), "clip: lower bound " << lo << " is above the upper bound " << hi << " (input "
                                               << (x.defined() ? shape_str(x.shape()) : "undefined") << ")");
  return unary_op(OpId::clip, kc::UnaryOp::clip, x, static_cast<float>(lo), static_cast<float>(hi));
}
Tensor sigmoid(const Tensor& x) { return unary_op(OpId::sigmoid, kc::UnaryOp::sigmoid, x); }
Tensor silu(const Tensor& x) { return unary_op(OpId::silu, kc::UnaryOp::silu, x); }
Tensor gelu(const Tensor& x, GeluApprox approx) {
  return unary_op(OpId::gelu, approx == GeluApprox::tanh ? kc::UnaryOp::gelu_tanh : kc::UnaryOp::gelu_erf, x);
}
Tensor hardswish(const Tensor& x) { return unary_op(OpId::hardswish, kc::UnaryOp::hardswish, x); }
Tensor hardsigmoid(const Tensor& x) { return unary_op(OpId::hardsigmoid, kc::UnaryOp::hardsigmoid, x); }
Tensor tanh(const Tensor& x) { return unary_op(OpId::tanh, kc::UnaryOp::tanh, x); }

}  // namespace graft
