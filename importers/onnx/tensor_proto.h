// ONNX TensorProto <-> engine Tensor, and the .pb files of the ONNX node tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace onnx {
class TensorProto;
}

namespace graft::importer {

// Converts any TensorProto Graft can hold: FLOAT, FLOAT16, BFLOAT16, INT32,
// INT64, UINT8, BOOL (DOUBLE is converted to f32); raw_data or the typed
// fields; external data read from `base_dir`. `what` names the tensor in
// errors (file and initializer). Sizes are checked before anything is
// allocated. The result is contiguous (logical ONNX order).
Tensor from_tensor_proto(const ::onnx::TensorProto& t, const std::string& base_dir, const std::string& what);

// Writes t (any layout; converted to logical order) as raw_data.
void to_tensor_proto(const Tensor& t, const std::string& name, ::onnx::TensorProto* out);

// A serialized TensorProto file (the node tests' input_N.pb / output_N.pb).
Tensor read_tensor_file(const std::string& path);
// Written to a temporary name and renamed.
void write_tensor_file(const std::string& path, const Tensor& t, const std::string& name);

// The element count of `dims`, or -1 with `why` set when a dimension is
// negative (a -1 is skipped, as unknown, where `allow_unknown`) or the count
// would exceed `limit` (`limit_name` says where the limit comes from). Every
// size read from a file goes through it before anything is allocated; callers
// prefix `why` with the file, node or tensor.
int64_t bounded_numel(const std::vector<int64_t>& dims, int64_t limit, const char* limit_name, bool allow_unknown,
                      std::string& why);

// Whether Graft can hold this TensorProto data type, and its ONNX name.
bool supported_onnx_dtype(int onnx_type);
const char* onnx_dtype_name(int onnx_type);

}  // namespace graft::importer
