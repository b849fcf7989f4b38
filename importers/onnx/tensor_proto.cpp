// Implemented by the ONNX core work (see tensor_proto.h).
#include "importers/onnx/tensor_proto.h"
