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
// CUDA kernels arrive with the CUDA backend; until then no op runs there.
bool cpu_supports(OpId, DType t) { return t == DType::f32; }
bool cuda_supports(OpId, DType) { return false; }

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

void check_supported(OpId op, std::initializer_list<const Tensor*> tensors) {
  check_same_device(op, tensors);  // first, so that a mismatch reads as one whatever the dtypes are
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    GRAFT_CHECK(supports(op, t->device(), t->dtype()),
                op_name(op) << ": " << t->str() << " is not supported (supported: " << supported_list(op) << ")");
  }
}

}  // namespace graft::ops
