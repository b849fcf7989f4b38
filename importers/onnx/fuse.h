// Graph passes over a loaded model's plan (internal to the importer): the
// attention pattern that exporters write as primitive ops becomes one fused
// step running scaled_dot_product_attention (engine/ops/attention.h), so the
// score matrix is never materialised.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "importers/onnx/converter.h"

namespace graft::importer {

// One step of a loaded graph's plan; the executor (model.cpp) runs them in
// order. Values are numbered; -1 is an omitted optional value.
struct PlanStep {
  const ::onnx::NodeProto* node = nullptr;
  const OpSpec* spec = nullptr;  // null: unsupported (LoadOptions::allow_unsupported_ops)
  std::vector<int> in, out;
  std::vector<int> release;  // values whose last use is this step
};

// What the passes read of the loaded graph.
struct PlanGraph {
  const std::string& path;                     // the model's name, the prefix of errors
  int opset;                                   // default domain
  const std::vector<std::string>& value_names;  // by value id
  const std::vector<Tensor>& fixed;            // by value id: constants, parameters, buffers (else undefined)
  const std::vector<int>& output_ids;          // graph outputs
};

// The nodes that fused steps point at (they are not in the file's graph), and
// what was fused. Owned by the model.
struct FusedNodes {
  std::vector<std::unique_ptr<::onnx::NodeProto>> nodes;
  int attention = 0;
};

// Finds, among `steps` (topologically ordered, constants already folded),
//   MatMul(Q', K') [-> Mul/Div by a scalar] [-> Add(mask)] -> Softmax(last axis) -> MatMul(., V)
// with Cast-to-float / Identity links allowed between them, Q' and K' each
// optionally Mul/Div by a scalar (torch's SDPA export scales both by
// sqrt(scale)), and K' = Transpose(K) swapping the last two axes read as K
// directly. Scores, probabilities and every other value inside the pattern
// must have no consumer outside it and not be graph outputs. Each match
// becomes one step; the rest of the plan is untouched. Returns the number of
// patterns fused (also added to out.attention).
//
// The fused step checks at run time what the file cannot promise (ranks 3 or 4,
// equal batch dims, scalar f32 scales, a mask that broadcasts to the scores
// without widening them, needs no gradient, and has no fully masked row, the
// softmax over the last axis); where any of it fails it runs the original
// nodes instead, so a fused graph computes what the file says for every input.
// A scale that needs a gradient (a float initializer is a parameter) is
// applied to Q by a differentiable op rather than folded into the op's scale.
int fuse_attention(std::vector<PlanStep>& steps, const PlanGraph& graph, FusedNodes& out);

}  // namespace graft::importer
