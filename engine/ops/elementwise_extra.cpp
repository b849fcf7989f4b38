// erf, pow, where and equal (declared in elementwise.h): the ops the ONNX
// importer needs beyond the core elementwise set. Binary and ternary ops
// broadcast by NumPy rules; outputs keep the layout of an operand that already
// has the output's shape (channels-last in, channels-last out).
#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/layout.h"
#include "engine/ops/reduce.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/elementwise_extra.h"
#include "kernels/cuda/elementwise.h"

namespace graft {

namespace kc = kernels::cpu;
namespace kg = kernels::cuda;
using autograd::NeedsGrad;
using autograd::Saved;
using ops::OpId;

namespace {

void check_defined(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) GRAFT_CHECK(t->defined(), op << ": an operand is an undefined tensor");
}

// The strides of the first of `like` that has `shape` and is dense; row-major
// when none does.
Strides out_strides(const Shape& shape, std::initializer_list<const Tensor*> like) {
  for (const Tensor* t : like)
    if (t->shape() == shape && t->is_dense()) return t->strides();
  return contiguous_strides(shape);
}

// An iterator over out's shape: operand 0 is `out`, then `ins` in order, each
// with stride 0 along the dims it broadcasts over (right-aligned). Tensors
// have at most kMaxDims dims, so the result's rank fits.
template <int N>
kernels::StridedIter<N> broadcast_iter(const Tensor& out, std::initializer_list<const Tensor*> ins) {
  kernels::StridedIter<N> it;
  it.ndim = static_cast<int>(out.dim());
  for (int d = 0; d < it.ndim; ++d) {
    it.size[d] = out.shape()[d];
    it.stride[0][d] = out.strides()[d];
  }
  int k = 1;
  for (const Tensor* t : ins) {
    const int64_t lead = it.ndim - t->dim();
    for (int64_t d = 0; d < it.ndim; ++d)
      it.stride[k][d] = (d < lead || t->shape()[d - lead] == 1) ? 0 : t->strides()[d - lead];
    ++k;
  }
  return it;
}

}  // namespace

// ---- erf ---------------------------------------------------------------------------------

Tensor erf(const Tensor& x_in) {
  check_defined("erf", {&x_in});
  ops::check_supported(OpId::erf, {&x_in});
  const kc::UnaryParams p{kc::UnaryOp::erf, 0.f, 0.f};
  Tensor x = x_in.is_dense() ? x_in : x_in.contiguous();
  Tensor y = Tensor::empty_strided(x.shape(), x.strides(), x.dtype(), x.device());
  if (x.numel() > 0) ops::unary_forward_any("erf", p, x, y);
  if (autograd::needs_grad({&x})) {
    autograd::record("erf", y, {x}, [p, sx = Saved(x, "erf")](const Tensor& g, const NeedsGrad&) {
      const Tensor xs = sx.get();
      const Tensor gy = ops::with_layout_of(g, xs);
      Tensor gx = Tensor::empty_strided(gy.shape(), gy.strides(), gy.dtype(), gy.device());
      if (gx.numel() > 0) ops::unary_backward_any("erf", p, xs, gy, gx);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

// ---- pow ---------------------------------------------------------------------------------

Tensor pow(const Tensor& a, const Tensor& b) {
  check_defined("pow", {&a, &b});
  ops::check_supported(OpId::pow, {&a, &b});
  ops::check_same_dtype(OpId::pow, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "pow");
  Tensor out = Tensor::empty_strided(shape, out_strides(shape, {&a, &b}), a.dtype(), a.device());
  if (out.numel() > 0 && out.device().is_cuda()) {
    cuda::launch("pow", out.device(), [&](cudaStream_t s) {
      kg::pow_forward(cuda::kernel_dtype(out.dtype(), "pow"), broadcast_iter<3>(out, {&a, &b}), out.raw_data(),
                      a.raw_data(), b.raw_data(), s);
    });
  } else if (out.numel() > 0) {
    kc::pow_forward(broadcast_iter<3>(out, {&a, &b}), out.data<float>(), a.data<float>(), b.data<float>());
  }
  if (autograd::needs_grad({&a, &b})) {
    Saved sa(a, "pow"), sb(b, "pow"), so = b.requires_grad() ? Saved(out, "pow") : Saved();
    autograd::record("pow", out, {a, b}, [sa, sb, so, shape](const Tensor& g, const NeedsGrad& needs) {
      const Tensor av = sa.get(), bv = sb.get();
      std::vector<Tensor> grads(2);
      const bool on_gpu = g.device().is_cuda();
      if (on_gpu) ops::check_same_dtype(OpId::pow, {&g, &av, &bv});
      if (needs[0]) {  // b a^(b-1) over the broadcast shape, then summed back to a's shape
        Tensor ga = Tensor::empty(shape, g.dtype(), g.device());
        if (ga.numel() > 0 && on_gpu) {
          cuda::launch("pow backward", g.device(), [&](cudaStream_t s) {
            kg::pow_backward_base(cuda::kernel_dtype(g.dtype(), "pow"), broadcast_iter<4>(ga, {&g, &av, &bv}),
                                  ga.raw_data(), g.raw_data(), av.raw_data(), bv.raw_data(), s);
          });
        } else if (ga.numel() > 0) {
          kc::pow_backward_base(broadcast_iter<4>(ga, {&g, &av, &bv}), ga.data<float>(), g.data<float>(),
                                av.data<float>(), bv.data<float>());
        }
        grads[0] = sum_to(ga, av.shape());
      }
      if (needs[1]) {  // a^b ln a where a > 0, else 0 (see elementwise_extra.h)
        const Tensor y = so.get();
        Tensor gb = Tensor::empty(shape, g.dtype(), g.device());
        if (gb.numel() > 0 && on_gpu) {
          cuda::launch("pow backward", g.device(), [&](cudaStream_t s) {
            kg::pow_backward_exponent(cuda::kernel_dtype(g.dtype(), "pow"), broadcast_iter<4>(gb, {&g, &av, &y}),
                                      gb.raw_data(), g.raw_data(), av.raw_data(), y.raw_data(), s);
          });
        } else if (gb.numel() > 0) {
          kc::pow_backward_exponent(broadcast_iter<4>(gb, {&g, &av, &y}), gb.data<float>(), g.data<float>(),
                                    av.data<float>(), y.data<float>());
        }
        grads[1] = sum_to(gb, bv.shape());
      }
      return grads;
    });
  }
  return out;
}

// ---- where ---------------------------------------------------------------------------------

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", {&cond, &a, &b});
  ops::check_same_device(OpId::where, {&cond, &a, &b});
  ops::check_supported(OpId::where, {&a, &b});
  GRAFT_CHECK(cond.dtype() == DType::boolean || cond.dtype() == DType::u8,
              "where: the condition must be bool or u8, is " << cond.str());
  GRAFT_CHECK(cond.device() == a.device(),
              "where: condition " << cond.str() << " and values " << a.str() << " on different devices");
  ops::check_same_dtype(OpId::where, {&a, &b});
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty_strided(shape, out_strides(shape, {&a, &b}), a.dtype(), a.device());
  if (out.numel() > 0 && out.device().is_cuda()) {
    cuda::launch("where", out.device(), [&](cudaStream_t s) {
      kg::where_forward(cuda::kernel_dtype(out.dtype(), "where"), broadcast_iter<4>(out, {&cond, &a, &b}),
                        out.raw_data(), cond.data<uint8_t>(), a.raw_data(), b.raw_data(), s);
    });
  } else if (out.numel() > 0) {
    kc::where_forward(broadcast_iter<4>(out, {&cond, &a, &b}), out.data<float>(), cond.data<uint8_t>(),
                      a.data<float>(), b.data<float>());
  }
  if (autograd::needs_grad({&a, &b})) {
    autograd::record("where", out, {cond, a, b},
                     [sc = Saved(cond, "where"), sha = a.shape(), shb = b.shape()](const Tensor& g, const NeedsGrad& needs) {
                       const Tensor c = sc.get(), zero = Tensor::zeros({}, g.dtype(), g.device());
                       return std::vector<Tensor>{Tensor(), needs[1] ? sum_to(where(c, g, zero), sha) : Tensor(),
                                                  needs[2] ? sum_to(where(c, zero, g), shb) : Tensor()};
                     });
  }
  return out;
}

// ---- equal ---------------------------------------------------------------------------------

Tensor equal(const Tensor& a, const Tensor& b) {
  check_defined("equal", {&a, &b});
  GRAFT_CHECK(a.dtype() == b.dtype(), "equal: operands of different dtypes, " << a.str() << " and " << b.str());
  GRAFT_CHECK(a.device().is_cpu() && b.device().is_cpu(),
              "equal: " << a.str() << " and " << b.str() << ": only cpu tensors are supported for now");
  const DType t = a.dtype();
  GRAFT_CHECK(t == DType::f32 || t == DType::i64 || t == DType::i32 || t == DType::u8 || t == DType::boolean,
              "equal: " << a.str() << " is not supported (supported: f32, i64, i32, u8, bool)");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "equal");
  Tensor out = Tensor::empty_strided(shape, out_strides(shape, {&a, &b}), DType::boolean, a.device());
  if (out.numel() == 0) return out;
  const auto it = broadcast_iter<3>(out, {&a, &b});
  uint8_t* o = out.data<uint8_t>();
  switch (t) {
    case DType::f32: kc::equal_forward(it, o, a.data<float>(), b.data<float>()); break;
    case DType::i64: kc::equal_forward(it, o, a.data<int64_t>(), b.data<int64_t>()); break;
    case DType::i32: kc::equal_forward(it, o, a.data<int32_t>(), b.data<int32_t>()); break;
    default: kc::equal_forward(it, o, a.data<uint8_t>(), b.data<uint8_t>()); break;  // u8, bool
  }
  return out;
}

}  // namespace graft
