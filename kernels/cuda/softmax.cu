#include "kernels/cuda/softmax.h"

#include <climits>

#include "kernels/cuda/rows.cuh"

namespace graft::kernels::cuda {

namespace {

constexpr int64_t kWarpRowMax = 1024;  // longer rows: one block per row
constexpr int kRowsPerBlock = 4;       // warp-per-row kernels: 4 warps, one row each

// ---- rows of <= 1024: one warp per row, the row in registers --------------------------------

template <typename T, int kItems, int kVec, bool kLog>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    softmax_forward_warp(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t len) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;  // whole warps leave together: the shuffles below stay full
  const int lane = threadIdx.x & 31;
  float v[kItems];
  warp_load_row<kItems, kVec>(x + row * len, len, lane, v, -INFINITY);
  float m = -INFINITY;
#pragma unroll
  for (int k = 0; k < kItems; ++k) m = fmaxf(m, v[k]);
  m = warp_max(m);
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    const float e = expf(v[k] - m);  // padding: exp(-inf) = 0
    s += e;
    if (!kLog) v[k] = e;
  }
  s = warp_sum(s);
  if (kLog) {
    // (x - m) - log s, not x - (m + log s): see the CPU twin.
    const float log_s = logf(s);
#pragma unroll
    for (int k = 0; k < kItems; ++k) v[k] = (v[k] - m) - log_s;
  } else {
    const float inv = 1.0f / s;
#pragma unroll
    for (int k = 0; k < kItems; ++k) v[k] *= inv;
  }
  warp_store_row<kItems, kVec>(y + row * len, len, lane, v);
}

template <typename T, int kItems, int kVec, bool kLog>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    softmax_backward_warp(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx, int64_t rows,
                          int64_t len) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  float yv[kItems], gv[kItems];
  warp_load_row<kItems, kVec>(y + row * len, len, lane, yv, 0.0f);
  warp_load_row<kItems, kVec>(dy + row * len, len, lane, gv, 0.0f);
  float acc = 0.0f;
#pragma unroll
  for (int k = 0; k < kItems; ++k) acc += kLog ? gv[k] : gv[k] * yv[k];
  acc = warp_sum(acc);
#pragma unroll
  for (int k = 0; k < kItems; ++k) gv[k] = kLog ? gv[k] - expf(yv[k]) * acc : yv[k] * (gv[k] - acc);
  warp_store_row<kItems, kVec>(dx + row * len, len, lane, gv);
}

// ---- longer rows: one block per row, online statistics, then one output pass -----------------

template <typename T, int kVec, bool kLog>
__global__ void __launch_bounds__(1024)
    softmax_forward_block(const T* __restrict__ x, T* __restrict__ y, int64_t len) {
  __shared__ float sm[66];
  const T* xr = x + static_cast<int64_t>(blockIdx.x) * len;
  T* yr = y + static_cast<int64_t>(blockIdx.x) * len;
  const int64_t packs = len / kVec;  // len % kVec == 0 (checked by the launcher)
  float m = -INFINITY, s = 0.0f;
#pragma unroll 4
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float v[kVec];
    load_pack<kVec>(xr + q * kVec, v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) online_add(m, s, v[i]);
  }
  block_online_merge(m, s, sm);
  const float log_s = logf(s), inv = 1.0f / s;
#pragma unroll 4
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float v[kVec];
    load_pack<kVec>(xr + q * kVec, v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) v[i] = kLog ? (v[i] - m) - log_s : expf(v[i] - m) * inv;
    store_pack<kVec>(yr + q * kVec, v);
  }
}

template <typename T, int kVec, bool kLog>
__global__ void __launch_bounds__(1024)
    softmax_backward_block(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx, int64_t len) {
  __shared__ float sm[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * len;
  const int64_t packs = len / kVec;
  float acc = 0.0f;
#pragma unroll 4
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float yv[kVec], gv[kVec];
    load_pack<kVec>(y + base + q * kVec, yv);
    load_pack<kVec>(dy + base + q * kVec, gv);
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc += kLog ? gv[i] : gv[i] * yv[i];
  }
  acc = block_sum(acc, sm);
#pragma unroll 4
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float yv[kVec], gv[kVec];
    load_pack<kVec>(y + base + q * kVec, yv);
    load_pack<kVec>(dy + base + q * kVec, gv);
#pragma unroll
    for (int i = 0; i < kVec; ++i) gv[i] = kLog ? gv[i] - expf(yv[i]) * acc : yv[i] * (gv[i] - acc);
    store_pack<kVec>(dx + base + q * kVec, gv);
  }
}

// ---- inner > 1 (an axis that is not the last): one thread per column ------------------------
// Column (o, i) is x[(o * len + a) * inner + i] for a < len: adjacent threads take
// adjacent i, so every step along the axis is a coalesced access.

template <typename T, bool kLog>
__global__ void __launch_bounds__(256)
    softmax_forward_columns(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t len, int64_t inner) {
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < outer * inner;
       col += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (col / inner) * len * inner + col % inner;
    float m = -INFINITY, s = 0.0f;
    for (int64_t a = 0; a < len; ++a) online_add(m, s, to_f32(x[base + a * inner]));
    const float log_s = logf(s), inv = 1.0f / s;
    for (int64_t a = 0; a < len; ++a) {
      const float v = to_f32(x[base + a * inner]);
      y[base + a * inner] = from_f32<T>(kLog ? (v - m) - log_s : expf(v - m) * inv);
    }
  }
}

template <typename T, bool kLog>
__global__ void __launch_bounds__(256)
    softmax_backward_columns(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx, int64_t outer,
                             int64_t len, int64_t inner) {
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < outer * inner;
       col += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (col / inner) * len * inner + col % inner;
    float acc = 0.0f;
    for (int64_t a = 0; a < len; ++a) {
      const float g = to_f32(dy[base + a * inner]);
      acc += kLog ? g : g * to_f32(y[base + a * inner]);
    }
    for (int64_t a = 0; a < len; ++a) {
      const float yv = to_f32(y[base + a * inner]), g = to_f32(dy[base + a * inner]);
      dx[base + a * inner] = from_f32<T>(kLog ? g - expf(yv) * acc : yv * (g - acc));
    }
  }
}

// ---- launch ----------------------------------------------------------------------------------

unsigned warp_grid(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }
int block_threads(int64_t len) { return len >= 8192 ? 1024 : 512; }

template <typename T, bool kLog>
void launch_forward(const T* x, T* y, int64_t rows, int64_t len, int64_t inner, cudaStream_t stream) {
  if (inner > 1) {
    softmax_forward_columns<T, kLog><<<grid_for(rows * inner, 256), 256, 0, stream>>>(x, y, rows, len, inner);
  } else if (len <= kWarpRowMax) {
    GRAFT_SWITCH_WARP_ITEMS(warp_items_for(len), K, {
      constexpr int kV = cmin(max_pack<T>(), K);
      if (kV > 1 && packs_fit<T>(kV, len, {x, y}))
        softmax_forward_warp<T, K, kV, kLog><<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(x, y, rows, len);
      else
        softmax_forward_warp<T, K, 1, kLog><<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(x, y, rows, len);
    });
  } else {
    constexpr int kV = max_pack<T>();
    const unsigned grid = static_cast<unsigned>(rows);
    if (packs_fit<T>(kV, len, {x, y}))
      softmax_forward_block<T, kV, kLog><<<grid, block_threads(len / kV), 0, stream>>>(x, y, len);
    else
      softmax_forward_block<T, 1, kLog><<<grid, block_threads(len), 0, stream>>>(x, y, len);
  }
  GRAFT_KERNEL_LAUNCH_CHECK();
}

template <typename T, bool kLog>
void launch_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t len, int64_t inner, cudaStream_t stream) {
  if (inner > 1) {
    softmax_backward_columns<T, kLog><<<grid_for(rows * inner, 256), 256, 0, stream>>>(y, dy, dx, rows, len, inner);
  } else if (len <= kWarpRowMax) {
    GRAFT_SWITCH_WARP_ITEMS(warp_items_for(len), K, {
      constexpr int kV = cmin(max_pack<T>(), K);
      if (kV > 1 && packs_fit<T>(kV, len, {y, dy, dx}))
        softmax_backward_warp<T, K, kV, kLog>
            <<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(y, dy, dx, rows, len);
      else
        softmax_backward_warp<T, K, 1, kLog>
            <<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(y, dy, dx, rows, len);
    });
  } else {
    constexpr int kV = max_pack<T>();
    const unsigned grid = static_cast<unsigned>(rows);
    if (packs_fit<T>(kV, len, {y, dy, dx}))
      softmax_backward_block<T, kV, kLog><<<grid, block_threads(len / kV), 0, stream>>>(y, dy, dx, len);
    else
      softmax_backward_block<T, 1, kLog><<<grid, block_threads(len), 0, stream>>>(y, dy, dx, len);
  }
  GRAFT_KERNEL_LAUNCH_CHECK();
}

// Returns false when there is nothing to do.
bool check_args(const char* name, SoftmaxParams p, DataType dt, std::initializer_list<const void*> ptrs) {
  require(dt == DataType::f32 || dt == DataType::f16 || dt == DataType::bf16, name, "unknown dtype");
  require(p.outer >= 0 && p.axis_len >= 0 && p.inner >= 0, name,
          "negative size: outer " + std::to_string(p.outer) + ", axis_len " + std::to_string(p.axis_len) +
              ", inner " + std::to_string(p.inner));
  if (p.outer == 0 || p.axis_len == 0 || p.inner == 0) return false;
  require(p.outer <= INT_MAX, name, "outer " + std::to_string(p.outer) + " exceeds the grid limit 2^31 - 1 rows");
  int i = 0;
  for (const void* q : ptrs) {
    require(q != nullptr, name, "pointer argument " + std::to_string(i) + " is null");
    ++i;
  }
  return true;
}

}  // namespace

void softmax_forward(const void* x, void* y, SoftmaxParams p, DataType dt, cudaStream_t stream) {
  if (!check_args("softmax_forward", p, dt, {x, y})) return;
  GRAFT_DISPATCH_FLOAT(dt, T, launch_forward<T, false>(static_cast<const T*>(x), static_cast<T*>(y), p.outer,
                                                       p.axis_len, p.inner, stream));
}

void log_softmax_forward(const void* x, void* y, SoftmaxParams p, DataType dt, cudaStream_t stream) {
  if (!check_args("log_softmax_forward", p, dt, {x, y})) return;
  GRAFT_DISPATCH_FLOAT(dt, T, launch_forward<T, true>(static_cast<const T*>(x), static_cast<T*>(y), p.outer,
                                                      p.axis_len, p.inner, stream));
}

void softmax_backward(const void* y, const void* dy, void* dx, SoftmaxParams p, DataType dt, cudaStream_t stream) {
  if (!check_args("softmax_backward", p, dt, {y, dy, dx})) return;
  GRAFT_DISPATCH_FLOAT(dt, T, launch_backward<T, false>(static_cast<const T*>(y), static_cast<const T*>(dy),
                                                        static_cast<T*>(dx), p.outer, p.axis_len, p.inner, stream));
}

void log_softmax_backward(const void* y, const void* dy, void* dx, SoftmaxParams p, DataType dt,
                          cudaStream_t stream) {
  if (!check_args("log_softmax_backward", p, dt, {y, dy, dx})) return;
  GRAFT_DISPATCH_FLOAT(dt, T, launch_backward<T, true>(static_cast<const T*>(y), static_cast<const T*>(dy),
                                                       static_cast<T*>(dx), p.outer, p.axis_len, p.inner, stream));
}

}  // namespace graft::kernels::cuda
