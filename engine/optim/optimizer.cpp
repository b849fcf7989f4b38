#include "engine/optim/optimizer.h"

#include <map>
#include <tuple>

#include "engine/autograd/grad_mode.h"
#include "engine/core/cuda_runtime.h"
#include "engine/core/kernel_launch.h"
#include "kernels/cpu/optim.h"
#include "kernels/cuda/optim.h"

namespace graft::optim {

namespace kg = kernels::cuda;

namespace detail {

// Two (pinned host, device) table buffers used in turn. A slot's event is
// recorded after the launch that read it; acquire() waits for it before the
// host writes the slot again.
struct CudaTableRing {
  struct Slot {
    void* host = nullptr;
    void* device = nullptr;
    size_t bytes = 0;
    int device_index = -1;
    cuda::Event done;
  };
  Slot slots[2];
  int next = 0;

  CudaTableRing() = default;
  CudaTableRing(const CudaTableRing&) = delete;
  CudaTableRing& operator=(const CudaTableRing&) = delete;
  ~CudaTableRing() {
    for (Slot& s : slots) {
      try {
        release(s);
      } catch (...) {  // a destructor must not throw; the process is likely ending with a CUDA error
      }
    }
  }

  static void release(Slot& s) {
    s.done.synchronize();  // the last launch that read the slot is done
    if (s.host) cuda::pinned_free(s.host);
    if (s.device) cuda::device_free(s.device, s.device_index);
    s = Slot{};
  }

  // The next slot, free to write, holding at least `bytes` on `device`.
  Slot& acquire(size_t bytes, int device) {
    Slot& s = slots[next];
    next ^= 1;
    s.done.synchronize();
    if (s.bytes < bytes || s.device_index != device) {
      release(s);
      size_t cap = 4096;
      while (cap < bytes) cap *= 2;
      s.device_index = device;
      s.host = cuda::pinned_alloc(cap);
      s.device = cuda::device_alloc(cap, device);
      s.done = cuda::Event::create(device);
      s.bytes = cap;
    }
    return s;
  }
};

}  // namespace detail

namespace {

// The CUDA parameters of one step, grouped by what one fused launch shares:
// device, gradient dtype, and the step count (Adam) or first-step flag (SGD).
using FusedKey = std::tuple<int, DType, int64_t>;
struct FusedList {
  std::vector<kg::OptimTensor> tensors;
  std::vector<Tensor> keep;  // gradient copies the launch reads (freed after queuing: same stream)
};

kg::OptimTensor fused_entry(const Tensor& p, const Tensor& g, const Tensor& s0, const Tensor& s1,
                            const ParamGroup& group) {
  kg::OptimTensor t;
  t.param = p.data<float>();
  t.grad = g.raw_data();
  t.state0 = s0.defined() ? s0.data<float>() : nullptr;
  t.state1 = s1.defined() ? s1.data<float>() : nullptr;
  t.numel = p.numel();
  t.lr_mult = static_cast<float>(group.lr_mult);
  t.weight_decay = group.weight_decay;
  t.trainable = true;
  return t;
}

// One fused launch per list, its table in the ring's next slot.
// launch(list, grad_dtype, table, stream) calls the kernel's launcher.
template <class Launch>
void launch_fused(const char* op, detail::CudaTableRing& ring, const std::map<FusedKey, FusedList>& lists,
                  Launch launch) {
  for (const auto& entry : lists) {  // not a structured binding: the lambda below captures them (C++17)
    const FusedKey& key = entry.first;
    const FusedList& list = entry.second;
    const int device = std::get<0>(key);
    const DType grad_dtype = std::get<1>(key);
    cuda::launch(op, Device::cuda(device), [&](cudaStream_t stream) {
      const int count = static_cast<int>(list.tensors.size());
      const size_t bytes = kg::multi_tensor_table_bytes(list.tensors.data(), count);
      if (bytes == 0) return;
      detail::CudaTableRing::Slot& slot = ring.acquire(bytes, device);
      const kg::MultiTensorTable table{slot.host, slot.device, slot.bytes};
      launch(list, cuda::kernel_dtype(grad_dtype, op), std::get<2>(key), table, stream);
      slot.done.record(cuda::current_stream(device));
    });
  }
}

}  // namespace

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
  GRAFT_CHECK(p.dtype() == DType::f32 && p.is_dense(),
              opt << ": parameter '" << p.name() << "' " << p.str()
                  << " is not supported (master weights are dense f32, on the cpu or a GPU)");
  GRAFT_CHECK(g.shape() == p.shape(), opt << ": gradient " << shape_str(g.shape()) << " of parameter '" << p.name()
                                          << "' does not match its shape " << shape_str(p.shape()));
  if (p.device().is_cuda()) {
    GRAFT_CHECK(g.device() == p.device(), opt << ": gradient " << g.str() << " of parameter '" << p.name()
                                              << "' is not on the parameter's device " << p.device().str());
    GRAFT_CHECK(is_floating(g.dtype()), opt << ": gradient " << g.str() << " of parameter '" << p.name()
                                            << "' is not f32, f16 or bf16");
  }
  return true;
}

namespace {
// Optimizer state lives on its parameter's device. A parameter moved after
// the optimizer stepped (Module::to) keeps state on the old device: a kernel
// would then dereference memory of the wrong device (a host crash, or an
// illegal address that poisons the CUDA context), so it is an error here.
void check_state_device(const Tensor& state, const Tensor& p, const char* opt) {
  GRAFT_CHECK(state.device() == p.device(),
              opt << ": the state of parameter '" << p.name() << "' is on " << state.device().str()
                  << " but the parameter is now on " << p.device().str()
                  << " (moved after the optimizer stepped; build the optimizer after Module::to)");
}

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
  std::map<FusedKey, FusedList> fused;  // parameters on GPUs
  for (auto& group : groups_) {
    for (auto& p : group.params) {
      if (!updatable(p, "SGD")) continue;
      Tensor g = grad_like(p);
      if (p.device().is_cuda()) {
        Tensor buf;
        bool first = false;
        if (opt_.momentum != 0) {
          auto it = momentum_.find(p.impl_ptr().get());
          first = it == momentum_.end();
          if (first) it = momentum_.emplace(p.impl_ptr().get(), Tensor::zeros_like(p)).first;
          buf = it->second;
          check_state_device(buf, p, "SGD");
        }
        FusedList& list = fused[FusedKey{p.device().index, g.dtype(), first ? 1 : 0}];
        list.tensors.push_back(fused_entry(p, g, buf, Tensor(), group));
        list.keep.push_back(g);
        p.bump_version();
        continue;
      }
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
        check_state_device(it->second, p, "SGD");
        buf = it->second.data<float>();
      }
      kernels::cpu::sgd_update(p.data<float>(), g.data<float>(), buf, p.numel(), s);
      p.bump_version();
    }
  }
  if (fused.empty()) return;
  if (!cuda_tables_) cuda_tables_ = std::make_shared<detail::CudaTableRing>();
  kernels::cpu::SgdParams base;
  base.lr = static_cast<float>(lr_);
  base.momentum = static_cast<float>(opt_.momentum);
  base.dampening = static_cast<float>(opt_.dampening);
  base.weight_decay = static_cast<float>(opt_.weight_decay);
  base.nesterov = opt_.nesterov;
  launch_fused("SGD", *cuda_tables_, fused,
               [&](const FusedList& list, kg::DataType grad_dt, int64_t first, const kg::MultiTensorTable& table,
                   cudaStream_t stream) {
                 kernels::cpu::SgdParams b = base;
                 b.first_step = first != 0;
                 kg::sgd_update_multi(list.tensors.data(), static_cast<int>(list.tensors.size()), grad_dt, b, table,
                                      stream);
               });
}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& opt) : Optimizer(std::move(groups), opt.lr), opt_(opt) {
  GRAFT_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
              "Adam: betas must lie in [0, 1), got " << opt.beta1 << ", " << opt.beta2);
  GRAFT_CHECK(opt.eps > 0, "Adam: eps must be positive, got " << opt.eps);
}

void Adam::step() {
  NoGradGuard no_grad;
  const char* name = opt_.decoupled_weight_decay ? "AdamW" : "Adam";
  std::map<FusedKey, FusedList> fused;  // parameters on GPUs
  for (auto& group : groups_) {
    for (auto& p : group.params) {
      if (!updatable(p, name)) continue;
      Tensor g = grad_like(p);
      auto it = state_.find(p.impl_ptr().get());
      if (it == state_.end())
        it = state_.emplace(p.impl_ptr().get(), State{Tensor::zeros_like(p), Tensor::zeros_like(p), 0}).first;
      State& st = it->second;
      check_state_device(st.m, p, name);
      if (p.device().is_cuda()) {
        FusedList& list = fused[FusedKey{p.device().index, g.dtype(), ++st.step}];
        list.tensors.push_back(fused_entry(p, g, st.m, st.v, group));
        list.keep.push_back(g);
        p.bump_version();
        continue;
      }
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
  if (fused.empty()) return;
  if (!cuda_tables_) cuda_tables_ = std::make_shared<detail::CudaTableRing>();
  kernels::cpu::AdamParams base;
  base.lr = static_cast<float>(lr_);
  base.beta1 = static_cast<float>(opt_.beta1);
  base.beta2 = static_cast<float>(opt_.beta2);
  base.eps = static_cast<float>(opt_.eps);
  base.weight_decay = static_cast<float>(opt_.weight_decay);
  base.decoupled = opt_.decoupled_weight_decay;
  launch_fused(name, *cuda_tables_, fused,
               [&](const FusedList& list, kg::DataType grad_dt, int64_t step, const kg::MultiTensorTable& table,
                   cudaStream_t stream) {
                 kernels::cpu::AdamParams b = base;
                 b.step = step;
                 kg::adam_update_multi(list.tensors.data(), static_cast<int>(list.tensors.size()), grad_dt, b, table,
                                       stream);
               });
}

}  // namespace graft::optim
