#include "engine/ops/softmax.h"

#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cuda/softmax.h"

namespace graft {

namespace {

// The kernel wants the axis as (outer, axis_len, inner) of dense memory. A
// row-major tensor is that directly; a channels-last 4-D tensor is too once
// its dimensions are taken in memory order (N, H, W, C), so it is used as is
// (softmax over channels is then a row kernel) and the output keeps its layout.
struct AxisLayout {
  MemoryFormat format = MemoryFormat::contiguous;
  kernels::cpu::SoftmaxParams params;
};

AxisLayout axis_layout(const Tensor& x, int64_t axis) {
  AxisLayout l;
  const bool cl = !x.is_contiguous() && x.is_channels_last();
  l.format = cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  std::vector<int64_t> order(x.shape().size());
  for (size_t d = 0; d < order.size(); ++d) order[d] = static_cast<int64_t>(d);
  if (cl) order = {0, 2, 3, 1};
  bool before = true;
  l.params.outer = l.params.axis_len = l.params.inner = 1;
  for (int64_t d : order) {
    if (d == axis) {
      l.params.axis_len = x.shape()[d];
      before = false;
    } else if (before) {
      l.params.outer *= x.shape()[d];
    } else {
      l.params.inner *= x.shape()[d];
    }
  }
  return l;
}

Tensor as_format(const Tensor& t, MemoryFormat f) {
  return f == MemoryFormat::channels_last ? t.to_format(MemoryFormat::channels_last) : t.contiguous();
}

Tensor softmax_impl(ops::OpId id, const Tensor& x_in, int64_t axis, bool log) {
  const char* name = ops::op_name(id);
  GRAFT_CHECK(x_in.defined(), name << ": the input is an undefined tensor");
  ops::check_supported(id, {&x_in});
  const int64_t nd = x_in.dim();
  const int64_t rank = nd == 0 ? 1 : nd;  // a 0-d tensor has the one axis 0 (or -1), as in PyTorch
  GRAFT_CHECK(axis >= -rank && axis < rank,
              name << ": axis " << axis << " is out of range for input " << shape_str(x_in.shape()) << " (valid: ["
                   << -rank << ", " << rank - 1 << "])");
  if (axis < 0) axis += rank;

  const bool keep_cl = !x_in.is_contiguous() && x_in.is_channels_last();
  const Tensor x = keep_cl ? x_in : x_in.contiguous();
  AxisLayout l = nd == 0 ? AxisLayout{} : axis_layout(x, axis);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device(), l.format);
  if (x.device().is_cuda()) {
    if (x.numel() > 0)
      cuda::launch(name, x.device(), [&](cudaStream_t s) {
        const auto dt = cuda::kernel_dtype(x.dtype(), name);
        if (log) kernels::cuda::log_softmax_forward(x.raw_data(), y.raw_data(), l.params, dt, s);
        else kernels::cuda::softmax_forward(x.raw_data(), y.raw_data(), l.params, dt, s);
      });
  } else if (log) {
    kernels::cpu::log_softmax_forward(x.data<float>(), y.data<float>(), l.params);
  } else {
    kernels::cpu::softmax_forward(x.data<float>(), y.data<float>(), l.params);
  }

  if (autograd::needs_grad({&x})) {
    // Both backwards need only the output, so the input is not kept alive.
    autograd::Saved saved_y(y, name);
    autograd::record(name, y, {x}, [saved_y, l, log, id, name](const Tensor& g, const autograd::NeedsGrad&) {
      const Tensor yv = saved_y.get();
      const Tensor gv = as_format(g, l.format);
      Tensor dx = Tensor::empty(yv.shape(), yv.dtype(), yv.device(), l.format);
      if (yv.device().is_cuda()) {
        ops::check_same_dtype(id, {&yv, &gv});
        if (dx.numel() > 0)
          cuda::launch(name, yv.device(), [&](cudaStream_t s) {
            const auto dt = cuda::kernel_dtype(yv.dtype(), name);
            if (log) kernels::cuda::log_softmax_backward(yv.raw_data(), gv.raw_data(), dx.raw_data(), l.params, dt, s);
            else kernels::cuda::softmax_backward(yv.raw_data(), gv.raw_data(), dx.raw_data(), l.params, dt, s);
          });
      } else if (log) {
        kernels::cpu::log_softmax_backward(yv.data<float>(), gv.data<float>(), dx.data<float>(), l.params);
      } else {
        kernels::cpu::softmax_backward(yv.data<float>(), gv.data<float>(), dx.data<float>(), l.params);
      }
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t axis) { return softmax_impl(ops::OpId::softmax, x, axis, false); }
Tensor log_softmax(const Tensor& x, int64_t axis) { return softmax_impl(ops::OpId::log_softmax, x, axis, true); }

}  // namespace graft
