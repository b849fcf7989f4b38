#include "engine/ops/pool.h"

#include <limits>
#include <sstream>
#include <string>

#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"

namespace graft {

namespace {

namespace kc = kernels::cpu;

std::string options_str(const Pool2dOptions& o) {
  std::ostringstream os;
  os << "kernel " << shape_str({o.kernel[0], o.kernel[1]}) << ", stride " << shape_str({o.stride[0], o.stride[1]})
     << ", padding (top, left, bottom, right) "
     << shape_str({o.padding[0], o.padding[1], o.padding[2], o.padding[3]}) << ", dilation "
     << shape_str({o.dilation[0], o.dilation[1]}) << ", ceil_mode " << (o.ceil_mode ? "true" : "false");
  return os.str();
}

// True when window `o` along one dim holds at least one input position.
bool window_touches_input(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  for (int64_t k = 0; k < kernel; ++k) {
    const int64_t i = o * stride - pad + k * dilation;
    if (i >= 0 && i < in) return true;
  }
  return false;
}

// Validates x and the options and returns the kernel parameters.
kc::Pool2dParams make_params(const char* op, const Tensor& x, const Pool2dOptions& o, bool is_max) {
  GRAFT_CHECK(x.dim() == 4, op << ": expects a 4-D (N, C, H, W) input, got " << shape_str(x.shape()));
  const std::string opts = options_str(o);
  for (int d = 0; d < 2; ++d) {
    GRAFT_CHECK(o.kernel[d] > 0 && o.stride[d] > 0 && o.dilation[d] > 0,
                op << ": kernel, stride and dilation must be positive, got " << opts << " for input "
                   << shape_str(x.shape()));
  }
  // padding[0], [2] pad H (kernel[0]); padding[1], [3] pad W (kernel[1]).
  for (int i = 0; i < 4; ++i) {
    const int64_t k = o.kernel[i % 2];
    GRAFT_CHECK(o.padding[i] >= 0 && o.padding[i] < k,
                op << ": each padding must be in [0, kernel), got " << opts << " for input " << shape_str(x.shape()));
  }
  if (!is_max)
    GRAFT_CHECK(o.dilation[0] == 1 && o.dilation[1] == 1,
                op << ": dilation is supported by max pooling only, got " << opts << " for input "
                   << shape_str(x.shape()));

  kc::Pool2dParams p;
  p.n = x.size(0);
  p.c = x.size(1);
  p.h = x.size(2);
  p.w = x.size(3);
  p.kernel_h = o.kernel[0];
  p.kernel_w = o.kernel[1];
  p.stride_h = o.stride[0];
  p.stride_w = o.stride[1];
  p.pad_top = o.padding[0];
  p.pad_left = o.padding[1];
  p.pad_bottom = o.padding[2];
  p.pad_right = o.padding[3];
  p.dilation_h = is_max ? o.dilation[0] : 1;
  p.dilation_w = is_max ? o.dilation[1] : 1;
  p.count_include_pad = o.count_include_pad;
  p.out_h = kc::pool_output_size(p.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, p.dilation_h, o.ceil_mode);
  p.out_w = kc::pool_output_size(p.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, p.dilation_w, o.ceil_mode);
  GRAFT_CHECK(p.out_h > 0 && p.out_w > 0, op << ": input " << shape_str(x.shape()) << " is too small for " << opts
                                             << " (output would be " << p.out_h << " x " << p.out_w << ")");
  if (is_max) {
    GRAFT_CHECK(p.h * p.w <= std::numeric_limits<int32_t>::max(),
                op << ": input " << shape_str(x.shape()) << " has more than 2^31 positions per plane");
    // With dilation a window can fall wholly into padding; its maximum would be -inf.
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      GRAFT_CHECK(window_touches_input(oh, p.h, p.kernel_h, p.stride_h, p.pad_top, p.dilation_h),
                  op << ": output row " << oh << " would pool padding only, for input " << shape_str(x.shape())
                     << " and " << opts);
    for (int64_t ow = 0; ow < p.out_w; ++ow)
      GRAFT_CHECK(window_touches_input(ow, p.w, p.kernel_w, p.stride_w, p.pad_left, p.dilation_w),
                  op << ": output column " << ow << " would pool padding only, for input " << shape_str(x.shape())
                     << " and " << opts);
  }
  return p;
}

// x as NHWC memory. The detach keeps the layout copy off the tape: the op
// records its own node on x and returns x's gradient directly.
Tensor channels_last_input(const Tensor& x) { return x.detach().to_format(MemoryFormat::channels_last); }

// The incoming gradient as NHWC memory of the forward's dtype (the CUDA kernels take one dtype).
Tensor channels_last_grad(const char* op, const Tensor& g, DType dtype) {
  GRAFT_CHECK(g.dtype() == dtype, op << " backward: gradient " << g.str() << " differs in dtype from the input ("
                                     << dtype_name(dtype) << ")");
  return g.to_format(MemoryFormat::channels_last);
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  ops::check_supported(ops::OpId::max_pool2d, {&x});
  const kc::Pool2dParams p = make_params("max_pool2d", x, opt, /*is_max=*/true);
  const Tensor xc = channels_last_input(x);
  const Shape out_shape{p.n, p.c, p.out_h, p.out_w};
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device(), MemoryFormat::channels_last);
  const bool grad = autograd::needs_grad({&x});
  // The argmax indices (int32, a quarter of the input for 2x2/2) are kept
  // rather than x: the backward then needs no comparisons, cannot disagree
  // with the forward on ties, and does not hold the input alive.
  Tensor argmax;
  if (grad) argmax = Tensor::empty(out_shape, DType::i32, x.device(), MemoryFormat::channels_last);
  if (y.numel() > 0 && x.device().is_cuda()) {
    cuda::launch("max_pool2d", x.device(), [&](cudaStream_t s) {
      kernels::cuda::max_pool2d_forward(xc.raw_data(), y.raw_data(), grad ? argmax.data<int32_t>() : nullptr,
                                        cuda::kernel_dtype(x.dtype(), "max_pool2d"), p, s);
    });
  } else if (y.numel() > 0) {
    kc::max_pool2d_forward(xc.data<float>(), y.data<float>(), grad ? argmax.data<int32_t>() : nullptr, p);
  }
  if (grad) {
    autograd::record("max_pool2d", y, {x}, [p, argmax, in_shape = x.shape(), dev = x.device(), dtype = x.dtype()](
                                              const Tensor& g, const autograd::NeedsGrad&) {
      const Tensor gc = channels_last_grad("max_pool2d", g, dtype);
      Tensor gx = Tensor::empty(in_shape, dtype, dev, MemoryFormat::channels_last);
      if (gx.numel() > 0 && dev.is_cuda()) {
        cuda::launch("max_pool2d backward", dev, [&](cudaStream_t s) {
          kernels::cuda::max_pool2d_backward(gc.raw_data(), argmax.data<int32_t>(), gx.raw_data(),
                                             cuda::kernel_dtype(dtype, "max_pool2d"), p, s);
        });
      } else if (gx.numel() > 0) {
        kc::max_pool2d_backward(gc.data<float>(), argmax.data<int32_t>(), gx.data<float>(), p);
      }
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  ops::check_supported(ops::OpId::avg_pool2d, {&x});
  const kc::Pool2dParams p = make_params("avg_pool2d", x, opt, /*is_max=*/false);
  const Tensor xc = channels_last_input(x);
  Tensor y = Tensor::empty({p.n, p.c, p.out_h, p.out_w}, x.dtype(), x.device(), MemoryFormat::channels_last);
  if (y.numel() > 0 && x.device().is_cuda()) {
    cuda::launch("avg_pool2d", x.device(), [&](cudaStream_t s) {
      kernels::cuda::avg_pool2d_forward(xc.raw_data(), y.raw_data(), cuda::kernel_dtype(x.dtype(), "avg_pool2d"), p, s);
    });
  } else if (y.numel() > 0) {
    kc::avg_pool2d_forward(xc.data<float>(), y.data<float>(), p);
  }
  if (autograd::needs_grad({&x})) {
    autograd::record("avg_pool2d", y, {x}, [p, in_shape = x.shape(), dev = x.device(), dtype = x.dtype()](
                                              const Tensor& g, const autograd::NeedsGrad&) {
      const Tensor gc = channels_last_grad("avg_pool2d", g, dtype);
      Tensor gx = Tensor::empty(in_shape, dtype, dev, MemoryFormat::channels_last);
      if (gx.numel() > 0 && dev.is_cuda()) {
        cuda::launch("avg_pool2d backward", dev, [&](cudaStream_t s) {
          kernels::cuda::avg_pool2d_backward(gc.raw_data(), gx.raw_data(), cuda::kernel_dtype(dtype, "avg_pool2d"), p, s);
        });
      } else if (gx.numel() > 0) {
        kc::avg_pool2d_backward(gc.data<float>(), gx.data<float>(), p);
      }
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor global_avg_pool2d(const Tensor& x) {
  ops::check_supported(ops::OpId::global_avg_pool2d, {&x});
  GRAFT_CHECK(x.dim() == 4, "global_avg_pool2d: expects a 4-D (N, C, H, W) input, got " << shape_str(x.shape()));
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  GRAFT_CHECK(hw > 0, "global_avg_pool2d: input " << shape_str(x.shape()) << " has no spatial positions to average");
  const Tensor xc = channels_last_input(x);
  Tensor y = Tensor::empty({n, c, 1, 1}, x.dtype(), x.device(), MemoryFormat::channels_last);
  if (y.numel() > 0 && x.device().is_cuda()) {
    cuda::launch("global_avg_pool2d", x.device(), [&](cudaStream_t s) {
      kernels::cuda::global_avg_pool2d_forward(xc.raw_data(), y.raw_data(),
                                               cuda::kernel_dtype(x.dtype(), "global_avg_pool2d"), n, hw, c, s);
    });
  } else if (y.numel() > 0) {
    kc::global_avg_pool2d_forward(xc.data<float>(), y.data<float>(), n, hw, c);
  }
  if (autograd::needs_grad({&x})) {
    autograd::record("global_avg_pool2d", y, {x}, [n, c, hw, in_shape = x.shape(), dev = x.device(), dtype = x.dtype()](
                                                     const Tensor& g, const autograd::NeedsGrad&) {
      GRAFT_CHECK(g.dtype() == dtype, "global_avg_pool2d backward: gradient " << g.str()
                                                                              << " differs in dtype from the input");
      // (N, C, 1, 1): channels-last and row-major are the same memory.
      const Tensor gc = g.contiguous();
      Tensor gx = Tensor::empty(in_shape, dtype, dev, MemoryFormat::channels_last);
      if (gx.numel() > 0 && dev.is_cuda()) {
        cuda::launch("global_avg_pool2d backward", dev, [&](cudaStream_t s) {
          kernels::cuda::global_avg_pool2d_backward(gc.raw_data(), gx.raw_data(),
                                                    cuda::kernel_dtype(dtype, "global_avg_pool2d"), n, hw, c, s);
        });
      } else if (gx.numel() > 0) {
        kc::global_avg_pool2d_backward(gc.data<float>(), gx.data<float>(), n, hw, c);
      }
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

}  // namespace graft
