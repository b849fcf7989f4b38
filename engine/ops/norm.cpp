#include "engine/ops/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/norm.h"

namespace graft {

namespace {

namespace kc = kernels::cpu;

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
float* out_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// A private dense row-major copy (or alias) of an optional operand, off the tape.
Tensor plain(const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); }

void check_param(const char* op, const char* what, const Tensor& t, const Shape& want, const Tensor& x) {
  if (!t.defined()) return;
  GRAFT_CHECK(t.shape() == want, op << ": " << what << " has shape " << shape_str(t.shape()) << ", expected "
                                    << shape_str(want) << " for input " << shape_str(x.shape()));
}

// ---- CUDA paths: the kernels take x, y and their gradients in x's dtype
// (f32/f16/bf16), everything per channel / per feature in f32. ----------------------

void check_f32_params(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    GRAFT_CHECK(!t->defined() || t->dtype() == DType::f32,
                op << ": on CUDA the parameters and statistics must be f32, got " << t->str());
}

float* f32_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// Batch norm's backward on CUDA, either mode: the incoming gradient in the
// forward's layout and dtype, and the outputs to fill (dx in x's dtype, dweight
// and dbias f32; undefined where not needed).
struct BatchNormGrads {
  Tensor gc;
  std::vector<Tensor> out;
};
BatchNormGrads batch_norm_grads(const Tensor& g, MemoryFormat fmt, const Shape& in_shape, DType in_dtype,
                                const Device& dev, int64_t c, const autograd::NeedsGrad& needs) {
  BatchNormGrads r{g.to_format(fmt), std::vector<Tensor>(3)};
  GRAFT_CHECK(r.gc.dtype() == in_dtype, "batch_norm backward: gradient " << r.gc.str()
                                                                         << " differs in dtype from the input");
  if (needs[0]) r.out[0] = Tensor::empty(in_shape, in_dtype, dev, fmt);
  if (needs[1]) r.out[1] = Tensor::empty({c}, DType::f32, dev);
  if (needs[2]) r.out[2] = Tensor::empty({c}, DType::f32, dev);
  return r;
}

Tensor batch_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, bool training, double momentum, double eps, int64_t rows, int64_t c) {
  const char* name = "batch_norm";
  check_f32_params(name, {&weight, &bias, &running_mean, &running_var});
  const Device dev = x.device();
  const auto dt = cuda::kernel_dtype(x.dtype(), name);
  const MemoryFormat fmt = x.dim() == 4 ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  const Tensor xc = x.detach().to_format(fmt);
  const Tensor w = plain(weight), b = plain(bias);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev, fmt);
  const float feps = static_cast<float>(eps);
  const bool grad = autograd::needs_grad({&x, &weight, &bias});
  const Shape in_shape = x.shape();
  const DType in_dtype = x.dtype();

  if (training) {
    Tensor mean = Tensor::empty({c}, DType::f32, dev), var = Tensor::empty({c}, DType::f32, dev),
           rstd = Tensor::empty({c}, DType::f32, dev);
    // The kernel updates the running statistics in place: dense f32 buffers
    // directly (plain() aliases them), others through a copy written back.
    const Tensor rm = plain(running_mean), rv = plain(running_var);
    cuda::launch(name, dev, [&](cudaStream_t s) {
      kernels::cuda::batch_norm_forward_train(xc.raw_data(), f32_or_null(w), f32_or_null(b), y.raw_data(),
                                              mean.data<float>(), var.data<float>(), rstd.data<float>(),
                                              f32_or_null(rm), f32_or_null(rv), static_cast<float>(momentum), rows, c,
                                              feps, dt, s);
    });
    if (running_mean.defined()) {
      NoGradGuard no_grad;
      for (const auto& [buffer, updated] : {std::make_pair(running_mean, rm), std::make_pair(running_var, rv)}) {
        if (updated.raw_data() == buffer.raw_data()) buffer.bump_version();
        else Tensor(buffer).copy_(updated);
      }
    }
    if (grad) {
      autograd::record(name, y, {x, weight, bias},
                       [rows, c, fmt, dt, in_shape, in_dtype, dev, sx = autograd::Saved(xc, name),
                        sw = autograd::Saved(w, name), mean, rstd](const Tensor& g, const autograd::NeedsGrad& needs) {
                         BatchNormGrads r = batch_norm_grads(g, fmt, in_shape, in_dtype, dev, c, needs);
                         const Tensor& gc = r.gc;  // named, not a structured binding: lambdas capture it (C++17)
                         std::vector<Tensor>& out = r.out;
                         const Tensor xs = sx.get(), ws = sw.get();
                         cuda::launch("batch_norm backward", dev, [&](cudaStream_t s) {
                           kernels::cuda::batch_norm_backward_train(
                               gc.raw_data(), xs.raw_data(), mean.data<float>(), rstd.data<float>(), f32_or_null(ws),
                               out[0].defined() ? out[0].raw_data() : nullptr, f32_or_null(out[1]),
                               f32_or_null(out[2]), rows, c, dt, s);
                         });
                         return out;
                       });
    }
    return y;
  }

  const Tensor rm = running_mean.detach().contiguous().clone(), rv = running_var.detach().contiguous().clone();
  cuda::launch(name, dev, [&](cudaStream_t s) {
    kernels::cuda::batch_norm_forward_eval(xc.raw_data(), rm.data<float>(), rv.data<float>(), f32_or_null(w),
                                           f32_or_null(b), y.raw_data(), rows, c, feps, dt, s);
  });
  if (grad) {
    const bool keep_x = autograd::needs_grad({&weight, &bias});
    autograd::record(name, y, {x, weight, bias},
                     [rows, c, fmt, feps, dt, in_shape, in_dtype, dev,
                      sx = autograd::Saved(keep_x ? xc : Tensor(), name), sw = autograd::Saved(w, name), rm,
                      rv](const Tensor& g, const autograd::NeedsGrad& needs) {
                       BatchNormGrads r = batch_norm_grads(g, fmt, in_shape, in_dtype, dev, c, needs);
                       const Tensor& gc = r.gc;
                       std::vector<Tensor>& out = r.out;
                       const Tensor xs = sx.get(), ws = sw.get();
                       cuda::launch("batch_norm backward", dev, [&](cudaStream_t s) {
                         kernels::cuda::batch_norm_backward_eval(
                             gc.raw_data(), xs.defined() ? xs.raw_data() : nullptr, rm.data<float>(), rv.data<float>(),
                             f32_or_null(ws), out[0].defined() ? out[0].raw_data() : nullptr, f32_or_null(out[1]),
                             f32_or_null(out[2]), rows, c, feps, dt, s);
                       });
                       return out;
                     });
  }
  return y;
}

Tensor layer_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Shape& norm_shape,
                       int64_t rows, int64_t d) {
  const char* name = "layer_norm";
  check_f32_params(name, {&weight, &bias});
  const Device dev = x.device();
  const auto dt = cuda::kernel_dtype(x.dtype(), name);
  const Tensor xc = x.detach().contiguous();
  const Tensor w = plain(weight), b = plain(bias);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor mean = Tensor::empty({rows}, DType::f32, dev), rstd = Tensor::empty({rows}, DType::f32, dev);
  cuda::launch(name, dev, [&](cudaStream_t s) {
    kernels::cuda::layer_norm_forward(xc.raw_data(), f32_or_null(w), f32_or_null(b), y.raw_data(), mean.data<float>(),
                                      rstd.data<float>(), rows, d, static_cast<float>(eps), dt, s);
  });
  if (autograd::needs_grad({&x, &weight, &bias})) {
    autograd::record(name, y, {x, weight, bias},
                     [rows, d, dt, dev, norm_shape, in_shape = x.shape(), in_dtype = x.dtype(),
                      sx = autograd::Saved(xc, name), sw = autograd::Saved(w, name), mean,
                      rstd](const Tensor& g, const autograd::NeedsGrad& needs) {
                       const Tensor gc = g.contiguous();
                       GRAFT_CHECK(gc.dtype() == in_dtype, "layer_norm backward: gradient " << gc.str()
                                                                                            << " differs in dtype from the input");
                       const Tensor xs = sx.get(), ws = sw.get();
                       std::vector<Tensor> out(3);
                       if (needs[0]) out[0] = Tensor::empty(in_shape, in_dtype, dev);
                       if (needs[1]) out[1] = Tensor::empty(norm_shape, DType::f32, dev);
                       if (needs[2]) out[2] = Tensor::empty(norm_shape, DType::f32, dev);
                       cuda::launch("layer_norm backward", dev, [&](cudaStream_t s) {
                         kernels::cuda::layer_norm_backward(gc.raw_data(), xs.raw_data(), mean.data<float>(),
                                                            rstd.data<float>(), f32_or_null(ws),
                                                            out[0].defined() ? out[0].raw_data() : nullptr,
                                                            f32_or_null(out[1]), f32_or_null(out[2]), rows, d, dt, s);
                       });
                       return out;
                     });
  }
  return y;
}

}  // namespace

// ---- batch norm -------------------------------------------------------------------

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  ops::check_supported(ops::OpId::batch_norm, {&x, &weight, &bias, &running_mean, &running_var});
  GRAFT_CHECK(x.dim() == 2 || x.dim() == 4,
              "batch_norm: expects an (N, C) or (N, C, H, W) input, got " << shape_str(x.shape()));
  const int64_t c = x.size(1);
  const int64_t rows = x.numel() / std::max<int64_t>(c, 1);  // N * H * W values per channel
  check_param("batch_norm", "weight", weight, {c}, x);
  check_param("batch_norm", "bias", bias, {c}, x);
  check_param("batch_norm", "running_mean", running_mean, {c}, x);
  check_param("batch_norm", "running_var", running_var, {c}, x);
  GRAFT_CHECK(running_mean.defined() == running_var.defined(),
              "batch_norm: running_mean and running_var must be given together, for input " << shape_str(x.shape()));
  GRAFT_CHECK(std::isfinite(eps) && eps >= 0, "batch_norm: eps must be >= 0, got " << eps);
  GRAFT_CHECK(std::isfinite(momentum) && momentum >= 0 && momentum <= 1,
              "batch_norm: momentum must be in [0, 1], got " << momentum);
  if (training) {
    GRAFT_CHECK(rows > 1, "batch_norm: expected more than 1 value per channel when training, got input "
                              << shape_str(x.shape()));
  } else {
    GRAFT_CHECK(running_mean.defined(), "batch_norm: evaluation mode needs running_mean and running_var, for input "
                                            << shape_str(x.shape()));
  }

  if (x.device().is_cuda()) return batch_norm_cuda(x, weight, bias, running_mean, running_var, training, momentum, eps, rows, c);

  // (N, C) row-major or (N, C, H, W) channels-last: both are (rows, C) in memory.
  const MemoryFormat fmt = x.dim() == 4 ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  const Tensor xc = x.detach().to_format(fmt);
  const Tensor w = plain(weight), b = plain(bias);
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device(), fmt);
  const float feps = static_cast<float>(eps);
  const bool grad = autograd::needs_grad({&x, &weight, &bias});

  if (training) {
    Tensor mean = Tensor::empty({c}), var = Tensor::empty({c}), rstd = Tensor::empty({c});
    kc::batch_norm_forward_train(xc.data<float>(), ptr_or_null(w), ptr_or_null(b), y.data<float>(), mean.data<float>(),
                                 var.data<float>(), rstd.data<float>(), rows, c, feps);
    if (running_mean.defined()) {
      // Buffers, not differentiable: updated in place (bumping their version)
      // with the unbiased batch variance, as PyTorch.
      NoGradGuard no_grad;
      const Tensor rm = plain(running_mean), rv = plain(running_var);
      Tensor new_rm = Tensor::empty({c}), new_rv = Tensor::empty({c});
      const double unbias = static_cast<double>(rows) / static_cast<double>(rows - 1);
      for (int64_t j = 0; j < c; ++j) {
        new_rm.data<float>()[j] = static_cast<float>((1 - momentum) * rm.data<float>()[j] + momentum * mean.data<float>()[j]);
        new_rv.data<float>()[j] =
            static_cast<float>((1 - momentum) * rv.data<float>()[j] + momentum * unbias * var.data<float>()[j]);
      }
      Tensor(running_mean).copy_(new_rm);  // a handle: the buffer itself changes
      Tensor(running_var).copy_(new_rv);
    }
    if (grad) {
      autograd::record("batch_norm", y, {x, weight, bias},
                       [rows, c, fmt, in_shape = x.shape(), sx = autograd::Saved(xc, "batch_norm"),
                        sw = autograd::Saved(w, "batch_norm"), mean, rstd](const Tensor& g,
                                                                           const autograd::NeedsGrad& needs) {
                         const Tensor gc = g.to_format(fmt);
                         const Tensor xs = sx.get(), ws = sw.get();
                         std::vector<Tensor> out(3);
                         if (needs[0]) out[0] = Tensor::empty(in_shape, DType::f32, Device::cpu(), fmt);
                         if (needs[1]) out[1] = Tensor::empty({c});
                         if (needs[2]) out[2] = Tensor::empty({c});
                         kc::batch_norm_backward_train(gc.data<float>(), xs.data<float>(), mean.data<float>(),
                                                       rstd.data<float>(), ptr_or_null(ws), out_or_null(out[0]),
                                                       out_or_null(out[1]), out_or_null(out[2]), rows, c);
                         return out;
                       });
    }
    return y;
  }

  // Evaluation: the running statistics are constants of this op. Private
  // copies keep the backward independent of later updates to the buffers.
  const Tensor rm = running_mean.detach().contiguous().clone(), rv = running_var.detach().contiguous().clone();
  kc::batch_norm_forward_eval(xc.data<float>(), rm.data<float>(), rv.data<float>(), ptr_or_null(w), ptr_or_null(b),
                              y.data<float>(), rows, c, feps);
  if (grad) {
    // x is needed only for the weight and bias gradients.
    const bool keep_x = autograd::needs_grad({&weight, &bias});
    autograd::record("batch_norm", y, {x, weight, bias},
                     [rows, c, fmt, feps, in_shape = x.shape(), sx = autograd::Saved(keep_x ? xc : Tensor(), "batch_norm"),
                      sw = autograd::Saved(w, "batch_norm"), rm, rv](const Tensor& g, const autograd::NeedsGrad& needs) {
                       const Tensor gc = g.to_format(fmt);
                       const Tensor xs = sx.get(), ws = sw.get();
                       std::vector<Tensor> out(3);
                       if (needs[0]) out[0] = Tensor::empty(in_shape, DType::f32, Device::cpu(), fmt);
                       if (needs[1]) out[1] = Tensor::empty({c});
                       if (needs[2]) out[2] = Tensor::empty({c});
                       kc::batch_norm_backward_eval(gc.data<float>(), ptr_or_null(xs), rm.data<float>(),
                                                    rv.data<float>(), ptr_or_null(ws), out_or_null(out[0]),
                                                    out_or_null(out[1]), out_or_null(out[2]), rows, c, feps);
                       return out;
                     });
  }
  return y;
}

// ---- layer norm -------------------------------------------------------------------

Tensor layer_norm(const Tensor& x, int64_t normalized_dims, const Tensor& weight, const Tensor& bias, double eps) {
  ops::check_supported(ops::OpId::layer_norm, {&x, &weight, &bias});
  GRAFT_CHECK(normalized_dims >= 1 && normalized_dims <= x.dim(),
              "layer_norm: normalized_dims must be in [1, " << x.dim() << "] for input " << shape_str(x.shape())
                                                            << ", got " << normalized_dims);
  GRAFT_CHECK(std::isfinite(eps) && eps >= 0, "layer_norm: eps must be >= 0, got " << eps);
  const Shape norm_shape(x.shape().end() - normalized_dims, x.shape().end());
  check_param("layer_norm", "weight", weight, norm_shape, x);
  check_param("layer_norm", "bias", bias, norm_shape, x);
  const int64_t d = shape_numel(norm_shape);
  const int64_t rows = d > 0 ? x.numel() / d : shape_numel(Shape(x.shape().begin(), x.shape().end() - normalized_dims));
  if (x.device().is_cuda()) return layer_norm_cuda(x, weight, bias, eps, norm_shape, rows, d);

  const Tensor xc = x.detach().contiguous();
  const Tensor w = plain(weight), b = plain(bias);
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device());
  Tensor mean = Tensor::empty({rows}), rstd = Tensor::empty({rows});
  kc::layer_norm_forward(xc.data<float>(), ptr_or_null(w), ptr_or_null(b), y.data<float>(), mean.data<float>(),
                         rstd.data<float>(), rows, d, static_cast<float>(eps));
  if (autograd::needs_grad({&x, &weight, &bias})) {
    autograd::record("layer_norm", y, {x, weight, bias},
                     [rows, d, norm_shape, in_shape = x.shape(), sx = autograd::Saved(xc, "layer_norm"),
                      sw = autograd::Saved(w, "layer_norm"), mean, rstd](const Tensor& g,
                                                                         const autograd::NeedsGrad& needs) {
                       const Tensor gc = g.contiguous();
                       const Tensor xs = sx.get(), ws = sw.get();
                       std::vector<Tensor> out(3);
                       if (needs[0]) out[0] = Tensor::empty(in_shape);
                       if (needs[1]) out[1] = Tensor::empty(norm_shape);
                       if (needs[2]) out[2] = Tensor::empty(norm_shape);
                       kc::layer_norm_backward(gc.data<float>(), xs.data<float>(), mean.data<float>(),
                                               rstd.data<float>(), ptr_or_null(ws), out_or_null(out[0]),
                                               out_or_null(out[1]), out_or_null(out[2]), rows, d);
                       return out;
                     });
  }
  return y;
}

}  // namespace graft
