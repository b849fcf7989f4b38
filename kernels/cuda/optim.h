// Fused optimizer updates on the GPU: one launch updates a whole parameter
// list (multi-tensor apply). The CUDA twins of kernels/cpu/optim.h, taking
// the same SgdParams / AdamParams for the hyperparameters shared by the list.
//
// How a call runs: the launcher turns the list into two small tables — one
// row per updated tensor (pointers, size, its own learning rate and weight
// decay) and one row per chunk of kChunkElements elements (tensor row, chunk
// index) — packs both into one host buffer, copies it to a stream-ordered
// device buffer (cudaMallocAsync) with one cudaMemcpyAsync, launches one
// kernel with one block per chunk, and frees the buffer stream-ordered
// (cudaFreeAsync). The host buffer is pageable: the driver stages it before
// cudaMemcpyAsync returns (so it may be freed at once), and may wait for the
// stream's earlier work to do so (a pinned staging buffer would avoid that).
//
// Per tensor, exactly as the engine builds the twin's params (engine/optim):
//   lr           = base.lr * lr_mult                       (float arithmetic)
//   weight_decay = weight_decay ? base.weight_decay : 0
// A tensor with trainable == false gets no chunk: it is never read or
// written (its pointers may be null). A tensor with numel == 0 gets none too.
//
// One call = one step count: Adam's bias correction uses base.step for every
// tensor, SGD's first_step (the momentum buffer starts as the gradient)
// applies to every tensor. Tensors whose state started at a different step (a
// layer unfrozen later) go in a separate call.
//
// Parameters and states are f32; gradients are all of one dtype grad_dt
// (f32, f16 or bf16; read and widened to f32). Each tensor's rows use 16-byte
// vector accesses when all its pointers are 16-byte aligned; scalar otherwise.
// Every launcher validates the whole list before any CUDA call and throws
// std::invalid_argument naming itself, the tensor index and the argument.
#pragma once

#include <cstdint>

#include "kernels/cpu/optim.h"
#include "kernels/cuda/dtype.h"

typedef struct CUstream_st* cudaStream_t;

namespace graft::kernels::cuda {

using cpu::AdamParams;
using cpu::SgdParams;

// Elements per chunk (one thread block each).
constexpr int64_t kChunkElements = 16384;

struct OptimTensor {
  float* param = nullptr;
  const void* grad = nullptr;  // dtype: the call's grad_dt
  float* state0 = nullptr;     // SGD: momentum buffer (unused when momentum == 0); Adam: exp_avg (m)
  float* state1 = nullptr;     // Adam: exp_avg_sq (v); unused by SGD
  int64_t numel = 0;
  float lr_mult = 1.f;
  bool weight_decay = true;
  bool trainable = true;
};

// The twin's per-tensor params for one entry of a list (what the fused kernel
// computes for that tensor; tests and the engine use the same expressions).
inline SgdParams sgd_params_for(const SgdParams& base, const OptimTensor& t) {
  SgdParams s = base;
  s.lr = base.lr * t.lr_mult;
  s.weight_decay = t.weight_decay ? base.weight_decay : 0.f;
  return s;
}
inline AdamParams adam_params_for(const AdamParams& base, const OptimTensor& t) {
  AdamParams a = base;
  a.lr = base.lr * t.lr_mult;
  a.weight_decay = t.weight_decay ? base.weight_decay : 0.f;
  return a;
}

// SGD (momentum, dampening, Nesterov, L2 weight decay) over tensors[0, count).
void sgd_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const SgdParams& base,
                      cudaStream_t stream);

// Adam, or AdamW when base.decoupled, over tensors[0, count); base.step >= 1.
void adam_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const AdamParams& base,
                       cudaStream_t stream);

// Chunks a list would launch (trainable tensors only); for tests and benchmarks.
int64_t multi_tensor_chunks(const OptimTensor* tensors, int count);

// ---- the table in caller-owned buffers ---------------------------------------------------
// The launchers above allocate the device table per call and upload it from
// pageable memory. A caller that steps every iteration (the engine's
// optimizers) passes its own buffers instead: `host` page-locked (cudaMallocHost)
// and `device` device memory, each at least `bytes` >= multi_tensor_table_bytes()
// bytes, 16-byte aligned. The launcher packs the table into `host`, queues the
// upload to `device` (truly asynchronous: pinned) and the kernel on `stream`,
// and returns at once. Both buffers are in use until the stream has passed the
// launch: the caller must not touch them before (record an event after the call
// and wait for it before reusing them).
struct MultiTensorTable {
  void* host = nullptr;
  void* device = nullptr;
  size_t bytes = 0;
};

// Bytes of the packed table for this list (0: no trainable elements, nothing to launch).
size_t multi_tensor_table_bytes(const OptimTensor* tensors, int count);

void sgd_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const SgdParams& base,
                      const MultiTensorTable& table, cudaStream_t stream);
void adam_update_multi(const OptimTensor* tensors, int count, DataType grad_dt, const AdamParams& base,
                       const MultiTensorTable& table, cudaStream_t stream);

}  // namespace graft::kernels::cuda
