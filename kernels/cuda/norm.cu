#include "kernels/cuda/norm.h"

#include <climits>
#include <string>

#include "kernels/cuda/rows.cuh"

namespace graft::kernels::cuda {

namespace {

// ==== column reductions over (rows, cols): per-chunk partials, then a fixed-order sum ==========
// Block (32, 8): 32 adjacent columns (one coalesced access per row), 8 rows at
// a time. Chunks of rows depend only on the shape, so the sums do too.
constexpr int kColTile = 32;
constexpr int kColRows = 8;

struct ColumnSplit {
  int64_t tiles = 0, chunks = 0, chunk_rows = 0;
};
ColumnSplit column_split(int64_t rows, int64_t cols) {
  ColumnSplit s;
  s.tiles = (cols + kColTile - 1) / kColTile;
  int64_t want = (2048 + s.tiles - 1) / s.tiles;  // ~2048 blocks in all: enough to fill the device
  if (want < 1) want = 1;
  s.chunk_rows = (rows + want - 1) / want;
  if (s.chunk_rows < 16) s.chunk_rows = 16;
  s.chunks = (rows + s.chunk_rows - 1) / s.chunk_rows;  // <= 2048: fits grid.y
  return s;
}

// Welford: count n, mean, sum of squared deviations m2. merge is the parallel
// formula (Chan et al.); n == 0 on either side is exact.
template <typename F>
__device__ __forceinline__ void welford_merge(F& n, F& mean, F& m2, F nb, F meanb, F m2b) {
  const F tot = n + nb;
  if (nb == F(0)) return;
  const F delta = meanb - mean, fb = nb / tot;
  mean += delta * fb;
  m2 += m2b + delta * delta * n * fb;
  n = tot;
}

// Per-channel mean and m2 of one chunk of rows: partial[chunk][0][col] = mean,
// partial[chunk][1][col] = m2 (the chunk's row count is known from the split).
template <typename T>
__global__ void __launch_bounds__(kColTile* kColRows)
    batch_norm_stats_partials(const T* __restrict__ x, int64_t rows, int64_t cols, int64_t chunk_rows,
                              float* __restrict__ partial) {
  __shared__ float s_n[kColRows][kColTile + 1], s_mean[kColRows][kColTile + 1], s_m2[kColRows][kColTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColTile + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = min(rows, r0 + chunk_rows);
  float n = 0.0f, mean = 0.0f, m2 = 0.0f;
  if (col < cols) {
#pragma unroll 4
    for (int64_t r = r0 + ty; r < r1; r += kColRows) {
      const float v = to_f32(x[r * cols + col]);
      n += 1.0f;  // exact: chunk_rows / 8 is far below 2^24
      const float d = v - mean;
      mean += d / n;
      m2 += d * (v - mean);
    }
  }
  s_n[ty][tx] = n, s_mean[ty][tx] = mean, s_m2[ty][tx] = m2;
  __syncthreads();
  if (ty != 0 || col >= cols) return;
  for (int k = 1; k < kColRows; ++k) welford_merge(n, mean, m2, s_n[k][tx], s_mean[k][tx], s_m2[k][tx]);
  float* out = partial + static_cast<int64_t>(blockIdx.y) * 2 * cols;
  out[col] = mean;
  out[cols + col] = m2;
}

// One thread per channel: merges the chunks in order (double), writes the
// statistics and updates the running ones.
__global__ void batch_norm_stats_finalize(const float* __restrict__ partial, ColumnSplit split, int64_t rows,
                                          int64_t cols, float eps, float* __restrict__ batch_mean,
                                          float* __restrict__ batch_var, float* __restrict__ save_rstd,
                                          float* __restrict__ running_mean, float* __restrict__ running_var,
                                          float momentum) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  double n = 0.0, mean = 0.0, m2 = 0.0;
  for (int64_t ch = 0; ch < split.chunks; ++ch) {
    const int64_t r0 = ch * split.chunk_rows;
    const double nb = static_cast<double>(min(rows, r0 + split.chunk_rows) - r0);
    const float* p = partial + ch * 2 * cols;
    welford_merge(n, mean, m2, nb, static_cast<double>(p[col]), static_cast<double>(p[cols + col]));
  }
  const double var = m2 / static_cast<double>(rows);
  batch_mean[col] = static_cast<float>(mean);
  batch_var[col] = static_cast<float>(var);
  save_rstd[col] = static_cast<float>(1.0 / sqrt(var + eps));
  if (running_mean) {
    const double mom = momentum, unbias = static_cast<double>(rows) / static_cast<double>(rows - 1);
    running_mean[col] = static_cast<float>((1 - mom) * running_mean[col] + mom * mean);
    running_var[col] = static_cast<float>((1 - mom) * running_var[col] + mom * unbias * var);
  }
}

// Sums over rows of g and g * xhat per column, partial per chunk:
// partial[chunk][0][col] = sum g, partial[chunk][1][col] = sum g * xhat.
// kStats: xhat = (x - mean[r]) * rstd[r] (layer norm, per row), (x - mean[c]) *
// rstd[c] (batch norm training), or (x - mean[c]) / sqrt(var[c] + eps) (batch norm eval).
enum StatsKind { kPerRow = 0, kPerColRstd = 1, kPerColVar = 2 };

template <typename T, int kStats>
__global__ void __launch_bounds__(kColTile* kColRows)
    grad_sums_partials(const T* __restrict__ g, const T* __restrict__ x, const float* __restrict__ mean,
                       const float* __restrict__ stat, float eps, int64_t rows, int64_t cols, int64_t chunk_rows,
                       float* __restrict__ partial) {
  __shared__ float s_g[kColRows][kColTile + 1], s_gx[kColRows][kColTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColTile + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = min(rows, r0 + chunk_rows);
  float sg = 0.0f, sgx = 0.0f;
  if (col < cols) {
    float mc = 0.0f, rc = 0.0f;
    if (kStats == kPerColRstd) mc = mean[col], rc = stat[col];
    if (kStats == kPerColVar) mc = mean[col], rc = 1.0f / sqrtf(stat[col] + eps);
#pragma unroll 4
    for (int64_t r = r0 + ty; r < r1; r += kColRows) {
      if (kStats == kPerRow) mc = mean[r], rc = stat[r];
      const float gv = to_f32(g[r * cols + col]), xv = to_f32(x[r * cols + col]);
      sg += gv;
      sgx += gv * ((xv - mc) * rc);
    }
  }
  s_g[ty][tx] = sg, s_gx[ty][tx] = sgx;
  __syncthreads();
  if (ty != 0 || col >= cols) return;
  for (int k = 1; k < kColRows; ++k) sg += s_g[k][tx], sgx += s_gx[k][tx];
  float* out = partial + static_cast<int64_t>(blockIdx.y) * 2 * cols;
  out[col] = sg;
  out[cols + col] = sgx;
}

// One thread per column: adds the chunks in order (double). Writes grad_bias
// (sum g) and grad_weight (sum g * xhat) where not null, and, where coef is not
// null, batch norm's training grad_x coefficients (as the CPU twin):
// coef[0][c] = weight * rstd, coef[1][c] = sum g / rows, coef[2][c] = rstd * sum(g xhat) / rows.
__global__ void grad_sums_finalize(const float* __restrict__ partial, int64_t chunks, int64_t rows, int64_t cols,
                                   float* __restrict__ grad_weight, float* __restrict__ grad_bias,
                                   const float* __restrict__ rstd, const float* __restrict__ weight,
                                   float* __restrict__ coef) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  double sg = 0.0, sgx = 0.0;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    sg += partial[ch * 2 * cols + col];
    sgx += partial[ch * 2 * cols + cols + col];
  }
  if (grad_bias) grad_bias[col] = static_cast<float>(sg);
  if (grad_weight) grad_weight[col] = static_cast<float>(sgx);
  if (coef) {
    const float rs = rstd[col];
    coef[col] = weight ? weight[col] * rs : rs;
    coef[cols + col] = static_cast<float>(sg / static_cast<double>(rows));
    coef[2 * cols + col] = static_cast<float>(rs * sgx / static_cast<double>(rows));
  }
}

// ==== batch norm elementwise passes over (rows, C), channels innermost ==========================
// Packs of kVec never straddle a row (C % kVec == 0 when kVec > 1), so a pack's
// channels are col0 .. col0 + kVec - 1. Idx: 32-bit index math when it fits.

// y = (x - mean) * (weight * rstd) + bias; rstd given, or from var (kFromVar).
template <typename T, int kVec, typename Idx, bool kFromVar>
__global__ void __launch_bounds__(256)
    batch_norm_apply(const T* __restrict__ x, const float* __restrict__ mean, const float* __restrict__ stat,
                     const float* __restrict__ w, const float* __restrict__ b, T* __restrict__ y, Idx packs, Idx cols,
                     float eps) {
  for (Idx q = blockIdx.x * static_cast<Idx>(blockDim.x) + threadIdx.x; q < packs;
       q += static_cast<Idx>(gridDim.x) * blockDim.x) {
    const Idx e0 = q * kVec, col0 = e0 % cols;
    float v[kVec];
    load_pack<kVec>(x + e0, v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const Idx c = col0 + i;
      const float rs = kFromVar ? 1.0f / sqrtf(stat[c] + eps) : stat[c];
      const float scale = w ? w[c] * rs : rs;
      v[i] = (v[i] - mean[c]) * scale + (b ? b[c] : 0.0f);
    }
    store_pack<kVec>(y + e0, v);
  }
}

// Training: grad_x = a * (g - b - (x - mean) * k) with coef = (a, b, k) per channel.
// Eval (!kTrain): grad_x = g * weight / sqrt(var + eps) (`stat` is var; x, coef unused).
template <typename T, int kVec, typename Idx, bool kTrain>
__global__ void __launch_bounds__(256)
    batch_norm_grad_x(const T* __restrict__ g, const T* __restrict__ x, const float* __restrict__ mean,
                      const float* __restrict__ coef, const float* __restrict__ stat, const float* __restrict__ w,
                      T* __restrict__ dx, Idx packs, Idx cols, float eps) {
  for (Idx q = blockIdx.x * static_cast<Idx>(blockDim.x) + threadIdx.x; q < packs;
       q += static_cast<Idx>(gridDim.x) * blockDim.x) {
    const Idx e0 = q * kVec, col0 = e0 % cols;
    float gv[kVec], xv[kVec];
    load_pack<kVec>(g + e0, gv);
    if (kTrain) load_pack<kVec>(x + e0, xv);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const Idx c = col0 + i;
      if (kTrain) {
        gv[i] = coef[c] * (gv[i] - coef[cols + c] - (xv[i] - mean[c]) * coef[2 * cols + c]);
      } else {
        const float rs = 1.0f / sqrtf(stat[c] + eps);
        gv[i] *= w ? w[c] * rs : rs;
      }
    }
    store_pack<kVec>(dx + e0, gv);
  }
}

// Launches an elementwise pass over rows * c elements with the widest packs that fit.
template <typename T, typename Launch>
void launch_elementwise(int64_t total, int64_t c, std::initializer_list<const void*> ptrs, Launch&& launch) {
  constexpr int kV = max_pack<T>();
  const bool vec = packs_fit<T>(kV, c, ptrs);
  const int64_t packs = vec ? total / kV : total;
  const unsigned grid = grid_for(packs, 256, 132 * 16);  // grid-stride: a few waves of blocks at most
  const bool small = total < (int64_t(1) << 31);
  if (vec) {
    if (small) launch(std::integral_constant<int, kV>(), uint32_t(0), grid, packs);
    else launch(std::integral_constant<int, kV>(), int64_t(0), grid, packs);
  } else {
    if (small) launch(std::integral_constant<int, 1>(), uint32_t(0), grid, packs);
    else launch(std::integral_constant<int, 1>(), int64_t(0), grid, packs);
  }
  GRAFT_KERNEL_LAUNCH_CHECK();
}

// Scratch from the stream-ordered pool, freed on the stream when the scope ends.
struct StreamScratch {
  float* p = nullptr;
  cudaStream_t stream;
  StreamScratch(size_t floats, cudaStream_t s) : stream(s) {
    GRAFT_KERNEL_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p), floats * sizeof(float), s));
  }
  ~StreamScratch() { cudaFreeAsync(p, stream); }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
};

// Per-column sums of g and g * xhat into grad_weight / grad_bias / coef.
template <typename T, int kStats>
void column_grad_sums(const T* g, const T* x, const float* mean, const float* stat, float eps, int64_t rows,
                      int64_t cols, float* grad_weight, float* grad_bias, const float* rstd, const float* weight,
                      float* coef, cudaStream_t stream) {
  const ColumnSplit s = column_split(rows, cols);
  StreamScratch partial(static_cast<size_t>(2 * s.chunks * cols), stream);
  grad_sums_partials<T, kStats><<<dim3(static_cast<unsigned>(s.tiles), static_cast<unsigned>(s.chunks)),
                                  dim3(kColTile, kColRows), 0, stream>>>(g, x, mean, stat, eps, rows, cols,
                                                                         s.chunk_rows, partial.p);
  GRAFT_KERNEL_LAUNCH_CHECK();
  grad_sums_finalize<<<grid_for(cols, 256), 256, 0, stream>>>(partial.p, s.chunks, rows, cols, grad_weight,
                                                              grad_bias, rstd, weight, coef);
  GRAFT_KERNEL_LAUNCH_CHECK();
}

// ==== layer norm rows ==========================================================================

constexpr int64_t kWarpRowMax = 1024;
constexpr int kRowsPerBlock = 4;

// Element e of a warp row's registers is at index (e / kVec * 32 + lane) * kVec + e % kVec.
template <int kItems, int kVec>
__device__ __forceinline__ int64_t warp_index(int e, int lane) {
  return warp_elem<kItems, kVec>(e / kVec, lane) + e % kVec;
}

template <typename T, int kItems, int kVec>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    layer_norm_forward_warp(const T* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                            T* __restrict__ y, float* __restrict__ save_mean, float* __restrict__ save_rstd,
                            int64_t rows, int64_t d, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  float v[kItems];
  warp_load_row<kItems, kVec>(x + row * d, d, lane, v, 0.0f);
  float s = 0.0f;
#pragma unroll
  for (int e = 0; e < kItems; ++e) s += v[e];
  const float mean = warp_sum(s) / static_cast<float>(d);
  float sq = 0.0f;
#pragma unroll
  for (int e = 0; e < kItems; ++e) {
    const float t = warp_index<kItems, kVec>(e, lane) < d ? v[e] - mean : 0.0f;
    sq += t * t;
  }
  const float rstd = 1.0f / sqrtf(warp_sum(sq) / static_cast<float>(d) + eps);
  if (lane == 0) save_mean[row] = mean, save_rstd[row] = rstd;
#pragma unroll
  for (int e = 0; e < kItems; ++e) {
    const int64_t j = warp_index<kItems, kVec>(e, lane);
    if (j >= d) continue;
    float o = (v[e] - mean) * rstd;
    if (w) o *= w[j];
    if (b) o += b[j];
    v[e] = o;
  }
  warp_store_row<kItems, kVec>(y + row * d, d, lane, v);
}

template <typename T, int kItems, int kVec>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    layer_norm_backward_warp(const T* __restrict__ g, const T* __restrict__ x, const float* __restrict__ mean,
                             const float* __restrict__ rstd, const float* __restrict__ w, T* __restrict__ dx,
                             int64_t rows, int64_t d) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  float gv[kItems], xv[kItems];
  warp_load_row<kItems, kVec>(g + row * d, d, lane, gv, 0.0f);
  warp_load_row<kItems, kVec>(x + row * d, d, lane, xv, 0.0f);
  const float m = mean[row], rs = rstd[row];
  float s1 = 0.0f, s2 = 0.0f;
#pragma unroll
  for (int e = 0; e < kItems; ++e) {
    const int64_t j = warp_index<kItems, kVec>(e, lane);
    if (w && j < d) gv[e] *= w[j];  // gh; padding stays 0
    s1 += gv[e];
    s2 += gv[e] * ((xv[e] - m) * rs);
  }
  const float a = warp_sum(s1) / static_cast<float>(d), bb = warp_sum(s2) / static_cast<float>(d);
#pragma unroll
  for (int e = 0; e < kItems; ++e) gv[e] = rs * (gv[e] - a - (xv[e] - m) * rs * bb);
  warp_store_row<kItems, kVec>(dx + row * d, d, lane, gv);
}

// Rows longer than 1024: one block per row, re-reading the row (from cache).
template <typename T, int kVec>
__global__ void __launch_bounds__(1024)
    layer_norm_forward_block(const T* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                             T* __restrict__ y, float* __restrict__ save_mean, float* __restrict__ save_rstd,
                             int64_t d, float eps) {
  __shared__ float sm[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * d, packs = d / kVec;
  float s = 0.0f;
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float v[kVec];
    load_pack<kVec>(x + base + q * kVec, v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) s += v[i];
  }
  const float mean = block_sum(s, sm) / static_cast<float>(d);
  float sq = 0.0f;
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float v[kVec];
    load_pack<kVec>(x + base + q * kVec, v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) sq += (v[i] - mean) * (v[i] - mean);
  }
  const float rstd = 1.0f / sqrtf(block_sum(sq, sm) / static_cast<float>(d) + eps);
  if (threadIdx.x == 0) save_mean[blockIdx.x] = mean, save_rstd[blockIdx.x] = rstd;
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float v[kVec];
    load_pack<kVec>(x + base + q * kVec, v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const int64_t j = q * kVec + i;
      float o = (v[i] - mean) * rstd;
      if (w) o *= w[j];
      if (b) o += b[j];
      v[i] = o;
    }
    store_pack<kVec>(y + base + q * kVec, v);
  }
}

template <typename T, int kVec>
__global__ void __launch_bounds__(1024)
    layer_norm_backward_block(const T* __restrict__ g, const T* __restrict__ x, const float* __restrict__ mean,
                              const float* __restrict__ rstd, const float* __restrict__ w, T* __restrict__ dx,
                              int64_t d) {
  __shared__ float sm[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * d, packs = d / kVec;
  const float m = mean[blockIdx.x], rs = rstd[blockIdx.x];
  float s1 = 0.0f, s2 = 0.0f;
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float gv[kVec], xv[kVec];
    load_pack<kVec>(g + base + q * kVec, gv);
    load_pack<kVec>(x + base + q * kVec, xv);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float gh = w ? gv[i] * w[q * kVec + i] : gv[i];
      s1 += gh;
      s2 += gh * ((xv[i] - m) * rs);
    }
  }
  const float a = block_sum(s1, sm) / static_cast<float>(d);
  const float bb = block_sum(s2, sm) / static_cast<float>(d);
  for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
    float gv[kVec], xv[kVec];
    load_pack<kVec>(g + base + q * kVec, gv);
    load_pack<kVec>(x + base + q * kVec, xv);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float gh = w ? gv[i] * w[q * kVec + i] : gv[i];
      gv[i] = rs * (gh - a - (xv[i] - m) * rs * bb);
    }
    store_pack<kVec>(dx + base + q * kVec, gv);
  }
}

unsigned warp_grid(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }
int block_threads(int64_t packs) { return packs >= 8192 ? 1024 : 512; }

// ==== argument checks ==========================================================================

void check_dtype(const char* name, DataType dt) {
  require(dt == DataType::f32 || dt == DataType::f16 || dt == DataType::bf16, name, "unknown dtype");
}
void check_sizes(const char* name, int64_t rows, int64_t cols, const char* cols_name) {
  require(rows >= 0 && cols >= 0, name,
          "negative size: rows " + std::to_string(rows) + ", " + cols_name + " " + std::to_string(cols));
}
void check_ptr(const char* name, const void* p, const char* what) {
  require(p != nullptr, name, std::string(what) + " is null");
}

}  // namespace

// ==== batch norm ==============================================================================

void batch_norm_forward_train(const void* x, const float* weight, const float* bias, void* y, float* batch_mean,
                              float* batch_var, float* save_rstd, float* running_mean, float* running_var,
                              float momentum, int64_t rows, int64_t c, float eps, DataType dt, cudaStream_t stream) {
  const char* name = "batch_norm_forward_train";
  check_dtype(name, dt);
  check_sizes(name, rows, c, "c");
  require(rows >= 1, name, "needs at least one row (value per channel), got " + std::to_string(rows));
  require((running_mean == nullptr) == (running_var == nullptr), name,
          "running_mean and running_var must be given together");
  if (running_mean) {
    require(rows >= 2, name, "updating running statistics needs rows >= 2 (unbiased variance), got " +
                                 std::to_string(rows));
    require(momentum >= 0.0f && momentum <= 1.0f, name, "momentum must be in [0, 1], got " + std::to_string(momentum));
  }
  if (c == 0) return;
  check_ptr(name, x, "x");
  check_ptr(name, y, "y");
  check_ptr(name, batch_mean, "batch_mean");
  check_ptr(name, batch_var, "batch_var");
  check_ptr(name, save_rstd, "save_rstd");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* xt = static_cast<const T*>(x);
    const ColumnSplit s = column_split(rows, c);
    {
      StreamScratch partial(static_cast<size_t>(2 * s.chunks * c), stream);
      batch_norm_stats_partials<T><<<dim3(static_cast<unsigned>(s.tiles), static_cast<unsigned>(s.chunks)),
                                     dim3(kColTile, kColRows), 0, stream>>>(xt, rows, c, s.chunk_rows, partial.p);
      GRAFT_KERNEL_LAUNCH_CHECK();
      batch_norm_stats_finalize<<<grid_for(c, 256), 256, 0, stream>>>(partial.p, s, rows, c, eps, batch_mean,
                                                                      batch_var, save_rstd, running_mean,
                                                                      running_var, momentum);
      GRAFT_KERNEL_LAUNCH_CHECK();
    }
    launch_elementwise<T>(rows * c, c, {x, y}, [&](auto vec, auto idx, unsigned grid, int64_t packs) {
      using Idx = decltype(idx);
      batch_norm_apply<T, decltype(vec)::value, Idx, false><<<grid, 256, 0, stream>>>(
          xt, batch_mean, save_rstd, weight, bias, static_cast<T*>(y), static_cast<Idx>(packs), static_cast<Idx>(c),
          eps);
    });
  });
}

void batch_norm_forward_eval(const void* x, const float* mean, const float* var, const float* weight,
                             const float* bias, void* y, int64_t rows, int64_t c, float eps, DataType dt,
                             cudaStream_t stream) {
  const char* name = "batch_norm_forward_eval";
  check_dtype(name, dt);
  check_sizes(name, rows, c, "c");
  if (rows == 0 || c == 0) return;
  check_ptr(name, x, "x");
  check_ptr(name, y, "y");
  check_ptr(name, mean, "mean");
  check_ptr(name, var, "var");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    launch_elementwise<T>(rows * c, c, {x, y}, [&](auto vec, auto idx, unsigned grid, int64_t packs) {
      using Idx = decltype(idx);
      batch_norm_apply<T, decltype(vec)::value, Idx, true><<<grid, 256, 0, stream>>>(
          static_cast<const T*>(x), mean, var, weight, bias, static_cast<T*>(y), static_cast<Idx>(packs),
          static_cast<Idx>(c), eps);
    });
  });
}

void batch_norm_backward_train(const void* grad_y, const void* x, const float* mean, const float* rstd,
                               const float* weight, void* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                               int64_t c, DataType dt, cudaStream_t stream) {
  const char* name = "batch_norm_backward_train";
  check_dtype(name, dt);
  check_sizes(name, rows, c, "c");
  require(rows >= 1, name, "needs at least one row (value per channel), got " + std::to_string(rows));
  if (c == 0 || (!grad_x && !grad_weight && !grad_bias)) return;
  check_ptr(name, grad_y, "grad_y");
  check_ptr(name, x, "x");
  check_ptr(name, mean, "mean");
  check_ptr(name, rstd, "rstd");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* gt = static_cast<const T*>(grad_y);
    const T* xt = static_cast<const T*>(x);
    StreamScratch coef(grad_x ? static_cast<size_t>(3 * c) : 1, stream);
    column_grad_sums<T, kPerColRstd>(gt, xt, mean, rstd, 0.0f, rows, c, grad_weight, grad_bias, rstd, weight,
                                     grad_x ? coef.p : nullptr, stream);
    if (grad_x) {
      launch_elementwise<T>(rows * c, c, {grad_y, x, grad_x}, [&](auto vec, auto idx, unsigned grid, int64_t packs) {
        using Idx = decltype(idx);
        batch_norm_grad_x<T, decltype(vec)::value, Idx, true><<<grid, 256, 0, stream>>>(
            gt, xt, mean, coef.p, nullptr, weight, static_cast<T*>(grad_x), static_cast<Idx>(packs),
            static_cast<Idx>(c), 0.0f);
      });
    }
  });
}

void batch_norm_backward_eval(const void* grad_y, const void* x, const float* mean, const float* var,
                              const float* weight, void* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                              int64_t c, float eps, DataType dt, cudaStream_t stream) {
  const char* name = "batch_norm_backward_eval";
  check_dtype(name, dt);
  check_sizes(name, rows, c, "c");
  if (c == 0) return;
  check_ptr(name, grad_y, "grad_y");
  check_ptr(name, var, "var");
  const bool param_grads = grad_weight || grad_bias;
  if (param_grads) {
    check_ptr(name, x, "x");
    check_ptr(name, mean, "mean");
  }
  if (rows == 0) {
    if (grad_weight) GRAFT_KERNEL_CUDA_CHECK(cudaMemsetAsync(grad_weight, 0, c * sizeof(float), stream));
    if (grad_bias) GRAFT_KERNEL_CUDA_CHECK(cudaMemsetAsync(grad_bias, 0, c * sizeof(float), stream));
    return;
  }
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* gt = static_cast<const T*>(grad_y);
    if (param_grads)
      column_grad_sums<T, kPerColVar>(gt, static_cast<const T*>(x), mean, var, eps, rows, c, grad_weight, grad_bias,
                                      nullptr, nullptr, nullptr, stream);
    if (grad_x) {
      launch_elementwise<T>(rows * c, c, {grad_y, grad_x}, [&](auto vec, auto idx, unsigned grid, int64_t packs) {
        using Idx = decltype(idx);
        batch_norm_grad_x<T, decltype(vec)::value, Idx, false><<<grid, 256, 0, stream>>>(
            gt, nullptr, nullptr, nullptr, var, weight, static_cast<T*>(grad_x), static_cast<Idx>(packs),
            static_cast<Idx>(c), eps);
      });
    }
  });
}

// ==== layer norm ==============================================================================

void layer_norm_forward(const void* x, const float* weight, const float* bias, void* y, float* save_mean,
                        float* save_rstd, int64_t rows, int64_t d, float eps, DataType dt, cudaStream_t stream) {
  const char* name = "layer_norm_forward";
  check_dtype(name, dt);
  check_sizes(name, rows, d, "d");
  if (rows == 0 || d == 0) return;
  require(rows <= INT_MAX, name, "rows " + std::to_string(rows) + " exceeds the grid limit 2^31 - 1");
  check_ptr(name, x, "x");
  check_ptr(name, y, "y");
  check_ptr(name, save_mean, "save_mean");
  check_ptr(name, save_rstd, "save_rstd");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    if (d <= kWarpRowMax) {
      GRAFT_SWITCH_WARP_ITEMS(warp_items_for(d), K, {
        constexpr int kV = cmin(max_pack<T>(), K);
        if (kV > 1 && packs_fit<T>(kV, d, {x, y}))
          layer_norm_forward_warp<T, K, kV><<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(
              xt, weight, bias, yt, save_mean, save_rstd, rows, d, eps);
        else
          layer_norm_forward_warp<T, K, 1><<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(
              xt, weight, bias, yt, save_mean, save_rstd, rows, d, eps);
      });
    } else {
      constexpr int kV = max_pack<T>();
      if (packs_fit<T>(kV, d, {x, y}))
        layer_norm_forward_block<T, kV><<<static_cast<unsigned>(rows), block_threads(d / kV), 0, stream>>>(
            xt, weight, bias, yt, save_mean, save_rstd, d, eps);
      else
        layer_norm_forward_block<T, 1><<<static_cast<unsigned>(rows), block_threads(d), 0, stream>>>(
            xt, weight, bias, yt, save_mean, save_rstd, d, eps);
    }
    GRAFT_KERNEL_LAUNCH_CHECK();
  });
}

void layer_norm_backward(const void* grad_y, const void* x, const float* mean, const float* rstd,
                         const float* weight, void* grad_x, float* grad_weight, float* grad_bias, int64_t rows,
                         int64_t d, DataType dt, cudaStream_t stream) {
  const char* name = "layer_norm_backward";
  check_dtype(name, dt);
  check_sizes(name, rows, d, "d");
  if (d == 0) return;
  require(rows <= INT_MAX, name, "rows " + std::to_string(rows) + " exceeds the grid limit 2^31 - 1");
  if (rows == 0) {  // empty sums, as the twin
    if (grad_weight) GRAFT_KERNEL_CUDA_CHECK(cudaMemsetAsync(grad_weight, 0, d * sizeof(float), stream));
    if (grad_bias) GRAFT_KERNEL_CUDA_CHECK(cudaMemsetAsync(grad_bias, 0, d * sizeof(float), stream));
    return;
  }
  if (!grad_x && !grad_weight && !grad_bias) return;
  check_ptr(name, grad_y, "grad_y");
  check_ptr(name, x, "x");
  check_ptr(name, mean, "mean");
  check_ptr(name, rstd, "rstd");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    const T* gt = static_cast<const T*>(grad_y);
    const T* xt = static_cast<const T*>(x);
    if (grad_weight || grad_bias)
      column_grad_sums<T, kPerRow>(gt, xt, mean, rstd, 0.0f, rows, d, grad_weight, grad_bias, nullptr, nullptr,
                                   nullptr, stream);
    if (grad_x) {
      T* dxt = static_cast<T*>(grad_x);
      if (d <= kWarpRowMax) {
        GRAFT_SWITCH_WARP_ITEMS(warp_items_for(d), K, {
          constexpr int kV = cmin(max_pack<T>(), K);
          if (kV > 1 && packs_fit<T>(kV, d, {grad_y, x, grad_x}))
            layer_norm_backward_warp<T, K, kV><<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(
                gt, xt, mean, rstd, weight, dxt, rows, d);
          else
            layer_norm_backward_warp<T, K, 1><<<warp_grid(rows), 32 * kRowsPerBlock, 0, stream>>>(
                gt, xt, mean, rstd, weight, dxt, rows, d);
        });
      } else {
        constexpr int kV = max_pack<T>();
        if (packs_fit<T>(kV, d, {grad_y, x, grad_x}))
          layer_norm_backward_block<T, kV><<<static_cast<unsigned>(rows), block_threads(d / kV), 0, stream>>>(
              gt, xt, mean, rstd, weight, dxt, d);
        else
          layer_norm_backward_block<T, 1><<<static_cast<unsigned>(rows), block_threads(d), 0, stream>>>(
              gt, xt, mean, rstd, weight, dxt, d);
      }
      GRAFT_KERNEL_LAUNCH_CHECK();
    }
  });
}

}  // namespace graft::kernels::cuda
