#include "kernels/cuda/loss.h"

#include <climits>
#include <string>

#include "kernels/cuda/rows.cuh"

namespace graft::kernels::cuda {

namespace {

// What the totals kernel hands back to the host.
struct DeviceTotals {
  double loss_sum;
  double weight_sum;
  long long first_bad_row;  // LLONG_MAX when every target is valid
};

int row_threads(int64_t c) { return c <= 128 ? 32 : c <= 512 ? 128 : c <= 2048 ? 256 : 512; }

// One block per row: online (max, sum exp) in one pass; with label smoothing a
// second pass over the (cached) row for sum_j w_j ((m - x_j) + log s), every
// term non-negative as in the twin's per-term form.
template <typename T>
__global__ void __launch_bounds__(512)
    cross_entropy_forward_rows(const T* __restrict__ logits, const int64_t* __restrict__ targets,
                               const float* __restrict__ w, float* __restrict__ loss, float* __restrict__ stats,
                               int64_t c, float eps, int64_t ignore_index) {
  __shared__ float sm[66];
  const int64_t i = blockIdx.x;
  const T* x = logits + i * c;
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) online_add(m, s, to_f32(x[j]));
  block_online_merge(m, s, sm);
  const float log_s = logf(s);
  const int64_t t = targets[i];
  const bool ignored = t == ignore_index;
  const bool valid = !ignored && t >= 0 && t < c;
  float smooth = 0.0f;
  if (eps > 0.0f && valid) {  // uniform over the block
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      const float term = (m - to_f32(x[j])) + log_s;
      smooth += w ? w[j] * term : term;
    }
    smooth = block_sum(smooth, sm);
  }
  if (threadIdx.x != 0) return;
  stats[2 * i] = m;
  stats[2 * i + 1] = log_s;
  if (ignored) {
    loss[i] = 0.0f;
  } else if (!valid) {
    loss[i] = NAN;  // reported by the totals kernel
  } else {
    const double wt = w ? w[t] : 1.0;
    double l = (1.0 - eps) * wt * ((double(m) - to_f32(x[t])) + log_s);
    if (eps > 0.0f) l += double(eps) / double(c) * smooth;
    loss[i] = static_cast<float>(l);
  }
}

// One block: sums in double in a fixed order (thread k takes rows k, k + 1024,
// ..., then a fixed tree), and the first row with an out-of-range target.
constexpr int kTotalsThreads = 1024;
__global__ void __launch_bounds__(kTotalsThreads)
    cross_entropy_totals(const float* __restrict__ loss, const int64_t* __restrict__ targets,
                         const float* __restrict__ w, int64_t n, int64_t c, int64_t ignore_index, DeviceTotals* out) {
  __shared__ double sl[kTotalsThreads], sw[kTotalsThreads];
  __shared__ long long sb[kTotalsThreads];
  double ls = 0.0, ws = 0.0;
  long long bad = LLONG_MAX;
  for (int64_t i = threadIdx.x; i < n; i += kTotalsThreads) {
    const int64_t t = targets[i];
    if (t == ignore_index) continue;
    if (t < 0 || t >= c) {
      if (i < bad) bad = i;
      continue;
    }
    ls += loss[i];
    ws += w ? w[t] : 1.0;
  }
  sl[threadIdx.x] = ls, sw[threadIdx.x] = ws, sb[threadIdx.x] = bad;
  __syncthreads();
  for (int half = kTotalsThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) {
      sl[threadIdx.x] += sl[threadIdx.x + half];
      sw[threadIdx.x] += sw[threadIdx.x + half];
      sb[threadIdx.x] = min(sb[threadIdx.x], sb[threadIdx.x + half]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out->loss_sum = sl[0];
    out->weight_sum = sw[0];
    out->first_bad_row = sb[0];
  }
}

template <typename T>
__global__ void __launch_bounds__(512)
    cross_entropy_backward_rows(const T* __restrict__ logits, const int64_t* __restrict__ targets,
                                const float* __restrict__ w, const float* __restrict__ stats,
                                const float* __restrict__ grad_loss, int64_t grad_stride, float grad_scale,
                                T* __restrict__ grad, int64_t c, float eps, int64_t ignore_index) {
  __shared__ float sm[32];
  const int64_t i = blockIdx.x;
  float W = static_cast<float>(c);
  if (w) {  // sum of the class weights, the same fixed order in every block
    float acc = 0.0f;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) acc += w[j];
    W = block_sum(acc, sm);
  }
  const T* x = logits + i * c;
  T* dx = grad + i * c;
  const int64_t t = targets[i];
  if (t == ignore_index || t < 0 || t >= c) {
    const float fill = t == ignore_index ? 0.0f : NAN;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) dx[j] = from_f32<T>(fill);
    return;
  }
  const float m = stats[2 * i], log_s = stats[2 * i + 1];
  const float g = grad_loss[i * grad_stride] * grad_scale;
  const float wt = w ? w[t] : 1.0f;
  const float eps_c = eps / static_cast<float>(c);
  const float a = g * ((1.0f - eps) * wt + eps_c * W);
  const float b = g * eps_c;
  const float hot = g * (1.0f - eps) * wt;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    float v = a * expf((to_f32(x[j]) - m) - log_s) - (w ? b * w[j] : b);
    if (j == t) v -= hot;
    dx[j] = from_f32<T>(v);
  }
}

void check_common(const char* name, const void* logits, const int64_t* targets, const CrossEntropyParams& p,
                  DataType dt) {
  require(dt == DataType::f32 || dt == DataType::f16 || dt == DataType::bf16, name, "unknown dtype");
  require(p.n >= 0, name, "negative row count n = " + std::to_string(p.n));
  require(p.c >= 1, name, "needs at least one class, got c = " + std::to_string(p.c));
  require(p.n <= INT_MAX, name, "n = " + std::to_string(p.n) + " exceeds the grid limit 2^31 - 1 rows");
  require(p.label_smoothing >= 0.0f && p.label_smoothing <= 1.0f, name,
          "label_smoothing must be in [0, 1], got " + std::to_string(p.label_smoothing));
  if (p.n == 0) return;
  require(logits != nullptr, name, "logits is null");
  require(targets != nullptr, name, "targets is null");
}

}  // namespace

CrossEntropyTotals cross_entropy_forward(const void* logits, const int64_t* targets, const float* class_weights,
                                         float* loss, float* stats, CrossEntropyParams p, DataType dt,
                                         cudaStream_t stream) {
  const char* name = "cross_entropy_forward";
  check_common(name, logits, targets, p, dt);
  CrossEntropyTotals tot;
  if (p.n == 0) return tot;
  require(loss != nullptr, name, "loss is null");
  require(stats != nullptr, name, "stats is null");
  GRAFT_DISPATCH_FLOAT(dt, T, {
    cross_entropy_forward_rows<T><<<static_cast<unsigned>(p.n), row_threads(p.c), 0, stream>>>(
        static_cast<const T*>(logits), targets, class_weights, loss, stats, p.c, p.label_smoothing, p.ignore_index);
  });
  GRAFT_KERNEL_LAUNCH_CHECK();
  DeviceTotals* d_tot = nullptr;
  GRAFT_KERNEL_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&d_tot), sizeof(DeviceTotals), stream));
  cross_entropy_totals<<<1, kTotalsThreads, 0, stream>>>(loss, targets, class_weights, p.n, p.c, p.ignore_index,
                                                         d_tot);
  GRAFT_KERNEL_LAUNCH_CHECK();
  DeviceTotals h{};
  GRAFT_KERNEL_CUDA_CHECK(cudaMemcpyAsync(&h, d_tot, sizeof h, cudaMemcpyDeviceToHost, stream));
  GRAFT_KERNEL_CUDA_CHECK(cudaFreeAsync(d_tot, stream));
  GRAFT_KERNEL_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (h.first_bad_row != LLONG_MAX) {
    int64_t t = 0;
    GRAFT_KERNEL_CUDA_CHECK(
        cudaMemcpy(&t, targets + h.first_bad_row, sizeof t, cudaMemcpyDeviceToHost));
    bad_argument(name, "target " + std::to_string(t) + " at row " + std::to_string(h.first_bad_row) +
                           " is out of range for " + std::to_string(p.c) + " classes (valid: [0, " +
                           std::to_string(p.c) + ") or ignore_index " + std::to_string(p.ignore_index) + ")");
  }
  tot.loss_sum = h.loss_sum;
  tot.weight_sum = h.weight_sum;
  return tot;
}

void cross_entropy_backward(const void* logits, const int64_t* targets, const float* class_weights,
                            const float* stats, const float* grad_loss, int64_t grad_stride, float grad_scale,
                            void* grad_logits, CrossEntropyParams p, DataType dt, cudaStream_t stream) {
  const char* name = "cross_entropy_backward";
  check_common(name, logits, targets, p, dt);
  if (p.n == 0) return;
  require(stats != nullptr, name, "stats is null");
  require(grad_loss != nullptr, name, "grad_loss is null");
  require(grad_logits != nullptr, name, "grad_logits is null");
  require(grad_stride >= 0, name, "negative grad_stride " + std::to_string(grad_stride));
  GRAFT_DISPATCH_FLOAT(dt, T, {
    cross_entropy_backward_rows<T><<<static_cast<unsigned>(p.n), row_threads(p.c), 0, stream>>>(
        static_cast<const T*>(logits), targets, class_weights, stats, grad_loss, grad_stride, grad_scale,
        static_cast<T*>(grad_logits), p.c, p.label_smoothing, p.ignore_index);
  });
  GRAFT_KERNEL_LAUNCH_CHECK();
}

}  // namespace graft::kernels::cuda
