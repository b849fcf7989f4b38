// gather (ONNX Gather / numpy.take along one axis): forward and backward.
#include <string>

#include "engine/autograd/node.h"
#include "engine/ops/registry.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/gather.h"

namespace graft {

using autograd::NeedsGrad;

Tensor gather(const Tensor& x, const Tensor& indices, int64_t axis) {
  GRAFT_CHECK(x.defined() && indices.defined(), "gather: undefined input");
  ops::check_same_device(ops::OpId::gather, {&x, &indices});
  if (is_floating(x.dtype())) ops::check_supported(ops::OpId::gather, {&x});
  else GRAFT_CHECK(x.device().is_cpu(), "gather: " << x.str() << " is not supported (integer tensors: cpu only)");
  GRAFT_CHECK(indices.dtype() == DType::i64 || indices.dtype() == DType::i32,
              "gather: indices must be i64 or i32, got " << indices.str());
  GRAFT_CHECK(indices.device().is_cpu(), "gather: indices must be on the cpu, got " << indices.str());
  const int64_t n = x.dim();
  GRAFT_CHECK(n > 0, "gather: cannot gather from a zero-dimensional tensor " << x.str());
  GRAFT_CHECK(axis >= -n && axis < n, "gather: axis " << axis << " is out of range for shape " << shape_str(x.shape()));
  const int64_t a = axis < 0 ? axis + n : axis;

  kernels::cpu::GatherParams p;
  p.axis_size = x.shape()[a];
  p.num_indices = indices.numel();
  for (int64_t d = 0; d < a; ++d) p.outer *= x.shape()[d];
  for (int64_t d = a + 1; d < n; ++d) p.inner *= x.shape()[d];
  std::vector<int64_t> idx = indices.to_vector_i64();
  for (int64_t& i : idx) {
    GRAFT_CHECK(i >= -p.axis_size && i < p.axis_size, "gather: index " << i << " is out of range for axis " << axis
                                                                       << " of size " << p.axis_size << " (shape "
                                                                       << shape_str(x.shape()) << ")");
    if (i < 0) i += p.axis_size;
  }

  Shape shape(x.shape().begin(), x.shape().begin() + a);
  shape.insert(shape.end(), indices.shape().begin(), indices.shape().end());
  shape.insert(shape.end(), x.shape().begin() + a + 1, x.shape().end());
  const Tensor xc = x.contiguous();  // differentiable
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.numel() > 0) kernels::cpu::gather_forward(xc.raw_data(), idx.data(), out.raw_data(), p, dtype_size(x.dtype()));

  if (autograd::needs_grad({&xc}))
    autograd::record("gather", out, {xc}, [p, idx, xs = xc.shape()](const Tensor& g, const NeedsGrad&) {
      const Tensor gc = g.contiguous();
      Tensor gx = Tensor::zeros(xs, gc.dtype(), gc.device());
      if (gc.numel() > 0) kernels::cpu::gather_backward(gc.data<float>(), idx.data(), gx.data<float>(), p);
      return std::vector<Tensor>{gx};
    });
  return out;
}

}  // namespace graft
