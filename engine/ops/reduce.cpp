#include "engine/ops/reduce.h"

#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/layout.h"
#include "engine/ops/registry.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"

namespace graft {

namespace kc = kernels::cpu;
using ops::OpId;

namespace {

std::string dims_str(const std::vector<int64_t>& dims) { return shape_str(dims); }

// Which dims are reduced (all of them for an empty list).
std::vector<bool> reduce_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  const int64_t n = x.dim();
  std::vector<bool> mask(n, dims.empty());
  for (int64_t d : dims) {
    GRAFT_CHECK(d >= -n && d < n, op << ": dim " << d << " is out of range for shape " << shape_str(x.shape())
                                     << " (dims " << dims_str(dims) << ")");
    const int64_t dd = d < 0 ? d + n : d;
    GRAFT_CHECK(!mask[dd], op << ": dim " << d << " appears twice in dims " << dims_str(dims) << " for shape "
                              << shape_str(x.shape()));
    mask[dd] = true;
  }
  return mask;
}

Tensor reduce(OpId id, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool average) {
  const char* name = ops::op_name(id);
  GRAFT_CHECK(x.defined(), name << ": undefined input");
  ops::check_supported(id, {&x});
  const std::vector<bool> mask = reduce_mask(x, dims, name);
  Shape out_shape;
  int64_t count = 1;
  kc::ReduceParams p;
  p.ndim = static_cast<int>(x.dim());
  for (int64_t d = 0; d < x.dim(); ++d) {
    p.size[d] = x.shape()[d];
    p.stride[d] = x.strides()[d];
    p.reduce[d] = mask[d];
    if (mask[d]) count *= x.shape()[d];
    if (!mask[d]) out_shape.push_back(x.shape()[d]);
    else if (keepdim) out_shape.push_back(1);
  }
  p.scale = average ? static_cast<float>(1.0 / static_cast<double>(count)) : 1.f;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (x.device().is_cuda()) {
    // The kernel accumulates and writes f32; a 16-bit input gets its result
    // rounded back to its dtype once, at the end.
    Tensor acc = x.dtype() == DType::f32 ? out : Tensor::empty(out_shape, DType::f32, x.device());
    cuda::launch(name, x.device(), [&](cudaStream_t s) {
      const size_t ws = kernels::cuda::sum_workspace_bytes(p);
      const Tensor work = ws > 0 ? Tensor::empty({static_cast<int64_t>(ws)}, DType::u8, x.device()) : Tensor();
      kernels::cuda::sum_forward(p, cuda::kernel_dtype(x.dtype(), name), x.raw_data(), acc.data<float>(),
                                 work.defined() ? work.raw_data() : nullptr, ws, s);
    });
    if (!acc.same(out)) copy_tensor(out, acc);
  } else {
    kc::sum_forward(p, x.data<float>(), out.data<float>());
  }

  if (autograd::needs_grad({&x})) {
    // Backward: g broadcast back over the reduced dims (times 1/count for a
    // mean), in x's layout when x is dense.
    const float scale = p.scale;
    autograd::record(name, out, {x},
                     [mask, scale, keepdim, xs = x.shape(), st = ops::dense_strides_like(x.shape(), x)](
                         const Tensor& g, const autograd::NeedsGrad&) {
                       // gx = g * scale with g read through stride 0 on the reduced dims.
                       Tensor gx = Tensor::empty_strided(xs, st, g.dtype(), g.device());
                       if (g.device().is_cuda()) {
                         // A broadcasting copy, then the scale in place (dense gx).
                         Strides gst(xs.size(), 0);
                         for (size_t d = 0, k = 0; d < xs.size(); ++d) {
                           if (!mask[d]) gst[d] = g.strides()[k];
                           if (!mask[d] || keepdim) ++k;
                         }
                         copy_tensor(gx, ops::make_view(g, xs, gst, g.offset()));
                         if (scale != 1.f && gx.numel() > 0)
                           ops::unary_forward_any("mean backward", {kc::UnaryOp::mul_scalar, scale, 0.f}, gx, gx);
                         return std::vector<Tensor>{gx};
                       }
                       kernels::StridedIter<3> it;
                       it.ndim = static_cast<int>(xs.size());
                       for (int d = 0, k = 0; d < it.ndim; ++d) {
                         it.size[d] = xs[d];
                         it.stride[0][d] = st[d];
                         it.stride[1][d] = mask[d] ? 0 : g.strides()[k];
                         it.stride[2][d] = 0;
                         if (!mask[d] || keepdim) ++k;
                       }
                       kc::binary_forward(kc::BinaryOp::mul, it, gx.data<float>(), g.data<float>(), &scale);
                       return std::vector<Tensor>{gx};
                     });
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce(OpId::sum, x, dims, keepdim, false);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce(OpId::mean, x, dims, keepdim, true);
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  GRAFT_CHECK(x.defined(), "sum_to: undefined input");
  if (x.shape() == shape) return x;
  const int64_t n = x.dim(), k = static_cast<int64_t>(shape.size()), lead = n - k;
  bool ok = lead >= 0;
  std::vector<int64_t> dims;
  for (int64_t d = 0; ok && d < n; ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else {
      const int64_t want = shape[d - lead];
      if (want == 1 && x.shape()[d] != 1) dims.push_back(d);
      else ok = want == x.shape()[d];
    }
  }
  GRAFT_CHECK(ok, "sum_to: cannot sum " << shape_str(x.shape()) << " down to " << shape_str(shape)
                                        << " (it must be a shape that broadcasts to it)");
  if (dims.empty()) return reshape(x, shape);  // only leading 1s differ
  Tensor s = sum(x, dims, /*keepdim=*/true);
  return lead > 0 ? reshape(s, shape) : s;
}

}  // namespace graft
