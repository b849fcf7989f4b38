#include "engine/ops/loss.h"

#include <cmath>
#include <limits>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/loss.h"
#include "kernels/cuda/loss.h"

namespace graft {

namespace {

// Targets as contiguous i64, every value checked against [0, C) and ignore_index.
Tensor checked_targets(const Tensor& targets, int64_t n, int64_t c, int64_t ignore_index) {
  GRAFT_CHECK(targets.defined(), "cross_entropy: targets are undefined");
  GRAFT_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32,
              "cross_entropy: targets must be class indices of dtype i64 (or i32), got " << targets.str());
  GRAFT_CHECK(targets.device().is_cpu(), "cross_entropy: targets " << targets.str() << " must be on the cpu like the logits");
  GRAFT_CHECK(targets.dim() == 1 && targets.size(0) == n,
              "cross_entropy: targets " << shape_str(targets.shape()) << " must have shape [" << n
                                        << "] to match logits [" << n << ", " << c << "]");
  const Tensor t = targets.to(DType::i64).contiguous();
  const int64_t* tv = t.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    GRAFT_CHECK(tv[i] == ignore_index || (tv[i] >= 0 && tv[i] < c),
                "cross_entropy: target " << tv[i] << " at index " << i << " is out of range for " << c
                                         << " classes (valid: [0, " << c << ") or ignore_index " << ignore_index << ")");
  }
  return t;
}

kernels::cpu::CrossEntropyParams ce_params(int64_t n, int64_t c, const CrossEntropyOptions& opt) {
  kernels::cpu::CrossEntropyParams p;
  p.n = n;
  p.c = c;
  p.label_smoothing = static_cast<float>(opt.label_smoothing);
  p.ignore_index = opt.ignore_index;
  return p;
}

// The CUDA path (arguments already checked, except the target values: the
// kernel checks those and its error names the row and the value). The loss
// and its statistics are f32 whatever the logits' dtype; 'sum' and 'mean'
// read the totals back to the host (the forward synchronises the stream).
Tensor cross_entropy_cuda(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& opt, int64_t n,
                          int64_t c) {
  const char* name = "cross_entropy";
  GRAFT_CHECK(targets.dtype() == DType::i64 || targets.dtype() == DType::i32,
              "cross_entropy: targets must be class indices of dtype i64 (or i32), got " << targets.str());
  GRAFT_CHECK(targets.dim() == 1 && targets.size(0) == n,
              "cross_entropy: targets " << shape_str(targets.shape()) << " must have shape [" << n
                                        << "] to match logits [" << n << ", " << c << "]");
  GRAFT_CHECK(!opt.class_weights.defined() || opt.class_weights.dtype() == DType::f32,
              "cross_entropy: class_weights must be f32 on CUDA, got " << opt.class_weights.str());
  const Tensor t = targets.detach().to(DType::i64).contiguous();
  const Tensor x = logits.contiguous();
  const Tensor w = opt.class_weights.defined() ? opt.class_weights.detach().contiguous() : Tensor();
  const kernels::cpu::CrossEntropyParams p = ce_params(n, c, opt);

  Tensor per_sample = Tensor::empty({n}, DType::f32, x.device());
  Tensor stats = Tensor::empty({n, 2}, DType::f32, x.device());
  kernels::cpu::CrossEntropyTotals tot;
  if (n > 0)
    cuda::launch(name, x.device(), [&](cudaStream_t s) {
      tot = kernels::cuda::cross_entropy_forward(x.raw_data(), t.data<int64_t>(), w.defined() ? w.data<float>() : nullptr,
                                                 per_sample.data<float>(), stats.data<float>(), p,
                                                 cuda::kernel_dtype(x.dtype(), name), s);
    });

  // As the CPU path (PyTorch): 'mean' divides by the summed weight of the targets that count.
  Tensor out;
  double grad_scale = 1.0;
  switch (opt.reduction) {
    case Reduction::none: out = per_sample; break;
    case Reduction::sum: out = Tensor::full({}, tot.loss_sum, DType::f32, x.device()); break;
    case Reduction::mean:
      out = Tensor::full({}, tot.weight_sum != 0.0 ? tot.loss_sum / tot.weight_sum : std::numeric_limits<double>::quiet_NaN(),
                         DType::f32, x.device());
      grad_scale = 1.0 / tot.weight_sum;
      break;
  }

  if (autograd::needs_grad({&x})) {
    autograd::Saved saved_x(x, name), saved_w(w, name), saved_t(t, name);
    const bool per_row = opt.reduction == Reduction::none;
    autograd::record(name, out, {x},
                     [saved_x, saved_w, saved_t, stats, p, per_row, grad_scale, name](const Tensor& g,
                                                                                     const autograd::NeedsGrad&) {
                       const Tensor xv = saved_x.get(), wv = saved_w.get(), tv = saved_t.get();
                       GRAFT_CHECK(g.dtype() == DType::f32, "cross_entropy backward: the loss gradient must be f32, got "
                                                                << g.str());
                       const Tensor gv = g.contiguous();
                       Tensor dx = Tensor::empty(xv.shape(), xv.dtype(), xv.device());
                       if (dx.numel() > 0)
                         cuda::launch(name, xv.device(), [&](cudaStream_t s) {
                           kernels::cuda::cross_entropy_backward(
                               xv.raw_data(), tv.data<int64_t>(), wv.defined() ? wv.data<float>() : nullptr,
                               stats.data<float>(), gv.data<float>(), per_row ? 1 : 0, static_cast<float>(grad_scale),
                               dx.raw_data(), p, cuda::kernel_dtype(xv.dtype(), name), s);
                         });
                       return std::vector<Tensor>{dx};
                     });
  }
  return out;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& opt) {
  const Tensor& weights = opt.class_weights;
  GRAFT_CHECK(logits.defined(), "cross_entropy: the logits are an undefined tensor");
  ops::check_same_device(ops::OpId::cross_entropy, {&logits, &targets, &weights});
  ops::check_supported(ops::OpId::cross_entropy, {&logits, &weights});
  GRAFT_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got " << shape_str(logits.shape()));
  const int64_t n = logits.size(0), c = logits.size(1);
  GRAFT_CHECK(c >= 1, "cross_entropy: logits " << shape_str(logits.shape()) << " have no classes");
  GRAFT_CHECK(opt.label_smoothing >= 0.0 && opt.label_smoothing <= 1.0,
              "cross_entropy: label_smoothing must be in [0, 1], got " << opt.label_smoothing);
  GRAFT_CHECK(opt.reduction == Reduction::none || opt.reduction == Reduction::mean || opt.reduction == Reduction::sum,
              "cross_entropy: unknown reduction " << static_cast<int>(opt.reduction));
  if (weights.defined()) {
    GRAFT_CHECK(weights.dim() == 1 && weights.size(0) == c,
                "cross_entropy: class_weights " << shape_str(weights.shape()) << " must have shape [" << c
                                                << "] to match logits " << shape_str(logits.shape()));
    GRAFT_CHECK(!(weights.requires_grad() && autograd::grad_enabled()),
                "cross_entropy: class_weights " << weights.str()
                                                << " require grad, but the loss is not differentiable with respect to "
                                                   "them; pass class_weights.detach()");
  }
  if (logits.device().is_cuda()) return cross_entropy_cuda(logits, targets, opt, n, c);
  const Tensor t = checked_targets(targets, n, c, opt.ignore_index);

  const Tensor x = logits.contiguous();
  const Tensor w = weights.defined() ? weights.contiguous() : Tensor();
  const kernels::cpu::CrossEntropyParams p = ce_params(n, c, opt);

  Tensor per_sample = Tensor::empty({n}, DType::f32, x.device());
  Tensor stats = Tensor::empty({n, 2}, DType::f32, x.device());
  const float* wp = w.defined() ? w.data<float>() : nullptr;
  const kernels::cpu::CrossEntropyTotals tot =
      kernels::cpu::cross_entropy_forward(x.data<float>(), t.data<int64_t>(), wp, per_sample.data<float>(),
                                          stats.data<float>(), p);

  // As PyTorch: 'mean' divides by the summed weight of the targets that count,
  // so with every target ignored it is 0 / 0 = NaN.
  Tensor out;
  double grad_scale = 1.0;
  switch (opt.reduction) {
    case Reduction::none: out = per_sample; break;
    case Reduction::sum: out = Tensor::scalar(tot.loss_sum); break;
    case Reduction::mean:
      out = Tensor::scalar(tot.weight_sum != 0.0 ? tot.loss_sum / tot.weight_sum
                                                 : std::numeric_limits<double>::quiet_NaN());
      grad_scale = 1.0 / tot.weight_sum;  // inf when 0: then every row is ignored (gets 0) or has weight 0 (NaN, as the loss)
      break;
  }

  if (autograd::needs_grad({&x})) {
    autograd::Saved saved_x(x, "cross_entropy");
    autograd::Saved saved_w(w, "cross_entropy");
    autograd::Saved saved_t(t, "cross_entropy");  // may alias the caller's targets
    const bool per_row = opt.reduction == Reduction::none;
    autograd::record("cross_entropy", out, {x},
                     [saved_x, saved_w, saved_t, stats, p, per_row, grad_scale](const Tensor& g, const autograd::NeedsGrad&) {
                       const Tensor xv = saved_x.get();
                       const Tensor wv = saved_w.get();
                       const Tensor tv = saved_t.get();
                       const Tensor gv = g.contiguous();
                       Tensor dx = Tensor::empty(xv.shape(), DType::f32, xv.device());
                       kernels::cpu::cross_entropy_backward(
                           xv.data<float>(), tv.data<int64_t>(), wv.defined() ? wv.data<float>() : nullptr,
                           stats.data<float>(), gv.data<float>(), per_row ? 1 : 0, static_cast<float>(grad_scale),
                           dx.data<float>(), p);
                       return std::vector<Tensor>{dx};
                     });
  }
  return out;
}

}  // namespace graft
