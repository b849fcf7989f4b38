#include "engine/ops/conv.h"

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/reduce.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/depthwise.h"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/depthwise.h"

namespace graft {

namespace {

std::string describe(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  std::ostringstream os;
  os << "input " << shape_str(x.shape()) << ", weight " << shape_str(w.shape()) << ", stride [" << o.stride[0] << ", "
     << o.stride[1] << "], padding [" << o.padding[0] << ", " << o.padding[1] << ", " << o.padding[2] << ", "
     << o.padding[3] << "], dilation [" << o.dilation[0] << ", " << o.dilation[1] << "], groups " << o.groups;
  return os.str();
}

// Validates the arguments and returns the kernels' geometry.
kernels::cpu::Conv2dParams conv2d_params(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& o) {
  GRAFT_CHECK(x.dim() == 4, "conv2d: input must be 4-D (N, C, H, W), got " << describe(x, w, o));
  GRAFT_CHECK(w.dim() == 4, "conv2d: weight must be 4-D (O, C/groups, kH, kW), got " << describe(x, w, o));
  GRAFT_CHECK(o.stride[0] >= 1 && o.stride[1] >= 1, "conv2d: strides must be >= 1: " << describe(x, w, o));
  GRAFT_CHECK(o.dilation[0] >= 1 && o.dilation[1] >= 1, "conv2d: dilations must be >= 1: " << describe(x, w, o));
  GRAFT_CHECK(o.padding[0] >= 0 && o.padding[1] >= 0 && o.padding[2] >= 0 && o.padding[3] >= 0,
              "conv2d: padding must be >= 0: " << describe(x, w, o));
  GRAFT_CHECK(o.groups >= 1, "conv2d: groups must be >= 1: " << describe(x, w, o));
  const int64_t C = x.size(1), O = w.size(0);
  GRAFT_CHECK(C >= 1 && O >= 1 && w.size(2) >= 1 && w.size(3) >= 1,
              "conv2d: channels and kernel sizes must be positive: " << describe(x, w, o));
  GRAFT_CHECK(C % o.groups == 0, "conv2d: input channels " << C << " are not divisible by groups: " << describe(x, w, o));
  GRAFT_CHECK(O % o.groups == 0,
              "conv2d: output channels " << O << " are not divisible by groups: " << describe(x, w, o));
  GRAFT_CHECK(w.size(1) == C / o.groups, "conv2d: weight has " << w.size(1) << " input channels per group, expected C/groups = "
                                                               << C / o.groups << ": " << describe(x, w, o));
  kernels::cpu::Conv2dParams p;
  p.n = x.size(0);
  p.c = C;
  p.h = x.size(2);
  p.w = x.size(3);
  p.o = O;
  p.kh = w.size(2);
  p.kw = w.size(3);
  p.stride_h = o.stride[0];
  p.stride_w = o.stride[1];
  p.pad_top = o.padding[0];
  p.pad_left = o.padding[1];
  p.pad_bottom = o.padding[2];
  p.pad_right = o.padding[3];
  p.dilation_h = o.dilation[0];
  p.dilation_w = o.dilation[1];
  p.groups = o.groups;
  GRAFT_CHECK(p.h + p.pad_top + p.pad_bottom >= p.dilation_h * (p.kh - 1) + 1 &&
                  p.w + p.pad_left + p.pad_right >= p.dilation_w * (p.kw - 1) + 1,
              "conv2d: the (dilated) kernel is larger than the padded input, so the output would be empty: "
                  << describe(x, w, o));
  if (bias.defined())
    GRAFT_CHECK(bias.dim() == 1 && bias.size(0) == O,
                "conv2d: bias must be 1-D with " << O << " elements (one per output channel), got "
                                                 << shape_str(bias.shape()) << "; " << describe(x, w, o));
  return p;
}

// ---- CUDA: the implicit-GEMM and depthwise kernels (kernels/cuda/conv.h, depthwise.h) ----
// x, w, y and the gradients share one dtype (f32 runs on TF32 tensor cores,
// bf16/f16 on f16-class tensor cores, f32 accumulation); the bias enters the
// forward epilogue as f32.
void forward_cuda(const kernels::cpu::Conv2dParams& p, bool depthwise, const Tensor& x, const Tensor& w,
                  const Tensor& bias, const Tensor& y) {
  const Tensor b32 = bias.defined() ? bias.detach().to(DType::f32).contiguous() : Tensor();
  const float* shift = b32.defined() ? static_cast<const float*>(b32.raw_data()) : nullptr;
  cuda::launch("conv2d", x.device(), [&](cudaStream_t s) {
    const auto dt = cuda::kernel_dtype(x.dtype(), "conv2d");
    if (depthwise) {
      kernels::cuda::DwEpilogue ep;
      ep.shift = shift;
      kernels::cuda::depthwise_conv2d_forward(x.raw_data(), w.raw_data(), y.raw_data(), dt, p, ep, s);
    } else {
      kernels::cuda::ConvEpilogue ep;
      ep.shift = shift;
      kernels::cuda::conv2d_forward(p, x.raw_data(), w.raw_data(), y.raw_data(), dt, ep, s);
    }
  });
}

void backward_data_cuda(const kernels::cpu::Conv2dParams& p, bool depthwise, const Tensor& dy, const Tensor& w,
                        const Tensor& dx) {
  cuda::launch("conv2d backward", dy.device(), [&](cudaStream_t s) {
    const auto dt = cuda::kernel_dtype(dy.dtype(), "conv2d backward");
    if (depthwise) kernels::cuda::depthwise_conv2d_backward_data(dy.raw_data(), w.raw_data(), dx.raw_data(), dt, p, s);
    else kernels::cuda::conv2d_backward_data(p, dy.raw_data(), w.raw_data(), dx.raw_data(), dt, s);
  });
}

void backward_weight_cuda(const kernels::cpu::Conv2dParams& p, bool depthwise, const Tensor& x, const Tensor& dy,
                          const Tensor& dw) {
  cuda::launch("conv2d backward", dy.device(), [&](cudaStream_t s) {
    const auto dt = cuda::kernel_dtype(dy.dtype(), "conv2d backward");
    if (depthwise) kernels::cuda::depthwise_conv2d_backward_weight(x.raw_data(), dy.raw_data(), dw.raw_data(), dt, p, s);
    else kernels::cuda::conv2d_backward_weight(p, x.raw_data(), dy.raw_data(), dw.raw_data(), dt, s);
  });
}

}  // namespace

// The kernels want NHWC activations and O, kH, kW, C/groups weights: both are
// the channels-last memory of the logical NCHW / (O, C/groups, kH, kW)
// tensors, so to_format does the packing (a no-op for weights stored packed,
// as the importer stores them; differentiable otherwise). A depthwise weight
// (C, 1, kH, kW) has the same memory in both formats.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  ops::check_supported(ops::OpId::conv2d, {&x, &weight, &bias});
  const bool on_cuda = x.device().is_cuda();
  if (on_cuda) ops::check_same_dtype(ops::OpId::conv2d, {&x, &weight});
  const kernels::cpu::Conv2dParams p = conv2d_params(x, weight, bias, opt);
  const bool depthwise = kernels::cpu::is_depthwise(p);
  const DType dt = x.dtype();  // f32 on the CPU (check_supported)

  Tensor xc = x.to_format(MemoryFormat::channels_last);
  Tensor wc = weight.to_format(MemoryFormat::channels_last);
  Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = Tensor::empty({p.n, p.o, p.out_h(), p.out_w()}, dt, x.device(), MemoryFormat::channels_last);
  if (out.numel() > 0 && on_cuda) {
    forward_cuda(p, depthwise, xc, wc, bc, out);
  } else if (out.numel() > 0) {
    const float* b = bc.defined() ? bc.data<float>() : nullptr;
    if (depthwise) kernels::cpu::depthwise_conv2d_forward(p, xc.data<float>(), wc.data<float>(), b, out.data<float>());
    else kernels::cpu::conv2d_forward(p, xc.data<float>(), wc.data<float>(), b, out.data<float>());
  }

  if (autograd::needs_grad({&xc, &wc, &bc})) {
    // x is needed only for the weight gradient, the weight only for the data
    // gradient: a frozen layer keeps no activation alive.
    autograd::Saved saved_x(wc.requires_grad() ? xc : Tensor(), "conv2d");
    autograd::Saved saved_w(xc.requires_grad() ? wc : Tensor(), "conv2d");
    const Shape x_shape = x.shape(), w_shape = weight.shape();
    const DType bias_dt = bc.defined() ? bc.dtype() : dt;
    autograd::record("conv2d", out, {xc, wc, bc},
                     [p, depthwise, saved_x, saved_w, x_shape, w_shape, dt, bias_dt](const Tensor& g,
                                                                                    const autograd::NeedsGrad& needs) {
                       std::vector<Tensor> grads(3);
                       const Tensor gc = g.to(dt).to_format(MemoryFormat::channels_last);
                       const bool empty = gc.numel() == 0;
                       if (gc.device().is_cuda()) {
                         if (needs[0]) {
                           Tensor dx = Tensor::empty(x_shape, dt, gc.device(), MemoryFormat::channels_last);
                           if (empty) dx.zero_();
                           else backward_data_cuda(p, depthwise, gc, saved_w.get(), dx);
                           grads[0] = dx;
                         }
                         if (needs[1]) {
                           Tensor dw = Tensor::empty(w_shape, dt, gc.device(), MemoryFormat::channels_last);
                           if (empty) dw.zero_();
                           else backward_weight_cuda(p, depthwise, saved_x.get(), gc, dw);
                           grads[1] = dw;
                         }
                         // The bias gradient: dy summed over N, H, W (the reduce kernels, f32).
                         // Summed in the bias's dtype (an f32 bias of a bf16 layer gets an f32 sum).
                         if (needs[2]) grads[2] = sum(gc.to(bias_dt), {0, 2, 3});
                         return grads;
                       }
                       const float* dy = gc.data<float>();
                       if (needs[0]) {
                         Tensor dx = Tensor::empty(x_shape, DType::f32, gc.device(), MemoryFormat::channels_last);
                         if (empty) dx.zero_();
                         else if (depthwise)
                           kernels::cpu::depthwise_conv2d_backward_data(p, dy, saved_w.get().data<float>(), dx.data<float>());
                         else kernels::cpu::conv2d_backward_data(p, dy, saved_w.get().data<float>(), dx.data<float>());
                         grads[0] = dx;
                       }
                       if (needs[1]) {
                         Tensor dw = Tensor::empty(w_shape, DType::f32, gc.device(), MemoryFormat::channels_last);
                         if (empty) dw.zero_();
                         else if (depthwise)
                           kernels::cpu::depthwise_conv2d_backward_weight(p, saved_x.get().data<float>(), dy, dw.data<float>());
                         else kernels::cpu::conv2d_backward_weight(p, saved_x.get().data<float>(), dy, dw.data<float>());
                         grads[1] = dw;
                       }
                       if (needs[2]) {
                         Tensor db = Tensor::empty({p.o}, DType::f32, gc.device());
                         if (empty) db.zero_();
                         else kernels::cpu::conv2d_backward_bias(p, dy, db.data<float>());
                         grads[2] = db;
                       }
                       return grads;
                     });
  }
  return out;
}

}  // namespace graft
