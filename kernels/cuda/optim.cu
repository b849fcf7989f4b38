// Fused multi-tensor optimizer updates; how a call runs is in optim.h. The
// per-element arithmetic is the twin's (kernels/cpu/optim.cpp) expression for
// expression; sqrtf and '/' are IEEE-rounded (no fast-math in this build).
#include "kernels/cuda/optim.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/common.cuh"

namespace graft::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// One row per updated tensor, with its own resolved rates.
struct TensorRow {
  float* p;
  const void* g;
  float* s0;
  float* s1;
  int64_t n;
  float lr;     // SGD: lr; Adam: step_size = lr / (1 - beta1^step)
  float wd;     // SGD: L2 weight decay; Adam: L2 weight decay (0 for AdamW)
  float decay;  // Adam: parameter multiplier (1 - lr * wd for AdamW, else 1); SGD: unused
  int vec;      // 1: every pointer 16-byte aligned: float4 accesses (grads: 4 elements)
};
// One row per block: which tensor, which chunk of it.
struct ChunkRow {
  int32_t tensor;
  int32_t chunk;
};
static_assert(sizeof(TensorRow) % alignof(ChunkRow) == 0, "chunk rows follow the tensor rows in one buffer");

// Four gradients widened to f32 from one 16-byte (f32) or 8-byte (f16/bf16)
// load. The 16-bit ones unpack from a uint2 (element 0 in the low half of .x):
// a register array of bf16 went to local memory here.
template <typename G>
__device__ __forceinline__ float4 load_grad4(const G* g);
template <>
__device__ __forceinline__ float4 load_grad4<float>(const float* g) {
  return *reinterpret_cast<const float4*>(g);
}
template <>
__device__ __forceinline__ float4 load_grad4<__half>(const __half* g) {
  const uint2 u = *reinterpret_cast<const uint2*>(g);
  return make_float4(__half2float(__ushort_as_half(static_cast<unsigned short>(u.x & 0xffffu))),
                     __half2float(__ushort_as_half(static_cast<unsigned short>(u.x >> 16))),
                     __half2float(__ushort_as_half(static_cast<unsigned short>(u.y & 0xffffu))),
                     __half2float(__ushort_as_half(static_cast<unsigned short>(u.y >> 16))));
}
template <>
__device__ __forceinline__ float4 load_grad4<__nv_bfloat16>(const __nv_bfloat16* g) {
  const uint2 u = *reinterpret_cast<const uint2*>(g);  // bf16 -> f32 is exact: the high 16 bits
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                     __uint_as_float(u.y & 0xffff0000u));
}

struct SgdOp {
  float momentum, dampening;
  bool nesterov, first_step;
  template <bool kMomentum>
  __device__ __forceinline__ void apply(float& p, float grad, float& buf, float& /*unused*/,
                                        const TensorRow& t) const {
    float g = grad + t.wd * p;
    if (kMomentum) {
      const float b = first_step ? g : momentum * buf + (1.f - dampening) * g;
      buf = b;
      g = nesterov ? g + momentum * b : b;
    }
    p -= t.lr * g;
  }
};

struct AdamOp {
  float beta1, beta2, eps, inv_sqrt_bc2;
  template <bool /*unused*/>
  __device__ __forceinline__ void apply(float& p, float grad, float& m, float& v, const TensorRow& t) const {
    const float g = grad + t.wd * p;
    const float mi = beta1 * m + (1.f - beta1) * g;
    const float vi = beta2 * v + (1.f - beta2) * g * g;
    m = mi;
    v = vi;
    p = p * t.decay - t.lr * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
};

// kStates: how many f32 state buffers the op reads and writes (0, 1 or 2).
template <typename G, int kStates, class Op>
__global__ void __launch_bounds__(kThreads) multi_tensor_update_kernel(const TensorRow* __restrict__ rows,
                                                                       const ChunkRow* __restrict__ chunks, Op op) {
  const ChunkRow ch = chunks[blockIdx.x];
  const TensorRow t = rows[ch.tensor];
  const int64_t start = static_cast<int64_t>(ch.chunk) * kChunkElements;
  const int64_t end = min(start + kChunkElements, t.n);
  float* __restrict__ p = t.p;
  const G* __restrict__ g = static_cast<const G*>(t.g);
  float* __restrict__ s0 = t.s0;
  float* __restrict__ s1 = t.s1;
  int64_t scalar_from = start;
  if (t.vec) {
    const int64_t nv = (end - start) / 4;  // start is a multiple of 4 (kChunkElements is)
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      const int64_t i = start + 4 * j;
      float4 pv = *reinterpret_cast<const float4*>(p + i);
      const float4 gv = load_grad4<G>(g + i);
      float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
      if (kStates >= 1) a = *reinterpret_cast<const float4*>(s0 + i);
      if (kStates >= 2) b = *reinterpret_cast<const float4*>(s1 + i);
      op.template apply<(kStates >= 1)>(pv.x, gv.x, a.x, b.x, t);
      op.template apply<(kStates >= 1)>(pv.y, gv.y, a.y, b.y, t);
      op.template apply<(kStates >= 1)>(pv.z, gv.z, a.z, b.z, t);
      op.template apply<(kStates >= 1)>(pv.w, gv.w, a.w, b.w, t);
      *reinterpret_cast<float4*>(p + i) = pv;
      if (kStates >= 1) *reinterpret_cast<float4*>(s0 + i) = a;
      if (kStates >= 2) *reinterpret_cast<float4*>(s1 + i) = b;
    }
    scalar_from = start + 4 * nv;
  }
  for (int64_t i = scalar_from + threadIdx.x; i < end; i += blockDim.x) {
    float pv = p[i], a = 0.f, b = 0.f;
    if (kStates >= 1) a = s0[i];
    if (kStates >= 2) b = s1[i];
    op.template apply<(kStates >= 1)>(pv, to_f32(g[i]), a, b, t);
    p[i] = pv;
    if (kStates >= 1) s0[i] = a;
    if (kStates >= 2) s1[i] = b;
  }
}

// ---- host side ------------------------------------------------------------------------------

[[noreturn]] void bad(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string(fn) + ": " + what);
}

void check_list(const char* fn, const OptimTensor* tensors, int count, DataType grad_dt, int states) {
  if (grad_dt != DataType::f32 && grad_dt != DataType::f16 && grad_dt != DataType::bf16)
    bad(fn, "unknown grad dtype " + std::to_string(static_cast<int>(grad_dt)));
  if (count < 0) bad(fn, "count is negative (" + std::to_string(count) + ")");
  if (count > 0 && !tensors) bad(fn, "tensors is null with count " + std::to_string(count));
  for (int k = 0; k < count; ++k) {
    const OptimTensor& t = tensors[k];
    if (!t.trainable) continue;
    const std::string at = "tensor " + std::to_string(k) + ": ";
    if (t.numel < 0) bad(fn, at + "numel is negative (" + std::to_string(t.numel) + ")");
    if (t.numel / kChunkElements >= INT_MAX) bad(fn, at + "numel too large (" + std::to_string(t.numel) + ")");
    if (!std::isfinite(t.lr_mult)) bad(fn, at + "lr_mult is not finite");
    if (t.numel == 0) continue;
    if (!t.param) bad(fn, at + "param is null");
    if (!t.grad) bad(fn, at + "grad is null");
    if (states >= 1 && !t.state0) bad(fn, at + (states == 1 ? "state0 (momentum buffer) is null" : "state0 (m) is null"));
    if (states >= 2 && !t.state1) bad(fn, at + "state1 (v) is null");
  }
}

int64_t count_chunks(const OptimTensor* tensors, int count) {
  int64_t chunks = 0;
  for (int k = 0; k < count; ++k)
    if (tensors[k].trainable && tensors[k].numel > 0) chunks += (tensors[k].numel + kChunkElements - 1) / kChunkElements;
  return chunks;
}

bool row_aligned(const OptimTensor& t, int states) {
  return aligned16(t.param) && aligned16(t.grad) && (states < 1 || aligned16(t.state0)) &&
         (states < 2 || aligned16(t.state1));
}

int64_t count_rows(const OptimTensor* tensors, int count) {
  int64_t rows = 0;
  for (int k = 0; k < count; ++k) rows += tensors[k].trainable && tensors[k].numel > 0;
  return rows;
}

size_t table_bytes(const OptimTensor* tensors, int count) {
  return static_cast<size_t>(count_rows(tensors, count)) * sizeof(TensorRow) +
         static_cast<size_t>(count_chunks(tensors, count)) * sizeof(ChunkRow);
}

// Builds both tables in one host buffer, uploads it, launches, frees the
// device copy stream-ordered; or, with `table`, packs into the caller's pinned
// buffer and uploads into its device buffer (nothing allocated or freed).
// make_row(tensor) -> TensorRow with rates set.
template <int kStates, class Op, class MakeRow>
void launch_multi(const char* fn, const OptimTensor* tensors, int count, DataType grad_dt, const Op& op,
                  MakeRow make_row, const MultiTensorTable* table, cudaStream_t stream) {
  const int64_t nchunks = count_chunks(tensors, count);
  if (nchunks == 0) return;
  if (nchunks > INT_MAX) bad(fn, "too many chunks (" + std::to_string(nchunks) + ")");
  if (table) {
    const size_t need = table_bytes(tensors, count);
    if (!table->host || !table->device) bad(fn, "table.host or table.device is null");
    if (table->bytes < need)
      bad(fn, "table.bytes " + std::to_string(table->bytes) + " is below the " + std::to_string(need) + " needed");
    if (!aligned16(table->host) || !aligned16(table->device)) bad(fn, "table buffers must be 16-byte aligned");
  }
  std::vector<TensorRow> rows;
  std::vector<ChunkRow> chunks;
  chunks.reserve(static_cast<size_t>(nchunks));
  for (int k = 0; k < count; ++k) {
    const OptimTensor& t = tensors[k];
    if (!t.trainable || t.numel == 0) continue;
    TensorRow r = make_row(t);
    r.p = t.param;
    r.g = t.grad;
    r.s0 = kStates >= 1 ? t.state0 : nullptr;
    r.s1 = kStates >= 2 ? t.state1 : nullptr;
    r.n = t.numel;
    r.vec = row_aligned(t, kStates) ? 1 : 0;
    const int32_t row = static_cast<int32_t>(rows.size());
    rows.push_back(r);
    const int64_t tc = (t.numel + kChunkElements - 1) / kChunkElements;
    for (int64_t c = 0; c < tc; ++c) chunks.push_back({row, static_cast<int32_t>(c)});
  }
  const size_t rows_bytes = rows.size() * sizeof(TensorRow), chunk_bytes = chunks.size() * sizeof(ChunkRow);
  if (table) {
    unsigned char* host = static_cast<unsigned char*>(table->host);
    std::memcpy(host, rows.data(), rows_bytes);
    std::memcpy(host + rows_bytes, chunks.data(), chunk_bytes);
    GRAFT_KERNEL_CUDA_CHECK(
        cudaMemcpyAsync(table->device, host, rows_bytes + chunk_bytes, cudaMemcpyHostToDevice, stream));
    const TensorRow* drows = static_cast<const TensorRow*>(table->device);
    const ChunkRow* dchunks = reinterpret_cast<const ChunkRow*>(static_cast<unsigned char*>(table->device) + rows_bytes);
    const unsigned grid = static_cast<unsigned>(nchunks);
    GRAFT_DISPATCH_FLOAT(grad_dt, G, {
      multi_tensor_update_kernel<G, kStates, Op><<<grid, kThreads, 0, stream>>>(drows, dchunks, op);
    });
    GRAFT_KERNEL_LAUNCH_CHECK();
    return;
  }
  std::vector<unsigned char> host(rows_bytes + chunk_bytes);
  std::memcpy(host.data(), rows.data(), rows_bytes);
  std::memcpy(host.data() + rows_bytes, chunks.data(), chunk_bytes);

  void* dev = nullptr;
  GRAFT_KERNEL_CUDA_CHECK(cudaMallocAsync(&dev, host.size(), stream));
  // Pageable source: the call returns once the bytes are staged, so `host` may go.
  cudaError_t err = cudaMemcpyAsync(dev, host.data(), host.size(), cudaMemcpyHostToDevice, stream);
  const char* failed = "cudaMemcpyAsync of the tensor/chunk tables";
  if (err == cudaSuccess) {
    const TensorRow* drows = static_cast<const TensorRow*>(dev);
    const ChunkRow* dchunks = reinterpret_cast<const ChunkRow*>(static_cast<unsigned char*>(dev) + rows_bytes);
    const unsigned grid = static_cast<unsigned>(nchunks);
    GRAFT_DISPATCH_FLOAT(grad_dt, G, {
      multi_tensor_update_kernel<G, kStates, Op><<<grid, kThreads, 0, stream>>>(drows, dchunks, op);
    });
    err = cudaGetLastError();
    failed = "launch of multi_tensor_update_kernel";
  }
  // Freed even when the launch failed; ordered after the kernel on the same stream.
  GRAFT_KERNEL_CUDA_CHECK(cudaFreeAsync(dev, stream));
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(fn) + ": CUDA error " + cudaGetErrorName(err) + " (" +
                             cudaGetErrorString(err) + ") in " + failed + " (" + std::to_string(nchunks) +
                             " chunks)");
}

}  // namespace

int64_t multi_tensor_chunks(const OptimTensor* tensors, int count) {
  if (count > 0 && !tensors) bad("cuda::multi_tensor_chunks", "tensors is null");
  return count_chunks(tensors, count);
}

size_t multi_tensor_table_bytes(const OptimTensor* tensors, int count) {
  if (count > 0 && !tensors) bad("cuda::multi_tensor_table_bytes", "tensors is null");
  return table_bytes(tensors, count);
}

namespace {

void sgd_multi(const OptimTensor* tensors, int count, DataType grad_dt, const SgdParams& base,
               const MultiTensorTable* table, cudaStream_t stream) {
  const char* fn = "cuda::sgd_update_multi";
  const bool use_momentum = base.momentum != 0.f;
  if (!std::isfinite(base.lr) || !std::isfinite(base.momentum) || !std::isfinite(base.dampening) ||
      !std::isfinite(base.weight_decay))
    bad(fn, "hyperparameters must be finite");
  if (base.nesterov && (base.momentum <= 0.f || base.dampening != 0.f))
    bad(fn, "Nesterov momentum needs momentum > 0 and zero dampening");
  check_list(fn, tensors, count, grad_dt, use_momentum ? 1 : 0);
  SgdOp op{base.momentum, base.dampening, base.nesterov, base.first_step};
  auto make_row = [&](const OptimTensor& t) {
    const SgdParams s = sgd_params_for(base, t);
    TensorRow r{};
    r.lr = s.lr;
    r.wd = s.weight_decay;
    r.decay = 1.f;
    return r;
  };
  if (use_momentum) launch_multi<1>(fn, tensors, count, grad_dt, op, make_row, table, stream);
  else launch_multi<0>(fn, tensors, count, grad_dt, op, make_row, table, stream);
}

void adam_multi(const OptimTensor* tensors, int count, DataType grad_dt, const AdamParams& base,
                const MultiTensorTable* table, cudaStream_t stream) {
  const char* fn = base.decoupled ? "cuda::adam_update_multi (AdamW)" : "cuda::adam_update_multi";
  if (!(base.beta1 >= 0.f && base.beta1 < 1.f && base.beta2 >= 0.f && base.beta2 < 1.f))
    bad(fn, "betas must lie in [0, 1), got " + std::to_string(base.beta1) + ", " + std::to_string(base.beta2));
  if (!(base.eps > 0.f)) bad(fn, "eps must be positive, got " + std::to_string(base.eps));
  if (base.step < 1) bad(fn, "step must be >= 1 (1-based), got " + std::to_string(base.step));
  if (!std::isfinite(base.lr) || !std::isfinite(base.weight_decay)) bad(fn, "lr and weight_decay must be finite");
  check_list(fn, tensors, count, grad_dt, 2);
  // The twin's expressions (kernels/cpu/optim.cpp adam_update).
  const double bc1 = 1.0 - std::pow(static_cast<double>(base.beta1), static_cast<double>(base.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(base.beta2), static_cast<double>(base.step));
  AdamOp op{base.beta1, base.beta2, base.eps, static_cast<float>(1.0 / std::sqrt(bc2))};
  auto make_row = [&](const OptimTensor& t) {
    const AdamParams a = adam_params_for(base, t);
    TensorRow r{};
    r.lr = static_cast<float>(a.lr / bc1);
    r.decay = a.decoupled ? 1.f - a.lr * a.weight_decay : 1.f;
    r.wd = a.decoupled ? 0.f : a.weight_decay;
    return r;
  };
  launch_multi<2>(fn, tensors, count, grad_dt, op, make_row, table, stream);
}

}  // namespace

void sgd_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const SgdParams& base,
                      cudaStream_t stream) {
  sgd_multi(tensors, count, grad_dt, base, nullptr, stream);
}
void sgd_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const SgdParams& base,
                      const MultiTensorTable& table, cudaStream_t stream) {
  sgd_multi(tensors, count, grad_dt, base, &table, stream);
}
void adam_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const AdamParams& base,
                       cudaStream_t stream) {
  adam_multi(tensors, count, grad_dt, base, nullptr, stream);
}
void adam_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const AdamParams& base,
                       const MultiTensorTable& table, cudaStream_t stream) {
  adam_multi(tensors, count, grad_dt, base, &table, stream);
}

}  // namespace graft::kernels::cuda
