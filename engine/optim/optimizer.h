// Optimizers over parameter groups. A group carries a learning-rate
// multiplier and whether weight decay applies; a parameter that does not
// require grad (frozen) or received no gradient is left untouched.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/core/tensor.h"

namespace graft::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr_mult = 1.0;
  bool weight_decay = true;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }  // the base rate; schedulers set it
  const std::vector<ParamGroup>& groups() const { return groups_; }

 protected:
  // Checks that p and its gradient can be updated here; false to skip p.
  bool updatable(const Tensor& p, const char* opt) const;
  std::vector<ParamGroup> groups_;
  double lr_;
};

struct SgdOptions {
  double lr = 0.01, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SgdOptions& opt);
  SGD(const std::vector<Tensor>& params, const SgdOptions& opt) : SGD({ParamGroup{params}}, opt) {}
  void step() override;

 private:
  SgdOptions opt_;
  std::unordered_map<const TensorImpl*, Tensor> momentum_;
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // true: AdamW
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& opt);
  Adam(const std::vector<Tensor>& params, const AdamOptions& opt) : Adam({ParamGroup{params}}, opt) {}
  void step() override;

 private:
  struct State {
    Tensor m, v;
    int64_t step = 0;
  };
  AdamOptions opt_;
  std::unordered_map<const TensorImpl*, State> state_;
};

// AdamW: Adam with decoupled weight decay (default 0.01, as PyTorch).
inline AdamOptions adamw_options(double lr = 1e-3, double weight_decay = 1e-2) {
  AdamOptions o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.decoupled_weight_decay = true;
  return o;
}

}  // namespace graft::optim
