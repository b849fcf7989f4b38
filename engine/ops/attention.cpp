#include "engine/ops/attention.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linear.h"
#include "engine/ops/registry.h"
#include "engine/ops/shape.h"
#include "engine/ops/softmax.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"

namespace graft {

namespace {

namespace cpu = kernels::cpu;

// The mask as the kernel reads it: f32 additive values and, per dimension of
// (B, H, Sq, Sk), the stride to step by (0 where the mask broadcasts).
struct KernelMask {
  Tensor additive;
  int64_t stride[4] = {0, 0, 0, 0};
};

// Checks that `mask` broadcasts to `target` = (B, H, Sq, Sk) (numpy rules:
// aligned from the right, each size 1 or equal). Throws before anything is
// computed.
void check_mask(const Tensor& mask, const Shape& target) {
  GRAFT_CHECK(mask.dtype() == DType::f32 || mask.dtype() == DType::boolean,
              "attention: the mask must be f32 (additive) or bool (true = keep), got " << mask.str());
  GRAFT_CHECK(mask.dim() <= 4, "attention: mask " << shape_str(mask.shape()) << " has " << mask.dim()
                                                  << " dimensions; it must broadcast to (B, H, Sq, Sk) = "
                                                  << shape_str(target));
  const int64_t lead = 4 - mask.dim();
  for (int64_t d = 0; d < mask.dim(); ++d) {
    const int64_t ms = mask.shape()[d], ts = target[lead + d];
    GRAFT_CHECK(ms == 1 || ms == ts, "attention: mask " << shape_str(mask.shape())
                                                        << " does not broadcast to (B, H, Sq, Sk) = " << shape_str(target)
                                                        << " (mask dimension " << d << " has size " << ms << ", expected 1 or "
                                                        << ts << ")");
  }
  GRAFT_CHECK(!(mask.requires_grad() && autograd::grad_enabled()),
              "attention: the mask " << mask.str() << " requires grad, but the mask is not differentiable; "
                                     << "pass mask.detach()");
}

// The additive f32 form of a mask on the mask's device (either device): a bool
// keep-mask becomes 0 (keep) / -inf (drop) of the mask's own shape; an f32
// mask is used as it is.
Tensor additive_mask(const Tensor& mask) {
  if (mask.dtype() != DType::boolean) return mask.detach();
  const Tensor zero = Tensor::zeros({1}, DType::f32, mask.device());
  const Tensor neg_inf = Tensor::full({1}, -std::numeric_limits<double>::infinity(), DType::f32, mask.device());
  return where(mask, zero, neg_inf);
}

// The mask as the kernels read it, with its own strides (no expansion).
KernelMask prepare_mask(const Tensor& mask, const Shape& target) {
  KernelMask km;
  km.additive = additive_mask(mask);
  const int64_t lead = 4 - mask.dim();
  for (int64_t d = 0; d < mask.dim(); ++d) {
    km.stride[lead + d] = (mask.shape()[d] == 1 && target[lead + d] != 1) ? 0 : km.additive.strides()[d];
  }
  return km;
}

// ---- CUDA ------------------------------------------------------------------------------------
// The fused flash kernels (kernels/cuda/attention.h) take bf16/f16 with head
// dims 32, 64 or 128 (q, k and v alike); anything else on CUDA (f32, other
// head dims) runs unfused: matmul (TF32 tensor cores for f32), the softmax
// kernel, matmul — correct, but the score matrix is materialised, and a row
// whose keys are all masked gives NaN where the fused kernels give 0.
bool fused_on_cuda(const Tensor& q, int64_t D, int64_t Dv) {
  return (q.dtype() == DType::bf16 || q.dtype() == DType::f16) && D == Dv && (D == 32 || D == 64 || D == 128);
}

Tensor attention_unfused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const cpu::AttentionParams& p) {
  Tensor s = mul_scalar(matmul(q, transpose(k, -2, -1)), p.scale);
  if (mask.defined()) s = add(s, additive_mask(mask).to(s.dtype()));
  if (p.causal) {
    Tensor c = Tensor::zeros({p.seq_q, p.seq_k}, DType::f32);  // built on the host, copied once
    float* cp = c.data<float>();
    for (int64_t i = 0; i < p.seq_q; ++i)
      for (int64_t j = i + 1; j < p.seq_k; ++j) cp[i * p.seq_k + j] = -std::numeric_limits<float>::infinity();
    s = add(s, c.to(q.device()).to(s.dtype()));
  }
  return matmul(softmax(s, -1), v);
}

Tensor attention_fused_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, cpu::AttentionParams p) {
  const Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  Tensor additive;
  int64_t mask_elements = 0;
  if (mask.defined()) {
    // Contiguous, so the allocation holds exactly numel() floats (the kernels' bound).
    const KernelMask km = prepare_mask(mask.contiguous(), {p.batch, p.heads, p.seq_q, p.seq_k});
    additive = km.additive;
    p.mask_stride_b = km.stride[0];
    p.mask_stride_h = km.stride[1];
    p.mask_stride_q = km.stride[2];
    p.mask_stride_k = km.stride[3];
    mask_elements = additive.numel();
  }
  const DType dt = q.dtype();
  Tensor out = Tensor::empty({p.batch, p.heads, p.seq_q, p.head_dim_v}, dt, q.device());
  Tensor lse = Tensor::empty({p.batch, p.heads, p.seq_q}, DType::f32, q.device());
  const float* mask_ptr = additive.defined() ? static_cast<const float*>(additive.raw_data()) : nullptr;
  cuda::launch("attention", q.device(), [&](cudaStream_t s) {
    kernels::cuda::attention_forward(cuda::kernel_dtype(dt, "attention"), p, qc.raw_data(), kc.raw_data(),
                                     vc.raw_data(), mask_ptr, mask_elements, kernels::cuda::AttentionDropout{},
                                     out.raw_data(), static_cast<float*>(lse.raw_data()), s);
  });
  if (autograd::needs_grad({&qc, &kc, &vc})) {
    autograd::Saved sq(qc, "attention"), sk(kc, "attention"), sv(vc, "attention"), smask(additive, "attention"),
        sout(out, "attention"), slse(lse, "attention");
    autograd::record("attention", out, {qc, kc, vc},
                     [p, mask_elements, sq, sk, sv, smask, sout, slse](const Tensor& g, const autograd::NeedsGrad& needs) {
                       const Tensor qs = sq.get(), ks = sk.get(), vs = sv.get(), ms = smask.get(), os = sout.get(),
                                    ls = slse.get();
                       const DType dt = qs.dtype();
                       const Tensor gc = g.to(dt).contiguous();
                       Tensor dq = needs[0] ? Tensor::empty(qs.shape(), dt, qs.device()) : Tensor();
                       Tensor dk = needs[1] ? Tensor::empty(ks.shape(), dt, ks.device()) : Tensor();
                       Tensor dv = needs[2] ? Tensor::empty(vs.shape(), dt, vs.device()) : Tensor();
                       auto ptr = [](const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; };
                       cuda::launch("attention backward", qs.device(), [&](cudaStream_t s) {
                         // Inside the launch (a build without CUDA has no kernels to ask); freed after
                         // the queueing, reused only by later work on the same stream.
                         const Tensor work = Tensor::empty({kernels::cuda::attention_backward_workspace_bytes(p)},
                                                           DType::u8, qs.device());
                         kernels::cuda::attention_backward(
                             cuda::kernel_dtype(dt, "attention backward"), p, qs.raw_data(), ks.raw_data(),
                             vs.raw_data(), ms.defined() ? static_cast<const float*>(ms.raw_data()) : nullptr,
                             mask_elements, kernels::cuda::AttentionDropout{}, os.raw_data(), gc.raw_data(),
                             static_cast<const float*>(ls.raw_data()), ptr(dq), ptr(dk), ptr(dv), work.raw_data(), s);
                       });
                       return std::vector<Tensor>{dq, dk, dv};
                     });
  }
  return out;
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                    const AttentionOptions& opt) {
  // ---- validation (everything before any computation) -----------------------
  if (mask.defined() && mask.dtype() == DType::f32) {
    ops::check_supported(ops::OpId::attention, {&q, &k, &v, &mask});
  } else {
    ops::check_supported(ops::OpId::attention, {&q, &k, &v});
  }
  GRAFT_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention: q, k and v must be 4-D (B, H, S, D), got q " << shape_str(q.shape()) << ", k "
                                                                       << shape_str(k.shape()) << ", v "
                                                                       << shape_str(v.shape()));
  const int64_t B = q.size(0), H = q.size(1), Sq = q.size(2), D = q.size(3);
  const int64_t Sk = k.size(2), Dv = v.size(3);
  GRAFT_CHECK(k.size(0) == B && k.size(1) == H && v.size(0) == B && v.size(1) == H,
              "attention: batch and head dimensions differ: q " << shape_str(q.shape()) << ", k " << shape_str(k.shape())
                                                                << ", v " << shape_str(v.shape()));
  GRAFT_CHECK(k.size(3) == D, "attention: q " << shape_str(q.shape()) << " and k " << shape_str(k.shape())
                                              << " have different head dims (" << D << " vs " << k.size(3) << ")");
  GRAFT_CHECK(v.size(2) == Sk, "attention: k " << shape_str(k.shape()) << " and v " << shape_str(v.shape())
                                               << " have different key sequence lengths (" << Sk << " vs "
                                               << v.size(2) << ")");
  GRAFT_CHECK(D >= 1, "attention: head dim of q " << shape_str(q.shape()) << " must be at least 1");
  GRAFT_CHECK(std::isfinite(opt.scale), "attention: scale must be finite (0 for 1/sqrt(head_dim)), got " << opt.scale);
  const Shape score_shape{B, H, Sq, Sk};
  if (mask.defined()) {
    GRAFT_CHECK(mask.device() == q.device(), "attention: mask " << mask.str() << " is not on the device of q "
                                                                << q.str() << " (no implicit copies)");
    check_mask(mask, score_shape);
  }

  cpu::AttentionParams p;
  p.batch = B;
  p.heads = H;
  p.seq_q = Sq;
  p.seq_k = Sk;
  p.head_dim = D;
  p.head_dim_v = Dv;
  p.scale = static_cast<float>(opt.scale != 0.0 ? opt.scale : 1.0 / std::sqrt(static_cast<double>(D)));
  p.causal = opt.causal;
  if (q.device().is_cuda()) {
    ops::check_same_dtype(ops::OpId::attention, {&q, &k, &v});
    return fused_on_cuda(q, D, Dv) ? attention_fused_cuda(q, k, v, mask, p) : attention_unfused(q, k, v, mask, p);
  }

  // ---- layout, kernel ---------------------------------------------------------
  const Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  KernelMask km;
  if (mask.defined()) km = prepare_mask(mask, score_shape);
  p.mask_stride_b = km.stride[0];
  p.mask_stride_h = km.stride[1];
  p.mask_stride_q = km.stride[2];
  p.mask_stride_k = km.stride[3];

  Tensor out = Tensor::empty({B, H, Sq, Dv}, DType::f32, q.device());
  Tensor lse = Tensor::empty({B, H, Sq}, DType::f32, q.device());
  const float* mask_ptr = km.additive.defined() ? km.additive.data<float>() : nullptr;
  cpu::attention_forward(p, qc.data<float>(), kc.data<float>(), vc.data<float>(), mask_ptr, out.data<float>(),
                        lse.data<float>());

  // ---- backward -------------------------------------------------------------------
  if (autograd::needs_grad({&qc, &kc, &vc})) {
    autograd::Saved sq(qc, "attention"), sk(kc, "attention"), sv(vc, "attention"), smask(km.additive, "attention"),
        sout(out, "attention"), slse(lse, "attention");
    autograd::record("attention", out, {qc, kc, vc},
                     [p, sq, sk, sv, smask, sout, slse](const Tensor& g, const autograd::NeedsGrad& needs) {
                       const Tensor qs = sq.get(), ks = sk.get(), vs = sv.get(), ms = smask.get(), os = sout.get(),
                                    ls = slse.get();
                       const Tensor gc = g.contiguous();
                       Tensor dq = needs[0] ? Tensor::empty(qs.shape(), DType::f32, qs.device()) : Tensor();
                       Tensor dk = needs[1] ? Tensor::empty(ks.shape(), DType::f32, ks.device()) : Tensor();
                       Tensor dv = needs[2] ? Tensor::empty(vs.shape(), DType::f32, vs.device()) : Tensor();
                       cpu::attention_backward(p, qs.data<float>(), ks.data<float>(), vs.data<float>(),
                                              ms.defined() ? ms.data<float>() : nullptr, os.data<float>(),
                                              gc.data<float>(), ls.data<float>(), dq.defined() ? dq.data<float>() : nullptr,
                                              dk.defined() ? dk.data<float>() : nullptr,
                                              dv.defined() ? dv.data<float>() : nullptr);
                       return std::vector<Tensor>{dq, dk, dv};
                     });
  }
  return out;
}

}  // namespace graft
