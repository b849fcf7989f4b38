#include "engine/ops/linear.h"

#include <algorithm>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/core/kernel_launch.h"
#include "engine/ops/reduce.h"
#include "engine/ops/registry.h"
#include "engine/ops/shape.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/strided.h"
#include "kernels/cuda/gemm.h"

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

// ---- CUDA: the tensor-core GEMM (kernels/cuda/gemm.h) ----------------------------------------
// Operands of one dtype (f32 runs on TF32 tensor cores: ~1e-3 relative, as
// cuBLAS's TF32 mode; bf16/f16 with f32 accumulation); offsets in elements.
struct DevMat {
  const Tensor* t;
  int64_t offset;
  const void* ptr() const { return static_cast<const char*>(t->raw_data()) + offset * dtype_size(t->dtype()); }
  void* mut() const { return static_cast<char*>(t->raw_data()) + offset * dtype_size(t->dtype()); }
};

void gemm_cuda(const char* op, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, DevMat a, int64_t lda, int64_t sa,
               DevMat b, int64_t ldb, int64_t sb, DevMat c, int64_t ldc, int64_t sc, int64_t batch,
               const kernels::cuda::GemmEpilogue& ep = {}) {
  cuda::launch(op, c.t->device(), [&](cudaStream_t s) {
    const auto dt = cuda::kernel_dtype(c.t->dtype(), op);
    if (batch == 1)
      kernels::cuda::gemm(ta, tb, m, n, k, a.ptr(), lda, b.ptr(), ldb, c.mut(), ldc, ep, dt, s);
    else
      kernels::cuda::gemm_batched(ta, tb, m, n, k, a.ptr(), lda, sa, b.ptr(), ldb, sb, c.mut(), ldc, sc, batch, ep,
                                  dt, s);
  });
}

// The gradient of one matmul operand on CUDA: the product for every output
// batch entry (`full_batch` + the operand's matrix), then summed over the
// entries the operand was broadcast along (sum_to). `mat_rows` x `mat_cols`
// is the operand's matrix; `vector_dim` drops the 1 of a promoted 1-D operand.
Tensor reduce_broadcast_grad(const Tensor& full, const Shape& batch, int64_t mat_rows, int64_t mat_cols,
                             const Shape& operand_shape) {
  Shape s = batch;
  if (operand_shape.size() == 1) s.push_back(operand_shape[0]);
  else s.insert(s.end(), {mat_rows, mat_cols});
  const Tensor shaped = reshape(full, s);
  return shaped.shape() == operand_shape ? shaped : sum_to(shaped, operand_shape);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  ops::check_supported(ops::OpId::matmul, {&a, &b});
  const bool on_cuda = a.device().is_cuda();
  if (on_cuda) ops::check_same_dtype(ops::OpId::matmul, {&a, &b});
  const MatmulPlan plan = plan_matmul(a, b);
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  const DType dt = a.dtype();  // f32 on the CPU (check_supported)
  Tensor out = Tensor::empty(plan.out_shape, dt, a.device());
  if (out.numel() > 0 && on_cuda) {
    const int64_t m = plan.m, n = plan.n, k = plan.k;
    if (k == 0) out.zero_();
    else
      plan.for_each_run([&](int64_t oa, int64_t ob, int64_t oc, int64_t count, int64_t sa, int64_t sb, int64_t sc) {
        gemm_cuda("matmul", Trans::no, Trans::no, m, n, k, {&ac, oa}, k, sa, {&bc, ob}, n, sb, {&out, oc}, n, sc,
                  count);
      });
  } else if (out.numel() > 0) {
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
                       const int64_t m = plan.m, n = plan.n, k = plan.k;
                       if (gc.device().is_cuda()) {
                         // Per output batch entry (contiguous (batch..., m, n) offsets oc),
                         // dA_i = dC_i B_iᵀ into (batch..., m, k) and dB_i = A_iᵀ dC_i into
                         // (batch..., k, n); then summed where the operand was broadcast.
                         const int64_t entries = shape_numel(plan.batch);
                         const int64_t mn = m * n;
                         const auto entry = [mn](int64_t oc) { return mn > 0 ? oc / mn : 0; };
                         if (needs[0]) {
                           Tensor full = Tensor::zeros({entries * m * k}, gc.dtype(), gc.device());
                           const Tensor bs = saved_b.get().to(gc.dtype());
                           if (entries > 0 && mn > 0 && m * k > 0)
                             plan.for_each_run([&](int64_t, int64_t ob, int64_t oc, int64_t count, int64_t, int64_t sb,
                                                   int64_t sc) {
                               gemm_cuda("matmul backward", Trans::no, Trans::yes, m, k, n, {&gc, oc}, n, sc, {&bs, ob},
                                         n, sb, {&full, entry(oc) * m * k}, k, entry(sc) * m * k, count);
                             });
                           grads[0] = reduce_broadcast_grad(full, plan.batch, m, k, a_shape);
                         }
                         if (needs[1]) {
                           Tensor full = Tensor::zeros({entries * k * n}, gc.dtype(), gc.device());
                           const Tensor as = saved_a.get().to(gc.dtype());
                           if (entries > 0 && mn > 0 && k * n > 0)
                             plan.for_each_run([&](int64_t oa, int64_t, int64_t oc, int64_t count, int64_t sa, int64_t,
                                                   int64_t sc) {
                               gemm_cuda("matmul backward", Trans::yes, Trans::no, k, n, m, {&as, oa}, k, sa, {&gc, oc},
                                         n, sc, {&full, entry(oc) * k * n}, n, entry(sc) * k * n, count);
                             });
                           grads[1] = reduce_broadcast_grad(full, plan.batch, k, n, b_shape);
                         }
                         return grads;
                       }
                       const float* pg = gc.data<float>();
                       const int64_t lk = std::max<int64_t>(k, 1), ln = std::max<int64_t>(n, 1);
                       if (needs[0]) {
                         Tensor da = Tensor::zeros(a_shape, DType::f32, gc.device());
                         const float* pb = saved_b.get().data<float>();
                         float* pa = da.data<float>();
                         if (gc.numel() > 0)  // an empty batch would make for_each_run divide by a zero run length
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
                         if (gc.numel() > 0)
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
  const bool on_cuda = x.device().is_cuda();
  if (on_cuda) ops::check_same_dtype(ops::OpId::linear, {&x, &weight});
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  const DType dt = x.dtype();  // f32 on the CPU (check_supported)
  Tensor y = Tensor::empty(out_shape, dt, x.device());
  if (y.numel() > 0 && on_cuda) {
    // y = x Wᵀ + b: NT, the bias (f32) in the epilogue.
    const Tensor b32 = bc.defined() ? bc.detach().to(DType::f32) : Tensor();
    kernels::cuda::GemmEpilogue ep;
    ep.bias = b32.defined() ? static_cast<const float*>(b32.raw_data()) : nullptr;
    gemm_cuda("linear", Trans::no, Trans::yes, rows, out_features, in, {&xc, 0}, std::max<int64_t>(in, 1), 0,
              {&wc, 0}, std::max<int64_t>(in, 1), 0, {&y, 0}, out_features, 0, 1, ep);
  } else if (y.numel() > 0) {
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
    const DType bias_dt = bc.defined() ? bc.dtype() : dt;
    autograd::record("linear", y, {xc, wc, bc},
                     [saved_x, saved_w, x_shape, w_shape, rows, in, out_features, bias_dt](
                         const Tensor& g, const autograd::NeedsGrad& needs) {
                       std::vector<Tensor> grads(3);
                       const Tensor gc = g.contiguous();
                       const int64_t li = std::max<int64_t>(in, 1), lo = std::max<int64_t>(out_features, 1);
                       if (gc.device().is_cuda()) {
                         if (needs[0]) {  // dx = dy · W (NN)
                           Tensor dx = Tensor::empty(x_shape, gc.dtype(), gc.device());
                           const Tensor ws = saved_w.get().to(gc.dtype());
                           if (dx.numel() > 0)
                             gemm_cuda("linear backward", Trans::no, Trans::no, rows, in, out_features, {&gc, 0}, lo, 0,
                                       {&ws, 0}, li, 0, {&dx, 0}, li, 0, 1);
                           grads[0] = dx;
                         }
                         if (needs[1]) {  // dW = dyᵀ · x (TN)
                           Tensor dw = Tensor::empty(w_shape, gc.dtype(), gc.device());
                           const Tensor xs = saved_x.get().to(gc.dtype());
                           if (dw.numel() > 0)
                             gemm_cuda("linear backward", Trans::yes, Trans::no, out_features, in, rows, {&gc, 0}, lo, 0,
                                       {&xs, 0}, li, 0, {&dw, 0}, li, 0, 1);
                           grads[1] = dw;
                         }
                         if (needs[2]) {  // db = column sums of dy (the reduce kernels)
                           std::vector<int64_t> dims;
                           for (int64_t d = 0; d + 1 < gc.dim(); ++d) dims.push_back(d);
                           const Tensor gb = gc.to(bias_dt);  // summed in the bias's dtype
                           grads[2] = dims.empty() ? gb.clone() : sum(gb, dims);
                         }
                         return grads;
                       }
                       const float* pg = gc.data<float>();
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
