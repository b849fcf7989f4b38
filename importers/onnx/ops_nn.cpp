// ONNX converters of the nn family (see converter.h).
#include "importers/onnx/converter.h"

namespace graft::importer {

void register_nn_ops(OpRegistry& r) { (void)r; }

}  // namespace graft::importer
