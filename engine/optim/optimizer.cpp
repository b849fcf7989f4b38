#include "engine/optim/optimizer.h"

#include "engine/autograd/grad_mode.h"
#include "kernels/cpu/optim.h"

namespace graft::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
  GRAFT_CHECK(lr >= 0, "optimizer: negative learning rate " << lr);
  for (auto& g : groups_)
    for (auto& p : g.params)
      GRAFT_CHECK(p.defined() && p.is_leaf(), "optimizer: parameter '" << (p.defined() ? p.name() : "?")
                                                                       << "' is not a leaf tensor");
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

bool Optimizer::updatable(const Tensor& p, const char* opt) const {
  if (!p.requires_grad()) return false;  // frozen
  Tensor g = p.grad();
  if (!g.defined()) return false;  // not reached by this backward
  GRAFT_CHECK(p.dtype() == DType::f32 && p.device().is_cpu() && p.is_dense(),
              opt << ": parameter '" << p.name() << "' " << p.str()
                  << " is not supported (dense f32 on the cpu; CUDA updates arrive with the CUDA backend)");
  GRAFT_CHECK(g.shape() == p.shape(), opt << ": gradient " << shape_str(g.shape()) << " of parameter '" << p.name()
                                          << "' does not match its shape " << shape_str(p.shape()));
  return true;
}

namespace {
// The gradient in the parameter's memory layout (a conv weight may be stored
// packed channels-last), so the update runs flat over matching elements.
Tensor grad_like(const Tensor& p) {
  Tensor g = p.grad();
  if (g.strides() == p.strides() && g.is_dense()) return g;
  Tensor out = Tensor::empty_like(p);
  out.copy_(g);
  return out;
}
}  // namespace

SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& opt) : Optimizer(std::move(groups), opt.lr), opt_(opt) {
  GRAFT_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
              "SGD: Nesterov momentum needs momentum > 0 and zero dampening");
}

void SGD::step() {
  NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (auto& p : group.params) {
      if (!updatable(p, "SGD")) continue;
      Tensor g = grad_like(p);
      kernels::cpu::SgdParams s;
      s.lr = static_cast<float>(lr_ * group.lr_mult);
      s.momentum = static_cast<float>(opt_.momentum);
      s.dampening = static_cast<float>(opt_.dampening);
      s.weight_decay = group.weight_decay ? static_cast<float>(opt_.weight_decay) : 0.f;
      s.nesterov = opt_.nesterov;
      float* buf = nullptr;
      if (opt_.momentum != 0) {
        auto it = momentum_.find(p.impl_ptr().get());
        s.first_step = it == momentum_.end();
        if (s.first_step) it = momentum_.emplace(p.impl_ptr().get(), Tensor::zeros_like(p)).first;
        buf = it->second.data<float>();
      }
      kernels::cpu::sgd_update(p.data<float>(), g.data<float>(), buf, p.numel(), s);
      p.bump_version();
    }
  }
}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& opt) : Optimizer(std::move(groups), opt.lr), opt_(opt) {
  GRAFT_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
              "Adam: betas must lie in [0, 1), got " << opt.beta1 << ", " << opt.beta2);
  GRAFT_CHECK(opt.eps > 0, "Adam: eps must be positive, got " << opt.eps);
}

void Adam::step() {
  NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (auto& p : group.params) {
      if (!updatable(p, opt_.decoupled_weight_decay ? "AdamW" : "Adam")) continue;
      Tensor g = grad_like(p);
      auto it = state_.find(p.impl_ptr().get());
      if (it == state_.end())
        it = state_.emplace(p.impl_ptr().get(), State{Tensor::zeros_like(p), Tensor::zeros_like(p), 0}).first;
      State& st = it->second;
      kernels::cpu::AdamParams a;
      a.lr = static_cast<float>(lr_ * group.lr_mult);
      a.beta1 = static_cast<float>(opt_.beta1);
      a.beta2 = static_cast<float>(opt_.beta2);
      a.eps = static_cast<float>(opt_.eps);
      a.weight_decay = group.weight_decay ? static_cast<float>(opt_.weight_decay) : 0.f;
      a.decoupled = opt_.decoupled_weight_decay;
      a.step = ++st.step;
      kernels::cpu::adam_update(p.data<float>(), g.data<float>(), st.m.data<float>(), st.v.data<float>(), p.numel(), a);
      p.bump_version();
    }
  }
}

}  // namespace graft::optim
