// Backward against central finite differences.
//
// For inputs x_i and f(x) = out, takes a random projection L = <out, r> and
// compares dL/dx from autograd with (L(x + eps e_j) - L(x - eps e_j)) / 2eps,
// accumulated in double. f32 arithmetic limits what finite differences can
// resolve, hence the default tolerances; inputs should stay away from kinks.
#pragma once

#include <functional>
#include <vector>

#include "engine/core/tensor.h"
#include "gtest/gtest.h"

namespace graft::testing {

struct GradcheckOptions {
  double eps = 1e-2;
  double rtol = 2e-2;
  double atol = 2e-3;
  int max_elements_per_input = 64;  // checked elements per input (a spread subset when larger)
  std::vector<bool> check;          // which inputs to differentiate (default: all floating inputs)
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs must be CPU f32 tensors; they are used as leaves (requires_grad set).
::testing::AssertionResult gradcheck(const OpFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opt = {});

}  // namespace graft::testing
