#include "engine/ops/linear.h"

#include <algorithm>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/registry.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/strided.h"

namespace graft {

namespace {

using kernels::cpu::Trans;

// The batch structure of a matmul after NumPy's promotions and broadcasting.
// Both operands are contiguous; a is (batch_a..., m, k), b (batch_b..., k, n),
// the output (batch..., m, n). Per output batch index, the element offset of
// each operand's matrix (0 strides along broadcast dimensions).
struct MatmulPlan {
  int64_t m = 1, n = 1, k = 1;
  Shape batch;                  // broadcast batch shape
  Strides a_stride, b_stride;   // per batch dim, in elements (0 = broadcast)
  Shape out_shape;

  // Calls f(a_off, b_off, c_off, count, a_step, b_step, c_step) for runs of
  // `count` products whose offsets advance by the steps (c offsets are those
  // of a contiguous (batch..., m, n) output).
  template <class F>
  void for_each_run(F&& f) const {
    kernels::StridedIter<3> it;
    it.ndim = static_cast<int>(batch.size());
    Strides c_stride(batch.size());
    int64_t s = m * n;
    for (int d = it.ndim - 1; d >= 0; --d) {
      c_stride[d] = s;
      s *= batch[d];
    }
    for (int d = 0; d < it.ndim; ++d) {
      it.size[d] = batch[d];
      it.stride[0][d] = c_stride[d];
      it.stride[1][d] = a_stride[d];
      it.stride[2][d] = b_stride[d];
    }
    it.coalesce();
    const int64_t runs = it.numel() / it.size[it.ndim - 1];
    it.for_each_run(0, runs, [&](const int64_t* off, int64_t count, const int64_t* step) {
      f(off[1], off[2], off[0], count, step[1], step[2], step[0]);
    });
  }
};

MatmulPlan plan_matmul(const Tensor& a, const Tensor& b) {
  GRAFT_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands need at least one dimension, got "
                                                << shape_str(a.shape()) << " and " << shape_str(b.shape()));
  Shape as = a.shape(), bs = b.shape();
  if (as.size() == 1) as.insert(as.begin(), 1);  // (k) -> (1, k)
  if (bs.size() == 1) bs.push_back(1);           // (k) -> (k, 1)
  MatmulPlan p;
  p.m = as[as.size() - 2];
  p.k = as.back();
  p.n = bs.back();
  GRAFT_CHECK(bs[bs.size() - 2] == p.k, "matmul: inner dimensions differ: " << shape_str(a.shape()) << " x "
                                                                          << shape_str(b.shape()) << " (" << p.k
                                                                          << " vs " << bs[bs.size() - 2] << ")");
  const size_t ba = as.size() - 2, bb = bs.size() - 2, nb = std::max(ba, bb);
  GRAFT_CHECK(nb + 2 <= static_cast<size_t>(kernels::kMaxDims),
              "matmul: too many batch dimensions: " << shape_str(a.shape()) << " x " << shape_str(b.shape()));
  p.batch.assign(nb, 1);
  p.a_stride.assign(nb, 0);
  p.b_stride.assign(nb, 0);
  int64_t sa = p.m * p.k, sb = p.k * p.n;
  for (size_t i = 0; i < nb; ++i) {  // from the innermost batch dimension outwards
    const size_t d = nb - 1 - i;
    const int64_t da = i < ba ? as[ba - 1 - i] : 1, db = i < bb ? bs[bb - 1 - i] : 1;
    GRAFT_CHECK(da == db || da == 1 || db == 1, "matmul: batch dimensions do not broadcast: "
                                                    << shape_str(a.shape()) << " x " << shape_str(b.shape()));
    p.batch[d] = std::max(da, db);
    p.a_stride[d] = da == 1 ? 0 : sa;
    p.b_stride[d] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
  }
  p.out_shape = p.batch;
  if (a.dim() > 1) p.out_shape.push_back(p.m);
  if (b.dim() > 1) p.out_shape.push_back(p.n);
  return p;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  ops::check_supported(ops::OpId::matmul, {&a, &b});
  const MatmulPlan plan = plan_matmul(a, b);
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  Tensor out = Tensor::empty(plan.out_shape, DType::f32, a.device());
  if (out.numel() > 0) {
    const float* pa = ac.data<float>();
    const float* pb = bc.data<float>();
    float* pc = out.data<float>();
    const int64_t m = plan.m, n = plan.n, k = plan.k;
    plan.for_each_run([&](int64_t oa, int64_t ob, int64_t oc, int64_t count, int64_t sa, int64_t sb, int64_t sc) {
      kernels::cpu::sgemm_batched(Trans::no, Trans::no, m, n, k, 1.f, pa + oa, std::max<int64_t>(k, 1), sa, pb + ob,
                                  std::max<int64_t>(n, 1), sb, 0.f, pc + oc, std::max<int64_t>(n, 1), sc, count);
    });
  }

  if (autograd::needs_grad({&ac, &bc})) {
    autograd::Saved saved_a(bc.requires_grad() ? ac : Tensor(), "matmul");
    autograd::Saved saved_b(ac.requires_grad() ? bc : Tensor(), "matmul");
    const Shape a_shape = a.shape(), b_shape = b.shape();
    autograd::record("matmul", out, {ac, bc},
                     [plan, saved_a, saved_b, a_shape, b_shape](const Tensor& g, const autograd::NeedsGrad& needs) {
                       // dA_i = dC_i · B_iᵀ and dB_i = A_iᵀ · dC_i. An operand broadcast over
                       // batch entries receives their sum: every run accumulates (beta = 1)
                       // into a zeroed gradient, and a run along a broadcast dimension (step
                       // 0) is a reduction inside sgemm_batched.
                       std::vector<Tensor> grads(2);
                       const Tensor gc = g.contiguous();
                       const float* pg = gc.data<float>();
                       const int64_t m = plan.m, n = plan.n, k = plan.k;
                       const int64_t lk = std::max<int64_t>(k, 1), ln = std::max<int64_t>(n, 1);
                       if (needs[0]) {
                         Tensor da = Tensor::zeros(a_shape, DType::f32, gc.device());
                         const float* pb = saved_b.get().data<float>();
                         float* pa = da.data<float>();
                         plan.for_each_run([&](int64_t oa, int64_t ob, int64_t oc, int64_t count, int64_t sa,
                                               int64_t sb, int64_t sc) {
                           kernels::cpu::sgemm_batched(Trans::no, Trans::yes, m, k, n, 1.f, pg + oc, ln, sc, pb + ob, ln,
                                                       sb, 1.f, pa + oa, lk, sa, count);
                         });
                         grads[0] = da;
                       }
                       if (needs[1]) {
                         Tensor db = Tensor::zeros(b_shape, DType::f32, gc.device());
                         const float* pa = saved_a.get().data<float>();
                         float* pb = db.data<float>();
                         plan.for_each_run([&](int64_t oa, int64_t ob, int64_t oc, int64_t count, int64_t sa,
                                               int64_t sb, int64_t sc) {
                           kernels::cpu::sgemm_batched(Trans::yes, Trans::no, k, n, m, 1.f, pa + oa, lk, sa, pg + oc, ln,
                                                       sc, 1.f, pb + ob, ln, sb, count);
                         });
                         grads[1] = db;
                       }
                       return grads;
                     });
  }
  return out;
}

// x (..., in) viewed as rows (rows, in): y = x · Wᵀ + b in one sgemm, the
// rows starting as the bias (beta = 1) when there is one.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  ops::check_supported(ops::OpId::linear, {&x, &weight, &bias});
  GRAFT_CHECK(x.dim() >= 1 && weight.dim() == 2, "linear: expected input (..., in) and weight (out, in), got input "
                                                     << shape_str(x.shape()) << " and weight "
                                                     << shape_str(weight.shape()));
  const int64_t in = weight.size(1), out_features = weight.size(0);
  GRAFT_CHECK(x.size(-1) == in, "linear: input " << shape_str(x.shape()) << " has " << x.size(-1)
                                                 << " features but weight " << shape_str(weight.shape()) << " expects "
                                                 << in);
  if (bias.defined())
    GRAFT_CHECK(bias.dim() == 1 && bias.size(0) == out_features,
                "linear: bias must be 1-D with " << out_features << " elements, got " << shape_str(bias.shape())
                                                 << " (input " << shape_str(x.shape()) << ", weight "
                                                 << shape_str(weight.shape()) << ")");
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor y = Tensor::empty(out_shape, DType::f32, x.device());
  if (y.numel() > 0) {
    float* py = y.data<float>();
    if (bc.defined())
      for (int64_t r = 0; r < rows; ++r) std::copy_n(bc.data<float>(), out_features, py + r * out_features);
    kernels::cpu::sgemm(Trans::no, Trans::yes, rows, out_features, in, 1.f, xc.data<float>(), std::max<int64_t>(in, 1),
                        wc.data<float>(), std::max<int64_t>(in, 1), bc.defined() ? 1.f : 0.f, py, out_features);
  }

  if (autograd::needs_grad({&xc, &wc, &bc})) {
    autograd::Saved saved_x(wc.requires_grad() ? xc : Tensor(), "linear");
    autograd::Saved saved_w(xc.requires_grad() ? wc : Tensor(), "linear");
    const Shape x_shape = x.shape(), w_shape = weight.shape();
    autograd::record("linear", y, {xc, wc, bc},
                     [saved_x, saved_w, x_shape, w_shape, rows, in, out_features](const Tensor& g,
                                                                                  const autograd::NeedsGrad& needs) {
                       std::vector<Tensor> grads(3);
                       const Tensor gc = g.contiguous();
                       const float* pg = gc.data<float>();
                       const int64_t li = std::max<int64_t>(in, 1), lo = std::max<int64_t>(out_features, 1);
                       if (needs[0]) {  // dx = dy · W
                         Tensor dx = Tensor::empty(x_shape, DType::f32, gc.device());
                         if (dx.numel() > 0)
                           kernels::cpu::sgemm(Trans::no, Trans::no, rows, in, out_features, 1.f, pg, lo,
                                               saved_w.get().data<float>(), li, 0.f, dx.data<float>(), li);
                         grads[0] = dx;
                       }
                       if (needs[1]) {  // dW = dyᵀ · x
                         Tensor dw = Tensor::empty(w_shape, DType::f32, gc.device());
                         if (dw.numel() > 0)
                           kernels::cpu::sgemm(Trans::yes, Trans::no, out_features, in, rows, 1.f, pg, lo,
                                               saved_x.get().data<float>(), li, 0.f, dw.data<float>(), li);
                         grads[1] = dw;
                       }
                       if (needs[2]) {  // db = column sums of dy
                         Tensor db = Tensor::empty({out_features}, DType::f32, gc.device());
                         if (out_features > 0) kernels::cpu::sum_rows(pg, rows, out_features, lo, db.data<float>());
                         grads[2] = db;
                       }
                       return grads;
                     });
  }
  return y;
}

}  // namespace graft
