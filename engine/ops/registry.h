// Op identities, names, and what each device supports.
#pragma once

#include <initializer_list>

#include "engine/core/tensor.h"
#include "engine/ops/op_list.h"

namespace graft::ops {

enum class OpId : int {
#define GRAFT_OP_ENUM(id, name) id,
  GRAFT_OP_LIST(GRAFT_OP_ENUM)
#undef GRAFT_OP_ENUM
      count
};

constexpr int kNumOps = static_cast<int>(OpId::count);

const char* op_name(OpId op);
bool supports(OpId op, Device device, DType dtype);

// Throws unless every defined tensor is on one device and `op` supports that
// device with that tensor's dtype. Names the op, the offending tensor and what
// is supported. Mismatched devices are an error: never an implicit copy.
void check_supported(OpId op, std::initializer_list<const Tensor*> tensors);
// Throws unless every defined tensor is on one device (for operands that
// check_supported does not see, e.g. integer targets, indices, conditions).
void check_same_device(OpId op, std::initializer_list<const Tensor*> tensors);
// Throws unless every defined tensor has the dtype of the first: the CUDA
// kernels take one dtype for all their float operands (no implicit conversion).
void check_same_dtype(OpId op, std::initializer_list<const Tensor*> tensors);

}  // namespace graft::ops
