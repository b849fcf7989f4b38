#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

#include "engine/autograd/grad_mode.h"
#include "tests/support/reference.h"

namespace graft::testing {

namespace {
double project(const Tensor& out, const std::vector<float>& r) {
  std::vector<float> o = out.to_vector();
  double s = 0;
  for (size_t i = 0; i < o.size(); ++i) s += static_cast<double>(o[i]) * r[i];
  return s;
}
}  // namespace

::testing::AssertionResult gradcheck(const OpFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opt) {
  std::vector<bool> check = opt.check;
  if (check.empty()) {
    check.resize(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) check[i] = inputs[i].defined() && is_floating(inputs[i].dtype());
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    inputs[i] = inputs[i].contiguous().detach().clone();  // private, contiguous leaves
    if (check[i]) inputs[i].set_requires_grad(true);
  }

  Tensor out = f(inputs);
  if (!out.requires_grad()) return ::testing::AssertionFailure() << "output does not require grad";
  Generator gen(0xc0ffee);
  Tensor r = Tensor::rand(out.shape(), gen, -1.f, 1.f);
  std::vector<float> rv = r.to_vector();
  out.backward(r);

  std::ostringstream os;
  int failures = 0;
  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!check[i]) continue;
    Tensor g = inputs[i].grad();
    if (!g.defined()) return ::testing::AssertionFailure() << "input " << i << " received no gradient";
    std::vector<float> gv = g.to_vector();
    float* x = inputs[i].data<float>();
    const int64_t n = inputs[i].numel();
    const int64_t step = std::max<int64_t>(1, n / opt.max_elements_per_input);
    for (int64_t j = 0; j < n; j += step) {
      const float orig = x[j];
      x[j] = orig + static_cast<float>(opt.eps);
      const double lp = project(f(inputs), rv);
      x[j] = orig - static_cast<float>(opt.eps);
      const double lm = project(f(inputs), rv);
      x[j] = orig;
      const double num = (lp - lm) / (2 * opt.eps);
      const double ana = gv[j];
      if (!(std::fabs(num - ana) <= opt.atol + opt.rtol * std::fabs(num))) {
        if (failures < 8) os << "\n  input " << i << " element " << j << ": backward " << ana << ", finite difference " << num;
        ++failures;
      }
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << failures << " gradient elements differ from finite differences:" << os.str();
}

}  // namespace graft::testing
