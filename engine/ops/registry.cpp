#include "engine/ops/registry.h"

#include <string>

namespace graft::ops {

namespace {
constexpr const char* kNames[] = {
#define GRAFT_OP_NAME(id, name) name,
    GRAFT_OP_LIST(GRAFT_OP_NAME)
#undef GRAFT_OP_NAME
};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == kNumOps, "op name table out of step with the op list");

// On the CPU every op computes in f32 (DESIGN: float32 everywhere on CPU).
bool cpu_supports(OpId, DType t) { return t == DType::f32; }

// On CUDA: the ops whose kernels exist (kernels/cuda/), in f32 and in the
// mixed-precision activation dtypes f16/bf16 (math in f32). Parameters,
// statistics and class weights beside a 16-bit activation stay f32: the ops
// check that themselves. gather and conv_transpose2d have no CUDA kernel yet.
bool cuda_supports(OpId op, DType t) {
  const bool is_float = t == DType::f32 || t == DType::f16 || t == DType::bf16;
  switch (op) {
    // elementwise and activations (kernels/cuda/elementwise.h)
    case OpId::add: case OpId::sub: case OpId::mul: case OpId::div: case OpId::neg:
    case OpId::add_scalar: case OpId::mul_scalar: case OpId::pow_scalar: case OpId::exp: case OpId::log:
    case OpId::sqrt: case OpId::relu: case OpId::clip: case OpId::sigmoid: case OpId::silu: case OpId::gelu:
    case OpId::hardswish: case OpId::hardsigmoid: case OpId::tanh: case OpId::erf: case OpId::pow:
    case OpId::where:
    // reductions (kernels/cuda/reduce.h; the result is converted back to the input's dtype)
    case OpId::sum: case OpId::mean:
    // data movement (kernels/cuda/copy.h)
    case OpId::reshape: case OpId::permute: case OpId::concat: case OpId::slice: case OpId::pad:
    case OpId::expand:
    // pooling, normalisation, softmax, loss, dropout
    case OpId::max_pool2d: case OpId::avg_pool2d: case OpId::global_avg_pool2d:
    case OpId::batch_norm: case OpId::layer_norm:
    case OpId::softmax: case OpId::log_softmax: case OpId::cross_entropy: case OpId::dropout:
    // tensor cores: GEMM (kernels/cuda/gemm.h; f32 as TF32), implicit-GEMM and
    // depthwise convolution (conv.h, depthwise.h), fused attention (attention.h;
    // bf16/f16 with head dims 32/64/128, otherwise unfused engine ops)
    case OpId::matmul: case OpId::linear: case OpId::conv2d: case OpId::attention:
      return is_float;
    case OpId::gather: case OpId::conv_transpose2d: case OpId::count:
      return false;
  }
  return false;
}

std::string supported_list(OpId op) {
  std::string s;
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    if (cpu_supports(op, t)) s += std::string(s.empty() ? "" : ", ") + "cpu/" + dtype_name(t);
    if (cuda_supports(op, t)) s += std::string(s.empty() ? "" : ", ") + "cuda/" + dtype_name(t);
  }
  return s;
}
}  // namespace

const char* op_name(OpId op) { return kNames[static_cast<int>(op)]; }

bool supports(OpId op, Device device, DType dtype) {
  return device.is_cpu() ? cpu_supports(op, dtype) : cuda_supports(op, dtype);
}

void check_same_device(OpId op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!first) first = t;
    GRAFT_CHECK(t->device() == first->device(), op_name(op) << ": operands on different devices: " << first->str()
                                                            << " and " << t->str() << " (no implicit copies)");
  }
}

void check_same_dtype(OpId op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!first) first = t;
    GRAFT_CHECK(t->dtype() == first->dtype(), op_name(op) << ": operands of different dtypes: " << first->str()
                                                          << " and " << t->str() << " (no implicit conversion; use .to(dtype))");
  }
}

void check_supported(OpId op, std::initializer_list<const Tensor*> tensors) {
  check_same_device(op, tensors);  // first, so that a mismatch reads as one whatever the dtypes are
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (supports(op, t->device(), t->dtype())) continue;
    const std::string list = supported_list(op);
    GRAFT_FAIL(op_name(op) << ": " << t->str() << " is not supported (supported: " << list
                           << (list.find("cuda/") == std::string::npos ? "; no CUDA kernel for this op yet" : "")
                           << ")");
  }
}

}  // namespace graft::ops
