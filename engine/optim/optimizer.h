// Optimizers over parameter groups. A group carries a learning-rate
// multiplier and whether weight decay applies; a parameter that does not
// require grad (frozen) or received no gradient is left untouched.
//
// Parameters on the CPU are updated one by one (kernels/cpu/optim.h).
// Parameters on a GPU are updated by one fused launch per step over all of
// them (kernels/cuda/optim.h; one per device, gradient dtype and step count
// when those differ), with the optimizer's state on the parameter's device.
// The launch table is packed into page-locked host memory and uploaded
// asynchronously; the optimizer keeps two such tables and uses them in turn,
// each guarded by an event recorded after the launch that reads it, so a step
// never overwrites a table a previous launch may still be reading (it waits
// for that launch only if it is still running two steps later).
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/core/tensor.h"

namespace graft::optim {

namespace detail {
struct CudaTableRing;  // the fused CUDA update's launch tables (optimizer.cpp)
}

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
  std::shared_ptr<detail::CudaTableRing> cuda_tables_;
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
