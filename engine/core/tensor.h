// Tensor: a view (shape, strides, offset, dtype) of reference-counted storage
// on one device, plus the autograd fields. Copying a Tensor copies the handle.
//
// Memory formats: 4-D activations live as NHWC in memory while the logical
// shape stays N, C, H, W (strides [HWC, 1, WC, C]), as PyTorch's channels-last.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/storage.h"

namespace graft {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

enum class MemoryFormat : uint8_t { contiguous, channels_last };

namespace autograd {
struct Node;
}

class Generator;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;

  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;          // accumulated gradient (leaves)
  std::shared_ptr<autograd::Node> grad_fn;   // the op that produced it (non-leaves)
  std::string name;                          // parameters keep stable names
};

int64_t shape_numel(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
Strides channels_last_strides(const Shape& shape);  // 4-D only

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation --------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu(),
                      MemoryFormat format = MemoryFormat::contiguous);
  static Tensor empty_strided(const Shape& shape, const Strides& strides, DType dtype = DType::f32,
                              Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32);
  // Values given in logical (row-major) order, converted to dtype.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape, DType dtype = DType::f32);
  static Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape);
  static Tensor arange(int64_t n, DType dtype = DType::f32);
  // Random f32 from a counter-based generator: the same seed gives the same
  // numbers on any machine (see rng.h).
  static Tensor rand(const Shape& shape, Generator& gen, float lo = 0.f, float hi = 1.f);
  static Tensor randn(const Shape& shape, Generator& gen, float mean = 0.f, float stddev = 1.f);
  static Tensor empty_like(const Tensor& t);  // same shape, dtype, device and memory layout order
  static Tensor zeros_like(const Tensor& t);

  // ---- metadata -----------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  bool is_contiguous() const;
  bool is_channels_last() const;
  // No gaps and no overlaps: the elements fill [data, data + numel) in some
  // order. Elementwise ops on operands with equal strides can then run flat.
  bool is_dense() const;
  std::string str() const;  // "f32[2, 3] cpu"
  const std::string& name() const { return impl().name; }
  void set_name(const std::string& n) { impl().name = n; }

  // ---- data ------------------------------------------------------------------
  void* raw_data() const;  // address of element 0 (storage + offset)
  template <class T>
  T* data() const { return static_cast<T*>(raw_data()); }
  float item() const;                      // single element, converted to float
  std::vector<float> to_vector() const;    // logical order, converted to float
  std::vector<int64_t> to_vector_i64() const;

  // ---- layout and conversion (not recorded by autograd unless noted) --------
  Tensor contiguous() const;  // row-major; returns *this when already so. Differentiable.
  Tensor to_format(MemoryFormat f) const;  // differentiable
  Tensor to(Device d) const;               // differentiable
  Tensor to(DType t) const;                // differentiable between floating types
  Tensor clone() const;                    // differentiable, same layout
  Tensor detach() const;                   // shares storage, no history

  // ---- in-place (never recorded; refused on tensors that need grad while
  //      grad mode is on). Each bumps the storage's version counter. ---------
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // same shape; any layout, dtype or device
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // same shape; f32 (CUDA: f32/f16/bf16, one dtype)
  Tensor& mul_(double s);

  // ---- autograd -----------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad() { impl().grad.reset(); }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // Backward from a scalar (grad omitted) or with a given gradient.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  uint64_t version() const { return impl().storage->version(); }
  void bump_version() const { impl().storage->bump_version(); }

  TensorImpl& impl() const {
    GRAFT_CHECK(impl_ != nullptr, "tensor: use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Copies src into dst elementwise (same shape), converting dtype and layout.
// Both on the CPU. The workhorse behind contiguous(), to(dtype) and copy_().
void copy_cpu(const Tensor& dst, const Tensor& src);
// The same for tensors on any devices: copy_cpu on the CPU; on one GPU the
// strided-copy kernel (kernels/cuda/copy.h); across devices one transfer plus
// a conversion on the GPU side. Not recorded; does not bump versions.
void copy_tensor(const Tensor& dst, const Tensor& src);

}  // namespace graft
