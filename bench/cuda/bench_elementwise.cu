// Elementwise, reduction and dropout kernels (kernels/cuda/elementwise.h,
// reduce.h, dropout.h): all memory-bound, so each reports bytes (read +
// written once each) and is judged against copy_d2d. cuDNN baselines
// (activation and op-tensor) for relu and add in f32 where cuDNN is linked.
// Predictions: bench/NOTES.md, "CUDA elementwise, reduce, dropout".
#include <string>

#include "bench/cuda/harness.h"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/reduce.h"

#ifdef GRAFT_HAVE_CUDNN
#include <cudnn.h>
#endif

namespace graft::bench {
namespace {

namespace kc = kernels::cpu;
namespace kg = kernels::cuda;
using kg::DataType;

// ResNet-50 stage-1 activation, batch 64, NHWC.
constexpr int64_t kN = 64, kH = 56, kW = 56, kC = 256;
constexpr int64_t kAct = kN * kH * kW * kC;
// ViT-B/16 MLP hidden activation, batch 256: 256 x 197 x 3072.
constexpr int64_t kGelu = 256LL * 197 * 3072;

double elt(DataType dt) { return static_cast<double>(kg::dtype_size(dt)); }

void unary_fwd(benchmark::State& state, kc::UnaryOp op, DataType dt, int64_t n) {
  DeviceBuffer x(n * kg::dtype_size(dt)), y(n * kg::dtype_size(dt));
  const kc::UnaryParams p{op, 0.f, 0.f};
  run_timed(state, [&] { kg::unary_forward(p, dt, n, x.p, y.p, nullptr); });
  set_bytes(state, 2.0 * n * elt(dt));
}

void unary_bwd(benchmark::State& state, kc::UnaryOp op, DataType dt, int64_t n) {
  DeviceBuffer s(n * kg::dtype_size(dt)), gy(n * kg::dtype_size(dt)), gx(n * kg::dtype_size(dt));
  const kc::UnaryParams p{op, 0.f, 0.f};
  run_timed(state, [&] { kg::unary_backward(p, dt, n, s.p, gy.p, gx.p, nullptr); });
  set_bytes(state, 3.0 * n * elt(dt));
}

// (N, H, W, C) channels-last tensor as a logical NCHW StridedIter: out, a full; b
// full (same shape) or a (1, C, 1, 1) bias.
kernels::StridedIter<3> nhwc_iter(bool bias) {
  kernels::StridedIter<3> it;
  it.ndim = 4;
  const int64_t size[4] = {kN, kC, kH, kW}, cl[4] = {kH * kW * kC, 1, kW * kC, kC}, b[4] = {0, 1, 0, 0};
  for (int d = 0; d < 4; ++d) {
    it.size[d] = size[d];
    it.stride[0][d] = it.stride[1][d] = cl[d];
    it.stride[2][d] = bias ? b[d] : cl[d];
  }
  return it;
}

void add(benchmark::State& state, DataType dt, bool bias) {
  DeviceBuffer a(kAct * kg::dtype_size(dt)), b((bias ? kC : kAct) * kg::dtype_size(dt)), o(kAct * kg::dtype_size(dt));
  const kernels::StridedIter<3> it = nhwc_iter(bias);
  run_timed(state, [&] { kg::binary_forward(kc::BinaryOp::add, dt, it, o.p, a.p, b.p, nullptr); });
  set_bytes(state, (2.0 * kAct + (bias ? kC : kAct)) * elt(dt));
}

void dropout_fwd(benchmark::State& state, DataType dt) {
  DeviceBuffer x(kAct * kg::dtype_size(dt)), y(kAct * kg::dtype_size(dt)), keep(kAct);
  uint64_t offset = 0;
  run_timed(state, [&] {
    kg::dropout_forward(dt, x.p, y.p, keep.as<uint8_t>(), kAct, 0.1f, {1234, offset}, nullptr);
    offset += kc::random_blocks(kAct);
  });
  set_bytes(state, kAct * (2.0 * elt(dt) + 1.0));
}

// Reductions: rows (last dim) of a (rows, cols) matrix, or the bias gradient
// of the NHWC activation (sum over N, H, W: column sums of (NHW, C)).
void reduce(benchmark::State& state, DataType dt, int64_t rows, int64_t cols, bool over_rows) {
  kc::ReduceParams p;
  p.ndim = 2;
  p.size[0] = rows;
  p.size[1] = cols;
  p.stride[0] = cols;
  p.stride[1] = 1;
  p.reduce[0] = !over_rows;
  p.reduce[1] = over_rows;
  const int64_t n_out = over_rows ? rows : cols;
  DeviceBuffer x(rows * cols * kg::dtype_size(dt)), out(n_out * 4), ws(kg::sum_workspace_bytes(p));
  run_timed(state, [&] { kg::sum_forward(p, dt, x.p, out.as<float>(), ws.p, ws.bytes, nullptr); });
  set_bytes(state, rows * cols * elt(dt) + n_out * 4.0);
}

#ifdef GRAFT_HAVE_CUDNN
void relu_cudnn(benchmark::State& state) {
  cudnnHandle_t h;
  CUDNN_SKIP_ON_ERROR(cudnnCreate(&h));
  cudnnTensorDescriptor_t d;
  cudnnActivationDescriptor_t act;
  CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&d));
  CUDNN_SKIP_ON_ERROR(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, kN, kC, kH, kW));
  CUDNN_SKIP_ON_ERROR(cudnnCreateActivationDescriptor(&act));
  CUDNN_SKIP_ON_ERROR(cudnnSetActivationDescriptor(act, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  DeviceBuffer x(kAct * 4), y(kAct * 4);
  const float one = 1.f, zero = 0.f;
  run_timed(state, [&] { cudnnActivationForward(h, act, &one, d, x.p, &zero, d, y.p); });
  set_bytes(state, 2.0 * kAct * 4);
  cudnnDestroyActivationDescriptor(act);
  cudnnDestroyTensorDescriptor(d);
  cudnnDestroy(h);
}

void add_cudnn(benchmark::State& state, bool bias) {
  cudnnHandle_t h;
  CUDNN_SKIP_ON_ERROR(cudnnCreate(&h));
  cudnnTensorDescriptor_t d, db;
  cudnnOpTensorDescriptor_t op;
  CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&d));
  CUDNN_SKIP_ON_ERROR(cudnnCreateTensorDescriptor(&db));
  CUDNN_SKIP_ON_ERROR(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, kN, kC, kH, kW));
  CUDNN_SKIP_ON_ERROR(cudnnSetTensor4dDescriptor(db, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, bias ? 1 : kN, kC, bias ? 1 : kH,
                                      bias ? 1 : kW));
  CUDNN_SKIP_ON_ERROR(cudnnCreateOpTensorDescriptor(&op));
  CUDNN_SKIP_ON_ERROR(cudnnSetOpTensorDescriptor(op, CUDNN_OP_TENSOR_ADD, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN));
  DeviceBuffer a(kAct * 4), b((bias ? kC : kAct) * 4), o(kAct * 4);
  const float one = 1.f, zero = 0.f;
  run_timed(state, [&] { cudnnOpTensor(h, op, &one, d, a.p, &one, db, b.p, &zero, d, o.p); });
  set_bytes(state, (2.0 * kAct + (bias ? kC : kAct)) * 4);
  cudnnDestroyOpTensorDescriptor(op);
  cudnnDestroyTensorDescriptor(db);
  cudnnDestroyTensorDescriptor(d);
  cudnnDestroy(h);
}
#endif

#define GRAFT_BENCH(fn, name, ...) \
  BENCHMARK_CAPTURE(fn, _, __VA_ARGS__)->Name(name)->UseManualTime()->Unit(benchmark::kMicrosecond)

GRAFT_BENCH(unary_fwd, "relu_fwd/f32/nhwc=64x56x56x256", kc::UnaryOp::relu, DataType::f32, kAct);
GRAFT_BENCH(unary_fwd, "relu_fwd/bf16/nhwc=64x56x56x256", kc::UnaryOp::relu, DataType::bf16, kAct);
GRAFT_BENCH(unary_bwd, "relu_bwd/bf16/nhwc=64x56x56x256", kc::UnaryOp::relu, DataType::bf16, kAct);
GRAFT_BENCH(add, "add/f32/nhwc=64x56x56x256", DataType::f32, false);
GRAFT_BENCH(add, "add/bf16/nhwc=64x56x56x256", DataType::bf16, false);
GRAFT_BENCH(add, "add_bias/f32/nhwc=64x56x56x256", DataType::f32, true);
GRAFT_BENCH(add, "add_bias/bf16/nhwc=64x56x56x256", DataType::bf16, true);
GRAFT_BENCH(unary_fwd, "gelu_erf_fwd/bf16/256x197x3072", kc::UnaryOp::gelu_erf, DataType::bf16, kGelu);
GRAFT_BENCH(unary_bwd, "gelu_erf_bwd/bf16/256x197x3072", kc::UnaryOp::gelu_erf, DataType::bf16, kGelu);
GRAFT_BENCH(unary_fwd, "gelu_tanh_fwd/bf16/256x197x3072", kc::UnaryOp::gelu_tanh, DataType::bf16, kGelu);
GRAFT_BENCH(reduce, "sum_rows/f32/rows=4096x1024", DataType::f32, 4096, 1024, true);
GRAFT_BENCH(reduce, "sum_rows/bf16/rows=4096x1024", DataType::bf16, 4096, 1024, true);
GRAFT_BENCH(reduce, "bias_grad/f32/nhwc=64x56x56x256", DataType::f32, kN * kH * kW, kC, false);
GRAFT_BENCH(reduce, "bias_grad/bf16/nhwc=64x56x56x256", DataType::bf16, kN * kH * kW, kC, false);
GRAFT_BENCH(dropout_fwd, "dropout_fwd/f32/nhwc=64x56x56x256", DataType::f32);
GRAFT_BENCH(dropout_fwd, "dropout_fwd/bf16/nhwc=64x56x56x256", DataType::bf16);
#ifdef GRAFT_HAVE_CUDNN
BENCHMARK(relu_cudnn)->Name("relu_fwd/f32/nhwc=64x56x56x256@cudnn")->UseManualTime()->Unit(benchmark::kMicrosecond);
GRAFT_BENCH(add_cudnn, "add/f32/nhwc=64x56x56x256@cudnn", false);
GRAFT_BENCH(add_cudnn, "add_bias/f32/nhwc=64x56x56x256@cudnn", true);
#endif

}  // namespace
}  // namespace graft::bench
