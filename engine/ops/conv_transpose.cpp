// conv_transpose2d: the adjoint of conv2d, computed with conv2d's own kernels.
//
// Think of a convolution whose *input* is the transposed convolution's output
// y (N, O, Hout, Wout) and whose *output* is x (N, C, H, W), with the weight
// (C, O/groups, kH, kW) as that convolution's (out, in/groups, kH, kW) weight.
// Then, for conv F(y, w) = x and its data-adjoint B(x, w) (backward-data):
//   forward:       y  = B(x, w)                    conv2d_backward_data
//   dL/dx:         F(g, w)                         conv2d_forward (no bias)
//   dL/dw:         from <g, B(x, w)> = <F(g, w), x>: conv2d_backward_weight
//                  with g as the input and x as the output gradient
//   dL/db:         sum of g over N, Hout, Wout.
// The cropped padding (top/left) is the convolution's padding; the bottom/right
// are chosen so that the convolution's output size is exactly H x W:
// pad_bottom = pads_bottom - output_padding, which may be negative (rows of y
// that no tap reaches: they get the bias only). The kernels index taps by
// pad_top/pad_left and bounds-check each one, so that is well defined.
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/conv.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/conv.h"

namespace graft {

namespace {

std::string describe(const Tensor& x, const Tensor& w, const ConvTranspose2dOptions& o) {
  std::ostringstream os;
  os << "input " << shape_str(x.shape()) << ", weight " << shape_str(w.shape()) << ", stride [" << o.stride[0] << ", "
     << o.stride[1] << "], padding [" << o.padding[0] << ", " << o.padding[1] << ", " << o.padding[2] << ", "
     << o.padding[3] << "], output_padding [" << o.output_padding[0] << ", " << o.output_padding[1] << "], dilation ["
     << o.dilation[0] << ", " << o.dilation[1] << "], groups " << o.groups;
  return os.str();
}

// Validates the arguments; returns the geometry of the convolution whose
// backward-data this op is (its input = our output).
kernels::cpu::Conv2dParams transpose_params(const Tensor& x, const Tensor& w, const Tensor& bias,
                                            const ConvTranspose2dOptions& o) {
  GRAFT_CHECK(x.dim() == 4, "conv_transpose2d: input must be 4-D (N, C, H, W), got " << describe(x, w, o));
  GRAFT_CHECK(w.dim() == 4, "conv_transpose2d: weight must be 4-D (C, O/groups, kH, kW), got " << describe(x, w, o));
  GRAFT_CHECK(o.stride[0] >= 1 && o.stride[1] >= 1, "conv_transpose2d: strides must be >= 1: " << describe(x, w, o));
  GRAFT_CHECK(o.dilation[0] >= 1 && o.dilation[1] >= 1,
              "conv_transpose2d: dilations must be >= 1: " << describe(x, w, o));
  GRAFT_CHECK(o.padding[0] >= 0 && o.padding[1] >= 0 && o.padding[2] >= 0 && o.padding[3] >= 0,
              "conv_transpose2d: padding must be >= 0: " << describe(x, w, o));
  GRAFT_CHECK(o.output_padding[0] >= 0 && o.output_padding[1] >= 0,
              "conv_transpose2d: output_padding must be >= 0: " << describe(x, w, o));
  GRAFT_CHECK(o.groups >= 1, "conv_transpose2d: groups must be >= 1: " << describe(x, w, o));
  const int64_t C = x.size(1);
  GRAFT_CHECK(w.size(0) == C, "conv_transpose2d: weight has " << w.size(0) << " input channels, the input has " << C
                                                              << ": " << describe(x, w, o));
  GRAFT_CHECK(C >= 1 && w.size(1) >= 1 && w.size(2) >= 1 && w.size(3) >= 1,
              "conv_transpose2d: channels and kernel sizes must be positive: " << describe(x, w, o));
  GRAFT_CHECK(C % o.groups == 0,
              "conv_transpose2d: input channels " << C << " are not divisible by groups: " << describe(x, w, o));
  const int64_t O = w.size(1) * o.groups;
  kernels::cpu::Conv2dParams p;
  p.n = x.size(0);
  p.o = C;  // the convolution's output = our input
  p.c = O;
  p.kh = w.size(2);
  p.kw = w.size(3);
  p.stride_h = o.stride[0];
  p.stride_w = o.stride[1];
  p.dilation_h = o.dilation[0];
  p.dilation_w = o.dilation[1];
  p.groups = o.groups;
  p.h = (x.size(2) - 1) * p.stride_h - o.padding[0] - o.padding[2] + p.dilation_h * (p.kh - 1) + 1 + o.output_padding[0];
  p.w = (x.size(3) - 1) * p.stride_w - o.padding[1] - o.padding[3] + p.dilation_w * (p.kw - 1) + 1 + o.output_padding[1];
  p.pad_top = o.padding[0];
  p.pad_left = o.padding[1];
  p.pad_bottom = o.padding[2] - o.output_padding[0];
  p.pad_right = o.padding[3] - o.output_padding[1];
  GRAFT_CHECK(x.size(2) >= 1 && x.size(3) >= 1,
              "conv_transpose2d: input height and width must be positive: " << describe(x, w, o));
  GRAFT_CHECK(p.h >= 1 && p.w >= 1, "conv_transpose2d: the padding crops the whole output (output would be "
                                        << p.h << " x " << p.w << "): " << describe(x, w, o));
  if (bias.defined())
    GRAFT_CHECK(bias.dim() == 1 && bias.size(0) == O,
                "conv_transpose2d: bias must be 1-D with " << O << " elements (one per output channel), got "
                                                           << shape_str(bias.shape()) << "; " << describe(x, w, o));
  return p;
}

// db[o] = sum of g over all pixels; g is NHWC with p.c channels.
void bias_gradient(const kernels::cpu::Conv2dParams& p, const float* g, float* db) {
  std::vector<double> acc(static_cast<size_t>(p.c), 0.0);
  const int64_t pixels = p.n * p.h * p.w;
  for (int64_t i = 0; i < pixels; ++i)
    for (int64_t c = 0; c < p.c; ++c) acc[c] += g[i * p.c + c];
  for (int64_t c = 0; c < p.c; ++c) db[c] = static_cast<float>(acc[c]);
}

}  // namespace

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvTranspose2dOptions& opt) {
  ops::check_supported(ops::OpId::conv_transpose2d, {&x, &weight, &bias});
  const kernels::cpu::Conv2dParams p = transpose_params(x, weight, bias, opt);

  Tensor xc = x.to_format(MemoryFormat::channels_last);
  Tensor wc = weight.to_format(MemoryFormat::channels_last);  // memory C, kH, kW, O/groups: the conv's packing
  Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = Tensor::empty({p.n, p.c, p.h, p.w}, DType::f32, x.device(), MemoryFormat::channels_last);
  if (out.numel() > 0) {
    if (xc.numel() == 0) out.zero_();
    else kernels::cpu::conv2d_backward_data(p, xc.data<float>(), wc.data<float>(), out.data<float>());
    if (bc.defined()) {
      const float* b = bc.data<float>();
      float* y = out.data<float>();
      const int64_t pixels = p.n * p.h * p.w;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < pixels; ++i)
        for (int64_t c = 0; c < p.c; ++c) y[i * p.c + c] += b[c];
    }
  }

  if (autograd::needs_grad({&xc, &wc, &bc})) {
    autograd::Saved saved_x(wc.requires_grad() ? xc : Tensor(), "conv_transpose2d");
    autograd::Saved saved_w(xc.requires_grad() ? wc : Tensor(), "conv_transpose2d");
    const Shape x_shape = x.shape(), w_shape = weight.shape();
    autograd::record("conv_transpose2d", out, {xc, wc, bc},
                     [p, saved_x, saved_w, x_shape, w_shape](const Tensor& g, const autograd::NeedsGrad& needs) {
                       std::vector<Tensor> grads(3);
                       const Tensor gc = g.to_format(MemoryFormat::channels_last);
                       const float* dy = gc.data<float>();
                       const bool empty = gc.numel() == 0 || shape_numel(x_shape) == 0;
                       if (needs[0]) {
                         Tensor dx = Tensor::empty(x_shape, DType::f32, gc.device(), MemoryFormat::channels_last);
                         if (empty) dx.zero_();
                         else kernels::cpu::conv2d_forward(p, dy, saved_w.get().data<float>(), nullptr, dx.data<float>());
                         grads[0] = dx;
                       }
                       if (needs[1]) {
                         Tensor dw = Tensor::empty(w_shape, DType::f32, gc.device(), MemoryFormat::channels_last);
                         if (empty) dw.zero_();
                         else kernels::cpu::conv2d_backward_weight(p, dy, saved_x.get().data<float>(), dw.data<float>());
                         grads[1] = dw;
                       }
                       if (needs[2]) {
                         Tensor db = Tensor::empty({p.c}, DType::f32, gc.device());
                         if (gc.numel() == 0) db.zero_();
                         else bias_gradient(p, dy, db.data<float>());
                         grads[2] = db;
                       }
                       return grads;
                     });
  }
  return out;
}

}  // namespace graft
