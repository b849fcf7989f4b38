#include "engine/nn/module.h"

#include "engine/autograd/grad_mode.h"

namespace graft::nn {

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  t.set_requires_grad(true);
  t.set_name(name);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  t.set_name(name);
  buffers_.emplace_back(name, t);
  return t;
}

void Module::collect(const std::string& prefix, bool params, NamedTensors& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (const bool params : {true, false}) {
    NamedTensors ts;
    collect("", params, ts);
    for (auto& [name, t] : ts) {
      if (t.device() == device) continue;
      GRAFT_CHECK(t.is_leaf(), "Module::to: '" << name << "' " << t.str() << " is not a leaf tensor");
      const Tensor moved = t.detach().to(device);  // same strides when dense
      TensorImpl& impl = t.impl();
      impl.storage = moved.impl().storage;
      impl.strides = moved.strides();
      impl.offset = moved.offset();
      impl.grad.reset();
    }
  }
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

}  // namespace graft::nn
