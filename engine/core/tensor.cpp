#include "engine/core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/core/cuda_runtime.h"
#include "engine/core/kernel_launch.h"
#include "engine/core/rng.h"
#include "kernels/cpu/random.h"
#include "kernels/cpu/strided.h"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/elementwise.h"

namespace graft {

namespace {
constexpr int64_t kMaxElements = int64_t(1) << 40;  // 4 TiB of f32: anything larger is a mistake

void check_shape(const Shape& shape, const char* what) {
  GRAFT_CHECK(shape.size() <= static_cast<size_t>(kernels::kMaxDims),
              what << ": " << shape.size() << " dimensions " << shape_str(shape) << " (at most " << kernels::kMaxDims
                   << " are supported)");
  int64_t n = 1;
  for (int64_t s : shape) {
    GRAFT_CHECK(s >= 0, what << ": negative dimension in shape " << shape_str(shape));
    GRAFT_CHECK(s == 0 || n <= kMaxElements / s,
                what << ": shape " << shape_str(shape) << " has more than 2^40 elements");
    n *= s;
  }
}

// Strides equal to `want` for every dim of size > 1.
bool strides_match(const Shape& shape, const Strides& have, const Strides& want) {
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] > 1 && have[d] != want[d]) return false;
  return true;
}

double load_as_double(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f16: return half_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::bf16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::i32: return static_cast<const int32_t*>(base)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case DType::u8: return static_cast<const uint8_t*>(base)[i];
    case DType::boolean: return static_cast<const uint8_t*>(base)[i] != 0;
  }
  return 0;
}

void store_from_double(void* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::f16: static_cast<uint16_t*>(base)[i] = float_to_half(static_cast<float>(v)); break;
    case DType::bf16: static_cast<uint16_t*>(base)[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::i32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); break;
    case DType::boolean: static_cast<uint8_t*>(base)[i] = v != 0.0; break;
  }
}

kernels::StridedIter<2> make_iter2(const Tensor& a, const Tensor& b) {
  kernels::StridedIter<2> it;
  it.ndim = static_cast<int>(a.dim());
  for (int d = 0; d < it.ndim; ++d) {
    it.size[d] = a.shape()[d];
    it.stride[0][d] = a.strides()[d];
    it.stride[1][d] = b.strides()[d];
  }
  it.coalesce();
  return it;
}

// Zeroes the whole storage of a fresh tensor (on its device's current stream).
void zero_storage(const Tensor& t) {
  Storage& st = *t.impl().storage;
  if (t.device().is_cpu()) {
    std::memset(st.data(), 0, st.nbytes());
    return;
  }
  cuda::DeviceGuard on_device(t.device().index);
  cuda::memset_zero(st.data(), st.nbytes());
}

template <int N>
kernels::StridedIter<N> make_iter(std::initializer_list<const Tensor*> ts) {
  kernels::StridedIter<N> it;
  const Tensor& first = **ts.begin();
  it.ndim = static_cast<int>(first.dim());
  int k = 0;
  for (const Tensor* t : ts) {
    for (int d = 0; d < it.ndim; ++d) {
      it.size[d] = first.shape()[d];
      it.stride[k][d] = t->strides()[d];
    }
    ++k;
  }
  return it;
}

void check_inplace(const Tensor& t, const char* op) {
  GRAFT_CHECK(!(autograd::grad_enabled() && t.requires_grad()),
              op << ": in-place change of " << t.str()
                 << ", which requires grad, while grad mode is on; wrap it in NoGradGuard (as optimizers do)");
}
}  // namespace

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Strides contiguous_strides(const Shape& shape) {
  Strides st(shape.size());
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    st[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return st;
}

Strides channels_last_strides(const Shape& shape) {
  GRAFT_CHECK(shape.size() == 4, "channels_last: needs a 4-D shape, got " << shape_str(shape));
  const int64_t C = std::max<int64_t>(shape[1], 1), H = std::max<int64_t>(shape[2], 1),
                W = std::max<int64_t>(shape[3], 1);
  return {H * W * C, 1, W * C, C};
}

// ---- creation ------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
  check_shape(shape, "empty");
  return empty_strided(shape, format == MemoryFormat::channels_last ? channels_last_strides(shape) : contiguous_strides(shape),
                       dtype, device);
}

Tensor Tensor::empty_strided(const Shape& shape, const Strides& strides, DType dtype, Device device) {
  check_shape(shape, "empty_strided");
  GRAFT_CHECK(strides.size() == shape.size(), "empty_strided: " << strides.size() << " strides for shape " << shape_str(shape));
  check_device_usable(device, "tensor allocation");
  int64_t extent = 1;
  bool empty = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    GRAFT_CHECK(strides[d] >= 0, "empty_strided: negative stride");
    if (shape[d] == 0) empty = true;
    extent += (shape[d] - 1) * strides[d];
  }
  if (empty) extent = 0;
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(std::max<int64_t>(extent, 1)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  zero_storage(t);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);  // on a GPU filled there: no host copy
  NoGradGuard ng;
  t.fill_(value);
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, DType dtype) {
  check_shape(shape, "from_vector");
  GRAFT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
              "from_vector: " << values.size() << " values for shape " << shape_str(shape));
  Tensor t = empty(shape, dtype);
  for (size_t i = 0; i < values.size(); ++i) store_from_double(t.raw_data(), dtype, static_cast<int64_t>(i), values[i]);
  return t;
}

Tensor Tensor::from_vector_i64(const std::vector<int64_t>& values, const Shape& shape) {
  check_shape(shape, "from_vector_i64");
  GRAFT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
              "from_vector_i64: " << values.size() << " values for shape " << shape_str(shape));
  Tensor t = empty(shape, DType::i64);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(int64_t));
  return t;
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) store_from_double(t.raw_data(), dtype, i, static_cast<double>(i));
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, float lo, float hi) {
  Tensor t = empty(shape);
  const uint64_t off = gen.reserve(kernels::cpu::random_blocks(t.numel()));
  kernels::cpu::fill_uniform(t.data<float>(), t.numel(), lo, hi, {gen.seed(), off});
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, float mean, float stddev) {
  Tensor t = empty(shape);
  const uint64_t off = gen.reserve(kernels::cpu::random_blocks(t.numel()));
  kernels::cpu::fill_normal(t.data<float>(), t.numel(), mean, stddev, {gen.seed(), off});
  return t;
}

Tensor Tensor::empty_like(const Tensor& t) {
  if (t.is_dense()) return empty_strided(t.shape(), t.strides(), t.dtype(), t.device());
  return empty(t.shape(), t.dtype(), t.device());
}

Tensor Tensor::zeros_like(const Tensor& t) {
  Tensor z = empty_like(t);
  zero_storage(z);
  return z;
}

// ---- metadata ------------------------------------------------------------------

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  GRAFT_CHECK(d >= -n && d < n, "size: dimension " << d << " out of range for shape " << shape_str(shape()));
  return shape()[d < 0 ? d + n : d];
}

int64_t Tensor::stride(int64_t d) const {
  const int64_t n = dim();
  GRAFT_CHECK(d >= -n && d < n, "stride: dimension " << d << " out of range for shape " << shape_str(shape()));
  return strides()[d < 0 ? d + n : d];
}

bool Tensor::is_contiguous() const { return strides_match(shape(), strides(), contiguous_strides(shape())); }

bool Tensor::is_channels_last() const {
  return dim() == 4 && strides_match(shape(), strides(), channels_last_strides(shape()));
}

bool Tensor::is_dense() const {
  std::vector<int> order(shape().size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return strides()[a] < strides()[b]; });
  int64_t expect = 1;
  for (int d : order) {
    if (shape()[d] == 1) continue;
    if (strides()[d] != expect) return false;
    expect *= shape()[d];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + offset() * static_cast<int64_t>(dtype_size(dtype()));
}

float Tensor::item() const {
  GRAFT_CHECK(numel() == 1, "item: needs exactly one element, got " << str());
  if (!device().is_cpu()) return to(Device::cpu()).item();
  return static_cast<float>(load_as_double(raw_data(), dtype(), 0));
}

std::vector<float> Tensor::to_vector() const {
  Tensor c = (device().is_cpu() ? *this : to(Device::cpu()));
  Tensor f = Tensor::empty(shape(), DType::f32);
  copy_cpu(f, c);
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

std::vector<int64_t> Tensor::to_vector_i64() const {
  Tensor c = (device().is_cpu() ? *this : to(Device::cpu()));
  Tensor f = Tensor::empty(shape(), DType::i64);
  copy_cpu(f, c);
  return std::vector<int64_t>(f.data<int64_t>(), f.data<int64_t>() + f.numel());
}

// ---- copies ----------------------------------------------------------------------

void copy_cpu(const Tensor& dst, const Tensor& src) {
  GRAFT_CHECK(dst.shape() == src.shape(), "copy: shape " << shape_str(src.shape()) << " into " << shape_str(dst.shape()));
  GRAFT_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "copy_cpu: both tensors must be on the cpu");
  if (dst.numel() == 0) return;
  auto it = make_iter2(dst, src);
  const DType dt = dst.dtype(), st = src.dtype();
  char* d = static_cast<char*>(dst.raw_data());
  const char* s = static_cast<const char*>(src.raw_data());
  const int64_t runs = it.num_runs();
  if (dt == st) {
    const size_t es = dtype_size(dt);
#pragma omp parallel for schedule(static) if (dst.numel() > 65536)
    for (int64_t r = 0; r < runs; ++r) {
      it.for_each_run(r, r + 1, [&](const int64_t* off, int64_t n, const int64_t* inner) {
        if (inner[0] == 1 && inner[1] == 1) {
          std::memcpy(d + off[0] * es, s + off[1] * es, n * es);
        } else if (es == 4) {
          auto* dd = reinterpret_cast<uint32_t*>(d) + off[0];
          auto* ss = reinterpret_cast<const uint32_t*>(s) + off[1];
          for (int64_t i = 0; i < n; ++i) dd[i * inner[0]] = ss[i * inner[1]];
        } else {
          for (int64_t i = 0; i < n; ++i) std::memcpy(d + (off[0] + i * inner[0]) * es, s + (off[1] + i * inner[1]) * es, es);
        }
      });
    }
    return;
  }
#pragma omp parallel for schedule(static) if (dst.numel() > 65536)
  for (int64_t r = 0; r < runs; ++r) {
    it.for_each_run(r, r + 1, [&](const int64_t* off, int64_t n, const int64_t* inner) {
      for (int64_t i = 0; i < n; ++i)
        store_from_double(d, dt, off[0] + i * inner[0], load_as_double(s, st, off[1] + i * inner[1]));
    });
  }
}

namespace {

// One GPU: the strided-copy kernel converts layout and dtype there.
void copy_on_device(const Tensor& dst, const Tensor& src) {
  GRAFT_CHECK(dst.device() == src.device() && dst.device().is_cuda(),
              "copy: internal error: device copy from " << src.str() << " to " << dst.str());
  if (dst.numel() == 0) return;
  const auto it = make_iter<2>({&dst, &src});
  cuda::launch("copy", dst.device(), [&](cudaStream_t s) {
    kernels::cuda::strided_copy(it, cuda::elem_type(dst.dtype()), dst.raw_data(), cuda::elem_type(src.dtype()),
                                src.raw_data(), s);
  });
}

// Same dtype, both dense with the same strides: the bytes in one piece.
bool flat_copy(const Tensor& dst, const Tensor& src) {
  return dst.dtype() == src.dtype() && dst.is_dense() && src.is_dense() && dst.strides() == src.strides();
}

// Copy between devices or layouts; any pair of CPU/CUDA. On one GPU the work
// runs there (a kernel, or one memcpy); across devices the bytes cross once,
// in the layout and dtype of one side, and the conversion runs on the GPU side
// (or on the CPU only where the CPU side is not dense).
void copy_any(const Tensor& dst, const Tensor& src) {
  if (dst.device().is_cpu() && src.device().is_cpu()) return copy_cpu(dst, src);
  if (dst.numel() == 0) return;
  if (dst.device() == src.device()) return copy_on_device(dst, src);
  if (flat_copy(dst, src)) {
    const bool across_gpus = dst.device().is_cuda() && src.device().is_cuda();
    // Two GPUs: their streams are not ordered with each other. The source's
    // pending work (e.g. the conversion that produced a staged copy) must be
    // done before the copy reads it, and the copy done before the source may
    // be freed and its block handed out again.
    if (across_gpus) cuda::current_stream(src.device().index).synchronize();
    // The CUDA side's device is current for the copy (on its current stream).
    cuda::DeviceGuard on_device(dst.device().is_cuda() ? dst.device().index : src.device().index);
    cuda::CopyKind k = src.device().is_cpu()   ? cuda::CopyKind::host_to_device
                       : dst.device().is_cpu() ? cuda::CopyKind::device_to_host
                                               : cuda::CopyKind::device_to_device;
    cuda::copy(dst.raw_data(), src.raw_data(), dst.nbytes(), k);
    if (across_gpus) cuda::current_stream(dst.device().index).synchronize();
    return;
  }
  if (src.device().is_cpu()) {
    // Host to device: upload src as it is (made dense on the CPU if it has
    // gaps), then convert on the device.
    const Tensor s = src.is_dense() ? src : src.detach().contiguous();
    Tensor staged = Tensor::empty_strided(s.shape(), s.strides(), s.dtype(), dst.device());
    copy_any(staged, s);
    return copy_on_device(dst, staged);
  }
  // From a GPU: convert there into dst's dtype and layout (row-major where dst
  // has gaps), then move the bytes.
  const Strides st = dst.is_dense() ? dst.strides() : contiguous_strides(dst.shape());
  Tensor staged = Tensor::empty_strided(dst.shape(), st, dst.dtype(), src.device());
  copy_on_device(staged, src);
  if (dst.is_dense()) return copy_any(dst, staged);  // flat now
  Tensor landed = Tensor::empty_strided(dst.shape(), st, dst.dtype(), dst.device());
  copy_any(landed, staged);  // flat
  copy_any(dst, landed);     // dst's own device
}

Tensor copy_to_layout(const Tensor& src, const Strides& strides, DType dtype, Device device, const char* op) {
  Tensor out = Tensor::empty_strided(src.shape(), strides, dtype, device);
  copy_any(out, src);
  if (autograd::needs_grad({&src})) {
    const DType src_dtype = src.dtype();
    const Device src_device = src.device();
    autograd::record(op, out, {src}, [src_dtype, src_device](const Tensor& g, const autograd::NeedsGrad&) {
      Tensor gi = Tensor::empty(g.shape(), src_dtype, src_device);
      copy_any(gi, g);
      return std::vector<Tensor>{gi};
    });
  }
  return out;
}
}  // namespace

void copy_tensor(const Tensor& dst, const Tensor& src) {
  GRAFT_CHECK(dst.shape() == src.shape(), "copy: shape " << shape_str(src.shape()) << " into " << shape_str(dst.shape()));
  copy_any(dst, src);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return copy_to_layout(*this, contiguous_strides(shape()), dtype(), device(), "contiguous");
}

Tensor Tensor::to_format(MemoryFormat f) const {
  if (f == MemoryFormat::contiguous) return contiguous();
  if (is_channels_last()) return *this;
  return copy_to_layout(*this, channels_last_strides(shape()), dtype(), device(), "to_channels_last");
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  check_device_usable(d, "to");
  const Strides st = is_dense() ? strides() : contiguous_strides(shape());
  return copy_to_layout(*this, st, dtype(), d, "to_device");
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  GRAFT_CHECK(!(requires_grad() && autograd::grad_enabled() && !is_floating(t)),
              "to(" << dtype_name(t) << "): cannot differentiate a conversion of " << str() << " to a non-floating type");
  const Strides st = is_dense() ? strides() : contiguous_strides(shape());
  return copy_to_layout(*this, st, t, device(), "to_dtype");
}

Tensor Tensor::clone() const {
  const Strides st = is_dense() ? strides() : contiguous_strides(shape());
  return copy_to_layout(*this, st, dtype(), device(), "clone");
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_ptr()->storage;
  impl->shape = shape();
  impl->strides = strides();
  impl->offset = offset();
  impl->dtype = dtype();
  impl->name = name();
  return Tensor(std::move(impl));
}

// ---- in-place ---------------------------------------------------------------------

Tensor& Tensor::fill_(double value) {
  check_inplace(*this, "fill_");
  if (device().is_cuda()) {
    // The value encoded on the host exactly as the CPU path stores it.
    uint64_t bits = 0;
    store_from_double(&bits, dtype(), 0, value);
    if (numel() > 0) {
      const auto it = make_iter<1>({this});
      cuda::launch("fill_", device(), [&](cudaStream_t s) {
        kernels::cuda::strided_fill(it, cuda::elem_type(dtype()), raw_data(), bits, s);
      });
    }
    bump_version();
    return *this;
  }
  if (numel() == 0) {  // nothing to write (and no innermost run to count)
    bump_version();
    return *this;
  }
  const DType t = dtype();
  char* base = static_cast<char*>(raw_data());
  auto it = make_iter2(*this, *this);
  const int64_t runs = it.num_runs();
  if (t == DType::f32) {
    const float v = static_cast<float>(value);
#pragma omp parallel for schedule(static) if (numel() > 65536)
    for (int64_t r = 0; r < runs; ++r)
      it.for_each_run(r, r + 1, [&](const int64_t* off, int64_t n, const int64_t* inner) {
        float* p = reinterpret_cast<float*>(base) + off[0];
        for (int64_t i = 0; i < n; ++i) p[i * inner[0]] = v;
      });
  } else {
    for (int64_t r = 0; r < runs; ++r)
      it.for_each_run(r, r + 1, [&](const int64_t* off, int64_t n, const int64_t* inner) {
        for (int64_t i = 0; i < n; ++i) store_from_double(base, t, off[0] + i * inner[0], value);
      });
  }
  bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  GRAFT_CHECK(shape() == src.shape(), "copy_: source " << src.str() << " into " << str() << ": shapes differ");
  copy_any(*this, src);
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  GRAFT_CHECK(shape() == other.shape(), "add_: " << other.str() << " into " << str() << ": shapes differ");
  GRAFT_CHECK(device() == other.device(), "add_: tensors on different devices: " << str() << " += " << other.str());
  if (device().is_cuda()) {
    GRAFT_CHECK(dtype() == other.dtype() && is_floating(dtype()),
                "add_: on CUDA both tensors must have one float dtype (f32, f16, bf16), got " << str() << " += "
                                                                                              << other.str());
    if (numel() == 0) {
      bump_version();
      return *this;
    }
    // alpha other first (a dense scaled copy) unless alpha is 1 or -1: then
    // one kernel, out = self +/- other, written in place.
    Tensor src = other;
    kernels::cpu::BinaryOp op = kernels::cpu::BinaryOp::add;
    if (alpha == -1.0) {
      op = kernels::cpu::BinaryOp::sub;
    } else if (alpha != 1.0) {
      src = Tensor::empty(other.shape(), other.dtype(), other.device());
      copy_on_device(src, other);
      const kernels::cpu::UnaryParams p{kernels::cpu::UnaryOp::mul_scalar, static_cast<float>(alpha), 0.f};
      cuda::launch("add_", device(), [&](cudaStream_t s) {
        kernels::cuda::unary_forward(p, cuda::kernel_dtype(dtype(), "add_"), src.numel(), src.raw_data(),
                                     src.raw_data(), s);
      });
    }
    const auto it = make_iter<3>({this, this, &src});
    cuda::launch("add_", device(), [&](cudaStream_t s) {
      kernels::cuda::binary_forward(op, cuda::kernel_dtype(dtype(), "add_"), it, raw_data(), raw_data(),
                                    src.raw_data(), s);
    });
    bump_version();
    return *this;
  }
  GRAFT_CHECK(dtype() == DType::f32 && other.dtype() == DType::f32,
              "add_: only f32 is supported, got " << str() << " += " << other.str());
  auto it = make_iter2(*this, other);
  float* d = data<float>();
  const float* s = other.data<float>();
  const float a = static_cast<float>(alpha);
  const int64_t runs = it.num_runs();
#pragma omp parallel for schedule(static) if (numel() > 65536)
  for (int64_t r = 0; r < runs; ++r)
    it.for_each_run(r, r + 1, [&](const int64_t* off, int64_t n, const int64_t* inner) {
      float* dp = d + off[0];
      const float* sp = s + off[1];
      if (inner[0] == 1 && inner[1] == 1) {
        for (int64_t i = 0; i < n; ++i) dp[i] += a * sp[i];
      } else {
        for (int64_t i = 0; i < n; ++i) dp[i * inner[0]] += a * sp[i * inner[1]];
      }
    });
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double s) {
  check_inplace(*this, "mul_");
  if (device().is_cuda()) {
    GRAFT_CHECK(is_floating(dtype()), "mul_: on CUDA only float dtypes (f32, f16, bf16) are supported, got " << str());
    if (numel() > 0) {
      // The unary kernel runs over dense memory; a view with gaps goes through a dense copy.
      Tensor t = is_dense() ? *this : Tensor::empty(shape(), dtype(), device());
      if (!t.same(*this)) copy_on_device(t, *this);
      const kernels::cpu::UnaryParams p{kernels::cpu::UnaryOp::mul_scalar, static_cast<float>(s), 0.f};
      cuda::launch("mul_", device(), [&](cudaStream_t st) {
        kernels::cuda::unary_forward(p, cuda::kernel_dtype(dtype(), "mul_"), t.numel(), t.raw_data(), t.raw_data(),
                                     st);
      });
      if (!t.same(*this)) copy_on_device(*this, t);
    }
    bump_version();
    return *this;
  }
  GRAFT_CHECK(dtype() == DType::f32, "mul_: only f32 is supported, got " << str());
  auto it = make_iter2(*this, *this);
  float* d = data<float>();
  const float f = static_cast<float>(s);
  const int64_t runs = it.num_runs();
#pragma omp parallel for schedule(static) if (numel() > 65536)
  for (int64_t r = 0; r < runs; ++r)
    it.for_each_run(r, r + 1, [&](const int64_t* off, int64_t n, const int64_t* inner) {
      float* dp = d + off[0];
      for (int64_t i = 0; i < n; ++i) dp[i * inner[0]] *= f;
    });
  bump_version();
  return *this;
}

// ---- autograd ----------------------------------------------------------------------

Tensor& Tensor::set_requires_grad(bool r) {
  GRAFT_CHECK(!r || is_floating(dtype()), "set_requires_grad: only floating tensors can require grad, got " << str());
  GRAFT_CHECK(r || is_leaf(), "set_requires_grad(false): " << str() << " is not a leaf; use detach()");
  impl().requires_grad = r;
  return *this;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const { autograd::run_backward(*this, grad, retain_graph); }

}  // namespace graft
